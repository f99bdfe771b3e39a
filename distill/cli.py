"""Command line: `python -m distill run | launch | jobs | resume | report | publish | list | strategies`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import paths
from .config import HUB_DATA, SAMPLE_DATA, JobConfig, default_results_dir, read_job_file, setting_types
from .errors import UserError, user_message

if TYPE_CHECKING:
    from .results import Run

LAYER_NOTE = "Layer indices are 0-based: layer 0 is the encoder layer next to the embeddings."


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors in one line, as every other refusal of the command line, and where to look:
    not its usage block (45 lines for `run`), which `--help` prints. Its sub-commands' parsers are of its class."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m distill", description=__doc__, epilog=LAYER_NOTE)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a distillation job", epilog=LAYER_NOTE)
    add_job_flags(run)

    launch = commands.add_parser(
        "launch",
        help="run a job here (--backend local) or on Hugging Face Jobs (--backend hf-jobs); see docs/hf-jobs.md",
        epilog=LAYER_NOTE,
    )
    launch.add_argument("--backend", choices=("local", "hf-jobs"), required=True)
    launch.add_argument("--flavor", help="hf-jobs: the Jobs hardware (default: space_config/hf_jobs.yaml's)")
    launch.add_argument("--code-repo", metavar="OWNER/NAME", help="hf-jobs: the Space repo the job runs the code of")
    launch.add_argument("--revision", help="hf-jobs: that repo's commit, branch or tag (default: this checkout's)")
    launch.add_argument(
        "--bucket",
        metavar="OWNER/NAME",
        help="hf-jobs: the bucket mounted at /data; the run is written to its runs/ folder as it goes",
    )
    launch.add_argument(
        "--publish-repo", metavar="OWNER/NAME", help="hf-jobs: publish the run to this model repo when it ends"
    )
    launch.add_argument("--dry-run", action="store_true", help="hf-jobs: print the estimate and the call only")
    launch.add_argument("--yes", action="store_true", help="hf-jobs: launch without asking")
    add_job_flags(launch)

    jobs = commands.add_parser("jobs", help="follow or stop a job launched on Hugging Face Jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    for name, text in (("status", "the job's state, and its run's"), ("cancel", "stop the job; finished models stay")):
        sub = jobs_commands.add_parser(name, help=text)
        sub.add_argument("run", help="the run's name, as launch printed it")
        sub.add_argument("--results-dir", default=None, help="the results folder launch recorded the job in")

    resume = commands.add_parser("resume", help="continue a stopped, paused or interrupted run, keeping its models")
    resume.add_argument("run", help="run folder, or run name inside --results-dir")
    resume.add_argument("--results-dir", default=None)
    resume.add_argument("--quiet", action="store_true", help="no progress bar")

    report = commands.add_parser("report", help="print a run's comparison table and write its plots")
    report.add_argument("run", help="run folder, or run name inside --results-dir")
    report.add_argument("--results-dir", default=None)
    report.add_argument("--json", action="store_true", help="print the table as JSON records")
    report.add_argument("--no-plots", action="store_true")
    report.add_argument(
        "--ensemble", nargs="+", metavar="STRATEGY", help="add a row for the ensemble of these strategies"
    )
    report.add_argument(
        "--pairwise",
        nargs="?",
        const="",
        metavar="SPLIT",
        help="also test every pair of strategies (on SPLIT; default: the main validation split)",
    )
    report.add_argument(
        "--controls",
        nargs="+",
        metavar="RUN",
        help="add the students of these runs (scored on the same validation rows) as rows named RUN:STRATEGY",
    )

    publish = commands.add_parser(
        "publish", help="upload a completed run to a Hugging Face Hub model repo, with a model card per model"
    )
    publish.add_argument("run", help="run folder, or run name inside --results-dir")
    publish.add_argument("--repo", required=True, metavar="OWNER/NAME", help="the Hub model repo (created if needed)")
    publish.add_argument("--private", action="store_true", help="create the repo as private")
    publish.add_argument("--results-dir", default=None)
    publish.add_argument(
        "--dry-run", metavar="DIR", help="write the tree that would be uploaded into DIR (empty or new) instead"
    )

    listing = commands.add_parser("list", help="list the runs in the results folder")
    listing.add_argument("--results-dir", default=None)

    commands.add_parser("strategies", help="list the layer strategies", epilog=LAYER_NOTE)
    return parser


def add_job_flags(parser: argparse.ArgumentParser) -> None:
    """--config, a flag per JobConfig setting (booleans as --x/--no-x, lists as several values) and --quiet."""
    parser.add_argument("--config", help="YAML job file; flags given here override it")
    for f in dataclasses.fields(JobConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        kind = setting_types()[f.name]
        if kind.base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif kind.base is list:
            parser.add_argument(flag, nargs="+", default=None, help=help_text)
        else:
            parser.add_argument(flag, default=None, help=help_text)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def job_config(args: argparse.Namespace, *, writes: bool = True) -> JobConfig:
    """The job of --config and the flags, its data files and (when the job `writes` there) its results folder
    checked."""
    values = {}
    if args.config:
        values = read_job_file(args.config)
    for f in dataclasses.fields(JobConfig):
        given = getattr(args, f.name)
        if given is not None:
            values[f.name] = None if given in ("none", "None", "") and setting_types()[f.name].optional else given
    cfg = JobConfig.from_dict(values)
    if cfg.data not in (SAMPLE_DATA, HUB_DATA):
        cfg.data = paths.input_file(cfg.data, "--data")
    cfg.eval_data = [paths.input_file(name, "--eval-data") for name in cfg.eval_data]
    if writes:
        cfg.results_dir = paths.output_folder(cfg.results_dir, "--results-dir")
    return cfg


def check_paths(args: argparse.Namespace) -> None:
    """The path arguments every command reads, checked before it starts: --config a file, a --results-dir
    given to read runs from a folder, publish's --dry-run an empty or new folder that can be written."""
    if getattr(args, "config", None):
        args.config = paths.input_file(args.config, "--config")
    if args.command in ("jobs", "resume", "report", "publish", "list") and args.results_dir is not None:
        args.results_dir = paths.input_folder(args.results_dir, "--results-dir")
    if args.command == "publish" and args.dry_run is not None:
        args.dry_run = paths.output_folder(args.dry_run, "--dry-run", empty=True)


