"""The agent's arguments: the ``agent:`` section, derived from the chosen agent's signature.

The top-level ``algo`` key chooses the agent (:data:`ALGORITHMS`): ``ppo`` (the default,
DistributionalPPO) or ``recurrent_ppo`` (DistributionalRecurrentPPO, LSTM policies). Defaults are
read from that agent's constructor with :mod:`inspect`, so the agent's own defaults are the
config defaults (``policy`` defaults to its first alias: ``MlpPolicy`` / ``MlpLstmPolicy``);
arguments without a validator in :data:`AGENT_KNOWN` are typed from their default.
"""
from __future__ import annotations

import copy
import inspect
from typing import Mapping

from lifelong.agent import ALGORITHMS, DEFAULT_ALGO
from lifelong.agent.collapse import CollapseReset
from lifelong.agent.critics import QUANTILE_MEAN_LOSSES
from lifelong.agent.optimizer import OPTIMIZERS
from lifelong.cli.config.errors import ConfigError, suggest
from lifelong.cli.config.run_options import RUN_KEYS
from lifelong.cli.config.signature import signature_defaults
from lifelong.cli.config.validators import (
    Any_,
    Bool,
    Choice,
    Float,
    FreeDict,
    Int,
    Kwargs,
    KwargsGroups,
    Optional,
    PolicyKwargs,
    Schedule,
    Str,
    V,
    known_items,
)
from lifelong.vgs import VarianceGradientScaler

__all__ = ["AGENT_KNOWN", "AGENT_EXCLUDED", "agent_class", "agent_defaults", "algo_of_class"]



def _optimizer_class(ctx):
    return OPTIMIZERS.get(ctx.get("optimizer", "adam"))


def _vgs_class(ctx):
    return VarianceGradientScaler


def _collapse_reset_class(ctx):
    return CollapseReset


#: upper bounds: beyond them a run cannot work on any one machine (the rollout buffer alone
#: would be terabytes); the agent also refuses sizes beyond this machine's memory (lifelong.agent.memory).
MAX_N_STEPS = 1 << 20
MAX_BATCH_SIZE = 1 << 24
MAX_OUTPUTS = 4096  # n_quantiles, n_atoms

#: validators of the agent arguments we know about; others are typed from their default.
AGENT_KNOWN: dict[str, V] = {
    "policy": Str(),
    "learning_rate": Schedule(),
    "n_steps": Int(min=1, max=MAX_N_STEPS),
    "batch_size": Int(min=2, max=MAX_BATCH_SIZE),
    "n_epochs": Int(min=1),
    "gamma": Float(0.0, 1.0),
    "gae_lambda": Float(0.0, 1.0),
    "clip_range": Schedule(),
    "clip_range_vf": Optional(Schedule()),
    "normalize_advantage": Bool(),
    "ent_coef": Float(min=0.0),
    "vf_coef": Float(min=0.0),
    "max_grad_norm": Optional(Float(min=0.0, min_open=True)),
    "use_sde": Bool(),
    "sde_sample_freq": Int(min=-1),
    "target_kl": Optional(Float(min=0.0, min_open=True)),
    "stats_window_size": Int(min=1),
    "policy_kwargs": PolicyKwargs(),
    "rollout_buffer_kwargs": Optional(FreeDict()),
    "device": Str(),
    "critic": Choice("quantile", "categorical"),
    "n_quantiles": Int(min=1, max=MAX_OUTPUTS),
    "huber_kappa": Float(min=0.0, min_open=True),
    "quantile_mean_loss": Choice(*QUANTILE_MEAN_LOSSES),
    "n_atoms": Int(min=2, max=MAX_OUTPUTS),
    "v_min": Float(),
    "v_max": Float(),
    "twin_critics": Bool(),
    "value_aggregation": Choice("min", "mean"),
    "optimizer": Choice("adam", "upgd", "adaptive_upgd", "upgdw"),
    "optimizer_kwargs": Kwargs(_optimizer_class),
    "optimizer_groups": KwargsGroups(_optimizer_class),
    "vgs": Bool(),
    "vgs_kwargs": Kwargs(_vgs_class),
    "collapse_reset": Bool(),
    "collapse_reset_kwargs": Kwargs(_collapse_reset_class),
    "normalize_returns": Bool(),
    "normalize_returns_horizon": Optional(Float(min=1.0)),
    "cvar_alpha": Optional(Float(0.0, 1.0, min_open=True)),
    "diagnostics_every": Optional(Int(min=0)),
}

