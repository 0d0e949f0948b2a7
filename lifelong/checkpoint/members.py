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
``env_state.pt``     ``_last_obs``, ``_last_episode_starts``, ``_last_original_obs``
``vec_normalize.pt`` ``obs_rms``, ``ret_rms``, ``returns`` (only when the env is a ``VecNormalize``)
"""
from __future__ import annotations

import os
import sys
from typing import Any

import torch

from lifelong.checkpoint import archive
from lifelong.checkpoint.counters import COUNTERS
from lifelong.errors import CheckpointError

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


def verify(path: str | os.PathLike) -> dict:
    """Check the checkpoint at ``path`` completely, as loading does, and return its manifest.

    Every member is checked against its size and checksums and decoded with the safe loaders,
    and the model description is checked for what loading reads. ``FileNotFoundError`` for a
    missing path, :class:`lifelong.CheckpointError` naming the path and the fault otherwise.
    """
    manifest, decoded = archive.verify_and_decode(path)
    _check_members(decoded, path)
    return manifest
