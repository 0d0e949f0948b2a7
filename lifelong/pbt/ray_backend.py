"""``backend="ray"``: the same population on Ray Tune's ``PopulationBasedTraining`` scheduler.

- One Tune trial per member; one training iteration per PBT interval; the time attribute is the
  member's step (``lifelong_step``) and the perturbation interval is ``interval_steps``.
  ``synchronous=True`` maps to Tune's ``synch=True`` (every member reaches a boundary before
  anyone exploits), ``synchronous=False`` to Tune's asynchronous PBT (``synch=False``).
- The decisions are this package's (:mod:`~lifelong.pbt.explore`, shared with the local
  coordinators): the scheduler ranks with :func:`~lifelong.pbt.explore.quantiles` (with the
  asynchronous warm-up rule: nobody exploits before every member has a score), draws the donor
  with :func:`~lifelong.pbt.explore.pick_donor` and explores with
  :func:`~lifelong.pbt.explore.explore`, not with Tune's mutations.
- The trainable saves each interval's checkpoint as ``workdir/members/<id>/step_<n>.zip`` and
  gives Tune a copy; it restores through ``lifelong.checkpoint`` and applies the trial's config
  *after* restoring (the learning rate cannot silently revert to the donor's).
- The driver keeps the same ``state.json`` as the local backend (members' configs, scores,
  checkpoints, history, lineage), updated on every result, exploit and restart. A result is
  recorded by the scheduler before its decisions, and by a Tune callback when the scheduler
  never sees it (a stop result); its ``lifelong_result_id`` keeps it from being recorded twice.
- Resume: ``Tuner.restore`` of a PBT experiment recorded results twice and then scheduled no
  trial (Ray 2.60), so an interrupted run is rebuilt from ``state.json`` and the member
  checkpoints instead: a new Tune experiment whose trials start from each member's recorded
  checkpoint, config and step. In synchronous mode, members that had already finished the
  interval after the last common boundary are rolled back to it (their checkpoint and config at
  that boundary are in the history; retention keeps that checkpoint), so the resumed population
  meets at the same boundary; without that checkpoint the resume is a ``PBTError``.
- A donor that Tune is still saving for its pause is exploited from that save, not from a
  second one whose result the pause drops (its directory is then overwritten by the donor's
  next save: the recipient would skip an interval).
- Checkpoint retention: Tune's ``num_to_keep`` pruning can delete a checkpoint that PBT later
  restores (seen with Ray 2.60). Tune's copies are therefore kept (``num_to_keep=None``);
  ``keep_checkpoints`` applies to the member folders.
"""
from __future__ import annotations

import copy
import io
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import ray
import torch
from ray import tune
from ray.train._internal.session import _FutureTrainingResult
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining

from lifelong.checkpoint import save_model, verify
from lifelong.errors import CheckpointError
from lifelong.pbt.coordinator import last_line
from lifelong.pbt.errors import PBTError
from lifelong.pbt.explore import explore, member_rng, pick_donor, quantiles
from lifelong.pbt.local import default_workers
from lifelong.pbt.member import (
    EVAL_METRICS,
    AgentSpec,
    _jsonable,
    build_model,
    carry_normalization,
    check_live_parameters,
    eval_seed,
    evaluate,
    interval_seed,
    load_member,
    make_env,
    member_seed,
    optimizer_lrs,
    train_mean_reward,
)
from lifelong.pbt.persistence import PopulationState
from lifelong.pbt.records import PBTResult
from lifelong.pbt.retention import CheckpointRetention
from lifelong.pbt.settings import PBTSettings

__all__ = ["LifelongTrainable", "run_ray", "resume_plan"]

MEMBER_KEY = "lifelong_member"
_MODEL_FILE = "model.zip"
_META_FILE = "lifelong_member.json"


def _member_id(index: int) -> str:
    return f"member_{int(index)}"


