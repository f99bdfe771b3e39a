"""The command line's path arguments, checked before any work: each refusal is one line that names the path as
it was given (never resolved), with what is wrong with it. Each check works on the path lexically normalised
(`os.path.normpath`: "missing/../x" is "x", as the command line means it, where the kernel would refuse or the
missing folder be made), returns that path for the command to use, and creates nothing. A relative path stays
relative: a job launched on another machine (Hugging Face Jobs) resolves it there."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UserError


def refused(flag: str, given: str, why: str) -> UserError:
    return UserError(f"{flag} {given!r}: {why}")


def normalised(given: str) -> Path:
    """`given` with "." and ".." taken away lexically (never following a link, never touching the disk)."""
    return Path(os.path.normpath(given))


def input_file(given: str, flag: str) -> str:
    """`given` must be a file that can be read; returns it normalised."""
    path = normalised(given)
    if path.is_dir():
        raise refused(flag, given, "is a folder, not a file")
    if not path.is_file():
        raise refused(flag, given, "file not found")
    if not os.access(path, os.R_OK):
        raise refused(flag, given, "cannot be read (permission denied)")
    return str(path)


def input_folder(given: str, flag: str) -> str:
    """`given` must be a folder that exists; returns it normalised."""
    path = normalised(given)
    if not path.is_dir():
        raise refused(flag, given, "is a file, not a folder" if path.exists() else "no such folder")
    return str(path)


def output_folder(given: str, flag: str, *, empty: bool = False) -> str:
    """`given` must be a folder that can be written (and, with `empty`, holds nothing), or one that can be made;
    returns it normalised."""
    path = normalised(given)
    if path.is_dir():
        if empty and _holds_something(path):
            raise refused(flag, given, "is not an empty folder; give an empty or new one")
        _check_writable(path, flag, given)
        return str(path)
    if os.path.lexists(path):
        raise refused(flag, given, "is a file, not a folder")
    parent = path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise refused(flag, given, "cannot be made: a part of it is a file, not a folder")
    _check_writable(parent, flag, given, "cannot be made")
    return str(path)


def _holds_something(folder: Path) -> bool:
    try:
        return any(folder.iterdir())
    except OSError:  # unreadable: nothing can be said to be empty
        return True


def _check_writable(folder: Path, flag: str, given: str, what: str = "cannot be written") -> None:
    """A real write, not the permission bits: root passes those, and a read-only mount or /proc still refuse."""
    try:
        probe = tempfile.mkdtemp(prefix=".distill-probe-", dir=folder)
    except OSError as err:
        raise refused(flag, given, f"{what} ({err.strerror or 'refused'})") from None
    os.rmdir(probe)
