"""Command line: `python -m distill run | resume | report | publish | list | strategies`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .config import JobConfig
from .errors import UserError

LAYER_NOTE = "Layer indices are 0-based: layer 0 is the encoder layer next to the embeddings."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distill", description=__doc__, epilog=LAYER_NOTE)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a distillation job", epilog=LAYER_NOTE)
    run.add_argument("--config", help="YAML job file; flags given here override it")
    for f in dataclasses.fields(JobConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.type.startswith("bool"):
            run.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif f.type.startswith("list"):
            run.add_argument(flag, nargs="+", default=None, help=help_text)
        else:
            run.add_argument(flag, default=None, help=help_text)
    run.add_argument("--quiet", action="store_true", help="no progress bar")

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


def job_config(args: argparse.Namespace) -> JobConfig:
    values = {}
    if args.config:
        values = JobConfig.from_yaml(args.config).to_dict()
    for f in dataclasses.fields(JobConfig):
        given = getattr(args, f.name)
        if given is not None:
            values[f.name] = None if given in ("none", "None", "") and "None" in f.type else given
    return JobConfig.from_dict(values)


def cmd_run(args: argparse.Namespace) -> int:
    from .job import run_job

    cfg = job_config(args)
    return _run_with_progress(args, lambda reporter: run_job(cfg, reporter))


def cmd_resume(args: argparse.Namespace) -> int:
    from .job import resume_job
    from .results import open_run

    run = open_run(args.run, args.results_dir)
    return _run_with_progress(args, lambda reporter: resume_job(run, reporter))


def _run_with_progress(args: argparse.Namespace, start) -> int:
    """Run a job with a tqdm bar, then print its comparison and write its plots."""
    from accelerate import PartialState

    from .progress import TqdmReporter, ignore
    from .report import comparison, format_table, write_plots

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
    from .report import comparison, format_pairwise, format_table, pairwise, write_plots
    from .results import open_run

    run = open_run(args.run, args.results_dir)
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
    from pathlib import Path

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
    commands = {
        "run": cmd_run,
        "resume": cmd_resume,
        "report": cmd_report,
        "publish": cmd_publish,
        "list": cmd_list,
        "strategies": cmd_strategies,
    }
    command = commands[args.command]
    try:
        return command(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; finished models are kept and the run is marked stopped", file=sys.stderr)
        return 130
