"""The optimizer and learning-rate arguments of :class:`~lifelong.agent.ppo.DistributionalPPO`:
the optimizer names (:data:`OPTIMIZERS`), their resolution to a class, the reconciliation of
``learning_rate`` with ``optimizer_kwargs["lr"]`` (:data:`DEFAULT_LEARNING_RATE`), the
arguments the policy builds its optimizer with, its param groups (``optimizer_groups``), and the
gradient scaler's defaults (:data:`DEFAULT_VGS_KWARGS`).
"""
from __future__ import annotations

from fnmatch import fnmatchcase
from numbers import Real
from typing import Any, Iterable

import torch as th

from lifelong.agent.hyperparameters import validate
from lifelong.agent.schedules import as_schedule
from lifelong.checkpoint.codec import from_json
from lifelong.optim import UPGD, UPGDW, AdaptiveUPGD

__all__ = [
    "OPTIMIZERS",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_VGS_KWARGS",
    "resolve_optimizer",
    "resolve_learning_rate",
    "policy_optimizer_kwargs",
    "check_optimizer_groups",
    "optimizer_param_groups",
]


class _DefaultLearningRate(float):
    """PPO's default learning rate, as a distinguishable object: ``learning_rate`` was
    "explicitly given" iff it is not this very object (so ``learning_rate=3e-4`` passed by a user
    still conflicts with ``optimizer_kwargs["lr"]``)."""

    def __repr__(self) -> str:
        return "0.0003"


DEFAULT_LEARNING_RATE = _DefaultLearningRate(3e-4)

#: optimizer names accepted by ``optimizer=`` -> class
OPTIMIZERS: dict[str, type[th.optim.Optimizer]] = {
    "adam": th.optim.Adam,
    "upgd": UPGD,
    "adaptive_upgd": AdaptiveUPGD,
    "upgdw": UPGDW,
}

#: the agent's default scaler arguments (merged under ``vgs_kwargs``). The scaler's own default
#: ``alpha=0.1`` stalls PPO: its noise-to-signal ratio over PPO minibatches is typically 30-200,
#: i.e. a step factor of 0.05-0.25 (measured on CartPole-v1, see docs/agent.md).
DEFAULT_VGS_KWARGS: dict[str, Any] = {"alpha": 1e-3}


def resolve_optimizer(optimizer: Any) -> type[th.optim.Optimizer]:
    """The optimizer class for ``optimizer=``: a name in :data:`OPTIMIZERS`, an encoded class
    reference or a ``torch.optim.Optimizer`` subclass (else ``ValueError``)."""
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r} is not supported: accepted values are {list(OPTIMIZERS)} or an optimizer class")
        return OPTIMIZERS[optimizer]
    if isinstance(optimizer, dict):
        optimizer = from_json(optimizer, where="optimizer")
    if isinstance(optimizer, type) and issubclass(optimizer, th.optim.Optimizer):
        return optimizer
    raise ValueError(f"optimizer={optimizer!r} is invalid: expected one of {list(OPTIMIZERS)} or a torch.optim.Optimizer subclass")


def resolve_learning_rate(learning_rate: Any, optimizer_kwargs: Any) -> tuple[dict[str, Any], Any]:
    """``(optimizer_kwargs without "lr", learning_rate)``: an ``"lr"`` in ``optimizer_kwargs`` is the
    learning rate (``ValueError`` when ``learning_rate`` was given as well); a number is
    validated, anything else becomes a schedule."""
    if optimizer_kwargs is not None and not isinstance(optimizer_kwargs, dict):
        raise ValueError(f"optimizer_kwargs must be a dict or None, got {optimizer_kwargs!r}")
    optimizer_kwargs = dict(optimizer_kwargs or {})
    if "lr" in optimizer_kwargs:
        if learning_rate is not DEFAULT_LEARNING_RATE:
            raise ValueError(
                f"learning_rate={learning_rate!r} and optimizer_kwargs['lr']={optimizer_kwargs['lr']!r} were both "
                "given: pass the learning rate in only one of them"
            )
        learning_rate = optimizer_kwargs.pop("lr")
    if isinstance(learning_rate, _DefaultLearningRate):
        learning_rate = float(learning_rate)
    if isinstance(learning_rate, Real) and not isinstance(learning_rate, bool):
        learning_rate = validate("learning_rate", learning_rate)
    else:
        learning_rate = as_schedule(learning_rate, "learning_rate")
    return optimizer_kwargs, learning_rate


