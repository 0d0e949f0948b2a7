"""The error a population run raises when it cannot continue."""
from __future__ import annotations

__all__ = ["PBTError"]


class PBTError(RuntimeError):
    """A population cannot continue (a member failed more than ``max_restarts`` times, or a
    workdir holds a different experiment)."""
