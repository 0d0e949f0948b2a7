"""Argument validation: the checked configuration of a ``PBT`` run and what follows from it alone."""
from __future__ import annotations

import importlib.util
import math
import numbers
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from lifelong.agent.hyperparameters import TUNABLE, validate
from lifelong.pbt.local import START_METHODS, default_start_method
from lifelong.pbt.member import EVAL_METRICS, AgentSpec
from lifelong.pbt.space import Distribution, from_dict

__all__ = ["BACKENDS", "PBTSettings", "validate_space", "mode_name"]

BACKENDS = ("local", "ray")


def mode_name(synchronous: bool) -> str:
    """``"synchronous"`` or ``"asynchronous"``: how messages and ``state.json`` name a mode."""
    return "synchronous" if synchronous else "asynchronous"


def _require_ray():
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.tune") is None:
        raise ImportError("backend='ray' needs Ray Tune, which is not installed: pip install lifelong[ray]")


def _int_arg(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r}: expected an int >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value!r}: expected an int >= {minimum}")
    return int(value)


def _real_arg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name}={value!r}: expected a finite number")
    return float(value)


def validate_space(space: Any) -> dict[str, Distribution]:
    """Names must be ``set_hyperparameters`` names and every bound a valid value for it."""
    if not isinstance(space, Mapping) or not space:
        raise ValueError(
            f"space={space!r}: expected a non-empty dict of hyperparameter name -> "
            "LogUniform/Uniform/IntUniform/Choice"
        )
    out: dict[str, Distribution] = {}
    for name, dist in space.items():
        if name not in TUNABLE:
            raise ValueError(
                f"space: {name!r} is not a tunable hyperparameter; expected one of {list(TUNABLE)} "
                "(the names model.set_hyperparameters accepts)"
            )
        if isinstance(dist, Mapping):
            dist = from_dict(dict(dist))
        if not isinstance(dist, Distribution):
            raise ValueError(
                f"space[{name!r}]={dist!r}: expected LogUniform, Uniform, IntUniform or Choice"
            )
        for value in dist.endpoints():
            try:
                validate(name, value)
            except ValueError as exc:
                raise ValueError(f"space[{name!r}]={dist!r}: {value!r} is not a valid {name}: {exc}") from exc
        out[str(name)] = dist
    return out


