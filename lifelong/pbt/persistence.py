"""``state.json``: the population's state, persisted after every change so a run can resume.

Both backends and both modes keep the same state: per member its config, latest checkpoint
(relative to the workdir), step (the member's own timeline: intervals trained times
``interval_steps``), latest score and restart count; the interval history; the lineage events;
and the mode (``"synchronous": true|false``), which a resume must match.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lifelong.pbt import records
from lifelong.pbt.errors import PBTError
from lifelong.pbt.records import MemberResult, PBTResult, atomic_write_text, dumps
from lifelong.pbt.settings import PBTSettings, mode_name

__all__ = ["STATE_VERSION", "PopulationState"]

STATE_VERSION = 1


class PopulationState:
    """The state of one population run (``data`` is what ``state.json`` holds)."""

    def __init__(self, settings: PBTSettings, data: dict[str, Any]) -> None:
        self.settings = settings
        self.data = data

    @classmethod
    def new(cls, settings: PBTSettings) -> "PopulationState":
        configs = settings.initial_configs()
        return cls(
            settings,
            {
                "version": STATE_VERSION,
                "fingerprint": settings.fingerprint(),
                "synchronous": settings.synchronous,
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
                    for i, m in enumerate(settings.member_ids)
                },
                "history": [],
                "events": [],
            },
        )

    @classmethod
    def read(cls, settings: PBTSettings) -> dict[str, Any] | None:
        """The workdir's ``state.json`` checked against ``settings``, or None if there is none.

        A different experiment is a ``ValueError`` naming the differing settings; a run of the
        other mode is a ``ValueError`` naming both modes; an unreadable file is a ``PBTError``.
        """
        path = settings.workdir / "state.json"
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise PBTError(f"{path}: unreadable PBT state ({exc})") from exc
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            found = state.get("version") if isinstance(state, dict) else state
            raise PBTError(f"{path}: state version {found!r}, expected {STATE_VERSION}")
        if state.get("fingerprint") != settings.fingerprint():
            old, new = state.get("fingerprint") or {}, settings.fingerprint()
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(
                f"workdir={str(settings.workdir)!r} holds a different PBT experiment (differs in {diff}); "
                "use another workdir, or the same settings to resume it"
            )
        saved = state.get("synchronous", True)  # states written before the mode existed: synchronous
        if saved != settings.synchronous:
            article = "a" if saved else "an"
            raise ValueError(
                f"workdir={str(settings.workdir)!r} holds {article} {mode_name(saved)} PBT run; it cannot be "
                f"resumed as {mode_name(settings.synchronous)} (synchronous={settings.synchronous}): "
                f"resume it with synchronous={saved}, or use another workdir"
            )
        return state

    @classmethod
    def load_or_new(cls, settings: PBTSettings) -> "PopulationState":
        data = cls.read(settings)
        return cls(settings, data) if data is not None else cls.new(settings)

    # ------------------------------------------------------------------ access

    @property
    def members(self) -> dict[str, dict[str, Any]]:
        return self.data["members"]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.data["events"]

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.data["history"]

    def checkpoint_of(self, member: str) -> Path | None:
        return self.settings.abs(self.members[member]["checkpoint"])

    def finished(self) -> bool:
        return all(s["step"] >= self.settings.total_steps for s in self.members.values())

    # ------------------------------------------------------------------ files

    def persist(self, result: PBTResult | None = None) -> None:
        """Write ``state.json`` and the files derived from it (each atomically)."""
        workdir = self.settings.workdir
        if result is not None:
            self.data["result"] = result.to_dict()
        atomic_write_text(workdir / "state.json", dumps(self.data, indent=1) + "\n")
        records.write_outputs(
            workdir, events=self.events, history=self.history, names=self.settings.names, result=result
        )

    def result(self) -> PBTResult:
        members = [
            MemberResult(
                id=m,
                checkpoint=self.settings.abs(s["checkpoint"]),
                config=dict(s["config"]),
                score=s["score"],
                step=s["step"],
                restarts=s["restarts"],
            )
            for m, s in self.members.items()
        ]
        return PBTResult(
            workdir=self.settings.workdir,
            metric=self.settings.metric,
            mode=self.settings.mode,
            members=members,
            lineage=list(self.events),
            steps=min(int(s["step"]) for s in self.members.values()),
        )
