"""``PBT``: the population as composed objects, and dispatch to a backend.

- :class:`~lifelong.pbt.settings.PBTSettings`: the validated arguments;
- :class:`~lifelong.pbt.persistence.PopulationState`: ``state.json``, what a resume reads;
- :class:`~lifelong.pbt.retention.CheckpointRetention`: member checkpoint files;
- a coordinator per mode: :class:`~lifelong.pbt.synchronous.SynchronousCoordinator` or
  :class:`~lifelong.pbt.asynchronous.AsynchronousCoordinator` (local backend), or the Ray
  backend (:mod:`~lifelong.pbt.ray_backend`), which shares their decision code
  (:mod:`~lifelong.pbt.explore`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from lifelong.pbt.asynchronous import AsynchronousCoordinator
from lifelong.pbt.errors import PBTError
from lifelong.pbt.member import AgentSpec
from lifelong.pbt.persistence import PopulationState
from lifelong.pbt.records import PBTResult
from lifelong.pbt.retention import CheckpointRetention
from lifelong.pbt.settings import BACKENDS, PBTSettings
from lifelong.pbt.space import Distribution
from lifelong.pbt.synchronous import SynchronousCoordinator

__all__ = ["PBT", "PBTError", "BACKENDS"]


class PBT:
    """Population-based training of ``DistributionalPPO`` (or ``DistributionalRecurrentPPO``)
    members (see docs/pbt.md).

    ``agent`` holds the agent's arguments plus ``env`` (a Gymnasium id or a picklable env
    factory), optionally ``algo`` (``"ppo"``, the default, or ``"recurrent_ppo"``),
    ``eval_env``, ``n_envs``, ``env_kwargs`` and ``normalize`` (``True`` or a dict of
    ``VecNormalize`` arguments). Member ``i`` is seeded ``seed + i``; its initial
    config is drawn from ``space`` with a generator seeded by ``seed``.

    Extra arguments beyond DESIGN: ``synchronous`` (default True; False: asynchronous PBT),
    ``max_restarts`` (per member, default 3), ``keep_checkpoints`` (per member, default 2,
    ``None`` keeps all), ``ray_address``, ``start_method``.
    """

    def __init__(self, agent: Mapping[str, Any], space: Mapping[str, Distribution], *args: Any, **kwargs: Any) -> None:
        self.settings = PBTSettings(agent, space, *args, **kwargs)

    # the settings a caller reads (the CLI's table, scripts)
    @property
    def workdir(self) -> Path:
        return self.settings.workdir

    @property
    def names(self) -> list[str]:
        return self.settings.names

    @property
    def member_ids(self) -> list[str]:
        return self.settings.member_ids

    @property
    def population_size(self) -> int:
        return self.settings.population_size

    @property
    def total_steps(self) -> int:
        return self.settings.total_steps

    @property
    def metric(self) -> str:
        return self.settings.metric

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def synchronous(self) -> bool:
        return self.settings.synchronous

    @property
    def backend(self) -> str:
        return self.settings.backend

    @property
    def spec(self) -> AgentSpec:
        return self.settings.spec

    def load_state(self) -> dict[str, Any] | None:
        """The workdir's saved state, checked against these settings (None if it has none):
        ``ValueError`` for a different experiment or the other mode, ``PBTError`` if unreadable."""
        return PopulationState.read(self.settings)

    def run(self, callback: Callable[[dict[str, Any]], Any] | None = None) -> PBTResult:
        """Train the population to ``total_steps`` (continuing ``workdir`` if it holds this
        experiment, interrupted or finished). ``callback(event)`` is called with every event
        (``"interval"``, ``"exploit"``, ``"restart"``, ``"fallback"``, ``"reseed"``,
        ``"boundary"``); an exception it raises stops the run, which can then be resumed."""
        self.settings.workdir.mkdir(parents=True, exist_ok=True)
        emit = callback or (lambda event: None)
        if self.settings.backend == "ray":
            from lifelong.pbt.ray_backend import run_ray

            return run_ray(self.settings, emit)
        state = PopulationState.load_or_new(self.settings)
        coordinator = AsynchronousCoordinator if not self.settings.synchronous else SynchronousCoordinator
        return coordinator(self.settings, state, CheckpointRetention(self.settings), emit).run()
