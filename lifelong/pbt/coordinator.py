"""The synchronous local coordinator: intervals on a worker pool, restarts, exploits at boundaries."""
from __future__ import annotations

import math
import time
from typing import Any

from lifelong.pbt.errors import PBTError
from lifelong.pbt.explore import boundary_rng, explore, select_exploits
from lifelong.pbt.local import WorkerPool, default_workers
from lifelong.pbt.member import run_interval
from lifelong.pbt.records import PBTResult
from lifelong.pbt.retention import _atomic_copy

__all__ = ["LocalCoordinator"]


class LocalCoordinator:
    """Mixin of :class:`~lifelong.pbt.PBT`: the ``backend="local"`` run loop."""

    def _task(self, state: dict[str, Any], member: str, start: int, length: int) -> dict[str, Any]:
        s = state["members"][member]
        out = self.workdir / "members" / member / f"step_{start + length:09d}.zip"
        return {
            "spec": self.spec,
            "config": dict(s["config"]),
            "checkpoint": str(self._abs(s["checkpoint"])) if s["checkpoint"] else None,
            "out": str(out),
            "seed": self.seed,
            "index": s["index"],
            "step": start,
            "interval_steps": length,
            "eval_episodes": self.eval_episodes,
        }

    def _run_local(self, callback) -> PBTResult:
        state = self.load_state() or self._new_state()
        for m in state["members"]:
            (self.workdir / "members" / m).mkdir(parents=True, exist_ok=True)
        self._persist(state)
        workers = min(self.workers or default_workers(), self.population_size)
        emit = callback or (lambda event: None)
        pool = WorkerPool(run_interval, workers, start_method=self.start_method)
        try:
            while state["boundary"] < self.total_steps:
                start = state["boundary"]
                if start > 0 and state["exploited_through"] < start:
                    self._exploit(state, start, emit)
                length = min(self.interval_steps, self.total_steps - start)
                end = start + length
                tasks = {}
                for m, s in state["members"].items():
                    if s["step"] < end:
                        tasks[m] = self._task(state, m, start, length)
                        pool.submit(m, tasks[m])
                for outcome in pool.outcomes():
                    m = outcome.key
                    s = state["members"][m]
                    if outcome.status == "ok":
                        res = outcome.value
                        score = float(res["metrics"][self.metric])
                        s.update(step=end, score=score, checkpoint=self._rel(res["checkpoint"]))
                        row = {
                            "step": end,
                            "member": m,
                            "score": score,
                            "config": dict(tasks[m]["config"]),
                            "started_from": self._rel(tasks[m]["checkpoint"]) if tasks[m]["checkpoint"] else None,
                            "checkpoint": s["checkpoint"],
                            **{k: v for k, v in res.items() if k != "checkpoint"},
                        }
                        state["history"].append(row)
                        self._persist(state)
                        emit({"event": "interval", **row})
                        continue
                    # "error" (an exception in the member) or "died" (the process ended)
                    s["restarts"] += 1
                    event = {
                        "event": "restart",
                        "step": start,
                        "member": m,
                        "reason": outcome.status,
                        "detail": str(outcome.value)[-4000:],
                        "restarts": s["restarts"],
                        "checkpoint": s["checkpoint"],
                    }
                    state["events"].append(event)
                    self._persist(state)
                    if s["restarts"] > self.max_restarts:
                        raise PBTError(
                            f"member {m} failed {s['restarts']} times (max_restarts={self.max_restarts}); "
                            f"last failure ({outcome.status}):\n{outcome.value}"
                        )
                    emit(event)
                    pool.submit(m, tasks[m])  # same task: from its last checkpoint, same seeds
                state["boundary"] = end
                self._prune(state)
                self._persist(state)
                emit({"event": "boundary", "step": end})
        finally:
            pool.close()
        result = self._result(state)
        self._persist(state, result)
        return result

    def _exploit(self, state: dict[str, Any], step: int, emit) -> None:
        """Truncation selection at boundary ``step``: copy each donor's checkpoint into its
        recipient's folder and give the recipient an explored copy of the donor's config."""
        rng = boundary_rng(self.seed, step)
        members = state["members"]
        scores = {m: (s["score"] if s["score"] is not None else math.nan) for m, s in members.items()}
        for recipient, donor in select_exploits(scores, self.truncation, self.mode, rng):
            t0 = time.perf_counter()
            new_config, ops = explore(
                members[donor]["config"], self.space, rng, self.resample_probability, self.perturb_factors
            )
            src = self._abs(members[donor]["checkpoint"])
            dst = self.workdir / "members" / recipient / f"exploit_{step:09d}_from_{donor}.zip"
            _atomic_copy(src, dst)
            event = {
                "event": "exploit",
                "step": step,
                "donor": donor,
                "recipient": recipient,
                "donor_score": members[donor]["score"],
                "recipient_score": members[recipient]["score"],
                "old_config": dict(members[recipient]["config"]),
                "donor_config": dict(members[donor]["config"]),
                "new_config": new_config,
                "operations": ops,
                "donor_checkpoint": members[donor]["checkpoint"],
                "checkpoint": self._rel(dst),
                "seconds": time.perf_counter() - t0,
            }
            members[recipient]["config"] = new_config
            members[recipient]["checkpoint"] = self._rel(dst)
            state["events"].append(event)
            emit(event)
        state["exploited_through"] = step
        self._persist(state)
