"""Member checkpoint files: retention, the exploit copy, and recovery from a corrupt file.

A member's folder ``members/<id>/`` holds ``step_<n>.zip`` (its own checkpoint after the
interval ending at ``n``), ``exploit_<n>_from_<donor>.zip`` (a donor's checkpoint copied at the
member's boundary ``n``) and ``reseed_<n>_from_<donor>.zip`` (the best member's checkpoint,
copied when the member had no valid checkpoint left). A file found corrupt is renamed
``<name>.corrupt``: it is never loaded or counted again, and is kept for inspection.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable

from lifelong.checkpoint import verify
from lifelong.checkpoint.atomic import write_atomic
from lifelong.errors import CheckpointError
from lifelong.pbt.errors import PBTError
from lifelong.pbt.explore import rank
from lifelong.pbt.persistence import PopulationState
from lifelong.pbt.settings import PBTSettings

__all__ = ["CheckpointRetention", "checkpoint_step"]

_CKPT_RE = re.compile(r"^(?:step_(\d+)|(?:exploit|reseed)_(\d+)_from_.+)\.zip$")


def checkpoint_step(path: str | Path) -> int | None:
    """The member step a checkpoint file name records, None for a name this module did not write."""
    match = _CKPT_RE.match(Path(path).name)
    return None if match is None else int(match.group(1) or match.group(2))


class CheckpointRetention:
    """Keeps the newest ``keep_checkpoints`` files per member (always its current one)."""

    def __init__(self, settings: PBTSettings) -> None:
        self.settings = settings

    def folder(self, member: str) -> Path:
        return self.settings.workdir / "members" / member

    def files(self, member: str) -> list[Path]:
        """The member's checkpoint files, newest first (at equal steps a copied file first: it
        replaced the member's own)."""
        found = []
        for p in self.folder(member).glob("*.zip"):
            step = checkpoint_step(p)
            if step is not None:
                found.append(((step, not p.name.startswith("step_")), p))
        found.sort(reverse=True)
        return [p for _, p in found]

    def prune(self, state: PopulationState, members: Iterable[str] | None = None) -> None:
        """Delete all but the member's newest ``keep_checkpoints`` files, never its current one
        and, in a synchronous population, never the one a resume rolls it back to: a member
        past the slowest member's step restarts from the checkpoint its latest interval
        started from (``ray_backend.resume_plan``)."""
        if self.settings.keep_checkpoints is None:
            return
        boundary = min(s["step"] for s in state.members.values())
        for m in state.members if members is None else members:
            needed = {state.checkpoint_of(m)}
            if self.settings.synchronous and state.members[m]["step"] > boundary:
                rows = [r for r in state.history if r["member"] == m]
                if rows and rows[-1].get("started_from"):
                    needed.add(self.settings.abs(rows[-1]["started_from"]))
            needed = {p.resolve() for p in needed if p is not None}
            files = self.files(m)
            keep = set(files[: self.settings.keep_checkpoints])
            for p in files:
                if p in keep or p.resolve() in needed:
                    continue
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass

    @staticmethod
    def copy(src: Path | None, dst: Path) -> None:
        """Copy a completed checkpoint atomically (readers of ``dst`` see no partial file)."""
        if src is None or not Path(src).exists():
            raise PBTError(f"exploit: the donor checkpoint {src} does not exist")
        write_atomic(dst, Path(src).read_bytes())

    @staticmethod
    def quarantine(path: Path) -> Path | None:
        """Rename a corrupt checkpoint to ``<name>.corrupt``; returns the new path."""
        if not path.exists():
            return None
        target = path.with_name(path.name + ".corrupt")
        path.replace(target)
        return target

    def previous_valid(self, member: str) -> tuple[Path | None, list[dict[str, str]]]:
        """The member's newest checkpoint that passes :func:`lifelong.checkpoint.verify`, and the
        files found corrupt on the way (quarantined), as ``[{"file", "error"}]``."""
        rejected = []
        for p in self.files(member):
            try:
                verify(p)
            except CheckpointError as exc:
                self.quarantine(p)
                rejected.append({"file": self.settings.rel(p), "error": " ".join(str(exc).split())})
                continue
            return p, rejected
        return None, rejected

    def valid(self, path: Path | None) -> bool:
        if path is None:
            return False
        try:
            verify(path)
        except (CheckpointError, FileNotFoundError):
            return False
        return True

    def best_valid_member(self, state: PopulationState, exclude: str) -> str | None:
        """The best-scoring other member whose latest checkpoint verifies."""
        scores = {
            m: (s["score"] if s["score"] is not None else math.nan)
            for m, s in state.members.items()
            if m != exclude
        }
        for m in rank(scores, self.settings.mode):
            if self.valid(state.checkpoint_of(m)):
                return m
        return None

    def recover(self, state: PopulationState, member: str, bad: Path, error: str, step: int) -> dict[str, Any]:
        """A member's checkpoint ``bad`` failed to load or verify (``error``) at its step
        ``step``: rename it ``*.corrupt`` and point the member (``state.members[member]``, not
        persisted here) at its newest valid checkpoint (a ``"fallback"`` event) or, with none
        left, at a copy of the best valid member's checkpoint with that member's config (a
        ``"reseed"`` event). The member's step is unchanged: it trains its next interval from
        the older checkpoint. Returns the event; ``PBTError`` when no member has a valid
        checkpoint to re-seed it from."""
        s = state.members[member]
        quarantined = self.quarantine(bad)
        event: dict[str, Any] = {
            "step": step,
            "member": member,
            "corrupt_checkpoint": self.settings.rel(bad),
            "renamed_to": None if quarantined is None else self.settings.rel(quarantined),
            "error": error,
        }
        previous, rejected = self.previous_valid(member)
        event["also_corrupt"] = rejected
        if previous is not None:
            s["checkpoint"] = self.settings.rel(previous)
            event.update(event="fallback", checkpoint=s["checkpoint"], checkpoint_step=checkpoint_step(previous))
            return event
        donor = self.best_valid_member(state, exclude=member)
        if donor is None:
            raise PBTError(
                f"member {member}: its checkpoint {event['corrupt_checkpoint']} is corrupt "
                f"({error}) and no member has a valid checkpoint to re-seed it from"
            )
        d = state.members[donor]
        dst = self.folder(member) / f"reseed_{step:09d}_from_{donor}.zip"
        self.copy(state.checkpoint_of(donor), dst)
        old = dict(s["config"])
        s.update(checkpoint=self.settings.rel(dst), config=dict(d["config"]))
        event.update(
            event="reseed",
            donor=donor,
            donor_step=d["step"],
            donor_score=d["score"],
            donor_checkpoint=d["checkpoint"],
            checkpoint=s["checkpoint"],
            old_config=old,
            new_config=dict(s["config"]),
        )
        return event