class PBTSettings:
    """The validated arguments of :class:`~lifelong.pbt.PBT` (see its docstring) and what they
    determine: member ids, the fingerprint a workdir must match, the initial configs, and the
    mapping between paths inside ``workdir`` and the relative paths ``state.json`` stores."""

    def __init__(
        self,
        agent: Mapping[str, Any],
        space: Mapping[str, Distribution],
        population_size: int = 4,
        interval_steps: int = 4096,
        total_steps: int = 40960,
        truncation: float = 0.25,
        resample_probability: float = 0.25,
        perturb_factors: Sequence[float] = (0.8, 1.2),
        metric: str = "eval_mean_reward",
        mode: str = "max",
        eval_episodes: int = 5,
        workdir: str | os.PathLike = "runs/pbt",
        backend: str = "local",
        workers: int | None = None,
        seed: int = 0,
        *,
        max_restarts: int = 3,
        keep_checkpoints: int | None = 2,
        ray_address: str | None = None,
        start_method: str | None = None,
        synchronous: bool = True,
    ) -> None:
        if not isinstance(synchronous, bool):
            raise ValueError(
                f"synchronous={synchronous!r}: expected True (every member waits at each interval "
                "boundary) or False (asynchronous: each member exploits at its own boundaries)"
            )
        self.synchronous = synchronous
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is unknown; expected one of {list(BACKENDS)}")
        self.population_size = _int_arg("population_size", population_size, 2)
        self.interval_steps = _int_arg("interval_steps", interval_steps, 1)
        self.total_steps = _int_arg("total_steps", total_steps, 1)
        if self.total_steps < self.interval_steps:
            raise ValueError(
                f"total_steps={total_steps!r} is less than interval_steps={interval_steps!r}; "
                "expected at least one full interval"
            )
        truncation = _real_arg("truncation", truncation)
        if not 0.0 < truncation <= 0.5:
            raise ValueError(f"truncation={truncation!r}: expected a number in (0, 0.5]")
        self.truncation = truncation
        resample_probability = _real_arg("resample_probability", resample_probability)
        if not 0.0 <= resample_probability <= 1.0:
            raise ValueError(f"resample_probability={resample_probability!r}: expected a number in [0, 1]")
        self.resample_probability = resample_probability
        try:
            factors = tuple(float(f) for f in perturb_factors)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"perturb_factors={perturb_factors!r}: expected a sequence of positive numbers") from exc
        if not factors or any(not math.isfinite(f) or f <= 0 for f in factors):
            raise ValueError(f"perturb_factors={perturb_factors!r}: expected a non-empty sequence of positive numbers")
        self.perturb_factors = factors
        if metric not in EVAL_METRICS:
            raise ValueError(
                f"metric={metric!r} is not produced by the evaluation; expected one of {list(EVAL_METRICS)}"
            )
        self.metric = metric
        if mode not in ("max", "min"):
            raise ValueError(f"mode={mode!r}: expected 'max' or 'min'")
        self.mode = mode
        self.eval_episodes = _int_arg("eval_episodes", eval_episodes, 1)
        if not isinstance(workdir, (str, os.PathLike)):
            raise ValueError(f"workdir={workdir!r}: expected a path")
        self.workdir = Path(workdir)
        self.backend = backend
        self.workers = None if workers is None else _int_arg("workers", workers, 1)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"seed={seed!r}: expected an int")
        self.seed = int(seed)
        self.max_restarts = _int_arg("max_restarts", max_restarts, 0)
        self.keep_checkpoints = None if keep_checkpoints is None else _int_arg("keep_checkpoints", keep_checkpoints, 1)
        if ray_address is not None and not isinstance(ray_address, str):
            raise ValueError(f"ray_address={ray_address!r}: expected a string such as 'auto' or 'ray://host:10001'")
        self.ray_address = ray_address
        if start_method is not None and start_method not in START_METHODS:
            raise ValueError(f"start_method={start_method!r}: expected one of {list(START_METHODS)} or None")
        self.start_method = start_method or default_start_method()
        self.spec = AgentSpec.from_agent(agent)
        self.space = validate_space(space)
        if isinstance(self.spec.n_envs, tuple) and len(self.spec.n_envs) != self.population_size:
            raise ValueError(
                f"agent['n_envs']={list(self.spec.n_envs)!r} has {len(self.spec.n_envs)} entries; expected one "
                f"per member (population_size={self.population_size}) or a single int"
            )
        for index in range(self.population_size):
            rollout = self.spec.rollout_steps_of(index)
            if rollout and self.interval_steps % rollout:
                warnings.warn(
                    f"interval_steps={self.interval_steps} is not a multiple of n_steps * n_envs = {rollout}"
                    f"{f' (member {index})' if isinstance(self.spec.n_envs, tuple) else ''}; each interval "
                    f"trains whole rollouts, so members train up to {rollout - self.interval_steps % rollout} "
                    "more steps per interval",
                    stacklevel=2,
                )
                break
        if backend == "ray":
            _require_ray()

    # ----------------------------------------------------------------- helpers

    @property
    def names(self) -> list[str]:
        return list(self.space)

    @property
    def member_ids(self) -> list[str]:
        return [f"member_{i}" for i in range(self.population_size)]

    def fingerprint(self) -> dict[str, Any]:
        """What must match for ``run()`` to continue an existing workdir."""
        return {
            "agent": self.spec.describe(),
            "space": {n: d.to_dict() for n, d in self.space.items()},
            "population_size": self.population_size,
            "interval_steps": self.interval_steps,
            "truncation": self.truncation,
            "resample_probability": self.resample_probability,
            "perturb_factors": list(self.perturb_factors),
            "metric": self.metric,
            "mode": self.mode,
            "eval_episodes": self.eval_episodes,
            "seed": self.seed,
            "backend": self.backend,
        }

    def initial_configs(self) -> dict[str, dict[str, Any]]:
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x1417])
        return {m: {n: d.sample(rng) for n, d in self.space.items()} for m in self.member_ids}

    @property
    def mode_name(self) -> str:
        return mode_name(self.synchronous)

    def rel(self, path: str | Path) -> str:
        p = Path(path)
        try:
            return str(p.resolve().relative_to(self.workdir.resolve()))
        except ValueError:
            return str(p)

    def abs(self, rel: str | None) -> Path | None:
        if rel is None:
            return None
        p = Path(rel)
        return p if p.is_absolute() else self.workdir / p
