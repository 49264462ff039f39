"""Content/version identity of a model, so persistent score caches notice replaced model files."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

#: Files whose change changes a model's scores: weights, configs, tokenizers.
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx", ".json", ".txt", ".model")

_COMMIT = re.compile(r"[0-9a-f]{40}")
_MEMO_LIMIT = 256
_memo: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_memo_lock = threading.Lock()


def model_fingerprint(model: str, revision: str | None = None) -> str:
    """Short id of a local model folder's files, or a hub model's cached commit, for cache keys."""
    if os.path.isdir(model):
        return "local:" + _local_fingerprint(os.path.abspath(model))
    commit = _cached_hub_commit(model, revision)
    if commit is not None:
        return f"{model}@{commit}"
    return f"{model}@{revision}" if revision else model


def _local_fingerprint(folder: str) -> str:
    """Hash of config.json's bytes and every model file's (relative path, size, mtime_ns); memoized on the stats."""
    stats = tuple(_model_file_stats(folder))
    memo_key = (folder, stats)
    cached = _memo.get(memo_key)
    if cached is not None:
        return cached
    digest = hashlib.blake2b(digest_size=8)
    try:
        digest.update(Path(folder, "config.json").read_bytes())
    except OSError:
        digest.update(b"<no config.json>")
    for rel, size, mtime_ns in stats:
        digest.update(f"\0{rel}\0{size}\0{mtime_ns}".encode("utf-8", "surrogatepass"))
    value = digest.hexdigest()
    with _memo_lock:
        if len(_memo) >= _MEMO_LIMIT:
            _memo.clear()
        _memo[memo_key] = value
    return value


def _model_file_stats(folder: str) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of the model files under ``folder``, hidden folders skipped, sorted."""
    found: list[tuple[str, int, int]] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            entries = list(os.scandir(os.path.join(folder, rel_dir)))
        except OSError:
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("."):
                        pending.append(rel)
                elif entry.name.endswith(MODEL_FILE_SUFFIXES):
                    st = entry.stat()  # follows symlinks (hub snapshots link to blobs)
                    found.append((rel, st.st_size, st.st_mtime_ns))
            except OSError:
                continue
    found.sort()
    return found


def _cached_hub_commit(repo_id: str, revision: str | None) -> str | None:
    """Commit of the locally cached snapshot of ``repo_id`` at ``revision`` (no network), or ``None``."""
    if revision is not None and _COMMIT.fullmatch(revision):
        return revision
    ref = os.path.join(_hub_cache_dir(), "models--" + repo_id.replace("/", "--"), "refs", revision or "main")
    try:
        with open(ref, encoding="utf-8") as handle:
            commit = handle.read().strip()
    except (OSError, ValueError):
        return None
    return commit if _COMMIT.fullmatch(commit) else None


def _hub_cache_dir() -> str:
    """The Hugging Face hub cache folder, as huggingface_hub resolves it (env vars included)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
        )
        return os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")
    return str(constants.HF_HUB_CACHE)
