"""Hugging Face Jobs: the same job as `python -m distill run`, launched on a rented machine of the Hub.

`job_spec` builds the keyword arguments of `HfApi.run_job`: a plain `python:3.12` container that downloads this
code (the Space repo at a pinned revision, with the `hf` CLI), installs requirements.txt (the pinned torch, whose
PyPI wheel is the CUDA build), and runs `python -m distill run` with the job's settings as flags (`accelerate
launch` over every GPU of a multi-GPU flavor). `estimate` prices it from space_config/hf_jobs.yaml, `launch` starts
it, `job_state` and `cancel` follow and stop it.

Where the results go (a job's container and its disk are gone when it ends):

1. A bucket, the main way: `bucket` is mounted read-write at /data and the job writes its run to /data/runs/<run>
   as it goes (status, progress, every finished model). A Space that mounts the same bucket as its results folder
   (DISTILL_RESULTS_DIR=/data/runs) shows the run in Compare and Chat while it is written, and a cancelled or
   timed-out job leaves its finished models there.
2. A model repo, the alternative when there is no bucket: the job ends with `python -m distill publish` to
   `publish_repo`. Nothing is seen until the job ends, and a job stopped early publishes nothing.

A job with neither is refused. The token travels only in `secrets` (Jobs keeps it encrypted and shows it to no
one); it is never in the environment, the command, the labels, the printed call, the run's record or a message.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import HfApi, Volume

from .config import EMBEDDED_TEACHER, HUB_DATA, SAMPLE_DATA, JobConfig
from .errors import UserError, first_line, scrub, strip_paths
from .hub import HUB_ID

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "space_config" / "hf_jobs.yaml"
SPACE_FILE = ROOT / "space_config" / "space.yaml"
HIDDEN = "***"
BACKEND = "hf-jobs"
RECORDS = ".remote"  # <results_dir>/.remote/<run>.json: hidden, so it is never taken for a run folder
CODE_DIR = "/tmp/code"
# Jobs' stages (huggingface_hub.JobStage) as this project's run states. A job that ran past its timeout is ended by
# Jobs with an error whose message says so: it reads "interrupted", as a cancelled one does.
STATES = {
    "SCHEDULING": "queued",
    "RUNNING": "running",
    "COMPLETED": "completed",
    "ERROR": "failed",
    "CANCELED": "interrupted",
    "DELETED": "interrupted",
}
TIMED_OUT = re.compile(r"time ?out|timed out|deadline", re.IGNORECASE)
BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9_.-]+)*$")
NOT_SENT = ("run_name", "results_dir")  # the run's name is its own flag; its folder is the job's

ApiFactory = Callable[..., HfApi]
WHERE = (
    "**The job runs on Hugging Face Jobs**, on the machine you choose, billed by the minute to the token's account, "
    "and outlives this page. Give a bucket: the job writes its run there as it goes, so a Space that mounts the "
    "same bucket as its results folder lists, watches (`?run=NAME`) and compares it; or a model repo that gets the "
    "run when it ends. Stop cancels it (with the same token); a cancelled or timed-out job keeps its finished "
    "models in the bucket."
)


@cache
def settings() -> dict[str, Any]:
    return yaml.safe_load(SETTINGS_FILE.read_text(encoding="utf-8"))


def flavor_info(flavor: str) -> dict[str, Any]:
    """The price table's row of `flavor`; a one-line UserError for a flavor Jobs does not offer."""
    flavors = settings()["flavors"]
    if flavor not in flavors:
        raise UserError(f"unknown Jobs flavor {flavor!r}; choose one of {', '.join(offered())}")
    info = flavors[flavor]
    if info.get("unavailable"):
        raise UserError(info["unavailable"])
    return info


def offered() -> list[str]:
    return [name for name, info in settings()["flavors"].items() if not info.get("unavailable")]


