"""The members of a checkpoint, and the checks every loader makes on a set of them.

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
``env_state.pt``     ``_last_obs``, ``_last_episode_starts``, ``_last_original_obs``, and what
                     ``model.rollout_state()`` returns (a recurrent agent's ``lstm_states``)
``vec_normalize.pt`` ``obs_rms``, ``ret_rms``, ``returns`` (only when the env is a ``VecNormalize``)
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from typing import Any

import torch

from lifelong.checkpoint import archive
from lifelong.checkpoint.codec import from_json, resolve_class
from lifelong.checkpoint.counters import COUNTERS
from lifelong.checkpoint.spaces import space_from_dict
from lifelong.errors import CheckpointError, CheckpointMismatchError, CheckpointUnsupportedError

__all__ = [
    "META",
    "POLICY",
    "OPTIMIZER",
    "VGS",
    "RNG",
    "ENV_STATE",
    "VEC_NORMALIZE",
    "REQUIRED",
    "verify",
    "uncompiled",
    "policy_state_dict",
    "without_compile_prefix",
]

META = "model.json"
POLICY = "policy.pt"
OPTIMIZER = "optimizer.pt"
VGS = "vgs.pt"
RNG = "rng.pt"
ENV_STATE = "env_state.pt"
VEC_NORMALIZE = "vec_normalize.pt"
REQUIRED = (META, POLICY, OPTIMIZER, RNG, ENV_STATE)

#: the most env copies a file may declare (what loading would allocate observations for)
MAX_N_ENVS = 1 << 16
#: the largest counter a file may declare (steps, updates, episodes)
MAX_COUNTER = 1 << 62


#: the prefix ``torch.compile`` gives every parameter name of the module it wraps
COMPILE_PREFIX = "_orig_mod."


def uncompiled(module: torch.nn.Module) -> torch.nn.Module:
    """The module itself, or the module that ``torch.compile`` wrapped (``model.policy =
    torch.compile(model.policy)`` is how Stable-Baselines3 users compile a policy)."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # loaded once torch.compile was used
    if eval_frame is not None and isinstance(module, eval_frame.OptimizedModule):
        return module._orig_mod
    return module


