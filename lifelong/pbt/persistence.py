"""``state.json``: the population's state, persisted after every change so a run can resume."""
from __future__ import annotations

import json
from typing import Any

from lifelong.pbt import records
from lifelong.pbt.errors import PBTError
from lifelong.pbt.records import MemberResult, PBTResult, atomic_write_text, dumps

__all__ = ["STATE_VERSION", "PopulationState"]

STATE_VERSION = 1


class PopulationState:
    """Mixin of :class:`~lifelong.pbt.PBT`: a new state, loading one to resume, persisting it."""

    def _new_state(self) -> dict[str, Any]:
        configs = self.initial_configs()
        return {
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint(),
            "boundary": 0,
            "exploited_through": 0,
            "members": {
                m: {
                    "index": i,
                    "config": configs[m],
                    "checkpoint": None,
                    "step": 0,
                    "score": None,
                    "restarts": 0,
                }
                for i, m in enumerate(self.member_ids)
            },
            "history": [],
            "events": [],
        }

    def load_state(self) -> dict[str, Any] | None:
        path = self.workdir / "state.json"
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise PBTError(f"{path}: unreadable PBT state ({exc})") from exc
        if state.get("version") != STATE_VERSION:
            raise PBTError(f"{path}: state version {state.get('version')!r}, expected {STATE_VERSION}")
        if state.get("fingerprint") != self.fingerprint():
            old, new = state.get("fingerprint", {}), self.fingerprint()
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(
                f"workdir={str(self.workdir)!r} holds a different PBT experiment (differs in {diff}); "
                "use another workdir, or the same settings to resume it"
            )
        return state

    def _persist(self, state: dict[str, Any], result: PBTResult | None = None) -> None:
        atomic_write_text(self.workdir / "state.json", dumps(state, indent=1) + "\n")
        records.write_outputs(
            self.workdir, events=state["events"], history=state["history"], names=self.names, result=result
        )

    def _result(self, state: dict[str, Any]) -> PBTResult:
        members = [
            MemberResult(
                id=m,
                checkpoint=self._abs(s["checkpoint"]),
                config=dict(s["config"]),
                score=s["score"],
                step=s["step"],
                restarts=s["restarts"],
            )
            for m, s in state["members"].items()
        ]
        return PBTResult(
            workdir=self.workdir,
            metric=self.metric,
            mode=self.mode,
            members=members,
            lineage=list(state["events"]),
            steps=int(state["boundary"]),
        )
