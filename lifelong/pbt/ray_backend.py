"""``backend="ray"``: the same population on Ray Tune's ``PopulationBasedTraining`` scheduler.

- One Tune trial per member, one training iteration per PBT interval, ``synch=True`` so every
  member reaches a boundary before anyone exploits (as in the local backend).
- The trainable saves and restores through ``lifelong.checkpoint`` files and applies the trial's
  config *after* restoring. Tune clones the donor's config onto the recipient, explores it, and
  restores the donor's checkpoint; restoring after the config change used to make the learning
  rate silently revert to the donor's. Here ``load_checkpoint`` always ends with
  ``set_hyperparameters(**trial config)``, and ``reset_config`` drops the in-memory model, so the
  recipient trains with the donor's state and its own new hyperparameters.
- Explore uses this package's search space (bounds, log space, neighbouring choices), not
  Tune's mutations, and keeps each trial's member index in its config.
- Checkpoint retention: Tune's ``num_to_keep`` pruning can delete a checkpoint that PBT later
  restores (seen with Ray 2.60). Trial checkpoints are therefore kept (``num_to_keep=None``);
  the latest of each member is copied into ``workdir/members/<id>/`` at the end.
- Outputs (``lineage.jsonl``, ``scores.csv``, ``intervals.jsonl``, ``result.json``) are written
  by the driver, so they are the same on a laptop and on a cluster.
- A finished workdir returns its stored result. An interrupted one is refused (``PBTError``):
  ``Tuner.restore`` of a synchronous PBT experiment duplicated results and then scheduled no
  trial with Ray 2.60; the local backend resumes exactly.
"""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import ray
import torch
from ray import tune
from ray.tune.schedulers import PopulationBasedTraining

from lifelong.agent.ppo import DistributionalPPO
from lifelong.checkpoint import load_model, save_model
from lifelong.pbt.errors import PBTError
from lifelong.pbt.explore import explore
from lifelong.pbt.local import default_workers
from lifelong.pbt.member import (
    AgentSpec,
    _jsonable,
    build_model,
    check_live_parameters,
    eval_seed,
    evaluate,
    interval_seed,
    make_env,
    member_seed,
    optimizer_lrs,
    train_mean_reward,
)
from lifelong.pbt.records import (
    MemberResult,
    PBTResult,
    atomic_write_text,
    dumps,
    write_outputs,
)

__all__ = ["LifelongTrainable", "run_ray"]

MEMBER_KEY = "lifelong_member"
_MODEL_FILE = "model.zip"
_META_FILE = "lifelong_member.json"