def policy_optimizer_kwargs(optimizer_class: type[th.optim.Optimizer], optimizer_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``optimizer_kwargs`` the policy builds its optimizer with (a copy). ``"adam"`` gets
    Stable-Baselines3's ``eps=1e-5`` and torch's fused implementation (``fused=True``: one kernel
    for all parameters, on the CPU as on a GPU; the same update as the per-tensor loop torch
    otherwise runs on the CPU, rounded differently: 63 vs 248 us per step for the default
    CartPole policy, one thread), unless given (or ``foreach`` is)."""
    optimizer_kwargs = dict(optimizer_kwargs)
    if optimizer_class is th.optim.Adam:
        optimizer_kwargs.setdefault("eps", 1e-5)  # as Stable-Baselines3's PPO
        if "foreach" not in optimizer_kwargs:
            optimizer_kwargs.setdefault("fused", True)
    return optimizer_kwargs


#: group keys the agent owns: the learning rate is set on every group at every update (from
#: ``learning_rate`` or its schedule), and ``params`` is what the patterns choose.
_AGENT_OWNED_GROUP_KEYS = ("lr", "params")


def check_optimizer_groups(optimizer_groups: Any) -> dict[str, dict[str, Any]] | None:
    """A validated copy of ``optimizer_groups`` (``None`` stays ``None``): a dict from a
    parameter-name pattern (a non-empty ``fnmatch`` glob over ``policy.named_parameters()``
    names, e.g. ``"action_net.*"``) to that group's optimizer arguments (a dict without ``"lr"``
    or ``"params"``). Whether the patterns match and the arguments fit the optimizer is checked
    when the optimizer is built (:func:`optimizer_param_groups`), where the names are known."""
    if optimizer_groups is None:
        return None
    if not isinstance(optimizer_groups, dict):
        raise ValueError(f"optimizer_groups must be a dict from parameter-name pattern to optimizer arguments, or None; "
                         f"got {optimizer_groups!r}")
    checked: dict[str, dict[str, Any]] = {}
    for pattern, kwargs in optimizer_groups.items():
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"optimizer_groups: pattern {pattern!r} is invalid: expected a non-empty string "
                             "(a glob over parameter names, e.g. 'action_net.*')")
        if not isinstance(kwargs, dict):
            raise ValueError(f"optimizer_groups[{pattern!r}] must be a dict of optimizer arguments, got {kwargs!r}")
        owned = sorted(k for k in kwargs if k in _AGENT_OWNED_GROUP_KEYS)
        if owned:
            raise ValueError(f"optimizer_groups[{pattern!r}] must not set {owned}: the learning rate is the agent's "
                             "(learning_rate and its schedule set every group's lr at each update) and the "
                             "pattern chooses the params")
        checked[pattern] = dict(kwargs)
    return checked


def optimizer_param_groups(named_parameters: Iterable[tuple[str, th.nn.Parameter]],
                           optimizer_groups: dict[str, dict[str, Any]] | None,
                           optimizer_class: type[th.optim.Optimizer],
                           optimizer_kwargs: dict[str, Any], lr: float) -> list[dict[str, Any]]:
    """The param groups the policy's optimizer is built with.

    Without ``optimizer_groups``: one group of every parameter, in ``named_parameters`` order
    (what Stable-Baselines3 builds). With it: the parameters no pattern matches form the first
    group (the optimizer's own arguments), then one group per pattern, in the dict's order,
    holding the parameters whose name it matches, in ``named_parameters`` order, with that
    pattern's arguments over the optimizer's. A group's arguments apply to its parameters
    only; a hyperparameter the agent sets later (``learning_rate`` at every update,
    ``set_hyperparameters(sigma=...)``) is set on every group.

    ``ValueError`` (naming the pattern or parameter and the parameter names) for a pattern that
    matches no parameter, a parameter two patterns match, an argument the optimizer does not
    have (torch would keep it silently in the group) or a value its constructor refuses.
    """
    named = list(named_parameters)
    if not optimizer_groups:
        return [{"params": [p for _, p in named]}]
    names = [n for n, _ in named]
    chosen: dict[str, list[th.nn.Parameter]] = {pattern: [] for pattern in optimizer_groups}
    rest: list[th.nn.Parameter] = []
    for name, param in named:
        matches = [pattern for pattern in optimizer_groups if fnmatchcase(name, pattern)]
        if len(matches) > 1:
            raise ValueError(f"optimizer_groups: parameter {name!r} matches more than one pattern {matches}: "
                             "each parameter belongs to one group")
        (chosen[matches[0]] if matches else rest).append(param)
    for pattern, params in chosen.items():
        if not params:
            raise ValueError(f"optimizer_groups: pattern {pattern!r} matches no parameter of the policy; "
                             f"its parameters are {names}")
    first = named[0][1]
    probe = [th.nn.Parameter(th.zeros(1, dtype=first.dtype, device=first.device))]
    accepted = set(optimizer_class(probe, lr=lr, **optimizer_kwargs).defaults) - set(_AGENT_OWNED_GROUP_KEYS)
    for pattern, kwargs in optimizer_groups.items():
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise ValueError(f"optimizer_groups[{pattern!r}]: {unknown} are not arguments of "
                             f"{optimizer_class.__name__}; accepted: {sorted(accepted)}")
        try:  # the constructor's own checks of the values (torch does not check a group's)
            optimizer_class(probe, lr=lr, **{**optimizer_kwargs, **kwargs})
        except (ValueError, TypeError) as e:
            raise ValueError(f"optimizer_groups[{pattern!r}]: {e}") from None
    groups = [{"params": rest}] if rest else []
    groups += [{"params": chosen[pattern], **kwargs} for pattern, kwargs in optimizer_groups.items()]
    return groups