def policy_state_dict(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The policy's ``state_dict`` under its own names, also for a compiled policy: the compiled
    wrapper's names carry ``_orig_mod.``, which would make the checkpoint unloadable into an
    uncompiled policy (Stable-Baselines3 GH#2137)."""
    return uncompiled(policy).state_dict()


def without_compile_prefix(state_dict: Any) -> Any:
    """A saved policy ``state_dict`` with ``_orig_mod.`` stripped from its names (a checkpoint
    written by an older version from a compiled policy); anything else is returned unchanged."""
    if not isinstance(state_dict, dict) or not any(
        isinstance(k, str) and k.startswith(COMPILE_PREFIX) for k in state_dict
    ):
        return state_dict
    return {k.removeprefix(COMPILE_PREFIX) if isinstance(k, str) else k: v for k, v in state_dict.items()}


def _fault(source: Any, fault: str) -> CheckpointError:
    return CheckpointError(f"{source}: {fault}")


@contextlib.contextmanager
def from_file(source: Any, member: str, what: str):
    """Turn whatever a step on the file's data raises into one ``CheckpointError`` naming
    ``source``, ``member`` and the step (a crafted file may make any library code raise anything:
    ``KeyError``, ``TypeError``, ``RecursionError``, ``MemoryError``, ``AssertionError`` ...).
    A ``CheckpointMismatchError`` (the file is sound but does not fit the caller's model) passes."""
    try:
        yield
    except (CheckpointError, CheckpointMismatchError):
        raise
    except Exception as exc:  # the restore boundary: one error kind for a bad file
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise CheckpointError(f"{source}: member {member!r}: {what} cannot be restored "
                              f"({type(exc).__name__}: {detail})") from exc


def _check_members(state: Any, source: Any) -> dict:
    """The model description of ``state`` after checking every member's structure (what loading
    reads, of the types it reads); ``CheckpointError`` naming ``source`` and the member otherwise."""
    if not isinstance(state, dict):
        raise ValueError(f"state must be the dict returned by save_state, got {type(state).__name__}")
    for name in REQUIRED:
        if name not in state:
            raise _fault(source, f"checkpoint lacks the required member {name!r}")
    meta = state[META]
    problem = _meta_problem(meta)
    if problem:
        raise _fault(source, f"member {META!r} is malformed: {problem}")
    if meta["has_vgs"] != (VGS in state):
        raise _fault(source, f"member {META!r} says vgs={'on' if meta['has_vgs'] else 'off'} but the checkpoint "
                             f"{'lacks' if meta['has_vgs'] else 'has'} the member {VGS!r} (malformed)")
    for name, check in _TENSOR_MEMBER_CHECKS.items():
        if name in state:
            problem = check(state[name])
            if problem:
                raise _fault(source, f"member {name!r} is malformed: {problem}")
    return meta


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _meta_problem(meta: Any) -> str | None:
    """What is wrong with a model.json (None when it has everything loading reads, within bounds)."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    expected = {
        "algorithm": str, "policy": (str, dict), "constructor_kwargs": dict, "observation_space": dict,
        "action_space": dict, "n_envs": int, "counters": dict, "rng": dict, "has_vgs": bool,
    }
    for key, typ in expected.items():
        if not isinstance(meta.get(key), typ):
            return f"{key!r} is missing or of the wrong type"
    if not _is_int(meta["n_envs"], 1, MAX_N_ENVS):
        return f"n_envs={meta['n_envs']!r} is outside [1, {MAX_N_ENVS}]"
    if meta.get("seed") is not None and not _is_int(meta["seed"], -(1 << 63), (1 << 64) - 1):
        return f"seed={meta['seed']!r:.40} is not an integer"
    missing = [c for c in COUNTERS if c not in meta["counters"]]
    if missing:
        return f"counters {missing} are missing"
    for name in COUNTERS:
        value = meta["counters"][name]
        if name == "_current_progress_remaining":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return f"counter {name}={value!r:.40} is not a finite number"
        elif not _is_int(value, 0, MAX_COUNTER):
            return f"counter {name}={value!r:.40} is not an integer in [0, 2**62]"
    if meta["counters"]["_num_timesteps_at_start"] > meta["counters"]["num_timesteps"]:
        return "counter _num_timesteps_at_start exceeds num_timesteps"
    if not all(k in meta["rng"] for k in ("python", "numpy", "action_space", "observation_space")):
        return "random states are missing"
    if not all(isinstance(meta["rng"][k], dict) for k in ("numpy", "action_space", "observation_space")):
        return "random states are of the wrong type"
    if "stats_window_size" in meta and not _is_int(meta["stats_window_size"], 1, 1 << 20):
        return f"stats_window_size={meta['stats_window_size']!r:.40} is not an integer in [1, 2**20]"
    for name in ("ep_info_buffer", "ep_success_buffer"):
        if meta.get(name) is not None and not isinstance(meta[name], list):
            return f"{name!r} is not a list"
    if meta.get("env_streams") is not None:
        return _streams_problem(meta["env_streams"], meta["n_envs"])
    return None


#: at most this many non-stationary wrappers stacked on one env copy
MAX_STACKED_WRAPPERS = 16


def _streams_problem(streams: Any, n_envs: int) -> str | None:
    """``env_streams``: per env copy, the stream state of its non-stationary wrappers
    (``lifelong.envs.NonStationaryWrapper.stream_state``)."""
    if not isinstance(streams, list) or len(streams) != n_envs:
        return f"'env_streams' is not a list of {n_envs} stream states (one per env copy)"
    for i, stack in enumerate(streams):
        if not isinstance(stack, list) or not 1 <= len(stack) <= MAX_STACKED_WRAPPERS:
            return f"env_streams[{i}] is not a list of 1 to {MAX_STACKED_WRAPPERS} wrapper states"
        for state in stack:
            if (not isinstance(state, dict) or set(state) != {"wrapper", "total_steps", "schedule_seed"}
                    or not isinstance(state["wrapper"], str) or len(state["wrapper"]) > 200
                    or not _is_int(state["total_steps"], 0, MAX_COUNTER)
                    or not (state["schedule_seed"] is None or _is_int(state["schedule_seed"], 0, (1 << 64) - 1))):
                return f"env_streams[{i}] holds a malformed wrapper state {state!r:.120}"
    return None


def _tensor_dict_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"expected a dict of tensors, got {type(value).__name__}"
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, torch.Tensor):
            return f"entry {key!r:.80} is not a named tensor"
    return None


def _optimizer_problem(value: Any) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("state"), dict):
        return "expected an optimizer state_dict (a dict with 'state' and 'param_groups')"
    groups = value.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        return "'param_groups' is not a list of dicts"
    for i, group in enumerate(groups):
        params = group.get("params")
        if not isinstance(params, list) or not all(_is_int(p, 0, 1 << 31) for p in params):
            return f"param_groups[{i}]['params'] is not a list of parameter indices"
    for key, entry in value["state"].items():
        if not _is_int(key, 0, 1 << 31) or not isinstance(entry, dict):
            return f"state entry {key!r:.40} is not a parameter index with a dict of values"
    return None


def _rng_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "expected a dict"
    state = value.get("torch")
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8 or state.dim() != 1:
        return "'torch' is not a generator state (a 1-d uint8 tensor)"
    if not isinstance(value.get("cuda", []), list):
        return "'cuda' is not a list"
    return None


def _env_state_problem(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(k in value for k in ("last_obs", "last_episode_starts",
                                                                    "last_original_obs")):
        return "expected a dict with last_obs, last_episode_starts and last_original_obs"
    return None


def _dict_problem(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"expected a dict, got {type(value).__name__}"


def _vec_normalize_problem(value: Any) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("ret_rms"), dict):
        return "expected a dict with 'ret_rms'"
    return None


_TENSOR_MEMBER_CHECKS = {
    POLICY: _tensor_dict_problem,
    OPTIMIZER: _optimizer_problem,
    RNG: _rng_problem,
    ENV_STATE: _env_state_problem,
    VGS: _dict_problem,
    VEC_NORMALIZE: _vec_normalize_problem,
}


def _class_references(value: Any, found: list[str], depth: int = 0) -> list[str]:
    """Every ``{"__class__": name}`` value in a JSON tree (depth already bounded by reading)."""
    if isinstance(value, dict):
        if set(value) == {"__class__"}:
            found.append(value["__class__"])
        for item in value.values():
            _class_references(item, found, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _class_references(item, found, depth + 1)
    return found


def check_description(meta: dict, source: Any, custom_objects: dict[str, Any] | None = None) -> None:
    """Decode what ``model.json`` describes without building anything: its spaces, and every class
    it names (each resolved through the registry or ``custom_objects``, never imported). A class
    that is neither: :class:`~lifelong.errors.CheckpointUnsupportedError`; anything malformed:
    ``CheckpointError`` naming ``source`` and the member."""
    refs = _class_references([meta["policy"], meta["constructor_kwargs"]], [])
    for name in refs:
        try:
            resolve_class(name, custom_objects, "class")
        except ValueError as exc:
            raise CheckpointUnsupportedError(f"{source}: member {META!r}: {exc}") from None
    try:
        for key in ("observation_space", "action_space"):
            space_from_dict(meta[key])
        from_json(meta["constructor_kwargs"], custom_objects, "constructor argument")
        from_json(meta.get("hyperparameters") or {}, custom_objects, "hyperparameter")
    except Exception as exc:  # whatever a crafted description makes the decoders raise
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{source}: member {META!r} is malformed ({type(exc).__name__}: {detail})") from exc


def verify(path: str | os.PathLike, max_bytes: int = archive.DEFAULT_MAX_BYTES,
           custom_objects: dict[str, Any] | None = None) -> dict:
    """Check the checkpoint at ``path`` completely, as loading does, and return its manifest.

    Every member is checked against its size and checksums and decoded with the safe loaders,
    within the reading bounds (``max_bytes``, 1 GiB by default: see
    :mod:`lifelong.checkpoint.archive`), and the model description and every member's structure
    are checked for what loading reads: the spaces are decoded and every class the file names
    is resolved (through the registry or ``custom_objects``, never by importing: a class that is
    neither is a :class:`~lifelong.errors.CheckpointUnsupportedError`). ``FileNotFoundError`` for a
    missing path, :class:`lifelong.CheckpointError` naming the path and the fault otherwise.
    """
    manifest, decoded = archive.verify_and_decode(path, max_bytes)
    check_description(_check_members(decoded, path), path, custom_objects)
    return manifest