class LifelongTrainable(tune.Trainable):
    """One population member. ``spec``/``settings`` come through ``tune.with_parameters``."""

    def setup(self, config: dict, spec: AgentSpec | None = None, settings: dict | None = None) -> None:
        torch.set_num_threads(1)
        self.spec = spec
        self.settings = dict(settings)
        self._model = None
        self._restored_from: dict | None = None
        self._file: Path | None = None  # this member's latest checkpoint file
        self._start_as_planned()

    def _start_as_planned(self) -> None:
        """Where this trial's member starts when Tune restores nothing: step 0 with a fresh
        model, or, in a rebuilt resume, its recorded step and checkpoint."""
        start = self.settings["resume"].get(str(self._index), {})
        self._step = int(start.get("step", 0))
        self._pending = None  # a restored checkpoint's bytes, loaded by the next step()
        # read only if Tune restores nothing (a new actor of a running trial is restored, and
        # the planned file may have been pruned since)
        self._planned = Path(start["checkpoint"]) if start.get("checkpoint") else None

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
        start = self._step
        length = min(s["interval_steps"], s["total_steps"] - start)
        env = make_env(self.spec, interval_seed(s["seed"], self._index, start), self._index)
        if self._pending is None and self._planned is not None:
            self._pending = self._planned.read_bytes()
        self._planned = None
        if self._pending is not None:
            self._model = load_member(self.spec, io.BytesIO(self._pending), env)
            self._pending = None
        elif self._model is None:
            if start > 0:
                raise RuntimeError(f"member {self._index} is at step {start} but no checkpoint was restored")
            self._model = build_model(self.spec, env, member_seed(s["seed"], self._index))
        else:
            carry_normalization(self._model, env)
            self._model.set_env(env, force_reset=True)
        self._apply()
        applied = _jsonable(self._model.get_hyperparameters())
        lrs = optimizer_lrs(self._model)
        start_timesteps = int(self._model.num_timesteps)
        t0 = time.perf_counter()
        self._model.learn(total_timesteps=length, reset_num_timesteps=False)
        metrics = evaluate(self._model, self.spec, s["eval_episodes"], eval_seed(s["seed"], start + length))
        self._step = start + length
        self._file = save_model(
            self._model, Path(s["workdir"]) / "members" / _member_id(self._index) / f"step_{self._step:09d}.zip"
        )
        restored, self._restored_from = self._restored_from, None
        return {
            **metrics,
            "lifelong_step": self._step,
            "lifelong_config": self._values(),
            "lifelong_checkpoint": str(self._file),
            "applied": applied,
            "optimizer_lr": lrs,
            "started_from_member": None if restored is None else restored.get("member"),
            "env_steps": int(self._model.num_timesteps) - start_timesteps,
            "num_timesteps": int(self._model.num_timesteps),
            "train_mean_reward": train_mean_reward(self._model),
            "interval_seconds": time.perf_counter() - t0,
            "lifelong_result_id": uuid.uuid4().hex,
        }

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        target = Path(checkpoint_dir) / _MODEL_FILE
        if self._file is not None and self._file.exists():
            shutil.copyfile(self._file, target)
        else:
            save_model(self._model, target)
        meta = {"member": self._index, "step": self._step, "config": self._values()}
        (Path(checkpoint_dir) / _META_FILE).write_text(json.dumps(meta))

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        # Loaded in step(), with the interval's env (so VecNormalize statistics are applied);
        # the state is the checkpoint's (maybe a donor's), the hyperparameters this trial's.
        self._pending = (Path(checkpoint_dir) / _MODEL_FILE).read_bytes()
        self._planned = None
        self._model = None
        self._file = None
        meta_path = Path(checkpoint_dir) / _META_FILE
        self._restored_from = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self._step = int(self._restored_from.get("step", self._step))

    def reset_config(self, new_config: dict) -> bool:
        # Actor reuse: this actor now runs another trial. Its state comes from restore() if
        # Tune restores one (load_checkpoint then overrides this), else from the plan.
        self.config = new_config
        self._model = None
        self._file = None
        self._restored_from = None
        self._start_as_planned()
        return True

    def cleanup(self) -> None:
        self._model = None


def _nested(result: dict, key: str) -> dict:
    """``result[key]``, a dict the trainable returned, which Tune hands to schedulers flattened
    into ``key/name`` entries."""
    if isinstance(result.get(key), dict):
        return dict(result[key])
    prefix = key + "/"
    return {k[len(prefix):]: v for k, v in result.items() if k.startswith(prefix)}