def estimate(cfg: JobConfig, flavor: str) -> dict[str, Any]:
    """Hours and dollars of `cfg` on `flavor`, from the FLOPs `distill.estimate` counts and the price table.

    A multi-GPU flavor is assumed to split the work perfectly over its GPUs (time divided by their count);
    `setup_minutes` (image, pip install, downloads) are added to the wall time, which is what Jobs bills.
    """
    from .estimate import gpu_seconds, workload

    info = flavor_info(flavor)
    s = settings()
    gpus = info["gpus"]
    compute_s = gpu_seconds(cfg, info["tflops"], info["step_floor_s"]) / max(gpus, 1)
    wall_s = compute_s + 60 * s["setup_minutes"]
    timeout_min = int(-(-(wall_s * s["timeout"]["factor"] / 60 + s["timeout"]["extra_minutes"]) // 1))
    peak = workload(cfg).peak_gib
    return {
        "flavor": flavor,
        "gpus": gpus,
        "gpu": info["gpu"],
        "compute_hours": compute_s / 3600,
        "wall_hours": wall_s / 3600,
        "gpu_hours": wall_s / 3600 * gpus,
        "usd_per_hour": info["usd_per_hour"],
        "cost_usd": wall_s / 3600 * info["usd_per_hour"],
        "timeout_s": 60 * timeout_min,
        "peak_memory_gib": peak,
        "memory_gib": info["memory_gib"],
        "fits": peak < info["memory_gib"],
        "assumptions": (
            f"counted FLOPs at {100 * _share():.0f}% of the {'GPU' if gpus else 'CPU'}'s peak"
            + (f", split perfectly over {gpus} GPUs" if gpus > 1 else "")
            + f", plus {s['setup_minutes']} min of setup"
        ),
        "price_source": s["price_source"],
        "price_checked": str(s["price_checked"]),
    }


def _share() -> float:
    from .estimate import ACHIEVED_SHARE

    return ACHIEVED_SHARE


def default_run_name() -> str:
    return time.strftime("hfjob-%Y%m%d-%H%M%S")


def check_inputs(cfg: JobConfig) -> None:
    """Refuse what a job on another machine cannot read: a local teacher folder or data file."""
    teacher = cfg.teacher
    if teacher != EMBEDDED_TEACHER and (_is_path(teacher) or not HUB_ID.match(teacher) or ".." in teacher):
        raise UserError(
            "the teacher is a path on this machine, not a Hub id; a job on HF Jobs downloads its teacher "
            f"from the Hub: give a Hub id (owner/name) or '{EMBEDDED_TEACHER}'"
        )
    for name in [cfg.data, *cfg.eval_data]:
        if name not in (SAMPLE_DATA, HUB_DATA):
            raise UserError(
                f"data file {Path(name).name!r} is on this machine; a job on HF Jobs reads '{SAMPLE_DATA}' or "
                f"'{HUB_DATA}' (MNLI from the Hub)"
            )


def _is_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def run_flags(cfg: JobConfig) -> list[str]:
    """The settings that differ from JobConfig's defaults, as `python -m distill run` flags (unquoted)."""
    flags: list[str] = []
    for f in dataclasses.fields(JobConfig):
        if f.name in NOT_SENT:
            continue
        value = getattr(cfg, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if value == default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            if value:
                flags += [flag, *(_text(v) for v in value)]
            elif f.type.startswith("list[str]"):
                flags += [flag, ""]  # an empty list of names
        else:
            flags += [flag, _text(value)]
    return flags


def _text(value: Any) -> str:
    if value is None:
        return "none"
    return repr(value) if isinstance(value, float) else str(value)


def _bucket(bucket: str) -> tuple[str, str]:
    """A bucket as (owner/name, results folder in the job): `owner/name` writes to <mount>/runs,
    `owner/name/sub/dir` to <mount>/sub/dir (to match where a Space that mounts it reads)."""
    if not BUCKET.match(bucket) or ".." in bucket:
        raise UserError("the bucket must be a Hub bucket id owner/name, optionally with /sub/folder (--bucket)")
    owner, name, *rest = bucket.split("/")
    s = settings()
    return f"{owner}/{name}", f"{s['mount_path']}/{'/'.join(rest) or s['results_subdir']}"


def check_destination(bucket: str | None, publish_repo: str | None) -> None:
    """Refuse a job whose results would be lost with its container: it needs a bucket or a repo to publish to."""
    if not bucket and not publish_repo:
        raise UserError(
            "give a bucket (--bucket: the run is written there as it goes) or a model repo (--publish-repo: "
            "published when it ends): a job's own disk is gone when it ends"
        )


def job_spec(
    cfg: JobConfig,
    flavor: str,
    *,
    code_repo: str,
    revision: str,
    bucket: str | None = None,
    publish_repo: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of `HfApi.run_job` for `cfg` on `flavor`, with the token as a placeholder in
    `secrets` (`launch` puts the real one there, and nowhere else). The run's name is fixed here (`cfg.run_name`,
    else `hfjob-<time>`), so whoever launches knows the folder the run will be written to."""
    from .publish import check_repo

    info = flavor_info(flavor)
    check_inputs(cfg)
    if not HUB_ID.match(code_repo) or code_repo.count("/") != 1:
        raise UserError(f"--code-repo must be a Space id owner/name, not {code_repo!r}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,99}", revision) or ".." in revision:
        raise UserError(f"--revision must be a commit, branch or tag, not {revision!r}")
    if publish_repo:
        check_repo(publish_repo)
    s = settings()
    run = cfg.run_name or default_run_name()
    source, results = _bucket(bucket) if bucket else (None, f"{s['mount_path']}/{s['results_subdir']}")
    est = estimate(cfg, flavor)
    spec: dict[str, Any] = {
        "image": s["image"],
        "command": ["bash", "-c", _script(cfg, run, info["gpus"], code_repo, revision, publish_repo)],
        "env": {
            "DISTILL_RESULTS_DIR": results,
            "HF_HUB_ENABLE_HF_TRANSFER": "0",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_ROOT_USER_ACTION": "ignore",
        },
        "secrets": {"HF_TOKEN": HIDDEN},
        "flavor": flavor,
        "timeout": f"{est['timeout_s'] // 60}m",
        "name": run,
        "labels": {"project": s["project_label"], "run": run},
    }
    if source:
        spec["volumes"] = [Volume(type="bucket", source=source, mount_path=s["mount_path"], read_only=False)]
    return spec


def _script(cfg: JobConfig, run: str, gpus: int, code_repo: str, revision: str, publish_repo: str | None) -> str:
    """The job's one bash line: fetch the code unless it is here, install, run (and publish)."""
    q = shlex.quote
    s = settings()
    fetch = (
        f"if [ ! -f distill/__init__.py ]; then pip install -q {q(s['huggingface_hub_pin'])}"
        f" && hf download {q(code_repo)} --repo-type space --revision {q(revision)} --local-dir {CODE_DIR} --quiet"
        f" && cd {CODE_DIR} || exit 1; fi"
    )
    install = "pip install -q -r requirements.txt || exit 1"
    if gpus > 1:
        launcher = (
            f"accelerate launch --multi_gpu --num_processes {gpus} --num_machines 1 --mixed_precision no"
            " --dynamo_backend no -m distill run"
        )
    else:
        launcher = "python -m distill run"
    job = " ".join(
        [launcher, "--run-name", q(run), '--results-dir "$DISTILL_RESULTS_DIR"', *(q(f) for f in run_flags(cfg))]
    )
    if not publish_repo:
        return f"{fetch}; {install}; exec {job}"
    # Published whenever the run completed, a failed model or not (publish refuses any other state); the job's
    # exit status is the run's, unless publishing fails.
    publish = f'python -m distill publish {q(run)} --results-dir "$DISTILL_RESULTS_DIR" --repo {q(publish_repo)}'
    return f"{fetch}; {install}; {job}; rc=$?; {publish} || exit 1; exit $rc"


def redacted(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every secret's value hidden."""
    return {
        key: dict.fromkeys(value or {}, HIDDEN) if key == "secrets" else copy.deepcopy(value)
        for key, value in spec.items()
    }


def describe(spec: dict[str, Any], est: dict[str, Any]) -> str:
    """The estimate in a line, then the `run_job` call as Python, secrets hidden."""
    return f"{estimate_line(est)}\n{call_text(spec)}"


def estimate_line(est: dict[str, Any]) -> str:
    """The estimate in one line: time, cost, time limit and memory, with its assumptions and the prices' source."""
    gpus = f"{est['gpus']}x {est['gpu']}" if est["gpus"] else "CPU"
    memory = f"peak memory {est['peak_memory_gib']:.1f} of {est['memory_gib']} GiB"
    return (
        f"estimate for {est['flavor']} ({gpus}, ${est['usd_per_hour']:.2f}/h): {_duration(est['compute_hours'])} of "
        f"compute, {_duration(est['wall_hours'])} billed ({est['gpu_hours']:.2f} GPU hours), about "
        f"${est['cost_usd']:.2f}; time limit {_duration(est['timeout_s'] / 3600)}; "
        + (memory if est["fits"] else f"{memory}: MAY NOT FIT")
        + f" ({est['assumptions']}; prices from {est['price_source']}, checked {est['price_checked']})"
    )


def call_text(spec: dict[str, Any]) -> str:
    """The `run_job` call as Python, secrets hidden."""
    lines = ["HfApi().run_job(", *(f"    {key}={value!r}," for key, value in redacted(spec).items()), ")"]
    return scrub("\n".join(lines))


def _duration(hours: float) -> str:
    if hours * 60 < 0.5:
        return "under a minute"
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def record_path(results_dir: str | Path, run: str) -> Path:
    """Where a launched run's record is kept: beside the run folders, in a hidden folder, because the job creates
    the run folder itself (and refuses a name that is taken)."""
    return Path(results_dir) / RECORDS / f"{run}.json"


def read_record(run: str, results_dir: str | Path) -> dict[str, Any]:
    """The record `launch` wrote for `run`; a UserError when there is none."""
    from .results import openable_name, read_json

    if not openable_name(run):
        raise UserError(f"no launched run named {run!r}")
    record = read_json(record_path(results_dir, run))
    if not isinstance(record, dict) or not record.get("job_id"):
        raise UserError(f"no launched run named {run!r} in this results folder")
    return record


def launch(
    cfg: JobConfig,
    flavor: str,
    token: str,
    *,
    code_repo: str,
    revision: str,
    bucket: str | None = None,
    publish_repo: str | None = None,
    results_dir: str | Path | None = None,
    api_factory: ApiFactory = HfApi,
) -> dict[str, Any]:
    """Start `cfg` on HF Jobs with `token` (as the job's HF_TOKEN secret) and, when `results_dir` is given (the
    bucket as this machine sees it, or a local results folder), record the job there (`record_path`).

    Returns {"run", "job_id", "namespace", "url", "estimate"}. Every failure is one UserError line, token-free.
    """
    from .results import write_json

    check_destination(bucket, publish_repo)
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    spec = job_spec(cfg, flavor, code_repo=code_repo, revision=revision, bucket=bucket, publish_repo=publish_repo)
    run = spec["name"]
    if results_dir is not None and ((Path(results_dir) / run).exists() or record_path(results_dir, run).exists()):
        raise UserError(f"a run named {run!r} already exists; choose another name")
    est = estimate(cfg, flavor)
    try:
        info = api_factory(token=token).run_job(**{**spec, "secrets": {"HF_TOKEN": token}})
    except Exception as err:
        raise hub_failure("launching the job", err, token) from None
    result = {"run": run, "job_id": info.id, "namespace": info.owner.name, "url": info.url, "estimate": est}
    if results_dir is not None:
        record = {
            "backend": BACKEND,
            **result,
            "flavor": flavor,
            "launched": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "code_repo": code_repo,
            "revision": revision,
            "bucket": bucket,
            "publish_repo": publish_repo,
            "results_dir_in_job": spec["env"]["DISTILL_RESULTS_DIR"],
        }
        try:
            write_json(record_path(results_dir, run), record)
        except OSError as err:
            raise UserError(
                f"job {info.id} was launched ({info.url}) but its record could not be written: {err.strerror}"
            ) from None
    return result


def job_status(
    job_id: str, token: str | None, *, namespace: str | None = None, api_factory: ApiFactory = HfApi
) -> dict[str, Any]:
    """The job as Jobs reports it: {"state" (this project's), "stage" (Jobs'), "message", "url"}."""
    try:
        info = api_factory(token=token).inspect_job(job_id=job_id, namespace=namespace)
    except Exception as err:
        raise hub_failure(f"reading job {job_id}", err, token) from None
    stage = str(getattr(info.status.stage, "value", info.status.stage))
    message = info.status.message or ""
    return {"state": state_of(stage, message), "stage": stage, "message": scrub(message), "url": info.url}


def state_of(stage: str, message: str = "") -> str:
    """A Jobs stage as a run state: queued, running, completed, failed or interrupted (cancelled, deleted, or
    stopped at its time limit). A stage this version does not know reads queued: not finished, nothing known."""
    if stage == "ERROR" and TIMED_OUT.search(message or ""):
        return "interrupted"
    return STATES.get(stage, "queued")


def job_state(job_id: str, token: str | None, *, namespace: str | None = None, api_factory: ApiFactory = HfApi) -> str:
    """This project's state of a job: queued, running, completed, failed or interrupted."""
    return job_status(job_id, token, namespace=namespace, api_factory=api_factory)["state"]


def cancel(job_id: str, token: str | None, *, namespace: str | None = None, api_factory: ApiFactory = HfApi) -> None:
    """Stop the job (and its billing); what it wrote to the bucket stays."""
    try:
        api_factory(token=token).cancel_job(job_id=job_id, namespace=namespace)
    except Exception as err:
        raise hub_failure(f"cancelling job {job_id}", err, token) from None


HTTP_REASONS = {
    400: "the Hub refused the request (400)",
    401: "the token was refused (401): check HF_TOKEN or log in again with `hf auth login`",
    402: "payment required (402): Jobs need a positive credit balance, see https://huggingface.co/settings/billing",
    403: "not allowed (403): the token needs write access to the namespace that runs the job",
    404: "not found (404)",
    409: "conflict (409)",
    422: "the Hub refused the request (422)",
    429: "too many requests (429): wait a minute and try again",
}


def hub_failure(what: str, err: BaseException, token: str | None) -> UserError:
    """One line for a failed Jobs call: the HTTP status in words and the Hub's own message, no token, no path."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        text = "the Hugging Face Hub is offline here (HF_HUB_OFFLINE=1)"
    elif isinstance(err, LocalTokenNotFoundError):
        text = "no Hugging Face token: set HF_TOKEN or log in with `hf auth login`"
    elif isinstance(err, HfHubHTTPError) and err.response is not None:
        code = err.response.status_code
        reason = HTTP_REASONS.get(code, f"HTTP {code}")
        server = (err.server_message or "").strip().splitlines()
        text = f"{reason}: {server[0]}" if server and code != 401 else reason
    elif type(err).__module__.split(".")[0] in ("httpx", "httpx2") or isinstance(err, ConnectionError):
        text = f"cannot reach the Hugging Face Hub ({_first_line(err)})"
    else:
        text = _first_line(err)
    if token:
        text = text.replace(token, HIDDEN)
    return UserError(strip_paths(scrub(f"{what} failed: {text[:300]}")))


def _first_line(err: BaseException) -> str:
    return first_line(err)


def code_source() -> tuple[str, str]:
    """(Space repo, revision) the job downloads its code from.

    The repo: SPACE_ID on a Space (its own repo, a duplicate's included), else the original Space of
    space_config/space.yaml. The revision: DISTILL_CODE_REVISION if set; else this checkout's `git rev-parse HEAD`
    (the Space is pushed from this repository, so the commit is there too); else "main". Spaces document no
    variable with the running commit (SPACE_ID, SPACE_AUTHOR_NAME, SPACE_REPO_NAME, SPACE_TITLE, SPACE_HOST,
    SPACE_CREATOR_USER_ID): on a Space without DISTILL_CODE_REVISION the job runs the Space's main.
    """
    return space_repo(), os.environ.get("DISTILL_CODE_REVISION") or _git_head() or "main"


def space_repo() -> str:
    """The Space's repo: SPACE_ID on a Space (its own repo, a duplicate's included), else the original Space of
    space_config/space.yaml."""
    return os.environ.get("SPACE_ID") or yaml.safe_load(SPACE_FILE.read_text(encoding="utf-8"))["original_space"]


def _git_head() -> str | None:
    if not (ROOT / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    head = done.stdout.strip()
    return head if re.fullmatch(r"[0-9a-f]{40}", head) else None


# ---------------------------------------------------------------- launched runs, as the app lists and watches them

_STATUS_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}
STATUS_CACHE_SECONDS = 30.0  # the app lists runs on every page load: Jobs is asked at most this often per job


def launched(results_dir: str | Path) -> list[dict[str, Any]]:
    """The records of the runs launched from this results folder, newest first; an unreadable one is skipped."""
    from .results import read_json

    records = []
    for path in sorted((Path(results_dir) / RECORDS).glob("*.json")):
        try:
            record = read_json(path)
        except UserError:
            continue
        if isinstance(record, dict) and isinstance(record.get("run"), str) and record.get("job_id"):
            records.append(record)
    return sorted(records, key=lambda r: str(r.get("launched", "")), reverse=True)


def record_of(run: str, results_dir: str | Path) -> dict[str, Any] | None:
    return next((r for r in launched(results_dir) if r["run"] == run), None)


def cached_status(record: dict[str, Any], token: str | None) -> dict[str, Any]:
    """The job's state as Jobs reports it (asked at most every STATUS_CACHE_SECONDS), or, without a token or when
    Jobs cannot be asked, "launched" with the reason."""
    if not token:
        return {"state": "launched", "message": "its state on Jobs is known to the token that launched it"}
    known = _STATUS_CACHE.get(record["job_id"])
    if known is None or time.monotonic() - known[0] > STATUS_CACHE_SECONDS:
        try:
            status = job_status(record["job_id"], token, namespace=record.get("namespace"))
        except UserError as err:
            status = {"state": "launched", "message": str(err)}
        known = (time.monotonic(), status)
        _STATUS_CACHE[record["job_id"]] = known
    return known[1]


def waiting_view(record: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """A launched run whose folder is not here yet, as a watcher sees it (progress.JobState's snapshot)."""
    from .progress import JobState

    status = cached_status(record, token)
    view = JobState(record["run"], status["state"], f"on Hugging Face Jobs ({record.get('flavor')})")
    view.add_log(f"launched on Hugging Face Jobs as job {record['job_id']}: {record.get('url', '')}")
    if status.get("message"):
        view.add_log(status["message"])
    if status["state"] in ("launched", "queued", "running"):
        view.add_log("the run appears here once its container writes it to the bucket this app reads")
    return {**view.snapshot(), "backend": BACKEND, "job_url": record.get("url")}


def watch_launched(record: dict[str, Any], results_dir: str | Path, token: str | None = None, poll_seconds=5.0):
    """A launched run watched from here: its Jobs state until its run folder appears in `results_dir` (the
    bucket the job writes), then the folder as the job writes it; it ends when Jobs says the job has ended
    without writing a run."""
    from .results import Run
    from .service import watch_folder

    folder = Path(results_dir) / record["run"]
    last = None
    while not (folder / "config.json").is_file():
        view = waiting_view(record, token)
        if view != last:
            yield view
            last = view
        if view["state"] not in ("launched", "queued", "running"):
            return
        time.sleep(poll_seconds)
    yield from watch_folder(Run(folder))


def listing(results_dir: str | Path, token: str | None = None) -> list[dict[str, Any]]:
    """Launched runs whose folder is not in `results_dir` yet, as `results.list_runs` lists runs."""
    entries = []
    for record in launched(results_dir):
        if (Path(results_dir) / record["run"]).exists():
            continue
        status = cached_status(record, token)
        entries.append(
            {
                "run": record["run"],
                "started": os.path.getmtime(record_path(results_dir, record["run"])),
                "state": status["state"],
                "message": f"on Hugging Face Jobs ({record.get('flavor')}): {status.get('message') or record['url']}",
                "busy_seconds": None,
                "teacher": None,
                "models": 0,
                "failed_models": 0,
                "best_student": None,
            }
        )
    return entries
