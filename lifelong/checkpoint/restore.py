"""Members -> model: restore a saved state into a model (:func:`load_state`) or build one from a
file (:func:`load_model`), after the compatibility checks."""
from __future__ import annotations

import collections
import inspect
import os
import pathlib
import warnings
from typing import Any

import torch

from lifelong.agent.collapse import CollapseReset
from lifelong.agent.hyperparameters import TUNABLE
from lifelong.checkpoint import archive
from lifelong.checkpoint.codec import class_name, from_json, resolve_class
from lifelong.checkpoint.counters import (
    COUNTERS,
    _apply_hyperparameters,
)
from lifelong.checkpoint.env_state import _obs_from_tree, _restore_streams, _restore_vec_normalize
from lifelong.checkpoint.members import (
    ENV_STATE,
    META,
    OPTIMIZER,
    POLICY,
    RNG,
    VEC_NORMALIZE,
    VGS,
    _check_members,
    check_description,
    from_file,
    policy_state_dict,
    uncompiled,
    without_compile_prefix,
)
from lifelong.checkpoint.rng import _restore_rng, _set_space_rng
from lifelong.checkpoint.spaces import space_from_dict, spaces_equal
from lifelong.errors import CheckpointAgentError, CheckpointError, CheckpointMismatchError
from lifelong.optim import UPGD, UPGDW, AdaptiveUPGD

__all__ = ["load_state", "load_model"]


def arguments_of_older_files(cls: type, ctor: dict[str, Any]) -> None:
    """Fill in, in place, a constructor argument that was added after a file was written, with the
    value that reproduces how that file's model was trained (a new default must not change a
    resumed run's training; pass the argument to ``load`` to choose otherwise):

    - ``quantile_mean_loss`` (added in commit 0d82bac, default ``"squared_error"``): before it,
      a quantile critic's mean learnt through the quantile-Huber loss, ``"quantile_huber"``;
    - ``collapse_reset`` (added on 2026-12-01, default ``True`` for ``DistributionalPPO``):
      before it no agent reset its action head, ``False`` (and its initial level could not be
      known for a trained model).
    """
    params = inspect.signature(cls.__init__).parameters
    if "quantile_mean_loss" in params and "quantile_mean_loss" not in ctor:
        if ctor.get("critic", params["critic"].default) == "quantile":
            ctor["quantile_mean_loss"] = "quantile_huber"
    if "collapse_reset" in params and "collapse_reset" not in ctor:
        ctor["collapse_reset"] = False


def saved_optimizer_class(model: Any, meta: dict) -> str | None:
    """The stored name (``module:Qualname``) of the optimizer class a checkpoint was written with
    (older files: its ``optimizer`` constructor argument, resolved as ``model``'s class resolves
    it), or None when it does not say."""
    name = meta.get("optimizer_class")
    if isinstance(name, str):
        return name
    saved = meta["constructor_kwargs"].get("optimizer")
    if saved is None:
        return None
    return class_name(type(model)._resolve_optimizer(saved))


def _check_optimizer(model: Any, state: dict, meta: dict, source: Any) -> None:
    live = model.policy.optimizer
    with from_file(source, META, "its optimizer class"):
        saved = saved_optimizer_class(model, meta)
    if saved is not None and saved != class_name(type(live)):
        raise CheckpointMismatchError(
            f"{source}: the checkpoint's optimizer is {saved.rpartition(':')[2]} ({saved}), the model's is "
            f"{type(live).__name__} ({class_name(type(live))}): its state would not mean the same thing; "
            "load with the same optimizer, or pass reset_optimizer=True for fresh optimizer state"
        )
    groups = state[OPTIMIZER]["param_groups"]
    live_sizes = [len(g["params"]) for g in live.param_groups]
    if [len(g["params"]) for g in groups] != live_sizes:
        raise CheckpointMismatchError(
            f"{source}: the checkpoint's optimizer state does not fit this model's optimizer "
            f"({type(live).__name__} with param groups of sizes {live_sizes})"
        )
    if type(live) in ELEMENTWISE_OPTIMIZERS:
        _check_elementwise_state(model, state[OPTIMIZER], source)
    elif isinstance(live, (UPGD, AdaptiveUPGD, UPGDW)):
        try:
            live.check_state_dict(state[OPTIMIZER])
        except ValueError as exc:
            raise CheckpointMismatchError(f"{source}: the checkpoint's optimizer state does not fit this model's "
                                          f"optimizer: {exc}") from None