class _Recorder:
    """The driver's :class:`PopulationState` for one run, updated by the scheduler."""

    def __init__(self, settings: PBTSettings, state: PopulationState, emit: Callable) -> None:
        self.settings = settings
        self.state = state
        self.retention = CheckpointRetention(settings)
        self.emit = emit
        self._recorded: set[str] = set()  # ids of the results recorded in this run

    def interval(self, trial: Trial, result: dict) -> None:
        member = _member_id(trial.config[MEMBER_KEY])
        s = self.state.members[member]
        step = int(result["lifelong_step"])
        result_id = result.get("lifelong_result_id")
        if result_id is not None:
            if result_id in self._recorded:
                return  # seen already: by the scheduler, then Tune's callbacks; or re-sent at the end
            self._recorded.add(result_id)
        if s["step"] == step and s["checkpoint"] == self.settings.rel(result["lifelong_checkpoint"]):
            return  # the interval again, after a restart from the checkpoint that preceded it
        row = {
            "step": step,
            "member": member,
            "score": float(result[self.settings.metric]),
            "config": _nested(result, "lifelong_config"),
            "started_from": s["checkpoint"],
            "checkpoint": self.settings.rel(result["lifelong_checkpoint"]),
            "metrics": {k: float(result[k]) for k in EVAL_METRICS if k in result},
            "applied": _nested(result, "applied"),
            **{
                k: result.get(k)
                for k in ("optimizer_lr", "env_steps", "num_timesteps", "train_mean_reward", "started_from_member")
            },
            "trial": trial.trial_id,
        }
        s.update(step=step, score=row["score"], checkpoint=row["checkpoint"], config=row["config"])
        self.state.history.append(row)
        self.state.data["boundary"] = min(v["step"] for v in self.state.members.values())
        self.retention.prune(self.state, [member])
        self.state.persist()
        self.emit({"event": "interval", **row})

    def exploit(self, event: dict) -> None:
        members = self.state.members
        recipient, donor = members[event["recipient"]], members[event["donor"]]
        dst = self.retention.folder(event["recipient"]) / f"exploit_{event['step']:09d}_from_{event['donor']}.zip"
        self.retention.copy(self.state.checkpoint_of(event["donor"]), dst)
        event["checkpoint"] = self.settings.rel(dst)
        event["donor_checkpoint"] = donor["checkpoint"]
        recipient.update(config=dict(event["new_config"]), checkpoint=event["checkpoint"], step=donor["step"])
        self.state.events.append(event)
        self.state.persist()
        self.emit(event)

    def restart(self, trial: Trial) -> None:
        member = _member_id(trial.config[MEMBER_KEY])
        s = self.state.members[member]
        s["restarts"] += 1
        event = {
            "event": "restart",
            "step": s["step"],
            "member": member,
            "reason": "error",
            "detail": str(getattr(trial, "error_file", "") or "")[-4000:],
            "restarts": s["restarts"],
            "trial": trial.trial_id,
        }
        self.state.events.append(event)
        self.state.persist()
        self.emit(event)


# The driver's recorder for each workdir. Tune pickles the scheduler into its experiment state;
# the scheduler finds the live recorder here instead of carrying one.
_RECORDERS: dict[str, _Recorder] = {}