def writable_run(args: argparse.Namespace) -> Run:
    """The run RUN names, its folder checked to be writable (resume trains there, report writes its plots)."""
    from .results import open_run

    run = open_run(args.run, args.results_dir)
    given = args.run if Path(args.run).is_dir() else os.path.join(args.results_dir or default_results_dir(), args.run)
    paths.output_folder(given, "run")
    return run


def cmd_run(args: argparse.Namespace) -> int:
    from .job import run_job

    cfg = job_config(args)
    return _run_with_progress(args, lambda reporter: run_job(cfg, reporter))


def cmd_launch(args: argparse.Namespace) -> int:
    """`--backend local` runs the job here, as `run`; `hf-jobs` prints its estimate and the `run_job` call, asks,
    and launches it on Hugging Face Jobs."""
    if args.backend == "local":
        if args.dry_run:  # a local launch is `run`: it would train the whole job
            raise UserError("--dry-run is for --backend hf-jobs; a local launch runs the job (leave out --dry-run)")
        return cmd_run(args)
    from huggingface_hub import get_token

    from . import hf_jobs

    cfg = job_config(args, writes=not args.dry_run)  # a launch records its job in the results folder
    cfg = cfg.replace(run_name=cfg.run_name or hf_jobs.default_run_name())
    flavor = args.flavor or hf_jobs.settings()["default_flavor"]
    code_repo, revision = hf_jobs.code_source()
    code_repo, revision = args.code_repo or code_repo, args.revision or revision
    where = {"bucket": args.bucket, "publish_repo": args.publish_repo}
    token = None
    if not args.dry_run:  # refused before anything is printed or asked
        hf_jobs.check_destination(args.bucket, args.publish_repo)
        token = os.environ.get("HF_TOKEN") or get_token()
        if not token:
            raise UserError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    spec = hf_jobs.job_spec(cfg, flavor, code_repo=code_repo, revision=revision, **where)
    print(hf_jobs.describe(spec, hf_jobs.estimate(cfg, flavor)))
    if args.dry_run:
        if not (args.bucket or args.publish_repo):
            print("note: a launch needs --bucket or --publish-repo (a job's own disk is gone when it ends)")
        return 0
    if not args.yes:
        print("Launch? [y/N] ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("error: not launched", file=sys.stderr)
            return 1
    launched = hf_jobs.launch(
        cfg, flavor, token, code_repo=code_repo, revision=revision, results_dir=cfg.results_dir, **where
    )
    run = launched["run"]
    print(f"launched run {run}: job {launched['job_id']}, {launched['url']}")
    print(f"watch it with: python -m distill jobs status {run} --results-dir {cfg.results_dir}")
    if args.bucket:
        print(f"or on the Space that mounts the bucket, its page with ?run={run}")
    print(f"stop it with: python -m distill jobs cancel {run} --results-dir {cfg.results_dir}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    """`jobs status RUN` prints the job's state (and its run folder's, when it is here); `jobs cancel RUN`
    stops it."""
    from huggingface_hub import get_token

    from . import hf_jobs
    from .results import Run

    results_dir = args.results_dir or default_results_dir()
    record = hf_jobs.read_record(args.run, results_dir)
    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    job_id, namespace = record["job_id"], record.get("namespace")
    if args.jobs_command == "cancel":
        hf_jobs.cancel(job_id, token, namespace=namespace)
        print(f"cancelled job {job_id} (run {args.run}); its finished models stay where it wrote them")
        return 0
    status = hf_jobs.job_status(job_id, token, namespace=namespace)
    note = f" ({status['message']})" if status["message"] else ""
    print(f"run {args.run}: {status['state']} (Jobs stage {status['stage']}{note}); {status['url']}")
    folder = Path(results_dir) / args.run
    if (folder / "status.json").is_file():
        run_status = Run(folder).public_status()
        print(f"run folder: {run_status['state']}, {run_status['busy_seconds'] / 60:.1f} min of running")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from .job import resume_job

    run = writable_run(args)
    return _run_with_progress(args, lambda reporter: resume_job(run, reporter))


def _run_with_progress(args: argparse.Namespace, start) -> int:
    """Run a job with a tqdm bar, then print its comparison and write its plots."""
    from accelerate import PartialState

    from .comparison import comparison
    from .plots import write_plots
    from .progress import TqdmReporter, ignore
    from .tables import format_table

    reporter = ignore if args.quiet else TqdmReporter()
    try:
        run = start(reporter)
    finally:
        if not args.quiet:
            reporter.close()
    if not PartialState().is_main_process:  # under `accelerate launch`, the main process reports
        return 0
    status = run.status()
    print(format_table(comparison(run)))
    write_plots(run)
    busy = status.get("busy_seconds")
    took = f" after {busy / 60:.1f} min of running" if busy else ""
    note = f" ({status['message']})" if status.get("message") else ""
    print(f"\nrun {run.name}: {status['state']}{took}{note}; results in {run.path}")
    failed = any(r.get("failed") for r in run.summary())
    return 0 if status["state"] == "completed" and not failed else 1


def cmd_report(args: argparse.Namespace) -> int:
    from .comparison import comparison, pairwise
    from .plots import write_plots
    from .results import open_run
    from .tables import format_pairwise, format_table
    from .wording import plan_line, verdict

    run = open_run(args.run, args.results_dir) if args.no_plots else writable_run(args)
    controls = [open_run(name, args.results_dir) for name in args.controls or []]
    table = comparison(run, args.ensemble, controls)
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        status = run.status()
        print(
            f"run {run.name} ({status['state']}): teacher {run.config().get('teacher')}, "
            f"accuracy on {table[0]['eval_split'] if table else '-'} ({table[0]['eval_rows'] if table else 0} examples)"
        )
        print(format_table(table))
        said = [line for line in (verdict(table), plan_line(table)) if line]
        if said:
            print("\n" + "\n".join(said))
    if args.pairwise is not None:
        pairs = pairwise(run, args.pairwise or None, controls)
        if args.json:
            print(json.dumps(pairs, indent=2))
        else:
            print(f"\nevery pair of strategies on {pairs[0]['split'] if pairs else '-'}:")
            print(format_pairwise(pairs))
    if not args.no_plots:
        for path in write_plots(run):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from .publish import check_repo, publish, publish_tree
    from .results import open_run

    check_repo(args.repo)
    run = open_run(args.run, args.results_dir)
    if args.dry_run:
        files = publish_tree(run, Path(args.dry_run), args.repo)
        print(f"wrote {len(files)} files to {args.dry_run}")
    else:  # the token comes from HF_TOKEN or a saved login, found by huggingface_hub
        print(publish(run, args.repo, private=args.private))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .results import list_runs

    runs = list_runs(args.results_dir)
    if not runs:
        print("no runs yet; start one with: python -m distill run")
    for r in runs:
        print(
            f"{r['run']:<32} {r['state']:<12} models={r['models']:<3} best={r['best_student'] or '-'}  {r['message']}"
        )
    return 0


def cmd_strategies(_: argparse.Namespace) -> int:
    from .strategies import DESCRIPTIONS

    for name, text in DESCRIPTIONS.items():
        print(f"{name:<12} {text}")
    print(f"{'0,2,4':<12} an explicit list of teacher layers\n\n{LAYER_NOTE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = logging.getLogger("distill")
    if not os.environ.get("DISTILL_DEBUG") and not log.handlers:  # user_message logs tracebacks for a server
        log.addHandler(logging.NullHandler())
    commands = {
        "run": cmd_run,
        "launch": cmd_launch,
        "jobs": cmd_jobs,
        "resume": cmd_resume,
        "report": cmd_report,
        "publish": cmd_publish,
        "list": cmd_list,
        "strategies": cmd_strategies,
    }
    command = commands[args.command]
    try:
        check_paths(args)
        return command(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished models are kept and the run is marked stopped", file=sys.stderr)
        return 130
    except Exception as err:  # unforeseen: still one line, the traceback on request
        if os.environ.get("DISTILL_DEBUG"):
            raise
        text = user_message(err) if isinstance(err, OSError) and err.strerror else "unexpected error"
        print(f"error: {text}; run again with DISTILL_DEBUG=1 for the traceback", file=sys.stderr)
        return 1