class LifelongTrainable(tune.Trainable):
    """One population member. ``spec``/``settings`` come through ``tune.with_parameters``."""

    def setup(self, config: dict, spec: AgentSpec = None, settings: dict = None) -> None:
        torch.set_num_threads(1)
        self.spec = spec
        self.settings = dict(settings)
        self._model = None
        self._restored_from: dict | None = None

    # the trial's own hyperparameters, from its (possibly just explored) config
    def _values(self) -> dict[str, Any]:
        return {n: self.config[n] for n in self.settings["names"]}

    @property
    def _index(self) -> int:
        return int(self.config[MEMBER_KEY])

    def _apply(self) -> None:
        self._model.set_hyperparameters(**self._values())
        check_live_parameters(self._model)

    def step(self) -> dict:
        s = self.settings
        start = self.iteration * s["interval_steps"]
        length = min(s["interval_steps"], s["total_steps"] - start)
        env = make_env(self.spec, interval_seed(s["seed"], self._index, start))
        if self._model is None:
            if self.iteration > 0:
                raise RuntimeError(
                    f"member {self._index} is at iteration {self.iteration} but no checkpoint was restored"
                )
            self._model = build_model(self.spec, env, member_seed(s["seed"], self._index))
        else:
            self._model.set_env(env, force_reset=True)
        self._apply()
        applied = _jsonable(self._model.get_hyperparameters())
        lrs = optimizer_lrs(self._model)
        start_timesteps = int(self._model.num_timesteps)
        t0 = time.perf_counter()
        self._model.learn(total_timesteps=length, reset_num_timesteps=False)
        metrics = evaluate(self._model, self.spec, s["eval_episodes"], eval_seed(s["seed"], start + length))
        restored = self._restored_from
        self._restored_from = None
        return {
            **metrics,
            "lifelong_step": start + length,
            "lifelong_config": self._values(),
            "applied": applied,
            "optimizer_lr": lrs,
            "started_from_member": None if restored is None else restored.get("member"),
            "env_steps": int(self._model.num_timesteps) - start_timesteps,
            "num_timesteps": int(self._model.num_timesteps),
            "train_mean_reward": train_mean_reward(self._model),
            "interval_seconds": time.perf_counter() - t0,
        }

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        save_model(self._model, Path(checkpoint_dir) / _MODEL_FILE)
        meta = {"member": self._index, "iteration": self.iteration, "config": self._values()}
        (Path(checkpoint_dir) / _META_FILE).write_text(json.dumps(meta))

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        self._model = load_model(
            DistributionalPPO, Path(checkpoint_dir) / _MODEL_FILE, device=self.spec.kwargs.get("device", "auto")
        )
        meta_path = Path(checkpoint_dir) / _META_FILE
        self._restored_from = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        # The state is the checkpoint's (maybe a donor's); the hyperparameters are this trial's.
        self._apply()

    def reset_config(self, new_config: dict) -> bool:
        # Actor reuse: this actor may now run another member; its state comes from restore().
        self._model = None
        self._restored_from = None
        return True

    def cleanup(self) -> None:
        self._model = None


class _Recorder:
    """Driver-side lineage and score records, persisted to workdir after every change."""

    def __init__(self, pbt, state: dict | None) -> None:
        self.pbt = pbt
        self.events: list[dict] = list(state["events"]) if state else []
        self.history: list[dict] = list(state["history"]) if state else []
        self.callback: Callable = lambda e: None

    def persist(self, result: PBTResult | None = None) -> None:
        state = {"version": 1, "fingerprint": self.pbt.fingerprint(), "events": self.events, "history": self.history}
        if result is not None:
            state["result"] = result.to_dict()
        atomic_write_text(self.pbt.workdir / "state.json", dumps(state, indent=1) + "\n")
        write_outputs(self.pbt.workdir, events=self.events, history=self.history, names=self.pbt.names, result=result)

    def add_event(self, event: dict) -> None:
        self.events.append(event)
        self.persist()
        self.callback(event)

    def add_interval(self, row: dict) -> None:
        self.history.append(row)
        self.persist()
        self.callback({"event": "interval", **row})


def _member_id(config: dict) -> str:
    return f"member_{int(config[MEMBER_KEY])}"


# The driver's recorder for each workdir. The scheduler is pickled into Tune's experiment state
# (and unpickled by ``Tuner.restore``); it finds the live recorder here instead of carrying one.
_RECORDERS: dict[str, _Recorder] = {}