class LifelongPBTScheduler(PopulationBasedTraining):
    """Tune's PBT (synchronous or asynchronous) with this package's decisions and records."""

    def __init__(self, *, settings: PBTSettings, start_step: int = 0, **kwargs: Any) -> None:
        rng = np.random.default_rng([settings.seed & 0xFFFFFFFF, 0x7A7])
        super().__init__(
            time_attr="lifelong_step",
            metric=settings.metric,
            mode=settings.mode,
            perturbation_interval=settings.interval_steps,
            # Tune requires mutations; _get_new_config replaces Tune's explore entirely.
            hyperparam_mutations={n: (lambda d=d: d.sample(rng)) for n, d in settings.space.items()},
            quantile_fraction=settings.truncation,
            resample_probability=settings.resample_probability,
            perturbation_factors=tuple(settings.perturb_factors),
            log_config=False,
            synch=settings.synchronous,
            **kwargs,
        )
        # A rebuilt resume starts at step b > 0: Tune's first synchronous boundary must be
        # b + interval. Left at `interval`, the first perturbation (at b + interval) sets the next
        # one to max(2 * interval, b + interval) = the current step, so no trial is ever below
        # it and Tune schedules nothing again (what Tuner.restore did, too).
        self._next_perturbation_sync = max(self._next_perturbation_sync, start_step + settings.interval_steps)
        self._settings = settings
        self._key = str(settings.workdir.resolve())
        self._ops: dict[str, str] = {}
        self._rng: np.random.Generator | None = None
        self._why: dict[str, Any] = {}

    @property
    def _recorder(self) -> _Recorder:
        return _RECORDERS[self._key]

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        if self._settings.metric in result and "lifelong_step" in result:
            self._recorder.interval(trial, result)  # before any decision that uses it
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        # A result that meets the stop criterion goes here, not to on_trial_result.
        if result and self._settings.metric in result and "lifelong_step" in result:
            self._recorder.interval(trial, result)
        super().on_trial_complete(tune_controller, trial, result)

    def _scores(self) -> dict[Trial, float | None]:
        """Every unfinished trial's latest score in the user's sign (None: none yet)."""
        op = self._metric_op
        return {
            t: (None if st.last_score is None else op * st.last_score)
            for t, st in self._trial_state.items()
            if not t.is_finished()
        }

    def _quantiles(self) -> tuple[list[Trial], list[Trial]]:
        scores = self._scores()
        if len(scores) < 2 or (not self._synch and any(v is None for v in scores.values())):
            return [], []  # the asynchronous warm-up rule: every member has a score
        by_id = {t.trial_id: t for t in scores}
        bottom, top = quantiles(
            {t.trial_id: (float("nan") if v is None else v) for t, v in scores.items()},
            self._settings.truncation,
            self._settings.mode,
        )
        # Tune's convention: both lists ordered worst first.
        return [by_id[i] for i in reversed(bottom)], [by_id[i] for i in reversed(top)]

    def _checkpoint_or_exploit(self, trial, tune_controller, upper_quantile, lower_quantile):
        saving = trial.temporary_state.saving_to
        if trial in upper_quantile and trial.status == Trial.RUNNING and isinstance(saving, _FutureTrainingResult):
            # Tune is already saving this trial: the save of the pause it decided when the trial
            # reached the boundary. Tune's PBT would schedule a second save, which persists to the
            # trial's next checkpoint directory; but executing the pause drops that second save's
            # result, so Tune's checkpoint index does not advance, and the trial's next save (an
            # interval later) overwrites the directory an exploit was told to restore. The
            # recipient then starts from the donor's *next* interval (a skipped interval in the
            # history: the CI failure of the synchronous kill/resume test). Use the save in flight.
            self._trial_state[trial].last_checkpoint = saving
            self._num_checkpoints += 1
            return None
        step = int(self._trial_state[trial].last_train_time or 0)
        if trial not in lower_quantile or step >= self._settings.total_steps:
            return super()._checkpoint_or_exploit(trial, tune_controller, upper_quantile, [])
        index = int(trial.config[MEMBER_KEY])
        self._rng = member_rng(self._settings.seed, index, step)
        donor = pick_donor(sorted(upper_quantile, key=lambda t: int(t.config[MEMBER_KEY])), self._rng)
        self._why = {
            "reason": "bottom quantile",
            "scores_used": {
                _member_id(t.config[MEMBER_KEY]): {
                    "score": v,
                    "step": int(self._trial_state[t].last_train_time or 0),
                }
                for t, v in self._scores().items()
            },
        }
        return super()._checkpoint_or_exploit(trial, tune_controller, [donor], lower_quantile)

    def _get_new_config(self, trial, trial_to_clone):
        s = self._settings
        donor_values = {n: trial_to_clone.config[n] for n in s.space}
        new_values, ops = explore(donor_values, s.space, self._rng, s.resample_probability, s.perturb_factors)
        new_config = copy.deepcopy(trial.config)  # keeps the recipient's member index
        new_config.update(new_values)
        self._ops = dict(ops)
        return new_config, ops

    def _exploit(self, tune_controller, trial, trial_to_clone):
        s = self._settings
        old = {n: trial.config[n] for n in s.space}
        donor_config = {n: trial_to_clone.config[n] for n in s.space}
        rstate, dstate = self._trial_state[trial], self._trial_state[trial_to_clone]
        recipient_step, donor_step = int(rstate.last_train_time or 0), int(dstate.last_train_time or 0)
        recipient_score = None if rstate.last_score is None else self._metric_op * rstate.last_score
        donor_score = None if dstate.last_score is None else self._metric_op * dstate.last_score
        super()._exploit(tune_controller, trial, trial_to_clone)
        self._recorder.exploit(
            {
                "event": "exploit",
                "step": recipient_step,
                "donor": _member_id(trial_to_clone.config[MEMBER_KEY]),
                "recipient": _member_id(trial.config[MEMBER_KEY]),
                "recipient_step": recipient_step,
                "donor_step": donor_step,
                "donor_score": donor_score,
                "recipient_score": recipient_score,
                **self._why,
                "old_config": old,
                "donor_config": donor_config,
                "new_config": {n: trial.config[n] for n in s.space},
                "operations": dict(self._ops),
                "trial": trial.trial_id,
                "donor_trial": trial_to_clone.trial_id,
            }
        )


