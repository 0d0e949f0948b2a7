"""The files a PBT run leaves in its workdir, and the result object.

- ``state.json``      coordinator state (members' configs, scores, checkpoint paths, history,
                      lineage events): everything needed to resume; written atomically after
                      every member interval and every exploit.
- ``lineage.jsonl``   one JSON object per event: ``"event": "exploit"`` (step, donor, recipient,
                      donor_score, recipient_score, old_config, new_config, ...) and
                      ``"event": "restart"`` (step, member, reason, restarts, checkpoint).
- ``scores.csv``      columns ``step, member, score`` then one column per search-space name
                      (the config the member trained with during the interval ending at step).
- ``intervals.jsonl`` one JSON object per member interval: all metrics, applied
                      hyperparameters, optimizer learning rates, timings, checkpoint paths.
- ``result.json``     best member, best config and checkpoint, and every member's latest.
- ``members/<id>/``   each member's checkpoints (``step_<n>.zip``; ``exploit_<n>_from_<donor>.zip``
                      is the donor's checkpoint copied at an exploit).

The derived files are rewritten from ``state.json`` (atomically) so they are always consistent
with it, even after a crash at any point.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from lifelong.checkpoint.atomic import write_atomic

__all__ = ["MemberResult", "PBTResult", "atomic_write_text", "write_outputs", "read_lineage"]


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically: readers see the old or the new file."""
    write_atomic(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {obj!r}")


def dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(obj, default=_json_default, allow_nan=True, **kw)


@dataclass
class MemberResult:
    id: str
    checkpoint: Path | None
    config: dict[str, Any]
    score: float | None
    step: int = 0
    restarts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "config": self.config,
            "score": self.score,
            "step": self.step,
            "restarts": self.restarts,
        }


@dataclass
class PBTResult:
    """What ``PBT.run()`` returns (and ``result.json`` holds)."""

    workdir: Path
    metric: str
    mode: str
    members: list[MemberResult]
    lineage: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0

    @property
    def best(self) -> MemberResult:
        scored = [m for m in self.members if m.score is not None and not math.isnan(m.score)]
        if not scored:
            return self.members[0]
        pick = max if self.mode == "max" else min
        return pick(scored, key=lambda m: m.score)

    @property
    def best_member(self) -> str:
        return self.best.id

    @property
    def best_checkpoint(self) -> Path | None:
        return self.best.checkpoint

    @property
    def best_config(self) -> dict[str, Any]:
        return dict(self.best.config)

    @property
    def best_score(self) -> float | None:
        return self.best.score

    @property
    def exploits(self) -> list[dict[str, Any]]:
        return [e for e in self.lineage if e.get("event") == "exploit"]

    @property
    def restarts(self) -> list[dict[str, Any]]:
        return [e for e in self.lineage if e.get("event") == "restart"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "mode": self.mode,
            "steps": self.steps,
            "best_member": self.best_member,
            "best_score": self.best_score,
            "best_config": self.best_config,
            "best_checkpoint": str(self.best_checkpoint) if self.best_checkpoint else None,
            "members": [m.to_dict() for m in self.members],
            "n_exploits": len(self.exploits),
            "n_restarts": len(self.restarts),
        }

    def __repr__(self) -> str:
        return (
            f"PBTResult(best_member={self.best_member!r}, best_score={self.best_score!r}, "
            f"best_config={self.best_config!r}, steps={self.steps}, exploits={len(self.exploits)})"
        )


def _member_key(member: str) -> tuple:
    head, _, tail = str(member).rpartition("_")
    return (head, int(tail), "") if tail.isdigit() else (str(member), -1, str(member))


def scores_csv(history: Iterable[Mapping[str, Any]], names: list[str]) -> str:
    """Rows sorted by step then member, whatever order the members finished in."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["step", "member", "score", *names])
    for row in sorted(history, key=lambda r: (int(r["step"]), _member_key(r["member"]))):
        config = row.get("config", {})
        writer.writerow([row["step"], row["member"], repr(float(row["score"])), *[config.get(n) for n in names]])
    return buf.getvalue()


def write_outputs(
    workdir: Path,
    *,
    events: list[dict[str, Any]],
    history: list[dict[str, Any]],
    names: list[str],
    result: PBTResult | None = None,
) -> None:
    atomic_write_text(workdir / "lineage.jsonl", "".join(dumps(e) + "\n" for e in events))
    atomic_write_text(workdir / "scores.csv", scores_csv(history, names))
    atomic_write_text(workdir / "intervals.jsonl", "".join(dumps(h) + "\n" for h in history))
    if result is not None:
        atomic_write_text(workdir / "result.json", dumps(result.to_dict(), indent=2) + "\n")


def read_lineage(workdir: str | Path) -> list[dict[str, Any]]:
    path = Path(workdir) / "lineage.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