class LifelongPBTScheduler(PopulationBasedTraining):
    """Tune's synchronous PBT with this package's explore and lineage records."""

    def __init__(self, *, pbt, **kwargs: Any) -> None:
        rng = np.random.default_rng([pbt.seed & 0xFFFFFFFF, 0x7A7])
        super().__init__(
            time_attr="training_iteration",
            metric=pbt.metric,
            mode=pbt.mode,
            perturbation_interval=1,
            # Tune requires mutations; our _get_new_config replaces Tune's explore entirely.
            hyperparam_mutations={n: (lambda d=d: d.sample(rng)) for n, d in pbt.space.items()},
            quantile_fraction=pbt.truncation,
            resample_probability=pbt.resample_probability,
            perturbation_factors=tuple(pbt.perturb_factors),
            log_config=True,
            synch=True,
            **kwargs,
        )
        self._lifelong_pbt = pbt
        self._lifelong_rng = rng
        self._lifelong_key = str(pbt.workdir.resolve())
        self._lifelong_ops: dict[str, str] = {}

    def _get_new_config(self, trial, trial_to_clone):
        pbt = self._lifelong_pbt
        donor_values = {n: trial_to_clone.config[n] for n in pbt.space}
        new_values, ops = explore(
            donor_values, pbt.space, self._lifelong_rng, pbt.resample_probability, pbt.perturb_factors
        )
        new_config = copy.deepcopy(trial.config)  # keeps the recipient's member index
        new_config.update(new_values)
        self._lifelong_ops = dict(ops)
        return new_config, ops

    def _exploit(self, tune_controller, trial, trial_to_clone):
        pbt = self._lifelong_pbt
        old = {n: trial.config[n] for n in pbt.space}
        donor_config = {n: trial_to_clone.config[n] for n in pbt.space}
        rstate, dstate = self._trial_state[trial], self._trial_state[trial_to_clone]
        super()._exploit(tune_controller, trial, trial_to_clone)
        ckpt = dstate.last_checkpoint
        iteration = int(dstate.last_train_time or 0)
        sign = self._metric_op
        _RECORDERS[self._lifelong_key].add_event(
            {
                "event": "exploit",
                "step": min(iteration * pbt.interval_steps, pbt.total_steps),
                "donor": _member_id(trial_to_clone.config),
                "recipient": _member_id(trial.config),
                "donor_score": None if dstate.last_score is None else sign * dstate.last_score,
                "recipient_score": None if rstate.last_score is None else sign * rstate.last_score,
                "old_config": old,
                "donor_config": donor_config,
                "new_config": {n: trial.config[n] for n in pbt.space},
                "operations": dict(self._lifelong_ops),
                "donor_checkpoint": getattr(ckpt, "path", None),
                "trial": trial.trial_id,
                "donor_trial": trial_to_clone.trial_id,
            }
        )


