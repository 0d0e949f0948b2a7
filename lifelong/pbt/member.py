"""What one population member does in one interval, shared by the local and Ray backends.

``prepare_model`` builds a member fresh (first interval) or loads it from a checkpoint file
through ``lifelong.checkpoint``, and then applies the member's config with
``set_hyperparameters``. The order is the point: after an exploit the checkpoint is the donor's
and the config is the recipient's new, explored one, so the state is the donor's and the
hyperparameters are the recipient's (the learning rate cannot silently revert to the donor's).

Everything here runs in a worker process; nothing holds a model between intervals.
"""
from __future__ import annotations

import copy
import inspect
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from lifelong.agent import ALGORITHMS, DEFAULT_ALGO
from lifelong.checkpoint import load_model, save_model
from lifelong.errors import CheckpointError

__all__ = [
    "AgentSpec",
    "EVAL_METRICS",
    "make_env",
    "make_eval_env",
    "build_model",
    "prepare_model",
    "check_live_parameters",
    "evaluate",
    "run_interval",
    "carry_normalization",
    "NORMALIZE_KEYS",
    "member_seed",
    "interval_seed",
    "eval_seed",
]

#: What the deterministic evaluation produces; ``PBT(metric=...)`` must be one of these.
EVAL_METRICS = (
    "eval_mean_reward",
    "eval_std_reward",
    "eval_min_reward",
    "eval_max_reward",
    "eval_mean_length",
)

_SPEC_KEYS = ("algo", "env", "eval_env", "n_envs", "env_kwargs", "policy", "normalize", "compile_step")

#: the policy a member builds when ``agent`` names none, per agent
_DEFAULT_POLICY = {"ppo": "MlpPolicy", "recurrent_ppo": "MlpLstmPolicy"}

#: ``VecNormalize`` arguments ``agent["normalize"]`` may set (``True`` means all defaults).
NORMALIZE_KEYS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs_keys")


