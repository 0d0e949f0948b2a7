"""Training a run directory: the run callback (progress bar, evaluation, checkpoints, logging)
and the ``train`` / ``resume`` loops behind ``lifelong train`` and ``lifelong resume``."""
from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from lifelong.checkpoint import save_model, verify
from lifelong.cli.config import (
    RUN_KEYS,
    SECTION_KEYS,
    ConfigError,
    apply_sets,
    parse_set,
    validate,
)
from lifelong.cli.run_dir import (
    RunDir,
    append_eval,
    build_agent,
    load_latest_agent,
    make_env,
    make_logger,
    read_evals,
    truncate_logs,
)
from lifelong.cli.stop_signals import StopSignals
from lifelong.envs import NonStationaryWrapper


class Evaluator:
    """Evaluates a model on its own vectorised copy of the env (same seeds every time).

    On a non-stationary env (:mod:`lifelong.envs`) it evaluates the task being trained: each
    evaluation pins its env to the training env's current phase (and schedule), so the phase
    follows training instead of the evaluation env's own step counter. With ``eval_phases:
    all`` it also evaluates every phase seen so far (0 .. current): ``phase_returns``."""

    def __init__(self, config: Mapping, seed: int):
        self.episodes = config["eval_episodes"]
        self.deterministic = config["eval_deterministic"]
        self.all_phases = config.get("eval_phases") == "all"
        self.seed = seed
        n_envs = config.get("n_eval_envs") or min(self.episodes, 8)
        self.env = make_env(config, n_envs=n_envs, seed=seed, normalize_training=False)
        self.nonstationary = all(self.env.env_is_wrapped(NonStationaryWrapper))

    def _returns(self, model) -> list[float]:
        from stable_baselines3.common.evaluation import evaluate_policy
        self.env.seed(self.seed)
        rewards, _ = evaluate_policy(model, self.env, n_eval_episodes=self.episodes,
                                     deterministic=self.deterministic,
                                     return_episode_rewards=True, warn=False)
        return rewards

    def __call__(self, model) -> dict:
        """``{"mean_reward", "std_reward"}`` (of the current phase), with ``phase`` (and
        ``phase_returns``, the mean return of each phase 0..phase) on a non-stationary env."""
        from stable_baselines3.common.vec_env import (
            VecNormalize,
            sync_envs_normalization,
        )
        train_env = model.get_env()
        if isinstance(self.env, VecNormalize) and train_env is not None:
            sync_envs_normalization(train_env, self.env)
        if not self.nonstationary or train_env is None:
            rewards = self._returns(model)
            return {"mean_reward": float(np.mean(rewards)), "std_reward": float(np.std(rewards))}
        # copies of the training env step in lockstep: copy 0's phase and schedule are theirs
        phase = int(train_env.get_attr("phase", indices=0)[0])
        schedule_seed = train_env.get_attr("schedule_seed", indices=0)[0]
        per_phase = {}
        for k in range(phase + 1) if self.all_phases else (phase,):
            self.env.env_method("pin_phase", k, schedule_seed)
            per_phase[k] = self._returns(model)
        row = {"mean_reward": float(np.mean(per_phase[phase])),
               "std_reward": float(np.std(per_phase[phase])), "phase": phase}
        if self.all_phases:
            row["phase_returns"] = " ".join(f"{np.mean(per_phase[k]):.6g}" for k in sorted(per_phase))
        return row

    def close(self):
        self.env.close()


