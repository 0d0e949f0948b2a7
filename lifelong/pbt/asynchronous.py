"""The asynchronous coordinator: no barrier; each member decides at its own boundaries.

When a member finishes an interval (its boundary ``b``), the coordinator records its score and,
unless ``b`` is its last boundary, takes :func:`~lifelong.pbt.explore.asynchronous_decision`
with that fresh score and the latest recorded score of every other member (warm-up: nobody
exploits until every member has a score). A member in the bottom quantile copies a top member's
latest checkpoint, which is always a completed file (``state.json`` names a checkpoint only
after its worker returned, and files are written atomically; the donor's interval in progress
writes a different file), then continues with an explored config at once. Nobody waits.

Each decision is recorded: an ``"exploit"`` event (with both members' steps and
``scores_used``), or the interval's history row's ``decision`` field. Decisions are drawn from a
generator seeded by ``(seed, member, b)``, but which scores were recorded when a member
finishes depends on timing: asynchronous runs are not reproducible, their records explain them.
"""
from __future__ import annotations

from lifelong.pbt.coordinator import Coordinator
from lifelong.pbt.explore import asynchronous_decision, member_rng
from lifelong.pbt.local import WorkerPool

__all__ = ["AsynchronousCoordinator"]


class AsynchronousCoordinator(Coordinator):
    def loop(self, pool: WorkerPool) -> None:
        members, total = self.state.members, self.settings.total_steps
        # Members furthest behind first, so a resumed population evens out.
        for m in sorted(members, key=lambda m: (members[m]["step"], members[m]["index"])):
            self.submit_next(pool, m)
        for outcome in pool.outcomes():
            row = self.handle(pool, outcome)
            if row is None:
                continue
            m, end = row["member"], row["step"]
            if end < total:
                row["decision"] = self.decide(m, end)
            self.state.data["boundary"] = min(s["step"] for s in members.values())
            self.retention.prune(self.state, [m])
            self.state.persist()
            self.emit({"event": "interval", **row})
            self.submit_next(pool, m)

    def submit_next(self, pool: WorkerPool, member: str) -> None:
        start = int(self.state.members[member]["step"])
        if start < self.settings.total_steps:
            self.submit(pool, member, start, min(self.settings.interval_steps, self.settings.total_steps - start))

    def decide(self, member: str, step: int) -> dict:
        """The member's decision at its boundary ``step``; exploits if it is in the bottom."""
        s = self.state.members
        used = self.scores_used()
        rng = member_rng(self.settings.seed, s[member]["index"], step)
        latest = {m: v["score"] for m, v in used.items()}
        donor, reason = asynchronous_decision(member, latest, self.settings.truncation, self.settings.mode, rng)
        decision = {"action": "continue" if donor is None else "exploit", "reason": reason, "scores_used": used}
        if donor is not None:
            self.exploit(member, donor, step, rng, reason=reason, scores_used=used)
            decision["donor"] = donor
        return decision