#: torch optimizers whose per-parameter state is a scalar step count and tensors of the
#: parameter's shape (moments, sums, momentum buffers). Their ``load_state_dict`` takes any shape,
#: and a step with a moment of another shape reads out of bounds (fused Adam: a segmentation
#: fault), so a state that does not fit is refused at load. The UPGD family checks its own
#: (``check_state_dict``, also before anything is restored); other classes are loaded as torch
#: loads them.
ELEMENTWISE_OPTIMIZERS = (
    torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.RMSprop, torch.optim.Adagrad,
    torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam, torch.optim.Rprop, torch.optim.ASGD,
    torch.optim.Adadelta,
)


def _check_elementwise_state(model: Any, saved: dict, source: Any) -> None:
    """Every saved per-parameter tensor is a scalar or has its parameter's shape (parameters
    matched by position, group by group, as ``load_state_dict`` matches them); else a
    :class:`~lifelong.errors.CheckpointMismatchError` naming the parameter and the key (a model
    built with other ``optimizer_groups`` puts other parameters in a group of the same size)."""
    names = {p: n for n, p in model.policy.named_parameters()}
    for saved_group, live_group in zip(saved["param_groups"], model.policy.optimizer.param_groups):
        for index, param in zip(saved_group["params"], live_group["params"]):
            for key, value in saved["state"].get(index, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    raise CheckpointMismatchError(
                        f"{source}: the checkpoint's optimizer state does not fit this model's optimizer: "
                        f"the saved {key!r:.40} in the place of parameter {names.get(param, '?')} has shape "
                        f"{tuple(value.shape)}, the parameter {tuple(param.shape)} (a model built with other "
                        "optimizer_groups, or a damaged file)"
                    )


def _check_env_state(model: Any, tree: dict, source: Any) -> None:
    """The saved last observations must be batches of ``n_envs`` observations of the space."""
    n = int(model.n_envs)

    def fits(obs: Any, space: Any) -> bool:
        if obs is None:
            return True
        if isinstance(obs, dict):
            return hasattr(space, "spaces") and set(obs) == set(space.spaces) and all(
                fits(obs[k], space.spaces[k]) for k in obs)
        return hasattr(obs, "shape") and tuple(obs.shape) == (n, *space.shape)

    starts = tree["last_episode_starts"]
    if not (fits(tree["last_obs"], model.observation_space) and fits(tree["last_original_obs"], model.observation_space)
            and (starts is None or (hasattr(starts, "shape") and tuple(starts.shape) == (n,)))):
        raise CheckpointError(f"{source}: member {ENV_STATE!r} is malformed: its observations are not batches of "
                              f"{n} observations of {model.observation_space}")


def _check_compatible(model: Any, state: dict, meta: dict, env_state: bool, source: Any,
                      reset_optimizer: bool = False, rollout_state: bool = True) -> None:
    """Every check that can fail, made before anything is changed (a refused state leaves the
    model as it was)."""
    with from_file(source, META, "its observation or action space"):
        saved_obs, saved_act = space_from_dict(meta["observation_space"]), space_from_dict(meta["action_space"])
    if not spaces_equal(saved_obs, model.observation_space) or not spaces_equal(saved_act, model.action_space):
        raise CheckpointMismatchError(
            f"{source}: checkpoint spaces (observation {saved_obs}, action {saved_act}) do not match the "
            f"model's (observation {model.observation_space}, action {model.action_space})"
        )
    if bool(meta["has_vgs"]) != (model.vgs is not None):
        raise CheckpointMismatchError(
            f"{source}: checkpoint has vgs={'on' if meta['has_vgs'] else 'off'}, the model has "
            f"vgs={'on' if model.vgs is not None else 'off'}"
        )
    live = policy_state_dict(model.policy)
    saved = state[POLICY]
    if not isinstance(saved, dict) or set(saved) != set(live):
        missing = sorted(set(live) - set(saved or {}))[:5]
        extra = sorted(set(saved or {}) - set(live))[:5]
        raise CheckpointMismatchError(
            f"{source}: the checkpoint's policy does not fit this model's policy (missing {missing}, unexpected "
            f"{extra}): it was built with other architecture arguments"
        )
    for key, tensor in live.items():
        other = saved[key]
        if not isinstance(other, torch.Tensor) or other.shape != tensor.shape:
            shape = tuple(other.shape) if isinstance(other, torch.Tensor) else type(other).__name__
            raise CheckpointMismatchError(
                f"{source}: the checkpoint's policy does not fit this model's policy: {key} has shape "
                f"{shape} in the checkpoint, {tuple(tensor.shape)} in the model"
            )
    if not reset_optimizer:
        _check_optimizer(model, state, meta, source)
    if rollout_state:
        try:
            model.set_rollout_state(state[ENV_STATE], check_only=True)
        except ValueError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
    if model.collapse_reset is not None and meta.get("collapse_reset") is not None:
        try:
            CollapseReset().load_state_dict(meta["collapse_reset"])  # the check alone
        except ValueError as exc:
            raise CheckpointError(f"{source}: member {META!r} is malformed: {exc}") from None
    if env_state and model.env is not None and int(model.n_envs) != int(meta["n_envs"]):
        raise CheckpointMismatchError(
            f"{source}: the saved last observation is for n_envs={meta['n_envs']}, the model's env has "
            f"{model.n_envs} copies"
        )


def _check_algorithm(cls: type, meta: dict, source: Any) -> None:
    """The checkpoint was written by ``cls`` or a class it derives from; otherwise a
    :class:`~lifelong.errors.CheckpointAgentError` naming both (DistributionalPPO and
    DistributionalRecurrentPPO share a base class but not their checkpoints)."""
    saved_algorithm = str(meta["algorithm"])[:200]
    saved = saved_algorithm.rpartition(":")[2] or "(unnamed)"
    if saved_algorithm.rpartition(":")[2] not in {k.__qualname__ for k in cls.__mro__}:
        raise CheckpointAgentError(
            f"{source} holds a {saved} checkpoint ({saved_algorithm}); {cls.__name__} cannot load it: "
            f"load it with {saved}.load"
        )


def _restore(model: Any, state: dict, *, exact: bool, env_state: bool, source: Any,
             reset_optimizer: bool = False, rollout_state: bool = True, streams: bool = False) -> None:
    meta = _check_members(state, source)
    _check_compatible(model, state, meta, env_state, source, reset_optimizer, rollout_state)
    if env_state:
        _check_env_state(model, state[ENV_STATE], source)
    with from_file(source, POLICY, "the policy's parameters"):
        uncompiled(model.policy).load_state_dict(state[POLICY])
    if not reset_optimizer:
        with from_file(source, OPTIMIZER, "the optimizer state"):
            model.policy.optimizer.load_state_dict(state[OPTIMIZER])
    if model.vgs is not None:
        with from_file(source, VGS, "the gradient scaler's state"):
            model.vgs.load_state_dict(state[VGS])
    with from_file(source, META, "the counters"):
        for name in COUNTERS:
            setattr(model, name, from_json(meta["counters"][name]))
        model.num_timesteps = int(model.num_timesteps)
        model._n_updates = int(model._n_updates)

    venv = model.get_vec_normalize_env()
    if venv is not None and VEC_NORMALIZE in state:
        with from_file(source, VEC_NORMALIZE, "the VecNormalize statistics"):
            _restore_vec_normalize(venv, meta.get("vec_normalize"), state[VEC_NORMALIZE], env_state, source)
    elif VEC_NORMALIZE in state and exact and model.env is not None:
        warnings.warn(
            f"{source}: the checkpoint holds VecNormalize statistics but the env passed is not a VecNormalize; "
            "they are not applied (use lifelong.checkpoint.restore_vec_normalize(path, venv))",
            RuntimeWarning,
            stacklevel=3,
        )

    if exact:
        with from_file(source, META, "the episode buffers and random states"):
            window = int(meta.get("stats_window_size", model._stats_window_size))
            for name in ("ep_info_buffer", "ep_success_buffer"):
                saved = meta.get(name)
                setattr(model, name, None if saved is None else collections.deque(from_json(saved), maxlen=window))
            if model.collapse_reset is not None:  # R0 and B, computed from the episode buffer
                saved = meta.get("collapse_reset")
                if saved is None:
                    model.collapse_reset.restart()
                else:
                    model.collapse_reset.load_state_dict(saved)
            _set_space_rng(model.action_space, meta["rng"]["action_space"])
            _set_space_rng(model.observation_space, meta["rng"]["observation_space"])
        with from_file(source, RNG, "the random states"):
            _restore_rng(meta, state[RNG])
    # The rollout's recurrent state (LSTM states) travels with the weights that computed it, also
    # in a PBT exploit: the recipient's own states came from weights it no longer has. Not onto
    # an env that will be reset (load with force_reset): its episodes start with zero states.
    if rollout_state:
        model.set_rollout_state(state[ENV_STATE])
    if streams:  # the task stream's position is the run's time, as num_timesteps is
        _restore_streams(model.get_env(), meta.get("env_streams"), source)
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
    _check_algorithm(type(model), meta, "state")
    _check_compatible(model, state, meta, exact, "state")
    _apply_hyperparameters(model, meta)
    _restore(model, state, exact=exact, env_state=exact, source="state", streams=exact)


def file_object_name(file: Any) -> str:
    """How messages name a file object: its path when it has one (``open(path, "rb")``), else its
    type (a ``tempfile.TemporaryFile``'s ``name`` is a bare file-descriptor number)."""
    name = getattr(file, "name", None)
    if isinstance(name, (str, bytes, os.PathLike)):
        return os.fsdecode(name)
    return f"<{type(file).__name__} file object>"




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
    *,
    reset_optimizer: bool = False,
    max_bytes: int = archive.DEFAULT_MAX_BYTES,
    **kwargs: Any,
) -> Any:
    """Rebuild a model of class ``cls`` from the checkpoint at ``path`` (SB3's ``load`` semantics).

    ``env``: the env to continue on (its spaces must equal the checkpoint's: ``ValueError``
    naming both otherwise). ``force_reset=False`` keeps the saved last observation and
    episode-start flags, so training with the *same live env object* continues exactly.
    ``custom_objects`` and ``kwargs`` replace constructor arguments (unknown names:
    ``ValueError``); ``custom_objects`` also supplies classes the file names but lifelong will not
    import (a custom policy class: ``custom_objects={"policy": MyPolicy}``). Nothing is re-seeded
    (unless ``seed=`` is passed). ``tensorboard_log`` is never taken from the file (pass it).

    Loading into another optimizer class than the checkpoint's (``optimizer="adam"`` on an
    AdaptiveUPGD checkpoint) is a ``ValueError`` naming both; ``reset_optimizer=True`` instead
    builds fresh optimizer state over the loaded parameters. ``max_bytes`` caps what reading may
    inflate (see :mod:`lifelong.checkpoint.archive`).

    Missing file: ``FileNotFoundError``; a file that does not fit the model or env:
    :class:`lifelong.errors.CheckpointMismatchError` (a ``ValueError``); any other unreadable,
    malformed or crafted file: :class:`lifelong.CheckpointError` naming the path and the member.
    """
    custom_objects = dict(custom_objects or {})
    if isinstance(path, (str, os.PathLike)):
        path = pathlib.Path(path)
        if not path.exists() and not path.suffix:
            path = path.with_suffix(".zip")  # SB3: save("x") writes x.zip, load("x") reads it
    elif not hasattr(path, "read"):
        raise ValueError(f"path must be a file path or a binary file object, got {type(path).__name__}")
    if not isinstance(reset_optimizer, bool):
        raise ValueError(f"reset_optimizer must be True or False, got {reset_optimizer!r}")
    allowed = _constructor_parameters(cls) - {"self", "env", "device", "_init_setup_model"}
    setter_only = {k for k in kwargs if k in TUNABLE and k not in allowed}  # sigma, vgs_alpha
    unknown = sorted(set(custom_objects) - allowed - {"policy", "policy_class"}) + sorted(
        set(kwargs) - allowed - setter_only
    )
    if unknown:
        raise ValueError(
            f"unknown custom_objects/kwargs {unknown} for {cls.__name__}.load: expected constructor "
            f"arguments of {cls.__name__} ({', '.join(sorted(allowed))}) or tunable hyperparameters "
            f"({', '.join(TUNABLE)})"
        )
    tunable_overrides = {
        k: v for k, v in kwargs.items() if k in TUNABLE and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    kwargs = {k: v for k, v in kwargs.items() if k not in setter_only}
    if isinstance(path, pathlib.Path):
        state = archive.read_archive(path, max_bytes)
    else:
        path_name = file_object_name(path)  # from here on, messages name the file object
        state = archive.unpack(archive.read_file_object(path, path_name, max_bytes), path_name, max_bytes)
        path = path_name
    if POLICY in state:
        state[POLICY] = without_compile_prefix(state[POLICY])
    meta = _check_members(state, path)
    replaced = set(custom_objects) | set(kwargs)
    check_description(  # classes the caller replaces need not resolve
        dict(meta, policy="" if replaced & {"policy", "policy_class"} else meta["policy"],
             constructor_kwargs={k: v for k, v in meta["constructor_kwargs"].items() if k not in replaced}),
        path, custom_objects)
    _check_algorithm(cls, meta, path)

    with from_file(path, META, "its observation or action space"):
        obs_space = space_from_dict(meta["observation_space"])
        act_space = space_from_dict(meta["action_space"])
    if env is not None:
        env = cls._wrap_env(env, int(kwargs.get("verbose", 0)))
        if not spaces_equal(obs_space, env.observation_space) or not spaces_equal(act_space, env.action_space):
            raise CheckpointMismatchError(
                f"{path} was saved for observation space {obs_space} and action space {act_space}; the env passed "
                f"has observation space {env.observation_space} and action space {env.action_space}"
            )
        if not force_reset and env.num_envs != int(meta["n_envs"]):
            raise CheckpointMismatchError(
                f"{path} was saved with n_envs={meta['n_envs']}; force_reset=False needs an env with as many "
                f"copies, the env passed has {env.num_envs} (or load with force_reset=True)"
            )

    with from_file(path, META, "its constructor arguments"):
        ctor = from_json(meta["constructor_kwargs"], custom_objects, "constructor argument")
        ctor.pop("tensorboard_log", None)  # where to write logs is the caller's decision, never a file's
        arguments_of_older_files(cls, ctor)
        policy_override = custom_objects.pop("policy", custom_objects.pop("policy_class", None))
        policy = policy_override
        if policy is None:
            ref = meta["policy"]
            policy = ref if isinstance(ref, str) else resolve_class(ref["__class__"], custom_objects, "policy")
    ctor.update(custom_objects)
    ctor.update(kwargs)
    user_seed = ctor.pop("seed", None) if "seed" in kwargs else None
    ctor.pop("seed", None)

    overrides = sorted(set(custom_objects) | set(kwargs))
    what = "the model its constructor arguments describe" + (f" (with your {overrides})" if overrides else "")
    with from_file(path, META, what):
        model = cls(policy=policy, env=env, device=device, seed=None, _init_setup_model=False, **ctor)
        if env is None:
            model.observation_space = obs_space
            model.action_space = act_space
            model.n_envs = int(meta["n_envs"])
        model._setup_model()  # refuses sizes that would not fit in memory before allocating them
    model.seed = meta.get("seed")

    restore_env_state = env is None or not force_reset
    try:
        _restore(model, state, exact=True, env_state=restore_env_state, source=path, reset_optimizer=reset_optimizer,
                 rollout_state=restore_env_state, streams=True)
    except CheckpointMismatchError as exc:
        if overrides or model.get_vec_normalize_env() is not None:
            raise  # the caller's arguments or env decide: a mismatch
        # built from the file alone, the model can only mismatch the file if the file contradicts itself
        raise CheckpointError(f"{exc} (the checkpoint contradicts its own description: malformed)") from exc
    if env is not None and force_reset:
        model._last_obs = None
    if tunable_overrides:
        model.set_hyperparameters(**tunable_overrides)  # re-apply over the restored optimizer groups
    if user_seed is not None:
        model.seed = user_seed
        model.set_random_seed(user_seed)
    return model
