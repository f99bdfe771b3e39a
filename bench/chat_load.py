"""Load (a benchmark; tests/test_load.py runs it): concurrent chat clients while a training job runs.

    python -m bench.chat_load                     # 20 clients for 60 s; prints p50/p95, writes bench/chat_load.json
    python -m bench.chat_load --url http://127.0.0.1:7860/ --clients 50 --seconds 120

It starts the app in its own process (or uses --url), makes sure a student exists (a tiny job), starts a real
distillation job, checks that a second job submitter is told their place in the queue, then runs N
gradio_client clients, each sending /chat requests one after another for the given time, and reports the
number of requests, errors and latency percentiles. The exit code is 1 if any request failed or the job was
not running the whole time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.app_server import connect, serve
from bench.machine import machine
from distill.results import write_json

ROOT = Path(__file__).resolve().parent.parent

TINY_JOB = {"train_size": 64, "eval_size": 32, "strategies": ["top_k"], "epochs": 1, "teacher_epochs": 1}
LONG_JOB = {"train_size": 4000, "eval_size": 200, "strategies": ["top_k", "even"], "epochs": 3, "teacher_epochs": 3}


def submit_job(client, run_name: str, **settings):
    """A /run_job call by parameter name; unnamed settings keep the app's defaults."""
    return client.submit(run_name=run_name, data_file=None, **settings, api_name="/run_job")


def wait_until_running(job, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if job.done():
            raise RuntimeError(f"the background job ended before the load started: {job.outputs()[-1:]}")
        if job.outputs():  # at least one streamed update: it is running
            return
        time.sleep(0.2)
    raise RuntimeError("the background job did not start")


def queue_place(url: str, timeout_s: float = 30) -> dict:
    """Submit a second job while one runs: the submitter must be told, at once, how many jobs are ahead of theirs
    in the app's queue; then the queued job is stopped (a queued job outlives its client)."""
    client = connect(url)
    job = submit_job(client, "load-queued", **TINY_JOB)
    deadline = time.time() + timeout_s
    try:
        while time.time() < deadline:
            if job.outputs():
                first = job.outputs()[0]
                return {"state": first["state"], "queue_position": first.get("queue_position")}
            time.sleep(0.1)
        return {"state": None, "queue_position": None}
    finally:
        client.predict("load-queued", api_name="/stop_job")
        job.cancel()


def chat_clients(url: str, model: str, clients: int, seconds: float) -> dict:
    examples = [json.loads(line) for line in (ROOT / "examples" / "chat_examples.jsonl").open()]
    connections = [connect(url) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client_loop(index: int) -> None:
        client = connections[index]
        start.wait()
        ends = time.monotonic() + seconds
        i = index
        while time.monotonic() < ends:
            example = examples[i % len(examples)]
            i += clients
            began = time.perf_counter()
            try:
                reply = client.predict(model, example["query"], example["context"], 1.0, 128, False, api_name="/chat")
                if reply.get("label") not in ("entailment", "neutral", "contradiction"):
                    raise ValueError(f"unexpected reply {reply!r}")
            except Exception as err:  # every failure is counted and reported
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                latencies.append(1000 * (time.perf_counter() - began))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)

    def pct(q: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_examples": errors[:5],
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": statistics.median(ordered) if ordered else None,
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": ordered[-1] if ordered else None,
    }


def run_load(url: str, clients: int, seconds: float) -> dict:
    client = connect(url)
    students = [m for m in client.predict(api_name="/models") if not m.endswith(("/teacher", "/ensemble"))]
    if not students:
        list(submit_job(client, "load-student", **TINY_JOB))
        students = ["load-student/top_k-seed0"]
    job = submit_job(client, "load-job", **LONG_JOB)
    wait_until_running(job)
    steps_before = job.outputs()[-1]["done"]
    report = {"model": students[0], "queue": queue_place(url)}
    report.update(chat_clients(url, students[0], clients, seconds))
    latest = job.outputs()[-1]
    report["job"] = {
        "running_throughout": not job.done() and latest["state"] == "running",
        "steps_during_load": latest["done"] - steps_before,
    }
    client.predict(api_name="/stop_job")
    deadline = time.time() + 120
    while not job.done() and time.time() < deadline:
        time.sleep(0.5)
    final = job.outputs()[-1]
    report["job"]["final_state"] = final["state"]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running app (default: start one with a fresh results folder)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--out", default=str(ROOT / "bench" / "chat_load.json"))
    args = parser.parse_args()
    if args.url:
        report = run_load(args.url, args.clients, args.seconds)
    else:
        with tempfile.TemporaryDirectory() as tmp, serve(tmp) as url:
            report = run_load(url, args.clients, args.seconds)
    report["machine"] = machine()
    write_json(Path(args.out), report)
    print(
        f"{report['clients']} chat clients for {report['seconds']:.0f} s while a job trained "
        f"({report['job']['steps_during_load']} steps): {report['requests']} requests, {report['errors']} errors, "
        f"{report['requests_per_s']} requests/s; p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, "
        f"p99 {report['p99_ms']:.0f} ms. A second job submitter was told: {report['queue']['state']}, "
        f"{report['queue']['queue_position']} job(s) ahead."
    )
    ok = report["errors"] == 0 and report["job"]["running_throughout"] and report["queue"]["queue_position"] == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