def _describe(obj: Any) -> Any:
    """A JSON-able description of an env id or factory (for the run fingerprint)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    func = getattr(obj, "func", None)  # functools.partial
    if func is not None:
        return {
            "partial": _describe(func),
            "args": [repr(a) for a in getattr(obj, "args", ())],
            "keywords": {k: repr(v) for k, v in sorted(getattr(obj, "keywords", {}).items())},
        }
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if module and qualname:
        return f"{module}:{qualname}"
    return repr(obj)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _jsonable(to_dict())
    return _describe(value)


@dataclass(frozen=True)
class AgentSpec:
    """The ``agent`` argument of ``PBT``, split into env construction and agent kwargs.

    ``algo``: the agent, ``"ppo"`` (:class:`~lifelong.agent.ppo.DistributionalPPO`, the
    default) or ``"recurrent_ppo"`` (:class:`~lifelong.agent.recurrent.DistributionalRecurrentPPO`:
    its checkpoints hold the rollout's LSTM states, so an exploit moves them with the weights,
    and evaluation carries each episode's state from step to step);
    ``env`` (required): a Gymnasium id or a picklable callable returning an env; ``eval_env``:
    the same for evaluation (default: ``env``); ``n_envs`` (default 1; a list gives member ``i``
    ``n_envs[i]`` copies: a population of uneven speed); ``env_kwargs``;
    ``policy`` (default ``"MlpPolicy"``, ``"MlpLstmPolicy"`` for the recurrent agent);
    ``normalize``: ``True`` or a dict of ``VecNormalize`` arguments (:data:`NORMALIZE_KEYS`) to
    train on a ``VecNormalize`` env; its statistics are part of every checkpoint, so they move
    with an exploit and evaluation uses the member's own; ``compile_step`` (``ppo`` only,
    default ``False``): every member, built or loaded, runs the minibatch step compiled
    (``DistributionalPPO.compile_step``, a speed switch that checkpoints do not hold); everything
    else goes to the agent's constructor.
    """

    env: Any
    eval_env: Any = None
    n_envs: int | tuple[int, ...] = 1
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    policy: Any = "MlpPolicy"
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    normalize: Mapping[str, Any] | None = None
    algo: str = DEFAULT_ALGO
    compile_step: bool = False

    @property
    def agent_class(self) -> type:
        """The class every member of this spec is built and loaded as."""
        return ALGORITHMS[self.algo]

    @classmethod
    def from_agent(cls, agent: Mapping[str, Any]) -> "AgentSpec":
        if not isinstance(agent, Mapping):
            raise ValueError(
                f"agent={agent!r}: expected a dict of agent arguments with an 'env'"
            )
        algo = agent.get("algo", DEFAULT_ALGO)
        if algo not in ALGORITHMS:
            raise ValueError(f"agent['algo']={algo!r}: expected one of {list(ALGORITHMS)}")
        if "env" not in agent:
            raise ValueError(
                "agent has no 'env': expected a Gymnasium id such as 'CartPole-v1' "
                "or a picklable callable returning an env"
            )
        for key in ("env", "eval_env"):
            value = agent.get(key)
            if key == "eval_env" and value is None:
                continue
            if not (isinstance(value, str) or callable(value)):
                raise ValueError(
                    f"agent[{key!r}]={value!r}: expected a Gymnasium id string or a callable "
                    "returning an env (env objects cannot be shared between processes)"
                )
        n_envs = agent.get("n_envs", 1)
        per_member = isinstance(n_envs, (list, tuple))
        values = list(n_envs) if per_member else [n_envs]
        if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise ValueError(
                f"agent['n_envs']={n_envs!r}: expected an int >= 1, or a list of them with one per member"
            )
        env_kwargs = agent.get("env_kwargs") or {}
        if not isinstance(env_kwargs, Mapping):
            raise ValueError(f"agent['env_kwargs']={env_kwargs!r}: expected a dict")
        if "seed" in agent:
            raise ValueError(
                f"agent['seed']={agent['seed']!r}: members are seeded by PBT(seed=...) "
                "(member i gets seed + i); remove 'seed' from agent"
            )
        compile_step = agent.get("compile_step", False)
        if not isinstance(compile_step, bool):
            raise ValueError(f"agent['compile_step']={compile_step!r}: expected true or false")
        if compile_step and algo != "ppo":
            raise ValueError(f"agent['compile_step']=True applies to algo 'ppo', not {algo!r}")
        kwargs = {k: v for k, v in agent.items() if k not in _SPEC_KEYS}
        normalize = agent.get("normalize", None)
        if normalize is True:
            normalize = {}
        elif normalize is False:
            normalize = None
        elif normalize is not None:
            if not isinstance(normalize, Mapping):
                raise ValueError(
                    f"agent['normalize']={normalize!r}: expected True, False or a dict of VecNormalize "
                    f"arguments ({', '.join(NORMALIZE_KEYS)})"
                )
            unknown = sorted(set(normalize) - set(NORMALIZE_KEYS))
            if unknown:
                raise ValueError(
                    f"agent['normalize'] has unknown keys {unknown}; expected VecNormalize arguments "
                    f"({', '.join(NORMALIZE_KEYS)})"
                )
            normalize = dict(normalize)
        return cls(
            env=agent["env"],
            eval_env=agent.get("eval_env"),
            n_envs=tuple(int(v) for v in values) if per_member else int(values[0]),
            env_kwargs=dict(env_kwargs),
            policy=agent.get("policy", _DEFAULT_POLICY[algo]),
            kwargs=kwargs,
            normalize=normalize,
            algo=algo,
            compile_step=compile_step,
        )

    def describe(self) -> dict[str, Any]:
        """JSON description, used to refuse resuming a workdir with a different agent (the
        default ``algo`` is left out, so workdirs made before the key existed still resume)."""
        return {
            **({"algo": self.algo} if self.algo != DEFAULT_ALGO else {}),
            **({"compile_step": True} if self.compile_step else {}),
            "env": _describe(self.env),
            "eval_env": _describe(self.eval_env),
            "n_envs": list(self.n_envs) if isinstance(self.n_envs, tuple) else self.n_envs,
            "env_kwargs": _jsonable(dict(self.env_kwargs)),
            "policy": _describe(self.policy),
            "kwargs": _jsonable(dict(self.kwargs)),
            "normalize": None if self.normalize is None else _jsonable(dict(self.normalize)),
        }

    def n_envs_of(self, index: int) -> int:
        """How many env copies member ``index`` trains on."""
        return self.n_envs[index] if isinstance(self.n_envs, tuple) else self.n_envs

    def rollout_steps_of(self, index: int) -> int | None:
        """Env steps of one rollout of member ``index`` (``n_steps * n_envs``)."""
        n_steps = self.kwargs.get(
            "n_steps", inspect.signature(self.agent_class.__init__).parameters["n_steps"].default)
        return int(n_steps) * self.n_envs_of(index) if isinstance(n_steps, int) else None


# --- seeds: pure functions of (seed, member index, step) so that restarts and resumes replay


def member_seed(seed: int, index: int) -> int:
    return int(seed) + int(index)


def interval_seed(seed: int, index: int, step: int) -> int:
    """Seed of the training env for the interval of member ``index`` starting at ``step``."""
    return int(np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), int(step), 1]).integers(2**31 - 1))


def eval_seed(seed: int, step: int) -> int:
    """Seed of the evaluation episodes at boundary ``step``: the same for every member."""
    return int(np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), 2]).integers(2**31 - 1 - 10_000))


# --- construction


def make_env(spec: AgentSpec, seed: int, index: int = 0):
    """Member ``index``'s training VecEnv (``VecNormalize``-wrapped when ``spec.normalize``; its
    statistics start fresh and are replaced by a checkpoint's on load)."""
    venv = make_vec_env(spec.env, n_envs=spec.n_envs_of(index), seed=seed, env_kwargs=dict(spec.env_kwargs))
    if spec.normalize is not None:
        venv = VecNormalize(venv, **dict(spec.normalize))
    return venv


