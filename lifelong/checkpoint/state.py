"""Capture and restore the full training state of a model (files and memory share this code).

A checkpoint holds these members (see :mod:`lifelong.checkpoint.archive` for the container):

``model.json``       algorithm, policy, constructor arguments (schedules as data), current
                     hyperparameters, observation and action spaces, ``n_envs``, seed, counters
                     (``num_timesteps``, ``_n_updates``, ``_episode_num``, ``_num_timesteps_at_start``,
                     ``_total_timesteps``, ``_current_progress_remaining``, ``_n_train_calls``), the Python, NumPy and
                     action/observation-space random states, the episode info/success buffers,
                     ``VecNormalize`` settings, versions
``policy.pt``        ``policy.state_dict()`` (actor, twin critics, return normaliser buffers)
``optimizer.pt``     ``policy.optimizer.state_dict()`` (UPGD utilities, Adam moments, the noise
                     generator's state, param groups)
``vgs.pt``           ``model.vgs.state_dict()`` (only when the scaler is on)
``rng.pt``           torch's global CPU random state (and CUDA's when available)
``env_state.pt``     ``_last_obs``, ``_last_episode_starts``, ``_last_original_obs``
``vec_normalize.pt`` ``obs_rms``, ``ret_rms``, ``returns`` (only when the env is a ``VecNormalize``)
"""
from __future__ import annotations

import collections
import inspect
import io
import json
import os
import pathlib
import random
import warnings
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize, unwrap_vec_normalize

from lifelong.checkpoint import archive
from lifelong.checkpoint.codec import class_name, from_json, resolve_class, to_json
from lifelong.checkpoint.spaces import space_from_dict, space_to_dict, spaces_equal
from lifelong.errors import CheckpointError

__all__ = [
    "save_state",
    "load_state",
    "save_model",
    "load_model",
    "remaining_timesteps",
    "restore_vec_normalize",
    "ResumableCheckpointCallback",
    "verify",
]

META = "model.json"
POLICY = "policy.pt"
OPTIMIZER = "optimizer.pt"
VGS = "vgs.pt"
RNG = "rng.pt"
ENV_STATE = "env_state.pt"
VEC_NORMALIZE = "vec_normalize.pt"
REQUIRED = (META, POLICY, OPTIMIZER, RNG, ENV_STATE)

COUNTERS = (
    "num_timesteps",
    "_n_updates",
    "_episode_num",
    "_num_timesteps_at_start",
    "_total_timesteps",
    "_current_progress_remaining",
    "_n_train_calls",
)
# constructor arguments that describe the run, not the model; never stored, may be given at load
_RUN_ARGS = ("policy", "env", "device", "_init_setup_model", "tensorboard_log", "seed")
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


# =========================================================================== capture


def _policy_ref(model: Any) -> Any:
    policy_class = model.policy_class
    for alias, cls in getattr(type(model), "policy_aliases", {}).items():
        if cls is policy_class:
            return alias
    return {"__class__": class_name(policy_class)}


