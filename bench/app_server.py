"""The real app in its own process on a free local port, for the benchmarks that talk to it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def serve(results_dir: str) -> Iterator[str]:
    """Start `python app.py` with its own results folder; yield its URL once it answers; stop it after."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DISTILL_RESULTS_DIR": results_dir, "GRADIO_SERVER_PORT": str(port)}
    env.setdefault("HF_HUB_OFFLINE", "1")
    server = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        connect(url)
        yield url
    finally:
        server.terminate()
        server.wait()


def connect(url: str, timeout_s: float = 180):
    """A gradio_client Client for `url`, retrying while the app starts."""
    from gradio_client import Client

    deadline = time.time() + timeout_s
    while True:
        try:
            return Client(url, verbose=False)
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(1)
