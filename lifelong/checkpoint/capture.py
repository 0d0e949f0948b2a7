"""Model -> members: capture a model's full training state (:func:`save_state`, :func:`save_model`)."""
from __future__ import annotations

import collections
import io
import json
import os
import pathlib
from typing import Any

import numpy as np
import stable_baselines3
import torch

from lifelong import __version__
from lifelong.checkpoint import archive
from lifelong.checkpoint.codec import class_name, to_json
from lifelong.checkpoint.counters import COUNTERS
from lifelong.checkpoint.env_state import (
    _obs_tree,
    _vec_normalize_meta,
    _vec_normalize_tensors,
    stream_states,
)
from lifelong.checkpoint.members import (
    ENV_STATE,
    META,
    OPTIMIZER,
    POLICY,
    RNG,
    VEC_NORMALIZE,
    VGS,
    policy_state_dict,
)
from lifelong.checkpoint.rng import _numpy_rng, _python_rng, _space_rng
from lifelong.checkpoint.spaces import space_to_dict

__all__ = ["save_state", "save_model"]

# constructor arguments that describe the run, not the model; never stored, may be given at load
_RUN_ARGS = ("policy", "env", "device", "_init_setup_model", "tensorboard_log", "seed")


def _policy_ref(model: Any) -> Any:
    policy_class = model.policy_class
    for alias, cls in getattr(type(model), "policy_aliases", {}).items():
        if cls is policy_class:
            return alias
    return {"__class__": class_name(policy_class)}


def _episode_buffer(buffer: collections.deque | None, where: str) -> Any:
    if buffer is None:
        return None
    return to_json(list(buffer), where)


def _capture(model: Any) -> dict[str, Any]:
    """The raw members of ``model``'s checkpoint (tensor trees not yet encoded)."""
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
        "collapse_reset": None if model.collapse_reset is None else model.collapse_reset.state_dict(),
        "optimizer_class": class_name(type(model.policy.optimizer)),
        "vec_normalize": None if venv is None else _vec_normalize_meta(venv),
        "env_streams": stream_states(model.get_env()),
        "versions": {
            "lifelong": __version__,
            "torch": torch.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "numpy": np.__version__,
        },
    }
    members: dict[str, Any] = {
        META: meta,
        POLICY: policy_state_dict(model.policy),
        OPTIMIZER: model.policy.optimizer.state_dict(),
        RNG: {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        ENV_STATE: {
            "last_obs": _obs_tree(model._last_obs),
            "last_episode_starts": _obs_tree(model._last_episode_starts),
            "last_original_obs": _obs_tree(model._last_original_obs),
            **model.rollout_state(),  # a recurrent agent's LSTM states
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