def _space_rng(space: spaces.Space) -> Any:
    """The space's generator state (``None`` if it never drew), recursively for Dict/Tuple."""
    own = None if space._np_random is None else space._np_random.bit_generator.state
    if isinstance(space, spaces.Dict):
        return {"own": own, "children": {k: _space_rng(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"own": own, "children": [_space_rng(s) for s in space.spaces]}
    return {"own": own}


def _python_rng() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _numpy_rng() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _episode_buffer(buffer: collections.deque | None, where: str) -> Any:
    if buffer is None:
        return None
    return to_json(list(buffer), where)


def _vec_normalize_meta(venv: VecNormalize) -> dict:
    return {
        "norm_obs": bool(venv.norm_obs),
        "norm_reward": bool(venv.norm_reward),
        "norm_obs_keys": None if venv.norm_obs_keys is None else list(venv.norm_obs_keys),
        "clip_obs": float(venv.clip_obs),
        "clip_reward": float(venv.clip_reward),
        "gamma": float(venv.gamma),
        "epsilon": float(venv.epsilon),
        "training": bool(venv.training),
        "obs_rms_is_dict": isinstance(getattr(venv, "obs_rms", None), dict),
    }


def _rms_tree(rms: RunningMeanStd) -> dict:
    return {"mean": np.asarray(rms.mean), "var": np.asarray(rms.var), "count": float(rms.count)}


def _vec_normalize_tensors(venv: VecNormalize) -> dict:
    tree: dict[str, Any] = {"ret_rms": _rms_tree(venv.ret_rms), "returns": np.asarray(venv.returns)}
    obs_rms = getattr(venv, "obs_rms", None)  # absent when norm_obs=False on some SB3 versions
    if isinstance(obs_rms, dict):
        tree["obs_rms"] = {key: _rms_tree(r) for key, r in obs_rms.items()}
    elif obs_rms is not None:
        tree["obs_rms"] = _rms_tree(obs_rms)
    return tree


def _obs_tree(obs: Any) -> Any:
    if obs is None:
        return None
    if isinstance(obs, dict):
        return {str(k): np.asarray(v) for k, v in obs.items()}
    return np.asarray(obs)


def _capture(model: Any) -> dict[str, Any]:
    """The raw members of ``model``'s checkpoint (tensor trees not yet encoded)."""
    from lifelong import __version__
    import stable_baselines3

    if not hasattr(model, "get_constructor_kwargs"):
        raise ValueError(f"cannot checkpoint {type(model).__name__}: it has no get_constructor_kwargs()")
    kwargs = dict(model.get_constructor_kwargs())
    for name in _RUN_ARGS:
        kwargs.pop(name, None)
    hyperparameters = model.get_hyperparameters() if hasattr(model, "get_hyperparameters") else {}
    venv = model.get_vec_normalize_env()
    meta = {
        "algorithm": class_name(type(model)),
        "policy": _policy_ref(model),
        "constructor_kwargs": to_json(kwargs, "constructor argument"),
        "hyperparameters": to_json(hyperparameters, "hyperparameter"),
        "observation_space": space_to_dict(model.observation_space),
        "action_space": space_to_dict(model.action_space),
        "n_envs": int(model.n_envs),
        "seed": None if model.seed is None else int(model.seed),
        "counters": {name: to_json(getattr(model, name), name) for name in COUNTERS},
        "rng": {
            "python": _python_rng(),
            "numpy": _numpy_rng(),
            "action_space": _space_rng(model.action_space),
            "observation_space": _space_rng(model.observation_space),
        },
        "stats_window_size": int(model._stats_window_size),
        "ep_info_buffer": _episode_buffer(model.ep_info_buffer, "ep_info_buffer"),
        "ep_success_buffer": _episode_buffer(model.ep_success_buffer, "ep_success_buffer"),
        "has_vgs": model.vgs is not None,
        "vec_normalize": None if venv is None else _vec_normalize_meta(venv),
        "versions": {
            "lifelong": __version__,
            "torch": torch.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "numpy": np.__version__,
        },
    }
    members: dict[str, Any] = {
        META: meta,
        POLICY: model.policy.state_dict(),
        OPTIMIZER: model.policy.optimizer.state_dict(),
        RNG: {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        ENV_STATE: {
            "last_obs": _obs_tree(model._last_obs),
            "last_episode_starts": _obs_tree(model._last_episode_starts),
            "last_original_obs": _obs_tree(model._last_original_obs),
        },
    }
    if model.vgs is not None:
        members[VGS] = model.vgs.state_dict()
    if venv is not None:
        members[VEC_NORMALIZE] = _vec_normalize_tensors(venv)
    return members


def _normalized(members: dict[str, Any]) -> dict[str, Any]:
    """What reading the members back from a file gives (JSON round trip, tensors cloned)."""
    out = {}
    for name, content in members.items():
        if name.endswith(".json"):
            archive._check_json(content, name)
            out[name] = json.loads(json.dumps(content, allow_nan=False))
        else:
            out[name] = archive.decode_tensor_tree(archive.encode_tensor_tree(content, name))
    return out


def save_state(model: Any) -> dict[str, Any]:
    """The full training state of ``model`` in memory: ``{member name: content}``.

    It is exactly what :func:`save_model` writes and :func:`lifelong.checkpoint.read_archive`
    reads back (JSON members as JSON data, tensor members as CPU tensor clones that never alias
    the live model). Pass it to :func:`load_state` (PBT exploit) or to
    :func:`lifelong.checkpoint.write_archive`.
    """
    return _normalized(_capture(model))


def _with_zip_suffix(path: str | os.PathLike) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.suffix:
        path = path.with_suffix(".zip")
    return path


def save_model(model: Any, path: str | os.PathLike | io.IOBase) -> Any:
    """Write ``model``'s full state to ``path`` atomically (``.zip`` appended when it has no
    suffix) and return the path written. A writable binary file object (as Stable-Baselines3
    accepts) receives the same bytes (atomicity is then the caller's business) and is returned."""
    if hasattr(path, "write") and not isinstance(path, (str, os.PathLike)):
        path.write(archive.pack(_capture(model)))
        return path
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file path (str or os.PathLike) or a binary file object, got {type(path).__name__}")
    path = _with_zip_suffix(path)
    return archive.write_atomic(path, archive.pack(_capture(model)))


# =========================================================================== restore


def _fault(source: Any, fault: str) -> CheckpointError:
    return CheckpointError(f"{source}: {fault}")


def _check_members(state: Any, source: Any) -> dict:
    if not isinstance(state, dict):
        raise ValueError(f"state must be the dict returned by save_state, got {type(state).__name__}")
    for name in REQUIRED:
        if name not in state:
            raise _fault(source, f"checkpoint lacks the required member {name!r}")
    meta = state[META]
    problem = _meta_problem(meta)
    if problem:
        raise _fault(source, f"member {META!r} is malformed: {problem}")
    return meta


def _meta_problem(meta: Any) -> str | None:
    """What is wrong with a model.json (None when it has everything loading reads)."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    expected = {
        "algorithm": str, "policy": (str, dict), "constructor_kwargs": dict, "observation_space": dict,
        "action_space": dict, "n_envs": int, "counters": dict, "rng": dict, "has_vgs": bool,
    }
    for key, typ in expected.items():
        if not isinstance(meta.get(key), typ):
            return f"{key!r} is missing or of the wrong type"
    missing = [c for c in COUNTERS if c not in meta["counters"]]
    if missing:
        return f"counters {missing} are missing"
    if not all(k in meta["rng"] for k in ("python", "numpy", "action_space", "observation_space")):
        return "random states are missing"
    return None


def _set_space_rng(space: spaces.Space, saved: Any) -> None:
    own = saved.get("own")
    if own is not None:
        name = own.get("bit_generator")
        if name not in _BIT_GENERATORS:
            raise ValueError(f"unknown numpy bit generator {name!r}")
        if space._np_random is None or type(space._np_random.bit_generator).__name__ != name:
            space._np_random = np.random.Generator(getattr(np.random, name)())
        space._np_random.bit_generator.state = own
    children = saved.get("children")
    if isinstance(space, spaces.Dict) and isinstance(children, dict):
        for key, sub in space.spaces.items():
            if key in children:
                _set_space_rng(sub, children[key])
    elif isinstance(space, spaces.Tuple) and isinstance(children, list):
        for sub, child in zip(space.spaces, children):
            _set_space_rng(sub, child)


def _restore_rng(meta: dict, tensors: dict) -> None:
    version, internal, gauss = meta["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    n = meta["rng"]["numpy"]
    np.random.set_state((n["name"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(tensors["torch"])
    cuda = tensors.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)


def _restore_rms(rms: RunningMeanStd, saved: dict) -> None:
    rms.mean = np.asarray(saved["mean"], dtype=np.float64).copy()
    rms.var = np.asarray(saved["var"], dtype=np.float64).copy()
    rms.count = float(saved["count"])


def _restore_vec_normalize(venv: VecNormalize, meta: dict, tree: dict, with_returns: bool, source: Any) -> None:
    settings = meta or {}
    obs_rms = getattr(venv, "obs_rms", None)
    saved_obs = tree.get("obs_rms")
    if saved_obs is not None and obs_rms is not None:
        saved_is_dict = bool(settings.get("obs_rms_is_dict"))
        if isinstance(obs_rms, dict) != saved_is_dict or (saved_is_dict and set(obs_rms) != set(saved_obs)):
            raise ValueError(f"{source}: the VecNormalize observation statistics do not fit the env's VecNormalize")
        if isinstance(obs_rms, dict):
            for key in obs_rms:
                _check_shape(obs_rms[key].mean, saved_obs[key]["mean"], f"obs_rms[{key!r}]", source)
                _restore_rms(obs_rms[key], saved_obs[key])
        else:
            _check_shape(obs_rms.mean, saved_obs["mean"], "obs_rms", source)
            _restore_rms(obs_rms, saved_obs)
    _restore_rms(venv.ret_rms, tree["ret_rms"])
    for name in ("clip_obs", "clip_reward", "gamma", "epsilon"):
        if name in settings:
            setattr(venv, name, float(settings[name]))
    returns = np.asarray(tree["returns"])
    if with_returns and returns.shape == np.shape(venv.returns):
        venv.returns = returns.astype(np.float64, copy=True)


def _check_shape(live: np.ndarray, saved: np.ndarray, what: str, source: Any) -> None:
    if np.shape(live) != np.shape(saved):
        raise ValueError(f"{source}: VecNormalize {what} has shape {np.shape(saved)}, the env's has {np.shape(live)}")


def _obs_from_tree(tree: Any) -> Any:
    if tree is None or not isinstance(tree, dict):
        return tree
    return collections.OrderedDict((k, v) for k, v in tree.items())


def _check_compatible(model: Any, state: dict, meta: dict, env_state: bool, source: Any) -> None:
    """Every check that can fail, made before anything is changed (a refused state leaves the
    model as it was)."""
    saved_obs, saved_act = space_from_dict(meta["observation_space"]), space_from_dict(meta["action_space"])
    if not spaces_equal(saved_obs, model.observation_space) or not spaces_equal(saved_act, model.action_space):
        raise ValueError(
            f"{source}: checkpoint spaces (observation {saved_obs}, action {saved_act}) do not match the "
            f"model's (observation {model.observation_space}, action {model.action_space})"
        )
    if bool(meta["has_vgs"]) != (model.vgs is not None) or (model.vgs is not None and VGS not in state):
        raise ValueError(
            f"{source}: checkpoint has vgs={'on' if meta['has_vgs'] else 'off'}, the model has "
            f"vgs={'on' if model.vgs is not None else 'off'}"
        )
    live = model.policy.state_dict()
    saved = state[POLICY]
    if not isinstance(saved, dict) or set(saved) != set(live):
        missing = sorted(set(live) - set(saved or {}))[:5]
        extra = sorted(set(saved or {}) - set(live))[:5]
        raise ValueError(
            f"{source}: the checkpoint's policy does not fit this model's policy (missing {missing}, unexpected "
            f"{extra}): it was built with other architecture arguments"
        )
    for key, tensor in live.items():
        other = saved[key]
        if not isinstance(other, torch.Tensor) or other.shape != tensor.shape:
            shape = tuple(other.shape) if isinstance(other, torch.Tensor) else type(other).__name__
            raise ValueError(
                f"{source}: the checkpoint's policy does not fit this model's policy: {key} has shape "
                f"{shape} in the checkpoint, {tuple(tensor.shape)} in the model"
            )
    groups = state[OPTIMIZER].get("param_groups") if isinstance(state[OPTIMIZER], dict) else None
    live_sizes = [len(g["params"]) for g in model.policy.optimizer.param_groups]
    if not isinstance(groups, list) or [len(g.get("params", ())) for g in groups] != live_sizes:
        raise ValueError(
            f"{source}: the checkpoint's optimizer state does not fit this model's optimizer "
            f"({type(model.policy.optimizer).__name__} with param groups of sizes {live_sizes})"
        )
    if env_state and model.env is not None and int(model.n_envs) != int(meta["n_envs"]):
        raise ValueError(
            f"{source}: the saved last observation is for n_envs={meta['n_envs']}, the model's env has "
            f"{model.n_envs} copies"
        )


def _restore(model: Any, state: dict, *, exact: bool, env_state: bool, source: Any) -> None:
    meta = _check_members(state, source)
    _check_compatible(model, state, meta, env_state, source)
    model.policy.load_state_dict(state[POLICY])
    model.policy.optimizer.load_state_dict(state[OPTIMIZER])
    if model.vgs is not None:
        model.vgs.load_state_dict(state[VGS])
    for name in COUNTERS:
        setattr(model, name, from_json(meta["counters"][name]))
    model.num_timesteps = int(model.num_timesteps)
    model._n_updates = int(model._n_updates)

    venv = model.get_vec_normalize_env()
    if venv is not None and VEC_NORMALIZE in state:
        _restore_vec_normalize(venv, meta.get("vec_normalize"), state[VEC_NORMALIZE], env_state, source)
    elif VEC_NORMALIZE in state and exact and model.env is not None:
        warnings.warn(
            f"{source}: the checkpoint holds VecNormalize statistics but the env passed is not a VecNormalize; "
            "they are not applied (use lifelong.checkpoint.restore_vec_normalize(path, venv))",
            RuntimeWarning,
            stacklevel=3,
        )

    if exact:
        window = int(meta.get("stats_window_size", model._stats_window_size))
        for name in ("ep_info_buffer", "ep_success_buffer"):
            saved = meta.get(name)
            setattr(model, name, None if saved is None else collections.deque(from_json(saved), maxlen=window))
        _restore_rng(meta, state[RNG])
        _set_space_rng(model.action_space, meta["rng"]["action_space"])
        _set_space_rng(model.observation_space, meta["rng"]["observation_space"])
    if env_state:
        env_tree = state[ENV_STATE]
        model._last_obs = _obs_from_tree(env_tree["last_obs"])
        model._last_episode_starts = env_tree["last_episode_starts"]
        model._last_original_obs = _obs_from_tree(env_tree["last_original_obs"])


def load_state(model: Any, state: dict[str, Any], *, exact: bool = False) -> None:
    """Load a :func:`save_state` dict into ``model`` in place (the live parameters stay the same
    objects: their values are copied, so the optimizer and scaler keep acting on them).

    Always restored: policy (and return normaliser), optimizer state and param groups (UPGD
    utilities, moments, ``lr``, ``sigma``), scaler (``alpha`` included), the other tunable
    hyperparameters and the schedules, counters, and ``VecNormalize`` statistics (when both
    sides have one). With ``exact=True`` also the random-number-generator states, the episode
    buffers and the last observation / episode-start flags, which makes ``model`` continue
    exactly as the saved one would (given the same env state). The default ``exact=False`` is
    what a PBT exploit wants: the recipient keeps its own random streams and its env's current
    observation. The model's architecture must match (``ValueError`` otherwise).
    """
    meta = _check_members(state, "state")
    _check_compatible(model, state, meta, exact, "state")
    _apply_hyperparameters(model, meta)
    _restore(model, state, exact=exact, env_state=exact, source="state")


def _apply_hyperparameters(model: Any, meta: dict) -> None:
    """Make the live model's tunables and schedules equal the saved ones (before the optimizer and
    scaler states, which then restore ``lr``, ``sigma`` and ``alpha`` exactly)."""
    from lifelong.schedules import as_schedule

    saved = from_json(meta.get("constructor_kwargs") or {})
    numbers = {
        name: saved[name]
        for name in _tunable_names()
        if isinstance(saved.get(name), (int, float)) and not isinstance(saved.get(name), bool)
    }
    if numbers:
        model.set_hyperparameters(**numbers)
    # schedules that are not constants (a Linear learning rate or clip range) stay schedules
    if isinstance(saved.get("learning_rate"), dict):
        model.learning_rate = saved["learning_rate"]
        model.lr_schedule = as_schedule(saved["learning_rate"], "learning_rate")
    for name in ("clip_range", "clip_range_vf"):
        if isinstance(saved.get(name), dict):
            setattr(model, name, as_schedule(saved[name], name))


def _constructor_parameters(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names.update(n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    names.discard("self")
    return names


def load_model(
    cls: type,
    path: str | os.PathLike,
    env: Any = None,
    device: torch.device | str = "auto",
    custom_objects: dict[str, Any] | None = None,
    force_reset: bool = True,
    **kwargs: Any,
) -> Any:
    """Rebuild a model of class ``cls`` from the checkpoint at ``path`` (SB3's ``load`` semantics).

    ``env``: the env to continue on (its spaces must equal the checkpoint's: ``ValueError``
    naming both otherwise). ``force_reset=False`` keeps the saved last observation and
    episode-start flags, so training with the *same live env object* continues exactly.
    ``custom_objects`` and ``kwargs`` replace constructor arguments (unknown names:
    ``ValueError``); ``custom_objects`` also supplies classes the file names but lifelong will not
    import (a custom policy class: ``custom_objects={"policy": MyPolicy}``). Nothing is re-seeded
    (unless ``seed=`` is passed). Missing file: ``FileNotFoundError``; any other unreadable file:
    :class:`lifelong.CheckpointError`.
    """
    custom_objects = dict(custom_objects or {})
    if isinstance(path, (str, os.PathLike)):
        path = pathlib.Path(path)
        if not path.exists() and not path.suffix:
            path = path.with_suffix(".zip")  # SB3: save("x") writes x.zip, load("x") reads it
    elif not hasattr(path, "read"):
        raise ValueError(f"path must be a file path or a binary file object, got {type(path).__name__}")
    allowed = _constructor_parameters(cls) - {"self", "env", "device", "_init_setup_model"}
    setter_only = {k for k in kwargs if k in _tunable_names() and k not in allowed}  # sigma, vgs_alpha
    unknown = sorted(set(custom_objects) - allowed - {"policy", "policy_class"}) + sorted(
        set(kwargs) - allowed - setter_only
    )
    if unknown:
        raise ValueError(
            f"unknown custom_objects/kwargs {unknown} for {cls.__name__}.load: expected constructor "
            f"arguments of {cls.__name__} ({', '.join(sorted(allowed))}) or tunable hyperparameters "
            f"({', '.join(_tunable_names())})"
        )
    tunable_overrides = {
        k: v for k, v in kwargs.items() if k in _tunable_names() and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    kwargs = {k: v for k, v in kwargs.items() if k not in setter_only}
    if isinstance(path, pathlib.Path):
        state = archive.read_archive(path)
    else:
        state = archive.unpack(path.read(), getattr(path, "name", "<file object>"))
    meta = _check_members(state, path)
    saved_algorithm = str(meta.get("algorithm", ""))
    if saved_algorithm.rpartition(":")[2] not in {k.__qualname__ for k in cls.__mro__}:
        raise ValueError(f"{path} holds a {saved_algorithm} checkpoint, not one {cls.__name__} can load")

    obs_space = space_from_dict(meta["observation_space"])
    act_space = space_from_dict(meta["action_space"])
    if env is not None:
        env = cls._wrap_env(env, int(kwargs.get("verbose", 0)))
        if not spaces_equal(obs_space, env.observation_space) or not spaces_equal(act_space, env.action_space):
            raise ValueError(
                f"{path} was saved for observation space {obs_space} and action space {act_space}; the env passed "
                f"has observation space {env.observation_space} and action space {env.action_space}"
            )
        if not force_reset and env.num_envs != int(meta["n_envs"]):
            raise ValueError(
                f"{path} was saved with n_envs={meta['n_envs']}; force_reset=False needs an env with as many "
                f"copies, the env passed has {env.num_envs} (or load with force_reset=True)"
            )

    ctor = from_json(meta["constructor_kwargs"], custom_objects, "constructor argument")
    policy_override = custom_objects.pop("policy", custom_objects.pop("policy_class", None))
    ctor.update(custom_objects)
    ctor.update(kwargs)
    user_seed = ctor.pop("seed", None) if "seed" in kwargs else None
    ctor.pop("seed", None)
    policy = policy_override
    if policy is None:
        ref = meta["policy"]
        policy = ref if isinstance(ref, str) else resolve_class(ref["__class__"], custom_objects, "policy")

    model = cls(policy=policy, env=env, device=device, seed=None, _init_setup_model=False, **ctor)
    if env is None:
        model.observation_space = obs_space
        model.action_space = act_space
        model.n_envs = int(meta["n_envs"])
    model._setup_model()
    model.seed = meta.get("seed")

    restore_env_state = env is None or not force_reset
    _restore(model, state, exact=True, env_state=restore_env_state, source=path)
    if env is not None and force_reset:
        model._last_obs = None
    if tunable_overrides:
        model.set_hyperparameters(**tunable_overrides)  # re-apply over the restored optimizer groups
    if user_seed is not None:
        model.seed = user_seed
        model.set_random_seed(user_seed)
    return model


def _tunable_names() -> tuple[str, ...]:
    try:
        from lifelong.hyperparams import TUNABLE
    except ImportError:  # pragma: no cover
        return ()
    return TUNABLE


# =========================================================================== helpers


def verify(path: str | os.PathLike) -> dict:
    """Check the checkpoint at ``path`` completely, as loading does, and return its manifest.

    Every member is checked against its size and checksums and decoded with the safe loaders,
    and the model description is checked for what loading reads. ``FileNotFoundError`` for a
    missing path, :class:`lifelong.CheckpointError` naming the path and the fault otherwise.
    """
    manifest, decoded = archive.verify_and_decode(path)
    _check_members(decoded, path)
    return manifest


def remaining_timesteps(model: Any) -> int:
    """Steps left to the total of the ``learn`` call the checkpoint was taken in.

    ``model.learn(remaining_timesteps(model), reset_num_timesteps=False)`` continues an
    interrupted ``learn(total)`` towards the same total, so schedules (progress measured as
    ``1 - num_timesteps / total``) continue where they were instead of restarting.
    """
    return max(0, int(model._total_timesteps) - int(model.num_timesteps))


def restore_vec_normalize(path_or_state: str | os.PathLike | dict, venv: Any) -> VecNormalize:
    """Apply a checkpoint's ``VecNormalize`` statistics to ``venv`` (wrapping it in a new
    ``VecNormalize`` with the saved settings when it is not one) and return the VecNormalize."""
    state = path_or_state if isinstance(path_or_state, dict) else archive.read_archive(path_or_state)
    source = "state" if isinstance(path_or_state, dict) else path_or_state
    meta = _check_members(state, source)
    if VEC_NORMALIZE not in state:
        raise ValueError(f"{source}: the checkpoint holds no VecNormalize statistics (its env was not a VecNormalize)")
    settings = meta["vec_normalize"]
    vn = unwrap_vec_normalize(venv)
    if vn is None:
        vn = VecNormalize(
            venv,
            training=settings["training"],
            norm_obs=settings["norm_obs"],
            norm_reward=settings["norm_reward"],
            clip_obs=settings["clip_obs"],
            clip_reward=settings["clip_reward"],
            gamma=settings["gamma"],
            epsilon=settings["epsilon"],
            norm_obs_keys=settings["norm_obs_keys"],
        )
    _restore_vec_normalize(vn, settings, state[VEC_NORMALIZE], with_returns=False, source=source)
    return vn


class ResumableCheckpointCallback(BaseCallback):
    """Save through a :class:`~lifelong.checkpoint.CheckpointManager` at rollout boundaries.

    Stable-Baselines3's ``CheckpointCallback`` works with lifelong (it calls ``model.save``) but
    saves in the middle of a rollout, from which no exact resume is possible (the partial rollout
    is not in any checkpoint). This callback saves at the start of a rollout, right after the
    previous update, once at least ``save_freq`` steps have passed since its last save, and at the
    end of training: each of its checkpoints resumes exactly (except with gSDE, whose exploration
    noise is drawn just before) via ``learn(remaining_timesteps(model), reset_num_timesteps=False)``.
    """

    def __init__(self, save_freq: int, manager: Any, verbose: int = 0) -> None:
        super().__init__(verbose)
        if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1:
            raise ValueError(f"save_freq must be an integer >= 1, got {save_freq!r}")
        from lifelong.checkpoint.manager import CheckpointManager

        if isinstance(manager, (str, os.PathLike)):
            manager = CheckpointManager(manager)
        if not isinstance(manager, CheckpointManager):
            raise ValueError(f"manager must be a CheckpointManager or a directory, got {manager!r}")
        self.save_freq = save_freq
        self.manager = manager
        self.last_saved_step: int | None = None

    def _save(self) -> None:
        step = int(self.model.num_timesteps)
        if step == self.last_saved_step:
            return
        path = self.manager.save(self.model, step)
        self.last_saved_step = step
        if self.verbose >= 1:
            print(f"Saving checkpoint to {path}")

    def _on_training_start(self) -> None:
        if self.last_saved_step is None:
            self.last_saved_step = int(self.model.num_timesteps)

    def _on_rollout_start(self) -> None:
        if int(self.model.num_timesteps) - int(self.last_saved_step or 0) >= self.save_freq:
            self._save()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._save()