class RunCallback(BaseCallback):
    """After every PPO update (at the next rollout's start, and at the end of training):
    evaluate when due (``eval/mean_reward``, ``eval/std_reward``), checkpoint when due, and dump
    one logger row (rollout stats, the update's train/* keys, eval keys) at ``num_timesteps``.
    Also drives the progress bar (steps, steps/s, recent training return, last evaluation)."""

    def __init__(self, run: RunDir, config: Mapping, evaluator: Evaluator, manager,
                 target: int, progress: bool = True, stop: StopSignals | None = None):
        super().__init__()
        self.run, self.config, self.evaluator, self.manager = run, config, evaluator, manager
        self.stop = stop if stop is not None else StopSignals()
        self.target, self.progress = target, progress
        self.bar = None
        prev = read_evals(run)
        self.best = max(prev, key=lambda r: r["mean_reward"]) if prev else None
        self.last_eval: dict | None = prev[-1] if prev else None
        self.last_checkpoint: Path | None = None
        #: the step at which an evaluation reached stop_at_reward (an update boundary): SB3
        #: takes one more env step before a callback can stop it, which is neither kept nor counted
        self.stopped_at: int | None = None
        self.t0 = time.time()

    @property
    def stopped(self) -> bool:
        """An evaluation reached stop_at_reward."""
        return self.stopped_at is not None

    # -- schedule helpers
    @staticmethod
    def _next(n: int, every: int) -> int:
        return (n // every + 1) * every if every else math.inf

    def _on_training_start(self) -> None:
        n = self.model.num_timesteps
        self.start_steps = n
        self.logged_at = n
        self.evaluated_at = self.last_eval["step"] if self.last_eval else -1
        self.next_eval = self._next(n, self.config["eval_every"])
        self.next_ckpt = self._next(n, self.config["checkpoint_every"])
        rollout = max(1, self.model.n_steps * self.model.n_envs)
        self.iteration = n // rollout
        self.t0 = time.time()
        if self.progress:
            from tqdm import tqdm
            # learn() runs whole rollouts: the bar's total is the target rounded up to one
            total = n + math.ceil(max(0, self.target - n) / rollout) * rollout
            self.bar = tqdm(total=total, initial=n, unit="step", unit_scale=total >= 10_000,
                            dynamic_ncols=True, mininterval=0.5, file=sys.stderr,
                            desc=str(self.config["env"]), leave=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                       "[{elapsed}<{remaining}, {rate_fmt}]{postfix}")
            self._shown = n

    def _on_step(self) -> bool:
        if self.bar is not None:
            n = self.model.num_timesteps
            self.bar.update(n - self._shown)
            self._shown = n
        return not self.stopped and self.stop.received is None

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps > self.logged_at:
            self.after_update()

    def _on_training_end(self) -> None:
        if self.stop.received is not None:
            self.save_on_signal()
        else:
            self.after_update(final=True)
        if self.bar is not None:
            if self.stopped:  # early stop: show the bar complete at the steps actually done
                self.bar.n = self.bar.total = self.stopped_at
                self.bar.refresh()
            self.bar.close()
            self.bar = None

    def evaluate(self) -> dict:
        n = self.model.num_timesteps
        result = self.evaluator(self.model)
        mean = result["mean_reward"]
        row = {"step": n, **result, "episodes": self.evaluator.episodes,
               "time_s": round(time.time() - self.t0, 3)}
        append_eval(self.run, row)
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/std_reward", result["std_reward"])
        if "phase" in result:
            self.logger.record("eval/phase", result["phase"])
        self.last_eval = row
        self.evaluated_at = n
        if self.best is None or mean > self.best["mean_reward"]:
            self.best = row
            save_model(self.model, self.run.best)
        threshold = self.config.get("stop_at_reward")
        if threshold is not None and mean >= threshold:
            self.stopped_at = n
        return row

    def save_on_signal(self) -> None:
        """The checkpoint of a run stopped by a signal (no evaluation, no log row): written
        atomically, then verified; signals meanwhile are deferred (see StopSignals)."""
        n = self.model.num_timesteps
        if self.last_checkpoint is None or self.manager.path_for(n) != self.last_checkpoint:
            self.last_checkpoint = self.manager.save(self.model, n)
        verify(self.last_checkpoint)

    def after_update(self, final: bool = False) -> None:
        n = self.model.num_timesteps
        if self.stop.received is not None:  # stopping: the checkpoint is written at training end
            return
        if final and self.stopped:  # stopped mid-rollout: the boundary checkpoint is the last
            return
        if (final or n >= self.next_eval) and self.evaluated_at != n:
            self.evaluate()
            self.next_eval = self._next(n, self.config["eval_every"])
        if final or self.stopped or n >= self.next_ckpt:  # a stop checkpoints its boundary
            self.last_checkpoint = self.manager.save(self.model, n)
            self.next_ckpt = self._next(n, self.config["checkpoint_every"])
        if n > self.logged_at or self.logger.name_to_value:
            self.iteration += 1
            self.model.dump_logs(self.iteration)
            self.logged_at = n
        if self.bar is not None:
            post = []
            buf = self.model.ep_info_buffer
            if buf:
                post.append(f"return={np.mean([e['r'] for e in buf]):.1f}")
            if self.last_eval is not None:
                post.append(f"eval={self.last_eval['mean_reward']:.1f}")
            self.bar.set_postfix_str(" ".join(post), refresh=False)


def _fmt_time(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def summarize(run: RunDir, config: Mapping, cb: RunCallback, steps_before: int, wall: float,
              model) -> dict:
    """summary.json: what this session did, why it stopped, where its results are."""
    n = cb.stopped_at if cb.stopped else int(model.num_timesteps)
    done = n - steps_before
    fin, best = cb.last_eval, cb.best
    latest = cb.last_checkpoint or (cb.manager.latest() if cb.manager else None)
    rollout = model.n_steps * model.n_envs
    if cb.stopped:
        reason = (f"early: stop_at_reward = {config['stop_at_reward']:g} reached (the evaluation "
                  f"at step {n:,} returned {fin['mean_reward']:.1f})")
    elif n > cb.target:
        reason = (f"target of {cb.target:,} steps reached (learn runs whole rollouts of "
                  f"{rollout:,} steps)")
    else:
        reason = f"target of {cb.target:,} steps reached"
    summary = {
        "env": config["env"], "num_timesteps": int(n), "steps_this_session": int(done),
        "target_timesteps": int(cb.target), "stop_reason": reason,
        "stopped_at_reward": config.get("stop_at_reward") if cb.stopped else None,
        "wall_time_s": round(wall, 2), "fps": round(done / wall, 1) if wall > 0 else None,
        "final_eval": fin, "best_eval": best, "run_dir": str(run.path),
        "latest_checkpoint": str(latest) if latest else None,
        "best_checkpoint": str(run.best) if run.best.is_file() else None,
    }
    run.summary.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summary_text(s: Mapping) -> str:
    """The end-of-run summary as a short two-column table."""
    d = s["run_dir"]
    rows = [("stopped", s["stop_reason"]),
            ("steps", f"{s['steps_this_session']:,} this session in {_fmt_time(s['wall_time_s'])} "
                      f"({s['fps'] or 0:,.0f} steps/s); {s['num_timesteps']:,} in total")]
    fin, best = s.get("final_eval"), s.get("best_eval")
    if fin:
        phase = f" (phase {fin['phase']})" if fin.get("phase") is not None else ""
        rows.append(("final eval", f"{fin['mean_reward']:.1f} ± {fin['std_reward']:.1f} over "
                                   f"{fin['episodes']} episodes{phase}"))
    if best:
        where = " (best_model.zip)" if s.get("best_checkpoint") else ""
        rows.append(("best eval", f"{best['mean_reward']:.1f} at step {best['step']:,}{where}"))
    if s.get("latest_checkpoint"):
        rows.append(("checkpoint", str(Path(s["latest_checkpoint"]).relative_to(d))
                     if Path(s["latest_checkpoint"]).is_relative_to(d) else s["latest_checkpoint"]))
    rows += [("run dir", f"{d} (config.yaml, metrics.csv, evals.csv, tb/)"),
             ("plots", f"lifelong report {d}"),
             ("continue", f"lifelong resume {d} --timesteps N"),
             ("tensorboard", f"tensorboard --logdir {d}/tb")]
    width = max(len(k) for k, _ in rows)
    return "\n".join([f"{s['env']}: done"] + [f"  {k:<{width}}  {v}" for k, v in rows])


def _run(run: RunDir, config: Mapping, model, env, learn_steps: int, reset: bool,
         progress: bool, steps_before: int):
    evaluator = Evaluator(config, seed=(config.get("seed") or 0) + 10_000)
    manager = run.manager(keep=config["keep_checkpoints"])
    model.set_logger(make_logger(run, resumed_at=None if reset else steps_before))
    with StopSignals(prog="lifelong train" if reset else "lifelong resume") as stop:
        if reset:
            print(f"run directory: {run.path}", flush=True)
        cb = RunCallback(run, config, evaluator, manager, target=steps_before + learn_steps,
                         progress=progress, stop=stop)
        t0 = time.time()
        try:
            model.learn(total_timesteps=learn_steps, callback=cb, log_interval=None,
                        reset_num_timesteps=reset)
        finally:
            evaluator.close()
            if stop.received is not None:
                if cb.bar is not None:
                    cb.bar.close()
                model.logger.close()
                env.close()
        if stop.received is not None:
            if cb.last_checkpoint is None or not cb.last_checkpoint.is_file():
                cb.save_on_signal()  # the signal came after training had ended
            raise Interrupted(f"stopped by {stop.name} at step {model.num_timesteps:,}; saved and verified "
                              f"{cb.last_checkpoint}; continue with `lifelong resume {run.path}`",
                              exit_code=stop.exit_code)
    wall = time.time() - t0
    model.logger.close()
    summary = summarize(run, config, cb, steps_before, wall, model)
    # config.yaml records what happened: the steps actually trained (whole rollouts, or the
    # step a stop_at_reward stop happened at), not the target the session aimed for
    run.write_config(dict(config, timesteps=summary["num_timesteps"]))
    env.close()
    return model, summary


class Interrupted(Exception):
    """Training stopped by a signal after saving its checkpoint; ``exit_code`` is 128 + signum."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


def train(config: Mapping, run: RunDir, *, progress: bool = True, overwrite: bool = False):
    """A new run: build the env and agent from ``config``, then create the run directory (so
    that a config the agent rejects leaves nothing behind) and train ``config["timesteps"]``."""
    run.check_new(overwrite)
    _check_compile_step(config)
    env = make_env(config, seed=config.get("seed"))
    model = build_agent(config, env)
    if config["compile_step"]:  # ppo only (_check_compile_step)
        model.compile_step = True
    run.create(config, overwrite=overwrite)
    return _run(run, config, model, env, config["timesteps"], reset=True, progress=progress,
                steps_before=0)


#: run options that define the run's env and agent: ``lifelong resume --set`` cannot change them
RESUME_FIXED = ("env", "env_kwargs", "n_envs", "normalize_obs", "normalize_reward", "seed")


def resume(run: RunDir, *, timesteps: int | None = None, progress: bool = True, sets=()):
    """Continue a run from its latest valid checkpoint: the saved config, the same directory,
    counters and schedules continuing (``reset_num_timesteps=False``). Without ``timesteps`` it
    trains up to the configured total; with it, ``timesteps`` more steps. ``sets`` (``KEY=VALUE``)
    change run options such as ``stop_at_reward`` or ``eval_every``; the agent's arguments are
    the checkpoint's."""
    config = run.read_config()
    if sets:
        config = _apply_resume_sets(run, config, sets)
    _check_compile_step(config)
    manager = run.manager(keep=config["keep_checkpoints"])
    import warnings
    seed = config.get("seed")
    env = make_env(config, seed=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_latest_agent(manager, env, algo=config["algo"])  # skips (and sets aside) checkpoints that fail to load
    if model is None:
        env.close()
        why = ""
        if caught:
            why = (f" ({len(caught)} corrupted; newest: "
                   f"{str(caught[0].message).removeprefix('skipping corrupted checkpoint: ')})")
        raise ConfigError(f"{run.path}: no valid checkpoint in {run.checkpoints} to resume from{why}")
    for w in caught:  # a corrupted newer checkpoint was skipped: say so, once each
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if config["compile_step"]:  # the run's setting: a resumed run rounds as it did
        model.compile_step = True
    done = int(model.num_timesteps)
    truncate_logs(run, done)  # rows logged after this checkpoint (a killed run) are not in it
    target = done + timesteps if timesteps is not None else config["timesteps"]
    if target <= done:
        env.close()
        raise ConfigError(f"{run.path}: already trained {done:,} of {config['timesteps']:,} steps; "
                          "pass --timesteps N to train N more")
    config = dict(config, timesteps=target)
    run.write_config(config)  # an interrupted session resumes towards the same target
    if seed is not None:  # a fresh env: do not replay the first episodes of the original run
        env.seed(seed + done)
    return _run(run, config, model, env, target - done, reset=False, progress=progress,
                steps_before=done)


def _check_compile_step(config: Mapping) -> None:
    """The run option ``compile_step`` (set on the agent after it is built or loaded: a speed
    switch that checkpoints do not hold, so the run's config carries it to every resumed
    session) exists for ``algo: ppo`` only."""
    if config["compile_step"] and config["algo"] != "ppo":
        raise ConfigError(f"compile_step: true applies to algo: ppo, not {config['algo']}")


def _apply_resume_sets(run: RunDir, config: dict, sets) -> dict:
    """``--set KEY=VALUE`` on a resumed run: run options only (not those in RESUME_FIXED)."""
    for item in sets:
        key = parse_set(item)[0]
        if key[0] in RESUME_FIXED or key[0] in SECTION_KEYS or key[0] not in RUN_KEYS:
            why = ("the checkpoint holds the agent's arguments" if key[0] not in RUN_KEYS
                   else "it defines the run's environment")
            raise ConfigError(f"--set {'.'.join(key)}: lifelong resume cannot change it ({why}); "
                              f"resume changes run options such as stop_at_reward, eval_every, "
                              f"eval_episodes, checkpoint_every; start a new run for the rest")
    return validate(apply_sets(config, sets))
