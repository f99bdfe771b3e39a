"""Benchmarks: each `python -m bench.<name>` measures one thing and most write `bench/<name>.json`."""

import json
import sys
from pathlib import Path


def recorded(path: Path) -> dict:
    """A bench's written result, for `--show`; one line and exit status 1 when there is none."""
    if not path.is_file():
        sys.exit(f"error: no {path} yet; run the bench first")
    return json.loads(path.read_text())
