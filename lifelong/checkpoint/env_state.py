"""Env-side state: the last observations and episode starts, and ``VecNormalize`` statistics."""
from __future__ import annotations

import collections
import os
import warnings
from typing import Any

import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize, unwrap_vec_normalize

from lifelong.checkpoint import archive
from lifelong.checkpoint.members import META, VEC_NORMALIZE, _check_members, from_file
from lifelong.errors import CheckpointError, CheckpointMismatchError

__all__ = ["restore_vec_normalize", "restore_env_streams"]


def stream_states(venv: Any) -> list | None:
    """Each env copy's task-stream position (``stream_state()`` of its ``lifelong.envs``
    wrappers), or None when there is no env or it has no non-stationary wrapper."""
    if venv is None or not venv.has_attr("stream_state"):
        return None
    return [list(states) for states in venv.env_method("stream_state")]


def _restore_streams(venv: Any, saved: list | None, source: Any) -> None:
    """Put ``venv``'s non-stationary wrappers at the saved stream positions (copy by copy), so
    that a resumed run continues its task sequence. Nothing to do without saved positions (an
    older file, a stationary env) or without such wrappers in ``venv`` (the caller chose another
    env); positions for another number of copies or another stack of wrappers are not applied
    (``RuntimeWarning``): the env then starts its stream where it is."""
    if saved is None or venv is None or not venv.has_attr("stream_state"):
        return
    problem = _streams_mismatch(venv, saved)
    if problem:
        warnings.warn(f"{source}: {problem}: its stream is not moved there", RuntimeWarning, stacklevel=4)
        return
    for i, states in enumerate(saved):
        venv.env_method("set_stream_state", states, indices=i)


def _streams_mismatch(venv: Any, saved: list) -> str | None:
    live = venv.env_method("stream_state")
    wrappers = [[s["wrapper"] for s in states] for states in live]
    if len(saved) != len(live) or wrappers != [[s["wrapper"] for s in states] for states in saved]:
        return (f"the checkpoint's env was at a position in its task stream ({len(saved)} copies, wrappers "
                f"{[s['wrapper'] for s in saved[0]]}) that does not fit this env ({len(live)} copies, wrappers "
                f"{wrappers[0] if wrappers else []})")
    return None


def restore_env_streams(path_or_state: str | os.PathLike | dict, venv: Any, pin: bool = False) -> int | None:
    """Put ``venv``'s non-stationary wrappers (``lifelong.envs``) where the checkpoint's training
    env was in its task stream, every copy at the checkpoint's copy 0 (the copies of a training
    env share their task sequence by default); with ``pin=True`` held in that phase, as an
    evaluation env is (``lifelong eval``). Returns that phase, or None when the checkpoint has no
    stream position (a stationary env, an older file). ``load(path, env=...)`` restores the
    positions itself, copy by copy. ``ValueError`` when ``venv`` has no such wrappers or other
    ones (then nothing is changed)."""
    state = path_or_state if isinstance(path_or_state, dict) else archive.read_archive(path_or_state)
    source = "state" if isinstance(path_or_state, dict) else path_or_state
    saved = _check_members(state, source).get("env_streams")
    if saved is None:
        return None
    if not venv.has_attr("stream_state"):
        raise ValueError(f"{source}: the checkpoint's env had non-stationary wrappers "
                         f"{[s['wrapper'] for s in saved[0]]}, this env has none")
    copies = [saved[0]] * venv.num_envs
    problem = _streams_mismatch(venv, copies)
    if problem:
        raise ValueError(f"{source}: {problem}")
    venv.env_method("set_stream_state", saved[0], pin)
    return int(venv.get_attr("phase", indices=0)[0])


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
            raise CheckpointMismatchError(f"{source}: the VecNormalize observation statistics do not fit the env's "
                                          "VecNormalize")
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
        raise CheckpointMismatchError(f"{source}: VecNormalize {what} has shape {np.shape(saved)}, the env's has {np.shape(live)}")


def _obs_from_tree(tree: Any) -> Any:
    if tree is None or not isinstance(tree, dict):
        return tree
    return collections.OrderedDict((k, v) for k, v in tree.items())


def restore_vec_normalize(path_or_state: str | os.PathLike | dict, venv: Any) -> VecNormalize:
    """Apply a checkpoint's ``VecNormalize`` statistics to ``venv`` (wrapping it in a new
    ``VecNormalize`` with the saved settings when it is not one) and return the VecNormalize."""
    state = path_or_state if isinstance(path_or_state, dict) else archive.read_archive(path_or_state)
    source = "state" if isinstance(path_or_state, dict) else path_or_state
    meta = _check_members(state, source)
    if VEC_NORMALIZE not in state:
        raise ValueError(f"{source}: the checkpoint holds no VecNormalize statistics (its env was not a VecNormalize)")
    settings = meta.get("vec_normalize")
    if not isinstance(settings, dict):
        raise CheckpointError(f"{source}: member {META!r} is malformed: 'vec_normalize' settings are missing")
    vn = unwrap_vec_normalize(venv)
    if vn is None:
        with from_file(source, META, "the VecNormalize settings"):
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
    with from_file(source, VEC_NORMALIZE, "the VecNormalize statistics"):
        _restore_vec_normalize(vn, settings, state[VEC_NORMALIZE], with_returns=False, source=source)
    return vn
