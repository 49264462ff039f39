"""Loading local models with one clear error: what failed and what to do, at once when the model hub is unreachable.

Without this, a hub name on a machine without network spends about a minute in the hub client's retries
and ends in a transformers traceback.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from rerank_kit.errors import ModelLoadError

T = TypeVar("T")

_TRUE = {"1", "on", "yes", "true"}
#: Seconds the hub may take to accept a connection before we call it unreachable.
HUB_PROBE_TIMEOUT = 3.0


def hub_endpoint() -> str:
    """The model hub's URL (``HF_ENDPOINT`` or huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_offline() -> bool:
    """Whether the hub is switched off for this process (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


def reachable(url: str, timeout: float = HUB_PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def cached(model: str, revision: str | None = None) -> bool:
    """Whether a hub model's files are in the local cache (``config.json`` or a sentence-transformers file)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for filename in ("config.json", "modules.json", "config_sentence_transformers.json"):
        try:
            found = try_to_load_from_cache(model, filename, revision=revision)
        except ValueError:  # not a valid repository id (a path that does not exist, for one)
            return False
        if isinstance(found, str):
            return True
    return False


def load_model(model: str, load: Callable[[], T], *, local_files_only: bool = False, revision: str | None = None,
               hint: str = "") -> T:
    """``load()`` a model by hub name or path, or raise :class:`ModelLoadError` in one line saying what to do.

    A hub name that is not cached fails at once when the hub is off (``HF_HUB_OFFLINE``, ``local_files_only``)
    or does not accept a connection within a few seconds.
    """
    todo = "pass a local folder as model, or set HF_HUB_OFFLINE=1 with the model in the local cache"
    todo = f"{todo}{'; ' + hint if hint else ''}"
    if not Path(model).expanduser().is_dir() and not cached(model, revision):
        if local_files_only or hub_offline():
            raise ModelLoadError(f"model {model!r} is not a local folder nor in the local cache and the hub is "
                                 f"switched off (HF_HUB_OFFLINE or local_files_only): {todo}")
        if not reachable(hub_endpoint()):
            raise ModelLoadError(f"model {model!r} is not a local folder nor cached, and the model hub "
                                 f"({hub_endpoint()}) is unreachable: {todo}")
    try:
        return load()
    except OSError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"could not load model {model!r} ({first_line}): {todo}") from exc