#: constructor arguments that are not config keys (the run owns them).
AGENT_EXCLUDED = ("self", "env", "tensorboard_log", "verbose", "seed", "_init_setup_model",
                  "rollout_buffer_class")

def agent_class(algo: str = DEFAULT_ALGO) -> type:
    """The agent class a configuration with ``algo: ALGO`` builds."""
    if algo not in ALGORITHMS:
        raise ConfigError(f"algo: expected one of {list(ALGORITHMS)}, got {algo!r}{suggest(str(algo), list(ALGORITHMS))}")
    return ALGORITHMS[algo]


def algo_of_class(cls: type) -> str:
    """The ``algo`` value of an agent class (inverse of :func:`agent_class`)."""
    for name, klass in ALGORITHMS.items():
        if klass is cls:
            return name
    raise ConfigError(f"{cls.__name__} is not an agent the command line builds (expected one of {list(ALGORITHMS)})")


_AGENT_DEFAULTS: dict[str, dict] = {}


def agent_defaults(algo: str = DEFAULT_ALGO) -> dict:
    """Constructor defaults of the ``algo`` agent (read from its signature)."""
    if algo not in _AGENT_DEFAULTS:
        cls = agent_class(algo)
        params = dict(inspect.signature(cls.__init__).parameters)
        out = {"policy": next(iter(cls.policy_aliases))}
        out.update(signature_defaults(params, exclude=AGENT_EXCLUDED + ("policy",)))
        _AGENT_DEFAULTS[algo] = out
    return copy.deepcopy(_AGENT_DEFAULTS[algo])


def _agent_validator(name: str, default) -> V:
    if name in AGENT_KNOWN:
        return AGENT_KNOWN[name]
    if isinstance(default, bool):
        return Bool()
    if isinstance(default, int):
        return Optional(Int())
    if isinstance(default, float):
        return Optional(Float())
    if isinstance(default, str):
        return Str()
    return Any_()


def _validate_agent(agent, algo: str = DEFAULT_ALGO) -> dict:
    agent = FreeDict()("agent", agent)
    known = agent_defaults(algo)
    out = {}
    for k, v in known_items("agent", agent, known, hint=lambda k: _unknown_agent_key_hint(k, known, algo)):
        validator = _agent_validator(k, known[k])
        if isinstance(validator, (Kwargs, KwargsGroups)):
            out[k] = validator(f"agent.{k}", v, context={**known, **agent})
        else:
            out[k] = validator(f"agent.{k}", v)
    vmin = out.get("v_min", known.get("v_min"))
    vmax = out.get("v_max", known.get("v_max"))
    if isinstance(vmin, (int, float)) and isinstance(vmax, (int, float)) and vmin >= vmax:
        raise ConfigError(f"agent.v_max: expected a number greater than agent.v_min ({vmin}), got {vmax}")
    _check_policy_kwargs(out.get("policy", known["policy"]), out.get("policy_kwargs") or {}, algo)
    return out


def _unknown_agent_key_hint(k, known, algo: str = DEFAULT_ALGO) -> str:
    hint = suggest(k, list(known))
    other = [a for a, cls in ALGORITHMS.items() if a != algo and k in agent_defaults(a)]
    if k in PolicyKwargs.KNOWN:
        hint = f" (did you mean agent.policy_kwargs.{k}?)"
    elif not hint and k in RUN_KEYS:
        hint = f" ({k} is a top-level key, not an agent argument)"
    elif not hint and other:
        hint = f" ({k} is an argument of algo: {other[0]}, this config has algo: {algo})"
    return hint


def _check_policy_kwargs(policy, kwargs: Mapping, algo: str = DEFAULT_ALGO) -> None:
    cls = agent_class(algo)
    if not isinstance(policy, str):
        return
    pcls = cls.policy_aliases.get(policy)
    if pcls is None:
        raise ConfigError(f"agent.policy: unknown policy {policy!r} for algo: {algo} (expected one of "
                          f"{list(cls.policy_aliases)}){suggest(policy, list(cls.policy_aliases))}")
    names: set[str] = set()
    for klass in pcls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            continue
        names.update(n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
    names -= {"self", "observation_space", "action_space", "lr_schedule"}
    for k in kwargs:
        if k not in names:
            raise ConfigError(f"agent.policy_kwargs.{k}: unknown key{suggest(k, sorted(names))}")