def carry_normalization(model, venv) -> None:
    """Give ``venv`` (a fresh training env about to replace the model's) the model's current
    ``VecNormalize`` statistics, so switching envs between intervals does not reset them."""
    old, new = model.get_vec_normalize_env(), venv if isinstance(venv, VecNormalize) else None
    if old is None or new is None:
        return
    new.obs_rms = copy.deepcopy(old.obs_rms)
    new.ret_rms = copy.deepcopy(old.ret_rms)


def make_eval_env(spec: AgentSpec):
    source = spec.eval_env if spec.eval_env is not None else spec.env
    if isinstance(source, str):
        return gym.make(source, **dict(spec.env_kwargs))
    return source(**dict(spec.env_kwargs))


def build_model(spec: AgentSpec, env, seed: int):
    cls = spec.agent_class
    kwargs = dict(spec.kwargs)
    kwargs.setdefault("verbose", 0)
    return _switched(spec, cls(spec.policy, env, seed=seed, **kwargs))


def load_member(spec: AgentSpec, source, env):
    """A member's model from a checkpoint (a path or a file object), with the spec's speed switches."""
    return _switched(spec, load_model(spec.agent_class, source, env=env, device=spec.kwargs.get("device", "auto")))


def _switched(spec: AgentSpec, model):
    if spec.compile_step:
        model.compile_step = True
    return model


def check_live_parameters(model) -> None:
    """The optimizer must hold exactly the policy's live parameter tensors (no stale copies),
    each once, in whatever order its param groups put them (``optimizer_groups``)."""
    live = list(model.policy.parameters())
    held = [p for group in model.policy.optimizer.param_groups for p in group["params"]]
    if len(held) != len(live) or set(held) != set(live):  # tensors hash by identity
        raise RuntimeError(
            "the optimizer does not hold the policy's live parameters after load "
            f"({len(held)} held, {len(live)} live); refusing to train a stale copy"
        )


def prepare_model(
    spec: AgentSpec,
    config: Mapping[str, Any],
    *,
    checkpoint: str | Path | None,
    env,
    seed: int,
):
    """Build (``checkpoint=None``) or load a member, then apply ``config``. Returns the model."""
    if checkpoint is None:
        model = build_model(spec, env, seed)
    else:
        model = load_member(spec, checkpoint, env)
    if config:
        model.set_hyperparameters(**dict(config))
    check_live_parameters(model)
    return model


