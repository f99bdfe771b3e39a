"""What a user is told when something fails: one line, with no token, no server path and no Python internals."""

from __future__ import annotations

import logging
import os
import re
import traceback

LOG = logging.getLogger("distill")
UNEXPECTED = "unexpected error; the server's log has the details"

# An absolute path of two or more parts (not the end of a URL): only its last part is shown.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"`,;()\[\]<>/]+/)+([^\s'\"`,;()\[\]<>/]*)")


class UserError(Exception):
    """A failure the user is shown as it is, in one line: a refused request, a network, disk or upload failure.
    Its kind `config.ConfigError` names a job setting at fault."""


def echo(value: object, limit: int = 60) -> str:
    """A value a user sent, quoted for a message, cut to `limit` characters: an answer never repeats a long input."""
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


def first_line(err: BaseException | str, limit: int = 300) -> str:
    """The first non-empty line of an error's text, cut to `limit` characters; the error's type name when it has
    no text (an empty message has no first line to index)."""
    text = str(err).strip()
    if not text:
        return type(err).__name__ if isinstance(err, BaseException) else ""
    line = text.splitlines()[0]
    return line if len(line) <= limit else line[:limit] + "…"


def scrub(text: str) -> str:
    """Remove the HF token (and anything shaped like one) from text meant for logs or users."""
    token = os.environ.get("HF_TOKEN")
    if token:
        text = text.replace(token, "***")
    return re.sub(r"hf_[A-Za-z0-9]{20,}", "***", text)


def strip_paths(text: str) -> str:
    """Replace absolute paths by their file or folder name: a server's layout is nobody's business."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


def user_message(err: BaseException) -> str:
    """One line for the user: a UserError as it is, a failed write by its cause, anything else as unexpected,
    without its Python text (a TypeError's says nothing a user can act on). The last two are the server's faults,
    not the user's: the server's log keeps their traceback, tokens scrubbed."""
    if isinstance(err, UserError):
        return strip_paths(scrub(str(err)))
    file_error = isinstance(err, OSError) and bool(err.strerror)
    kind = "file error, shown to the user in one line" if file_error else "unexpected error, not shown to the user"
    LOG.error("%s:\n%s", kind, scrub("".join(traceback.format_exception(err))))
    return strip_paths(scrub(f"cannot read or write a file: {err.strerror}" if file_error else UNEXPECTED))
