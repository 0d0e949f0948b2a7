"""Member checkpoint files: retention (pruning old ones) and the exploit copy."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lifelong.checkpoint.atomic import write_atomic
from lifelong.pbt.errors import PBTError

__all__ = ["CheckpointRetention"]

_CKPT_RE = re.compile(r"^(?:step_(\d+)|exploit_(\d+)_from_.+)\.zip$")


class CheckpointRetention:
    """Mixin of :class:`~lifelong.pbt.PBT`: keeps the newest ``keep_checkpoints`` per member."""

    def _prune(self, state: dict[str, Any]) -> None:
        if self.keep_checkpoints is None:
            return
        for m, s in state["members"].items():
            folder = self.workdir / "members" / m
            current = self._abs(s["checkpoint"])
            found = []
            for p in folder.glob("*.zip"):
                match = _CKPT_RE.match(p.name)
                if match:
                    step = int(match.group(1) or match.group(2))
                    found.append(((step, p.name.startswith("exploit_")), p))
            found.sort(reverse=True)
            keep = {p for _, p in found[: self.keep_checkpoints]}
            if current is not None:
                keep.add(current)
            for _, p in found:
                if p not in keep and p.resolve() != (current.resolve() if current else None):
                    try:
                        p.unlink()
                    except FileNotFoundError:
                        pass


def _atomic_copy(src: Path | None, dst: Path) -> None:
    if src is None or not Path(src).exists():
        raise PBTError(f"exploit: the donor checkpoint {src} does not exist")
    write_atomic(dst, Path(src).read_bytes())