def optimizer_lrs(model) -> list[float]:
    return [float(g["lr"]) for g in model.policy.optimizer.param_groups]


# --- evaluation


def evaluate(model, spec: AgentSpec, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic policy on a separate eval env, ``episodes`` episodes seeded ``seed + i``.

    With a ``VecNormalize`` training env, observations are normalised with the model's own
    statistics (frozen: evaluation does not update them) before the policy sees them. A
    recurrent policy's state starts fresh with each episode and is carried from step to step."""
    normalizer = model.get_vec_normalize_env()
    env = make_eval_env(spec)
    rewards: list[float] = []
    lengths: list[int] = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, n, done = 0.0, 0, False
            state = None
            while not done:
                seen = obs if normalizer is None else normalizer.normalize_obs(obs)
                action, state = model.predict(seen, state=state, episode_start=np.array([n == 0]),
                                              deterministic=True)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                n += 1
                done = bool(terminated or truncated)
            rewards.append(total)
            lengths.append(n)
    finally:
        env.close()
    r = np.asarray(rewards, dtype=np.float64)
    return {
        "eval_mean_reward": float(r.mean()),
        "eval_std_reward": float(r.std()),
        "eval_min_reward": float(r.min()),
        "eval_max_reward": float(r.max()),
        "eval_mean_length": float(np.mean(lengths)),
    }


def train_mean_reward(model) -> float | None:
    buf = getattr(model, "ep_info_buffer", None)
    if not buf:
        return None
    return float(np.mean([info["r"] for info in buf]))


# --- one interval, as run by a local worker process


def run_interval(task: Mapping[str, Any]) -> dict[str, Any]:
    """Run one member for one interval; the task and the result are plain data.

    task keys: spec (AgentSpec), config, checkpoint (path or None), out (path to save to),
    seed, index, step (the interval's start), interval_steps, eval_episodes.
    """
    t0, cpu0 = time.perf_counter(), time.process_time()
    spec: AgentSpec = task["spec"]
    seed, index, step = int(task["seed"]), int(task["index"]), int(task["step"])
    env = make_env(spec, interval_seed(seed, index, step), index)
    try:
        try:
            model = prepare_model(
                spec,
                task["config"],
                checkpoint=task["checkpoint"],
                env=env,
                seed=member_seed(seed, index),
            )
        except CheckpointError as exc:
            # Deterministic: retrying the same file cannot help. The coordinator falls back.
            return {"corrupt_checkpoint": task["checkpoint"], "error": " ".join(str(exc).split())}
        t_load = time.perf_counter()
        applied = _jsonable(model.get_hyperparameters())
        lrs = optimizer_lrs(model)
        start_timesteps = int(model.num_timesteps)
        model.learn(total_timesteps=int(task["interval_steps"]), reset_num_timesteps=False)
        t_learn = time.perf_counter()
        metrics = evaluate(model, spec, int(task["eval_episodes"]), eval_seed(seed, step + int(task["interval_steps"])))
        t_eval = time.perf_counter()
        out = save_model(model, task["out"])
        t_save = time.perf_counter()
        num_timesteps = int(model.num_timesteps)
        train_reward = train_mean_reward(model)
    finally:
        env.close()
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise RuntimeError(f"evaluation produced {name}={value!r}")
    return {
        "metrics": metrics,
        "checkpoint": str(out),
        "applied": applied,
        "optimizer_lr": lrs,
        "start_timesteps": start_timesteps,
        "num_timesteps": num_timesteps,
        "env_steps": num_timesteps - start_timesteps,
        "train_mean_reward": train_reward,
        "seconds": {
            "load": t_load - t0,
            "learn": t_learn - t_load,
            "eval": t_eval - t_learn,
            "save": t_save - t_eval,
            "total": t_save - t0,
            "cpu": time.process_time() - cpu0,
        },
    }
