"""``PBT``: validated configuration, the synchronous local coordinator, and dispatch to Ray."""
from __future__ import annotations

import math
import numbers
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from lifelong.pbt import records
from lifelong.pbt.explore import boundary_rng, explore, select_exploits
from lifelong.pbt.member import EVAL_METRICS, AgentSpec, run_interval
from lifelong.checkpoint.atomic import write_atomic
from lifelong.pbt.records import MemberResult, PBTResult, atomic_write_text, dumps
from lifelong.pbt.space import Distribution

__all__ = ["PBT", "PBTError", "BACKENDS"]

BACKENDS = ("local", "ray")
STATE_VERSION = 1
_CKPT_RE = re.compile(r"^(?:step_(\d+)|exploit_(\d+)_from_.+)\.zip$")


class PBTError(RuntimeError):
    """A population cannot continue (a member failed more than ``max_restarts`` times, or a
    workdir holds a different experiment)."""


def _require_ray():
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
        from ray.tune.schedulers import PopulationBasedTraining  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "backend='ray' needs Ray Tune, which is not installed: pip install lifelong[ray]"
        ) from exc


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
    from lifelong.hyperparams import TUNABLE, validate

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
            from lifelong.pbt.space import from_dict

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


class PBT:
    """Population-based training of ``DistributionalPPO`` members (see docs/pbt.md).

    ``agent`` holds ``DistributionalPPO`` arguments plus ``env`` (a Gymnasium id or a picklable
    env factory), optionally ``eval_env``, ``n_envs`` and ``env_kwargs``. Member ``i`` is seeded
    ``seed + i``; its initial config is drawn from ``space`` with a generator seeded by ``seed``.

    Extra arguments beyond DESIGN: ``max_restarts`` (per member, default 3),
    ``keep_checkpoints`` (per member, default 2, ``None`` keeps all), ``ray_address``.
    """

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
    ) -> None:
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
        from lifelong.pbt.local import START_METHODS, default_start_method

        if start_method is not None and start_method not in START_METHODS:
            raise ValueError(f"start_method={start_method!r}: expected one of {list(START_METHODS)} or None")
        self.start_method = start_method or default_start_method()
        self.spec = AgentSpec.from_agent(agent)
        self.space = validate_space(space)
        rollout = self.spec.rollout_steps
        if rollout and self.interval_steps % rollout:
            warnings.warn(
                f"interval_steps={self.interval_steps} is not a multiple of n_steps * n_envs = {rollout}; "
                "each interval trains whole rollouts, so members train up to "
                f"{rollout - self.interval_steps % rollout} more steps per interval",
                stacklevel=2,
            )
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
        import numpy as np

        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x1417])
        return {m: {n: d.sample(rng) for n, d in self.space.items()} for m in self.member_ids}

    def _rel(self, path: str | Path) -> str:
        p = Path(path)
        try:
            return str(p.resolve().relative_to(self.workdir.resolve()))
        except ValueError:
            return str(p)

    def _abs(self, rel: str | None) -> Path | None:
        if rel is None:
            return None
        p = Path(rel)
        return p if p.is_absolute() else self.workdir / p

    # ----------------------------------------------------------------- state

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
        import json

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

    # ----------------------------------------------------------------- run

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
        from lifelong.pbt.local import WorkerPool, default_workers

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

    def _prune(self, state: dict[str, Any]) -> None:
        if self.keep_checkpoints is None:
            return
        for m, s in state["members"].items():
            folder = self.workdir / "members" / m
            current = self._abs(s["checkpoint"])
            found = []
            for p in folder.glob("*.zip"):
                match = _CKPT_RE.match(p.name)
                if match:
                    step = int(match.group(1) or match.group(2))
                    found.append(((step, p.name.startswith("exploit_")), p))
            found.sort(reverse=True)
            keep = {p for _, p in found[: self.keep_checkpoints]}
            if current is not None:
                keep.add(current)
            for _, p in found:
                if p not in keep and p.resolve() != (current.resolve() if current else None):
                    try:
                        p.unlink()
                    except FileNotFoundError:
                        pass


def _atomic_copy(src: Path | None, dst: Path) -> None:
    if src is None or not Path(src).exists():
        raise PBTError(f"exploit: the donor checkpoint {src} does not exist")
    write_atomic(dst, Path(src).read_bytes())