class _ScoreCallback(tune.Callback):
    def __init__(self, pbt) -> None:
        self.pbt = pbt
        self._key = str(pbt.workdir.resolve())

    @property
    def recorder(self) -> _Recorder:
        return _RECORDERS[self._key]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.pbt.metric not in result:
            return
        self.recorder.add_interval(
            {
                "step": int(result["lifelong_step"]),
                "member": _member_id(result["config"]) if MEMBER_KEY in result.get("config", {}) else trial.trial_id,
                "score": float(result[self.pbt.metric]),
                "config": dict(result["lifelong_config"]),
                "metrics": {k: float(result[k]) for k in ("eval_mean_reward", "eval_std_reward", "eval_min_reward", "eval_max_reward", "eval_mean_length") if k in result},
                "applied": result.get("applied"),
                "optimizer_lr": result.get("optimizer_lr"),
                "env_steps": result.get("env_steps"),
                "num_timesteps": result.get("num_timesteps"),
                "train_mean_reward": result.get("train_mean_reward"),
                "started_from_member": result.get("started_from_member"),
                "trial": trial.trial_id,
            }
        )

    def on_trial_recover(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        self.recorder.add_event(
            {
                "event": "restart",
                "step": int(last.get("lifelong_step", 0)),
                "member": _member_id(trial.config),
                "reason": "error",
                "detail": str(getattr(trial, "error_file", "") or "")[-4000:],
                "trial": trial.trial_id,
            }
        )


def _stored_result(pbt, state: dict) -> PBTResult:
    done = state["result"]
    members = [
        MemberResult(
            id=m["id"],
            checkpoint=Path(m["checkpoint"]) if m.get("checkpoint") else None,
            config=dict(m["config"]),
            score=m["score"],
            step=int(m.get("step", 0)),
            restarts=int(m.get("restarts", 0)),
        )
        for m in done["members"]
    ]
    return PBTResult(
        workdir=pbt.workdir,
        metric=pbt.metric,
        mode=pbt.mode,
        members=members,
        lineage=list(state.get("events", [])),
        steps=int(done.get("steps", 0)),
    )


def _init_ray(pbt) -> bool:
    if ray.is_initialized():
        return False
    address = pbt.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=pbt.workers or default_workers(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    return True


def run_ray(pbt, callback: Callable | None = None) -> PBTResult:
    workdir = pbt.workdir.resolve()
    state = None
    state_path = workdir / "state.json"
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != pbt.fingerprint():
            raise ValueError(
                f"workdir={str(pbt.workdir)!r} holds a different PBT experiment; use another workdir"
            )
    if state is not None and (state.get("history") or state.get("events") or state.get("result")):
        done = state.get("result")
        if done and int(done.get("steps", 0)) >= pbt.total_steps:
            return _stored_result(pbt, state)
        raise PBTError(
            f"workdir={str(pbt.workdir)!r} holds an interrupted Ray population. Tune's restore does not "
            "bring back a synchronous PBT scheduler reliably (seen with Ray 2.60: duplicated results, "
            "then no trial scheduled), so the Ray backend does not resume: use a new workdir, or "
            "backend='local', which resumes exactly"
        )
    recorder = _Recorder(pbt, None)
    if callback is not None:
        recorder.callback = callback
    recorder.persist()
    _RECORDERS[str(workdir)] = recorder

    started = _init_ray(pbt)
    try:
        n_intervals = math.ceil(pbt.total_steps / pbt.interval_steps)
        settings = {
            "names": pbt.names,
            "seed": pbt.seed,
            "interval_steps": pbt.interval_steps,
            "total_steps": pbt.total_steps,
            "eval_episodes": pbt.eval_episodes,
        }
        trainable = tune.with_resources(
            tune.with_parameters(LifelongTrainable, spec=pbt.spec, settings=settings), {"cpu": 1}
        )
        initial = pbt.initial_configs()
        param_space = {
            MEMBER_KEY: tune.grid_search(list(range(pbt.population_size))),
            **{
                n: tune.sample_from(lambda config, n=n: initial[f"member_{config[MEMBER_KEY]}"][n])
                for n in pbt.names
            },
        }
        scheduler = LifelongPBTScheduler(pbt=pbt)
        storage = workdir / "ray"
        name = "population"
        run_config = tune.RunConfig(
            name=name,
            storage_path=str(storage),
            stop={"training_iteration": n_intervals},
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None, checkpoint_frequency=1, checkpoint_at_end=True
            ),
            failure_config=tune.FailureConfig(max_failures=pbt.max_restarts),
            callbacks=[_ScoreCallback(pbt)],
            verbose=0,
        )
        if (storage / name).exists():
            shutil.rmtree(storage / name)  # a run that never recorded anything: start over
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                scheduler=scheduler,
                num_samples=1,
                reuse_actors=True,
                trial_name_creator=lambda t: f"member_{t.config[MEMBER_KEY]}",
                trial_dirname_creator=lambda t: f"member_{t.config[MEMBER_KEY]}_{t.trial_id}",
            ),
            run_config=run_config,
        )
        grid = tuner.fit()
        members = []
        for res in grid:
            if res.error is not None:
                raise PBTError(f"a Ray trial failed beyond max_restarts={pbt.max_restarts}: {res.error}")
            mid = _member_id(res.config)
            ckpt_path = None
            if res.checkpoint is not None:
                with res.checkpoint.as_directory() as d:
                    dst = workdir / "members" / mid / f"step_{int(res.metrics['lifelong_step']):09d}.zip"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(Path(d) / _MODEL_FILE, dst)
                    ckpt_path = dst
            members.append(
                MemberResult(
                    id=mid,
                    checkpoint=ckpt_path,
                    config={n: res.config[n] for n in pbt.names},
                    score=float(res.metrics[pbt.metric]),
                    step=int(res.metrics["lifelong_step"]),
                )
            )
    finally:
        _RECORDERS.pop(str(workdir), None)
        if started:
            ray.shutdown()
    members.sort(key=lambda m: int(m.id.split("_")[-1]))
    result = PBTResult(
        workdir=pbt.workdir,
        metric=pbt.metric,
        mode=pbt.mode,
        members=members,
        lineage=list(recorder.events),
        steps=max((m.step for m in members), default=0),
    )
    recorder.persist(result)
    return result
