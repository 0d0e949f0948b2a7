"""The synchronous coordinator: a barrier at every interval boundary (the default mode).

All members train the interval ``[b, b + interval_steps)``; when the last one has finished,
the bottom ``ceil(truncation * N)`` members exploit members of the top as many
(:func:`~lifelong.pbt.explore.select_exploits`, drawn from a generator seeded by
``(seed, b)``), and the next interval starts. Decisions depend only on recorded scores, so a
run is deterministic, and an interrupted one resumed gives the same records.
"""
from __future__ import annotations

import math

from lifelong.pbt.coordinator import Coordinator
from lifelong.pbt.explore import boundary_rng, select_exploits
from lifelong.pbt.local import WorkerPool

__all__ = ["SynchronousCoordinator"]


class SynchronousCoordinator(Coordinator):
    def loop(self, pool: WorkerPool) -> None:
        data, members, total = self.state.data, self.state.members, self.settings.total_steps
        while data["boundary"] < total:
            start = data["boundary"]
            if start > 0 and data["exploited_through"] < start:
                self.exploit_boundary(start)
            length = min(self.settings.interval_steps, total - start)
            end = start + length
            for m, s in members.items():
                if s["step"] < end:
                    self.submit(pool, m, start, length)
            for outcome in pool.outcomes():
                row = self.handle(pool, outcome)
                if row is not None:
                    self.state.persist()
                    self.emit({"event": "interval", **row})
            data["boundary"] = end
            self.retention.prune(self.state)
            self.state.persist()
            self.emit({"event": "boundary", "step": end})

    def exploit_boundary(self, step: int) -> None:
        """Truncation selection at boundary ``step`` over every member's score at ``step``."""
        rng = boundary_rng(self.settings.seed, step)
        members = self.state.members
        scores = {m: (s["score"] if s["score"] is not None else math.nan) for m, s in members.items()}
        used = self.scores_used()
        for recipient, donor in select_exploits(scores, self.settings.truncation, self.settings.mode, rng):
            self.exploit(recipient, donor, step, rng, reason="bottom quantile", scores_used=used)
        self.state.data["exploited_through"] = step
        self.state.persist()
