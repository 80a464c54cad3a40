"""Which torch device the torch engine and the trainer run on.

``None`` (or ``"auto"``) picks ``cuda`` when a CUDA device is visible and ``cpu`` otherwise; an
explicit ``cuda`` on a host without one is refused with the reason, never silently run on CPU.
"""

from __future__ import annotations

import torch

from workers.errors import InvalidWorkload

__all__ = ["DEVICE_CHOICES", "default_device", "resolve_device"]

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device(default_device())
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidWorkload("device", f"expected one of {', '.join(DEVICE_CHOICES)}, got {device!r}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise InvalidWorkload("device", f"expected cpu or cuda, got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidWorkload(
            "device", "cuda was asked for but torch sees no CUDA device on this host "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})"
        )
    return resolved
