"""Picks the torch device when the user does not: cuda, then mps, then cpu."""

from __future__ import annotations


def resolve_device(device: str | None) -> str:
    """Return ``device`` or the best one available."""
    if device is not None:
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
