"""Load: 20 concurrent gradio_client chat clients for 60 s while a job trains, through bench/chat_load.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_twenty_chat_clients_for_a_minute_during_a_job_get_no_errors(tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.chat_load", "--clients", "20", "--seconds", "60", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(out.read_text())
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["clients"] == 20 and report["seconds"] >= 60
    assert report["errors"] == 0 and report["requests"] >= 100, report
    assert report["job"]["running_throughout"] and report["job"]["final_state"] == "stopped"
    assert report["queue"] == {"state": "queued", "queue_position": 1}, "the second submitter is told their place"
    assert report["p50_ms"] <= report["p95_ms"]
