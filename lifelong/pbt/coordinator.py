"""What the local coordinators of both modes share: member tasks, records, exploits, failures.

:class:`Coordinator` runs members' intervals on a :class:`~lifelong.pbt.local.WorkerPool` and
keeps the :class:`~lifelong.pbt.persistence.PopulationState` up to date; its subclasses decide
*when* members exploit (:mod:`~lifelong.pbt.synchronous`, :mod:`~lifelong.pbt.asynchronous`).

Failures of a member:

- its process dies or its interval raises: restarted from its last checkpoint with the same
  seeds (a ``"restart"`` event), at most ``max_restarts`` times, then ``PBTError``;
- its checkpoint is corrupt (:class:`lifelong.CheckpointError` on load): a deterministic fault,
  so it is not retried. The file is renamed ``*.corrupt`` and the member continues from its
  newest valid checkpoint (a ``"fallback"`` event) or, with none left, from a copy of the best
  member's checkpoint and config (a ``"reseed"`` event).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lifelong.pbt.errors import PBTError
from lifelong.pbt.explore import explore
from lifelong.pbt.local import Outcome, WorkerPool, default_workers
from lifelong.pbt.member import run_interval
from lifelong.pbt.persistence import PopulationState
from lifelong.pbt.records import PBTResult
from lifelong.pbt.retention import CheckpointRetention
from lifelong.pbt.settings import PBTSettings

__all__ = ["Coordinator", "last_line"]

#: Corrupt-checkpoint recoveries in a row after which a member is given up (each one renames a
#: file, so this bounds a loop where even the copies turn out corrupt).
MAX_RECOVERIES = 3


def last_line(detail: str) -> str:
    """The last non-empty line of a traceback (the exception itself), for one-line messages."""
    lines = [line.strip() for line in str(detail).splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Coordinator:
    """The ``backend="local"`` run loop's shared parts; ``run()`` is the mode's."""

    def __init__(
        self,
        settings: PBTSettings,
        state: PopulationState,
        retention: CheckpointRetention,
        emit: Callable[[dict[str, Any]], Any],
    ) -> None:
        self.settings = settings
        self.state = state
        self.retention = retention
        self.emit = emit
        self.tasks: dict[str, dict[str, Any]] = {}
        self.recoveries: dict[str, int] = {}

    # ------------------------------------------------------------------ the pool

    def run(self) -> PBTResult:
        for m in self.state.members:
            self.retention.folder(m).mkdir(parents=True, exist_ok=True)
        self.state.persist()
        workers = min(self.settings.workers or default_workers(), self.settings.population_size)
        pool = WorkerPool(run_interval, workers, start_method=self.settings.start_method)
        try:
            self.loop(pool)
        finally:
            pool.close()
        result = self.state.result()
        self.state.persist(result)
        return result

    def loop(self, pool: WorkerPool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def submit(self, pool: WorkerPool, member: str, start: int, length: int) -> None:
        s = self.state.members[member]
        checkpoint = self.state.checkpoint_of(member)
        self.tasks[member] = {
            "spec": self.settings.spec,
            "config": dict(s["config"]),
            "checkpoint": str(checkpoint) if checkpoint else None,
            "out": str(self.retention.folder(member) / f"step_{start + length:09d}.zip"),
            "seed": self.settings.seed,
            "index": s["index"],
            "step": start,
            "interval_steps": length,
            "eval_episodes": self.settings.eval_episodes,
        }
        pool.submit(member, self.tasks[member])

    def resubmit(self, pool: WorkerPool, member: str) -> None:
        """The member's task again, from its (possibly new) checkpoint and config."""
        task = self.tasks[member]
        self.submit(pool, member, int(task["step"]), int(task["interval_steps"]))

    # ------------------------------------------------------------------ outcomes

    def handle(self, pool: WorkerPool, outcome: Outcome) -> dict[str, Any] | None:
        """Record an outcome. Returns the interval's history row when the member finished it;
        None when the member's task was resubmitted (a restart or a corrupt-checkpoint
        recovery)."""
        m = outcome.key
        task = self.tasks[m]
        if outcome.status == "ok" and "corrupt_checkpoint" in outcome.value:
            self.recover_corrupt(m, outcome.value)
            self.resubmit(pool, m)
            return None
        if outcome.status != "ok":
            self.restart(m, outcome)
            self.resubmit(pool, m)
            return None
        self.recoveries.pop(m, None)
        return self.record_interval(m, task, outcome.value)

    def record_interval(self, member: str, task: dict[str, Any], res: dict[str, Any]) -> dict[str, Any]:
        s = self.state.members[member]
        end = int(task["step"]) + int(task["interval_steps"])
        score = float(res["metrics"][self.settings.metric])
        s.update(step=end, score=score, checkpoint=self.settings.rel(res["checkpoint"]))
        row = {
            "step": end,
            "member": member,
            "score": score,
            "config": dict(task["config"]),
            "started_from": self.settings.rel(task["checkpoint"]) if task["checkpoint"] else None,
            "checkpoint": s["checkpoint"],
            **{k: v for k, v in res.items() if k != "checkpoint"},
        }
        self.state.history.append(row)
        return row

    def restart(self, member: str, outcome: Outcome) -> None:
        s = self.state.members[member]
        s["restarts"] += 1
        event = {
            "event": "restart",
            "step": int(self.tasks[member]["step"]),
            "member": member,
            "reason": outcome.status,  # "error" (an exception) or "died" (the process ended)
            "detail": str(outcome.value)[-4000:],
            "restarts": s["restarts"],
            "checkpoint": s["checkpoint"],
        }
        self.state.events.append(event)
        self.state.persist()
        if s["restarts"] > self.settings.max_restarts:
            what = "its worker process died" if outcome.status == "died" else "it raised"
            raise PBTError(
                f"member {member} failed {s['restarts']} times (max_restarts={self.settings.max_restarts}); "
                f"last failure: {what}: {last_line(outcome.value)} (the tracebacks are in "
                f"{self.settings.workdir / 'lineage.jsonl'}, events \"restart\")"
            )
        self.emit(event)

    def recover_corrupt(self, member: str, info: dict[str, Any]) -> None:
        """A member's checkpoint did not load: fall back to its newest valid one, else re-seed
        it from the best member (see the module docstring)."""
        self.recoveries[member] = self.recoveries.get(member, 0) + 1
        step = int(self.tasks[member]["step"])
        bad = Path(info["corrupt_checkpoint"])
        if self.recoveries[member] > MAX_RECOVERIES:
            self.retention.quarantine(bad)
            raise PBTError(
                f"member {member}: {MAX_RECOVERIES} corrupt checkpoints in a row at step {step} "
                f"(last: {self.settings.rel(bad)}: {info['error']}); giving up"
            )
        event = self.retention.recover(self.state, member, bad, info["error"], step)
        self.state.events.append(event)
        self.state.persist()
        self.emit(event)

    # ------------------------------------------------------------------ exploit

    def exploit(
        self, recipient: str, donor: str, step: int, rng: np.random.Generator, **why: Any
    ) -> dict[str, Any]:
        """Copy ``donor``'s latest (completed) checkpoint into ``recipient``'s folder and give
        the recipient an explored copy of the donor's config. ``why`` is recorded in the event."""
        t0 = time.perf_counter()
        members = self.state.members
        r, d = members[recipient], members[donor]
        new_config, ops = explore(
            d["config"], self.settings.space, rng, self.settings.resample_probability, self.settings.perturb_factors
        )
        dst = self.retention.folder(recipient) / f"exploit_{step:09d}_from_{donor}.zip"
        self.retention.copy(self.state.checkpoint_of(donor), dst)
        event = {
            "event": "exploit",
            "step": step,
            "donor": donor,
            "recipient": recipient,
            "recipient_step": r["step"],
            "donor_step": d["step"],
            "donor_score": d["score"],
            "recipient_score": r["score"],
            **why,
            "old_config": dict(r["config"]),
            "donor_config": dict(d["config"]),
            "new_config": new_config,
            "operations": ops,
            "donor_checkpoint": d["checkpoint"],
            "checkpoint": self.settings.rel(dst),
            "seconds": time.perf_counter() - t0,
        }
        r["config"] = new_config
        r["checkpoint"] = self.settings.rel(dst)
        self.state.events.append(event)
        self.emit(event)
        return event

    def scores_used(self) -> dict[str, dict[str, Any]]:
        """Every member's latest recorded score and the step it was recorded at."""
        return {m: {"score": s["score"], "step": s["step"]} for m, s in self.state.members.items()}
