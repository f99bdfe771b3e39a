"""Benchmark (not a test): the training loop of the experiment this project grew from against this project's
pipeline, side by side.

    python -m bench.compare_pipelines                 # prints the table and writes bench/results.json
    python -m bench.compare_pipelines --show          # prints the last run's table again

Both do the full comparison (teacher fine-tune plus the four strategies) on the same data, settings and
machine, one after the other, each in its own process and results folder:
  (a) seed-style baseline: teacher forward on every step, every batch padded to 128 tokens, fp32;
  (b) this project: teacher outputs computed once, length-grouped dynamic padding, bf16 autocast where native.
Then it reads student against teacher latency (batch 1 and 32, timed side by side) from (b), and measures
chat latency (p50, p95) through the running app's /chat endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import recorded
from bench.app_server import connect, serve
from bench.machine import machine
from distill.results import write_json

ROOT = Path(__file__).resolve().parent.parent

BASELINE = {"cache_teacher_outputs": False, "group_by_length": False, "pad_to_max_length": True, "precision": "fp32"}
PIPELINE = {"cache_teacher_outputs": True, "group_by_length": True, "pad_to_max_length": False, "precision": "auto"}


def run_one(settings: dict, results_dir: str) -> dict:
    """Run one job in this process; return wall time, peak memory and every model's accuracy."""
    from distill.config import JobConfig
    from distill.job import run_job

    cfg = JobConfig.from_dict({**settings, "results_dir": results_dir, "run_name": "bench"})
    start = time.perf_counter()
    run = run_job(cfg)
    wall = time.perf_counter() - start
    students = len(cfg.strategies) * len(cfg.seeds)
    trained = (cfg.teacher_epochs + students * cfg.epochs) * cfg.train_size
    return {
        "wall_s": wall,
        "examples_per_s": trained / wall,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "accuracy": {r["model"]: r["accuracy"] for r in run.summary()},
        "latency": {r["model"]: {"b1": r["latency_b1_ms"], "b32": r["latency_b32_ms"]} for r in run.summary()},
        "eval_rows": run.summary()[0]["eval_rows"],
        "run": str(run.path),
    }


def spawn(name: str, settings: dict, results_dir: str) -> dict:
    print(f"running {name} ...", file=sys.stderr, flush=True)
    out = subprocess.run(
        [sys.executable, "-m", "bench.compare_pipelines", "--one", json.dumps(settings), "--results-dir", results_dir],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def chat_latency(results_dir: str, model: str, requests: int) -> dict:
    """p50/p95 of /chat round trips through the real app, served in another process on a free local port.

    Timed over Gradio's HTTP API (POST /gradio_api/call/chat, then its result stream), the endpoint that
    gradio_client calls; gradio_client itself adds about 100 ms of polling, reported separately.
    """
    import httpx

    examples = [json.loads(line) for line in (ROOT / "examples" / "chat_examples.jsonl").open()]
    with serve(results_dir) as url:
        client = connect(url)
        http = httpx.Client(base_url=f"{url}gradio_api")

        def over_http(ex: dict) -> None:
            event = http.post("/call/chat", json={"data": [model, ex["query"], ex["context"], 1.0, 128, False]})
            with http.stream("GET", f"/call/chat/{event.json()['event_id']}") as stream:
                body = "".join(stream.iter_text())
            assert "event: complete" in body, body

        def over_client(ex: dict) -> None:
            client.predict(model, ex["query"], ex["context"], 1.0, 128, False, api_name="/chat")

        timings = {}
        for name, call in (("http", over_http), ("gradio_client", over_client)):
            times = []
            for i in range(requests + 5):
                start = time.perf_counter()
                call(examples[i % len(examples)])
                if i >= 5:  # the first calls load and warm the model
                    times.append(1000 * (time.perf_counter() - start))
            times.sort()
            timings[name] = {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}
    return {**timings["http"], "client": timings["gradio_client"], "requests": requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--eval-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--chat-requests", type=int, default=100)
    parser.add_argument("--show", action="store_true", help="print the table of the last run (bench/results.json)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = ROOT / "bench" / "results.json"
    if args.show:
        print(format_report(recorded(out)))
        return
    if args.one:
        print(json.dumps(run_one(json.loads(args.one), args.results_dir)))
        return

    common = {
        "train_size": args.train_size,
        "eval_size": args.eval_size,
        "epochs": args.epochs,
        "teacher_epochs": args.epochs,
        "strategies": ["top_k", "bottom_k", "odd", "even"],
        "seeds": [0],
    }
    report: dict = {"settings": common, "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, settings in (("baseline", BASELINE), ("pipeline", PIPELINE)):
            report[name] = spawn(name, {**common, **settings}, f"{tmp}/{name}")
            write_json(out, report)  # kept even if a later phase fails
        report["chat"] = chat_latency(f"{tmp}/pipeline", "bench/top_k-seed0", args.chat_requests)
    write_json(out, report)
    print(format_report(report))


def format_report(r: dict) -> str:
    b, p = r["baseline"], r["pipeline"]
    lines = [
        f"Full comparison (teacher fine-tune + 4 strategies), {r['settings']['train_size']} train examples, "
        f"{r['settings']['epochs']} epochs each, {b['eval_rows']} validation_matched examples, {r['machine']}",
        "",
        "| | seed-style baseline | this pipeline | ratio |",
        "|---|---|---|---|",
        f"| wall time | {b['wall_s'] / 60:.1f} min | {p['wall_s'] / 60:.1f} min | "
        f"{b['wall_s'] / p['wall_s']:.2f}x faster |",
        f"| training examples/s | {b['examples_per_s']:.1f} | {p['examples_per_s']:.1f} | "
        f"{p['examples_per_s'] / b['examples_per_s']:.2f}x |",
        f"| peak memory | {b['peak_rss_gib']:.2f} GiB | {p['peak_rss_gib']:.2f} GiB | |",
    ]
    for model in b["accuracy"]:
        diff = 100 * (p["accuracy"][model] - b["accuracy"][model])
        lines.append(
            f"| accuracy {model} | {b['accuracy'][model]:.1%} | {p['accuracy'][model]:.1%} | {diff:+.1f} points |"
        )
    teacher = p["latency"]["teacher"]
    lines += ["", "| model | ms/example, batch 1 | ms/example, batch 32 | speed-up at batch 32 |", "|---|---|---|---|"]
    for model, lat in p["latency"].items():
        lines.append(f"| {model} | {lat['b1']:.2f} | {lat['b32']:.2f} | {teacher['b32'] / lat['b32']:.2f}x |")
    c = r["chat"]
    lines += [
        "",
        f"/chat through the running app, student top_k, {c['requests']} requests one after another: "
        f"p50 {c['p50_ms']:.1f} ms, p95 {c['p95_ms']:.1f} ms over HTTP; with gradio_client's polling "
        f"p50 {c['client']['p50_ms']:.1f} ms, p95 {c['client']['p95_ms']:.1f} ms",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