class _RecorderCallback(tune.Callback):
    """Records what the scheduler does not see.

    - A result that meets the stop criterion skips ``on_trial_result`` of the scheduler, and
      reaches ``on_trial_complete`` only if the trial is still running when Tune stops it (a
      trial paused or saving at that moment gets ``on_trial_remove``): Tune's callbacks get
      every result, so each is recorded here too (the recorder ignores a result it has).
    - A trial restarted after an error (``max_restarts``).
    """

    def __init__(self, key: str) -> None:
        self._key = key

    def on_trial_result(self, iteration, trials, trial, result, **info):
        recorder = _RECORDERS[self._key]
        if recorder.settings.metric in result and "lifelong_step" in result:
            recorder.interval(trial, result)

    def on_trial_recover(self, iteration, trials, trial, **info):
        _RECORDERS[self._key].restart(trial)


def resume_plan(state: PopulationState) -> dict[str, dict[str, Any]]:
    """Where each unfinished member restarts: ``{index: {"step", "checkpoint", "config"}}``.

    Synchronous: a member that already finished the interval after the last common boundary
    ``b`` goes back to ``b`` (its checkpoint and config at ``b`` are its history row's
    ``started_from`` and ``config``; the row is dropped and will be recorded again), so every
    member meets at the next boundary as in an uninterrupted run.

    Every checkpoint a member restarts from is verified first; a corrupt one is handled as the
    local backend handles it (:meth:`~lifelong.pbt.retention.CheckpointRetention.recover`:
    renamed ``*.corrupt``, the member falls back to its newest valid checkpoint or is re-seeded
    from the best member's), the event appended to ``state.events``; the member keeps its step.
    """
    settings = state.settings
    members = state.members
    if settings.synchronous and state.history:
        b = min(s["step"] for s in members.values())
        for m, s in members.items():
            if s["step"] <= b:
                continue
            rows = [r for r in state.history if r["member"] == m and r["step"] == s["step"]]
            row = rows[-1] if rows else None
            fresh = row is not None and row.get("started_from") is None and b == 0  # its first interval
            back = None if row is None else settings.abs(row.get("started_from"))
            if not fresh and (back is None or not back.exists()):
                # resuming anyway would leave the population one interval apart: Tune's barrier
                # then waits for a step no member reaches, or a member skips an interval
                raise PBTError(
                    f"cannot resume the synchronous population in {settings.workdir}: {m} is at step "
                    f"{s['step']}, past the boundary {b} of the others, and the checkpoint it started that "
                    f"interval from ({None if row is None else row.get('started_from')}) is gone"
                )
            state.history.remove(row)
            previous = [r for r in state.history if r["member"] == m]
            s.update(step=b, checkpoint=row["started_from"], config=dict(row["config"]),
                     score=previous[-1]["score"] if previous else None)
    retention = CheckpointRetention(settings)
    for m, s in members.items():
        ckpt = state.checkpoint_of(m)
        if s["step"] < settings.total_steps and ckpt is not None and ckpt.exists():
            try:
                verify(ckpt)
            except CheckpointError as exc:
                event = retention.recover(state, m, ckpt, " ".join(str(exc).split()), int(s["step"]))
                state.events.append(event)
    plan = {}
    for m, s in members.items():
        if s["step"] < settings.total_steps:
            ckpt = state.checkpoint_of(m)
            plan[str(s["index"])] = {
                "step": int(s["step"]),
                "checkpoint": None if ckpt is None else str(ckpt.resolve()),
                "config": dict(s["config"]),
            }
    return plan


