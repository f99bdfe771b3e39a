"""One writer per run: a job holds its run's lease while it writes the run, and renews it as its heartbeat.

Two processes can reach one run folder: containers overlapping on one bucket during a restart, the CLI beside
the app, a Jobs container writing the Space's bucket. The lease (`heartbeat.json`: holder, host, process, when
taken, last beat) is taken atomically; a second process refuses the run while the lease is alive and takes it
over only once it is stale. Anyone may ask the holder to stop through a stop request in the run folder, which
the holder reads at each beat.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from . import results  # results reads leases: imported as a module, the two may import each other
from .errors import UserError
from .schema import moment

BEAT_SECONDS = 10.0
STALE_SECONDS = 60.0  # a lease not renewed this long is gone: its job was killed or its container restarted
STOP_REQUEST_FILE = "stop-request.json"


class RunBusy(UserError):
    """The run is being written by another live process."""


def read_lease(folder: Path) -> dict[str, Any] | None:
    """The run's lease, or None when there is none or it cannot be read (then it holds nothing)."""
    try:
        lease = json.loads((folder / results.HEARTBEAT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return lease if isinstance(lease, dict) else None


def beat_time(lease: dict[str, Any] | None) -> float | None:
    """The lease's last beat, if it is a finite time no later than now (a time in the future is damage)."""
    beat = (lease or {}).get("time")
    return float(beat) if moment(beat) is None else None


def is_alive(lease: dict[str, Any] | None) -> bool:
    """Whether the lease's holder still runs: it beat within STALE_SECONDS and, on this host, its process lives."""
    beat = beat_time(lease)
    if lease is None or beat is None or time.time() - beat > STALE_SECONDS:
        return False
    if lease.get("host") == socket.gethostname():  # on this machine a dead process is known at once
        try:
            os.kill(int(lease.get("pid", -1)), 0)
        except (OSError, ValueError, TypeError):
            return False
    return True


def holder_line(lease: dict[str, Any]) -> str:
    """Who holds a lease, for a message: which program, on which host, as which process."""
    return f"{lease.get('by', 'a job')} (process {lease.get('pid')} on host {lease.get('host')})"


def program_name() -> str:
    """This process's program as its user typed it: `python -m distill` (whose argv[0] is distill's __main__.py),
    else the script's name (app.py)."""
    script = Path(sys.argv[0])
    if script.name == "__main__.py":
        return f"python -m {script.parent.name}"
    return script.name or "python"


class Lease:
    """The lease of one run folder, held by this process while a `with` block writes the run."""

    def __init__(self, folder: Path, by: str | None = None):
        self.folder = folder
        self.by = by or program_name()
        self.token = uuid.uuid4().hex
        self.since = time.time()
        self.stop_request = threading.Event()  # set when another process asks this job to stop
        self.stop_reason = ""
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.folder / results.HEARTBEAT_FILE

    def _record(self) -> str:
        record = {"by": self.by, "host": socket.gethostname(), "pid": os.getpid(), "token": self.token}
        return results.to_json({**record, "since": self.since, "time": time.time()}, indent=2) + "\n"

    def take(self) -> None:
        """Take the lease, or raise RunBusy naming the live holder. A stale lease is taken over by one process
        only: the one that creates the takeover marker of that lease's token."""
        while not self._create():
            current = read_lease(self.folder)
            if is_alive(current):
                raise RunBusy(
                    f"run {self.folder.name} is being trained by {holder_line(current)}; watch it, or stop it "
                    "first (/stop_job)"
                )
            if (current is not None or self._settled()) and self._take_over(current):
                break
            time.sleep(0.05)  # being written, or another process is taking it over: look again
        (self.folder / STOP_REQUEST_FILE).unlink(missing_ok=True)

    def _create(self) -> bool:
        """Create the lease whole, only if there is none: a hard link of a full temporary file (no reader ever
        sees it half written); where links are not supported, an exclusive create and a write."""
        tmp = results.temporary_path(self.path, self.token)
        tmp.write_text(self._record(), encoding="utf-8")
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links (some bucket mounts)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self._record())
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _settled(self) -> bool:
        """Whether an unreadable lease has been so for a while: a fresh one may be being written (the fallback
        of `_create`), an old one is damage and holds nothing."""
        try:
            return time.time() - self.path.stat().st_mtime > 2.0
        except OSError:
            return True

    def _take_over(self, stale: dict[str, Any] | None) -> bool:
        stale_token = str((stale or {}).get("token") or "unreadable")
        marker = self.folder / f".lease-takeover-{stale_token}"
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        try:
            if (read_lease(self.folder) or {}).get("token") != (stale or {}).get("token"):
                return False  # it changed under us: someone else holds a fresh one now
            results.atomic_write(self.path, self._record())
        finally:
            marker.unlink(missing_ok=True)
        return True

    def held(self) -> bool:
        return (read_lease(self.folder) or {}).get("token") == self.token

    def beat(self) -> None:
        """Renew the lease (only while this process holds it) and look for a stop request."""
        if self.held():
            results.atomic_write(self.path, self._record())
        request = read_stop_request(self.folder)
        if request is not None and not self.stop_request.is_set():
            self.stop_reason = request
            self.stop_request.set()

    def release(self) -> None:
        if self.held():
            self.path.unlink(missing_ok=True)
        (self.folder / STOP_REQUEST_FILE).unlink(missing_ok=True)

    def __enter__(self) -> Lease:
        self.take()
        self._thread = threading.Thread(target=self._beating, name=f"lease-{self.folder.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.release()

    def _beating(self) -> None:
        while not self._done.wait(BEAT_SECONDS):
            with contextlib.suppress(OSError):  # a full disk must not end the job from this thread
                self.beat()


def request_stop(folder: Path, reason: str) -> dict[str, Any] | None:
    """Ask the live holder of a run's lease to stop; it does at its next beat (within BEAT_SECONDS), keeping
    its finished models. Returns the holder's lease, or None when no live process holds the run."""
    lease = read_lease(folder)
    if not is_alive(lease):
        return None
    results.atomic_write(folder / STOP_REQUEST_FILE, results.to_json({"reason": reason, "time": time.time()}) + "\n")
    return lease


def read_stop_request(folder: Path) -> str | None:
    try:
        request = json.loads((folder / STOP_REQUEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    reason = request.get("reason") if isinstance(request, dict) else None
    return reason if isinstance(reason, str) and reason else "stopped by a request from another process"


class StopEither:
    """A stop signal set when either of two is: the job's own (the app's StopFile, a threading.Event) or the
    lease's stop request from another process."""

    def __init__(self, own: Any, lease: Lease):
        self.own, self.lease = own, lease

    def is_set(self) -> bool:
        return (self.own is not None and self.own.is_set()) or self.lease.stop_request.is_set()

    def pausing(self) -> bool:
        pausing = getattr(self.own, "pausing", None)
        return bool(self.own is not None and self.own.is_set() and pausing is not None and pausing())

    def reason(self) -> str:
        if self.own is not None and self.own.is_set():
            return str(getattr(self.own, "reason", lambda: "")() or "")
        return self.lease.stop_reason
