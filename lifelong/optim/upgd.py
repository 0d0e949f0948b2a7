"""UPGD optimizer family: utility-based perturbed gradient descent (Elsayed & Mahmood, ICLR 2024).

Three ordinary :class:`torch.optim.Optimizer` subclasses:

* :class:`UPGD` -- first-order, global utility, protecting;
* :class:`AdaptiveUPGD` -- the same gating around Adam's bias-corrected direction;
* :class:`UPGDW` -- :class:`AdaptiveUPGD` with AdamW's defaults.

For every weight ``w`` with gradient ``g`` at that weight's step ``t``::

    u_t   = beta_utility * u_{t-1} + (1 - beta_utility) * (-g * w)
    û_t   = u_t / (1 - beta_utility ** t)
    eta   = max(max over all stepping weights of all groups of û_t, tiny)
    s     = sigmoid(û_t / eta)
    w    <- w * (1 - lr * weight_decay) - lr * (d + xi) * (1 - s),   xi ~ N(0, sigma^2)

with ``d = g`` (UPGD) or ``d = m̂ / (sqrt(v̂) + eps)`` (AdaptiveUPGD, UPGDW; Adam's moments of
the raw gradient, each bias-corrected with the parameter's own step count). ``tiny`` is
``torch.finfo(dtype).tiny``, the smallest positive normal number of the parameter dtype: the
floor only changes anything when no utility is positive, and then no division by zero (or sign
inversion of the gating) can happen.

Two implementations of the same arithmetic are kept: a multi-tensor path built on
``torch._foreach_*`` (the default, :mod:`lifelong.optim._foreach`) and a per-tensor path written
for reading (``foreach=False``, :mod:`lifelong.optim._reference`). Both perform the same
floating-point operations in the same order and give bit-identical results. The scalars they
share are in :mod:`lifelong.optim._common`, the scratch memory and the noise in
:mod:`lifelong.optim._workspace`, the hyperparameter checks in :mod:`lifelong.optim._validation`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lifelong.optim._common import _global_max
from lifelong.optim._foreach import _apply_foreach, _stats_foreach
from lifelong.optim._reference import _apply_single, _stats_single
from lifelong.optim._validation import _validate_group
from lifelong.optim._workspace import _draw_noise, _Workspace

__all__ = ["UPGD", "AdaptiveUPGD", "UPGDW"]

_GENERATOR_KEY = "generator_state"


# --------------------------------------------------------------------------------------------
# the optimizer
# --------------------------------------------------------------------------------------------
class _UPGDBase(Optimizer):
    """Shared machinery; use :class:`UPGD`, :class:`AdaptiveUPGD` or :class:`UPGDW`."""

    _adaptive: bool = False

    def __init__(self, params: Iterable, defaults: dict[str, Any],
                 generator: torch.Generator | None) -> None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {generator!r}")
        _validate_group(dict(defaults), self._adaptive)  # clear error before any group is built
        self._generator = generator
        self._workspace = _Workspace()
        super().__init__(params, defaults)

    # -- groups, pickling, state_dict ------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        _validate_group(self.param_groups[-1], self._adaptive)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickling passes "_generator_blob" (see __getstate__); torch's load_state_dict also
        # calls __setstate__, without it, and must leave the generator alone.
        has_blob = "_generator_blob" in state
        blob = state.pop("_generator_blob", None)
        super().__setstate__(state)
        if has_blob:  # unpickling: __init__ did not run
            self._workspace = _Workspace()
            self._generator = None
            if blob is not None:
                self._generator = torch.Generator(device=blob[0])
                self._generator.set_state(blob[1])
        for group in self.param_groups:
            group.setdefault("foreach", None)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        generator = self._generator
        state["_generator_blob"] = (None if generator is None
                                    else (str(generator.device), generator.get_state()))
        return state

    @property
    def generator(self) -> torch.Generator | None:
        """The generator the noise is drawn from (``None``: torch's global RNG of the device)."""
        return self._generator

    def state_dict(self) -> dict[str, Any]:
        """Torch's optimizer state dict, plus ``"generator_state"`` (a uint8 tensor) when the
        optimizer draws its noise from its own generator. Tensors, numbers and strings only."""
        sd = super().state_dict()
        if self._generator is not None:
            sd[_GENERATOR_KEY] = self._generator.get_state().clone()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict from :meth:`state_dict`. The state tensors are copied, so the
        optimizer never shares memory with the dict (or with the optimizer it came from)."""
        state_dict = dict(state_dict)
        generator_state = state_dict.pop(_GENERATOR_KEY, None)
        state_dict["state"] = {k: {n: (v.clone() if isinstance(v, Tensor) else v)
                                   for n, v in s.items()}
                               for k, s in state_dict["state"].items()}
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            _validate_group(group, self._adaptive)
        if generator_state is not None and self._generator is not None:
            if not isinstance(generator_state, Tensor) or generator_state.dtype != torch.uint8:
                raise ValueError("generator_state must be a uint8 tensor, got "
                                 f"{type(generator_state).__name__}")
            self._generator.set_state(generator_state.cpu())

    # -- the step ------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step. ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:  # refuse before any state changes
            for p in group["params"]:
                if p.grad is not None and (p.grad.is_sparse or torch.is_complex(p)):
                    kind = "sparse gradients" if p.grad.is_sparse else "complex parameters"
                    raise RuntimeError(f"{type(self).__name__} does not support {kind}")

        # Phase 1: moments and utilities of every parameter that has a gradient, and the largest
        # bias-corrected utility of each tensor (as tensors: no host synchronisation).
        plans = []
        maxima: list[Tensor] = []
        for group in self.param_groups:
            buckets = self._buckets(group)
            if not buckets:
                continue
            foreach = group["foreach"]
            if foreach is None:
                foreach = all(b["params"][0].device.type in ("cpu", "cuda") for b in buckets)
            update_stats = _stats_foreach if foreach else _stats_single
            for bucket in buckets:
                maxima.extend(update_stats(bucket, group, self._adaptive))
            plans.append((group, buckets, foreach))
        if not plans:
            return loss

        eta = _global_max(maxima)
        # Phase 2: gates, noise, weight decay and the step.
        for group, buckets, foreach in plans:
            noise = _draw_noise(buckets, group["sigma"], self._generator, self._workspace)
            for bucket, bucket_noise in zip(buckets, noise):
                if foreach:
                    _apply_foreach(bucket, group, eta, bucket_noise, self._adaptive,
                                   self._workspace)
                else:
                    _apply_single(bucket, group, eta, bucket_noise, self._adaptive)
        return loss

    def _buckets(self, group: dict[str, Any]) -> list[dict[str, Any]]:
        """Parameters of ``group`` that have a gradient, grouped by (device, dtype, step count)
        in their order of first appearance; initialises missing state and counts the step."""
        buckets: dict[tuple, dict[str, Any]] = {}
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["utility"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if self._adaptive:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            key = (p.device, p.dtype, state["step"])
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = {"step": state["step"], "params": [], "grads": [],
                                         "utility": [], "exp_avg": [], "exp_avg_sq": []}
            bucket["params"].append(p)
            bucket["grads"].append(g)
            bucket["utility"].append(state["utility"])
            if self._adaptive:
                bucket["exp_avg"].append(state["exp_avg"])
                bucket["exp_avg_sq"].append(state["exp_avg_sq"])
        return list(buckets.values())

    # -- diagnostics -----------------------------------------------------------------------
    @torch.no_grad()
    def gating_stats(self) -> dict[str, float]:
        """Summary of the gating, computed from the optimizer state (one host sync).

        ``gate_mean``: mean of ``1 - s`` over all weights with state; ``utility_mean`` and
        ``utility_min``: of the bias-corrected utilities ``û``; ``utility_max``: the global
        ``eta`` (floored maximum of ``û``), i.e. the last step's ``eta`` when every parameter
        took part in it. Empty before the first step."""
        utilities = []
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state or state["utility"].numel() == 0:
                    continue
                correction = 1.0 - group["beta_utility"] ** state["step"]
                utilities.append(state["utility"].flatten().double() / correction)
        if not utilities:
            return {}
        u = torch.cat([x.to(utilities[0].device) for x in utilities])
        eta = u.max().clamp_min(torch.finfo(torch.float32).tiny)
        gate = torch.sigmoid(u / -eta)
        values = torch.stack([gate.mean(), u.mean(), eta, u.min()]).tolist()
        return dict(zip(("gate_mean", "utility_mean", "utility_max", "utility_min"), values))


# --------------------------------------------------------------------------------------------
# public classes
# --------------------------------------------------------------------------------------------
class UPGD(_UPGDBase):
    r"""Utility-based perturbed gradient descent (first-order, global utility, protecting).

    ``w <- w (1 - lr wd) - lr (g + xi) (1 - sigmoid(û / eta))``, see the module docstring.

    Args:
        params: parameters or param groups, as for any torch optimizer.
        lr: step size (``>= 0``).
        weight_decay: decoupled weight decay, ``w * (1 - lr * weight_decay)`` (``>= 0``).
        beta_utility: decay of the utility trace, in ``[0, 1)``.
        sigma: standard deviation of the Gaussian perturbation (``>= 0``; 0 turns it off).
        generator: optional :class:`torch.Generator` for the noise (on the parameters' device
            or the CPU); its state is part of :meth:`state_dict`. ``None`` uses torch's
            global generator of the parameters' device.
        foreach: ``None`` (default: multi-tensor path on CPU and CUDA), ``True`` or ``False``
            (per-tensor reference path). Both give identical results.
    """

    def __init__(self, params: Iterable, lr: float = 1e-5, weight_decay: float = 0.001,
                 beta_utility: float = 0.999, sigma: float = 0.001, *,
                 generator: torch.Generator | None = None, foreach: bool | None = None) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, beta_utility=beta_utility,
                        sigma=sigma, foreach=foreach)
        super().__init__(params, defaults, generator)


class AdaptiveUPGD(_UPGDBase):
    r"""UPGD around Adam's direction: ``g`` in the update becomes ``m̂ / (sqrt(v̂) + eps)``.

    The utility still uses the raw gradient; weight decay is decoupled; the step is ``lr``.
    Arguments as :class:`UPGD`, plus ``betas`` (each in ``[0, 1)``) and ``eps`` (``> 0``)
    for Adam's moments.
    """

    _adaptive = True

    def __init__(self, params: Iterable, lr: float = 3e-4, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.001, beta_utility: float = 0.999,
                 sigma: float = 0.001, *, generator: torch.Generator | None = None,
                 foreach: bool | None = None) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        beta_utility=beta_utility, sigma=sigma, foreach=foreach)
        super().__init__(params, defaults, generator)


class UPGDW(AdaptiveUPGD):
    r""":class:`AdaptiveUPGD` with AdamW's defaults (``lr=1e-3``, ``weight_decay=0.01``):
    a drop-in for :class:`torch.optim.AdamW`."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, beta_utility: float = 0.999,
                 sigma: float = 0.001, *, generator: torch.Generator | None = None,
                 foreach: bool | None = None) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         beta_utility=beta_utility, sigma=sigma, generator=generator,
                         foreach=foreach)