def _init_ray(settings: PBTSettings) -> bool:
    if ray.is_initialized():
        return False
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=settings.workers or default_workers(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    return True


def _experiment_name(storage: Path) -> str:
    """``population`` for a new run; ``population-<k>`` for its k-th rebuilt resume (Tune's own
    directories of the interrupted attempts are left as they are)."""
    name, k = "population", 0
    while (storage / name).exists():
        k += 1
        name = f"population-{k}"
    return name


def run_ray(settings: PBTSettings, emit: Callable[[dict[str, Any]], Any]) -> PBTResult:
    state = PopulationState.load_or_new(settings)
    if state.finished():
        result = state.result()
        state.persist(result)
        return result
    known_events = len(state.events)
    plan = resume_plan(state)
    for event in state.events[known_events:]:  # corrupt checkpoints found by the resume
        emit(event)
    for m in state.members:
        (settings.workdir / "members" / m).mkdir(parents=True, exist_ok=True)
    state.persist()
    workdir = settings.workdir.resolve()
    key = str(workdir)
    _RECORDERS[key] = _Recorder(settings, state, emit)
    started = _init_ray(settings)
    try:
        trainable_settings = {
            "names": settings.names,
            "seed": settings.seed,
            "interval_steps": settings.interval_steps,
            "total_steps": settings.total_steps,
            "eval_episodes": settings.eval_episodes,
            "workdir": str(workdir),
            "resume": plan,
        }
        trainable = tune.with_resources(
            tune.with_parameters(LifelongTrainable, spec=settings.spec, settings=trainable_settings), {"cpu": 1}
        )
        param_space = {
            MEMBER_KEY: tune.grid_search([int(i) for i in plan]),
            **{
                n: tune.sample_from(lambda config, n=n: plan[str(config[MEMBER_KEY])]["config"][n])
                for n in settings.names
            },
        }
        storage = workdir / "ray"
        run_config = tune.RunConfig(
            name=_experiment_name(storage),
            storage_path=str(storage),
            stop={"lifelong_step": settings.total_steps},
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None, checkpoint_frequency=1, checkpoint_at_end=True),
            failure_config=tune.FailureConfig(max_failures=settings.max_restarts),
            callbacks=[_RecorderCallback(key)],
            verbose=0,
        )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                scheduler=LifelongPBTScheduler(settings=settings, start_step=min(p["step"] for p in plan.values())),
                num_samples=1,
                reuse_actors=True,
                trial_name_creator=lambda t: _member_id(t.config[MEMBER_KEY]),
                trial_dirname_creator=lambda t: f"{_member_id(t.config[MEMBER_KEY])}_{t.trial_id}",
            ),
            run_config=run_config,
        )
        grid = tuner.fit()
        for res in grid:
            if res.error is not None:
                raise PBTError(
                    f"a Ray trial failed beyond max_restarts={settings.max_restarts}: "
                    f"{last_line(str(res.error)) or type(res.error).__name__}"
                )
    finally:
        _RECORDERS.pop(key, None)
        if started:
            ray.shutdown()
    result = state.result()
    state.persist(result)
    return result
