"""``PBT``: validated configuration, the synchronous local coordinator, and dispatch to Ray.

The parts live in modules by concept: :mod:`~lifelong.pbt.settings` (argument validation),
:mod:`~lifelong.pbt.coordinator` (the local loop and exploits), :mod:`~lifelong.pbt.retention`
(checkpoint pruning, the exploit copy), :mod:`~lifelong.pbt.persistence` (``state.json``).
"""
from __future__ import annotations

from typing import Any, Callable

from lifelong.pbt.coordinator import LocalCoordinator
from lifelong.pbt.errors import PBTError
from lifelong.pbt.persistence import PopulationState
from lifelong.pbt.records import PBTResult
from lifelong.pbt.retention import CheckpointRetention
from lifelong.pbt.settings import BACKENDS, PBTSettings

__all__ = ["PBT", "PBTError", "BACKENDS"]


class PBT(PBTSettings, PopulationState, CheckpointRetention, LocalCoordinator):
    """Population-based training of ``DistributionalPPO`` members (see docs/pbt.md).

    ``agent`` holds ``DistributionalPPO`` arguments plus ``env`` (a Gymnasium id or a picklable
    env factory), optionally ``eval_env``, ``n_envs`` and ``env_kwargs``. Member ``i`` is seeded
    ``seed + i``; its initial config is drawn from ``space`` with a generator seeded by ``seed``.

    Extra arguments beyond DESIGN: ``max_restarts`` (per member, default 3),
    ``keep_checkpoints`` (per member, default 2, ``None`` keeps all), ``ray_address``.
    """

    def run(self, callback: Callable[[dict[str, Any]], Any] | None = None) -> PBTResult:
        """Train the population to ``total_steps`` (continuing ``workdir`` if it holds this
        experiment, interrupted or finished). ``callback(event)`` is called with every event
        (``"interval"``, ``"exploit"``, ``"restart"``, ``"boundary"``); an exception it raises
        stops the run, which can then be resumed."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.backend == "ray":
            from lifelong.pbt.ray_backend import run_ray

            return run_ray(self, callback)
        return self._run_local(callback)
