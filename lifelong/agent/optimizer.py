"""The optimizer and learning-rate arguments of :class:`~lifelong.agent.ppo.DistributionalPPO`:
the optimizer names (:data:`OPTIMIZERS`), their resolution to a class, the reconciliation of
``learning_rate`` with ``optimizer_kwargs["lr"]`` (:data:`DEFAULT_LEARNING_RATE`), the
arguments the policy builds its optimizer with, and the gradient scaler's defaults
(:data:`DEFAULT_VGS_KWARGS`).
"""
from __future__ import annotations

from numbers import Real
from typing import Any

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
