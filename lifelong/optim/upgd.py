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
    w    <- w * (1 - lr * weight_decay) - 2 * lr * (d + xi) * (1 - s),   xi ~ N(0, sigma^2)

with ``d = g`` (UPGD) or ``d = m̂ / (sqrt(v̂) + eps)`` (AdaptiveUPGD, UPGDW; Adam's moments of
the raw gradient, each bias-corrected with the parameter's own step count).

**Step convention: the factor 2 of the official code.** With no utility information (all
utilities equal, ``s = 1/2``) the step is exactly the base optimizer's at the same ``lr``:
UPGD's is SGD's, AdaptiveUPGD's is Adam's, UPGDW's is AdamW's. A learning rate tuned for Adam
therefore carries over, and so do PBT search ranges. (Without the 2, the gate ``1 - s``, which
stays near 1/2 in PPO-sized networks, halves every step.) ``tiny`` is
``torch.finfo(dtype).tiny``, the smallest positive normal number of the parameter dtype: the
floor only changes anything when no utility is positive, and then no division by zero (or sign
inversion of the gating) can happen.

Two implementations of the same arithmetic are kept in this module: a multi-tensor path built
on ``torch._foreach_*`` (the default, :func:`_apply_foreach`) and a per-tensor path written for
reading (``foreach=False``, :func:`_apply_single`). Both perform the same floating-point
operations in the same order and give bit-identical results.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["UPGD", "AdaptiveUPGD", "UPGDW"]


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Tensor) and value.numel() == 1 and not value.requires_grad:
            value = value.item()
        else:
            raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _non_negative(name: str, value: Any) -> float:
    value = _real(name, value)
    if value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _unit_interval(name: str, value: Any) -> float:
    value = _real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def _validate_group(group: dict[str, Any], adaptive: bool) -> None:
    """Check (and normalise to floats) the hyperparameters of one param group, in place."""
    required = ("lr", "weight_decay", "sigma", "beta_utility", "foreach")
    for key in required + (("betas", "eps") if adaptive else ()):
        if key not in group:
            raise ValueError(f"param group lacks the hyperparameter {key!r} "
                             f"(has {sorted(k for k in group if k != 'params')})")
    group["lr"] = _non_negative("lr", group["lr"])
    group["weight_decay"] = _non_negative("weight_decay", group["weight_decay"])
    group["sigma"] = _non_negative("sigma", group["sigma"])
    group["beta_utility"] = _unit_interval("beta_utility", group["beta_utility"])
    if adaptive:
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (_unit_interval("betas[0]", betas[0]), _unit_interval("betas[1]", betas[1]))
        eps = _real("eps", group["eps"])
        if eps <= 0.0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        group["eps"] = eps
    if group["foreach"] not in (None, True, False):
        raise ValueError(f"foreach must be None, True or False, got {group['foreach']!r}")



def _corrections(bucket: dict[str, Any], group: dict[str, Any], adaptive: bool):
    """Per-bucket scalars: utility bias correction and (adaptive) Adam's step scale and eps."""
    t = bucket["step"]
    utility_correction = 1.0 - group["beta_utility"] ** t
    if not adaptive:
        return utility_correction, 1.0, 0.0
    beta1, beta2 = group["betas"]
    sqrt_c2 = math.sqrt(1.0 - beta2 ** t)
    # m̂ / (sqrt(v̂) + eps) == (m / (sqrt(v) + eps * sqrt_c2)) * (sqrt_c2 / c1)
    return utility_correction, sqrt_c2 / (1.0 - beta1 ** t), group["eps"] * sqrt_c2


def _global_max(maxima: list[Tensor]) -> Tensor | None:
    """eta before flooring: the largest û over everything that stepped, as a 0-d tensor.
    ``maxima``: per bucket, a 1-d tensor of its tensors' largest û."""
    if not maxima:
        return None
    if len(maxima) == 1 and maxima[0].dtype in (torch.float32, torch.float64):
        return maxima[0].max()
    dtype = torch.float32
    for m in maxima:
        dtype = torch.promote_types(dtype, m.dtype)
    device = maxima[0].device
    return torch.cat([m.to(device=device, dtype=dtype) for m in maxima]).max()


def _gate_scale(eta: Tensor | None, p: Tensor, utility_correction: float) -> Tensor:
    """The factor c with ``1 - s = sigmoid(c * u)``, i.e. ``c = -1 / (correction * eta)``, with
    eta floored at finfo(dtype).tiny and c clamped finite (so that ``c * 0`` is never NaN)."""
    finfo = torch.finfo(p.dtype)
    if eta is None:  # only empty tensors stepped: any finite factor will do
        return torch.full((), -1.0, dtype=p.dtype, device=p.device)
    # the upper clamp only matters when a utility overflowed to +inf (|g * w| beyond the dtype's
    # range): it keeps c non-zero, so that c * inf is -inf rather than NaN
    eta = eta.to(device=p.device, dtype=p.dtype).clamp(finfo.tiny, finfo.max)
    return torch.div(-1.0 / utility_correction, eta).clamp_min(-finfo.max)



class _Workspace:
    """Reusable scratch memory for the step's temporaries (never part of the optimizer state).

    Allocating and freeing a multi-megabyte temporary on every step costs more than the
    arithmetic done in it (page faults), so large temporaries live in flat buffers that are
    kept between steps, one per (slot, device, dtype), and handed out as views shaped like the
    parameters. Holds no parameter and no reference to one: only shapes and scratch values."""

    #: buckets with at least this many elements use persistent buffers for the gate and the
    #: denominator; smaller ones allocate (cheap below the allocator's mmap threshold)
    large = 1 << 16

    def __init__(self) -> None:
        self._flat: dict[tuple, Tensor] = {}
        self._views: dict[tuple, list[Tensor]] = {}

    def views(self, slot: str, tensors: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """A flat buffer of the tensors' total size and its views shaped like each tensor."""
        first = tensors[0]
        shapes = tuple(t.shape for t in tensors)
        key = (slot, first.device, first.dtype, shapes)
        flat_key = key[:3]
        views = self._views.get(key)
        if views is None:
            total = sum(t.numel() for t in tensors)
            flat = self._flat.get(flat_key)
            if flat is None or flat.numel() < total:
                flat = torch.empty(total, device=first.device, dtype=first.dtype)
                self._flat[flat_key] = flat
                self._views = {k: v for k, v in self._views.items() if k[:3] != flat_key}
            views, offset = [], 0
            for shape, t in zip(shapes, tensors):
                views.append(flat[offset:offset + t.numel()].view(shape))
                offset += t.numel()
            self._views[key] = views
        return self._flat[flat_key], views

    def clear(self) -> None:
        self._flat.clear()
        self._views.clear()


def _draw_noise(buckets, sigma: float, generator: torch.Generator | None,
                workspace: _Workspace):
    """Standard normal noise for every stepping parameter of one group, drawn in one call
    (parameters in bucket order) into reusable memory. Returns, per bucket, a list of tensors
    shaped like its parameters (or None per bucket when sigma == 0)."""
    if sigma == 0.0:
        return [None] * len(buckets)
    params = [p for b in buckets for p in b["params"]]
    total = sum(p.numel() for p in params)
    flat, views = workspace.views("noise", params)
    if generator is None or generator.device == flat.device:
        flat[:total].normal_(generator=generator)
    else:
        flat[:total].copy_(torch.randn(total, generator=generator, device=generator.device,
                                       dtype=flat.dtype))
    out, i = [], 0
    for b in buckets:
        pieces = []
        for p in b["params"]:
            piece = views[i]
            if piece.device != p.device or piece.dtype != p.dtype:  # mixed group: cast
                piece = piece.to(device=p.device, dtype=p.dtype)
            pieces.append(piece)
            i += 1
        out.append(pieces)
    return out



def _stats_single(bucket, group, adaptive) -> list[Tensor]:
    """Update moments and utilities, one tensor at a time. Returns the tensors' largest û,
    stacked (as a list of one tensor, or empty)."""
    beta_u = group["beta_utility"]
    utility_correction = 1.0 - beta_u ** bucket["step"]
    maxima = []
    for i, (p, g, u) in enumerate(zip(bucket["params"], bucket["grads"], bucket["utility"])):
        if adaptive:
            beta1, beta2 = group["betas"]
            bucket["exp_avg"][i].lerp_(g, 1.0 - beta1)
            bucket["exp_avg_sq"][i].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        u.mul_(beta_u).addcmul_(g, p, value=-(1.0 - beta_u))            # u = b u + (1-b)(-g w)
        if u.numel():
            maxima.append(u.max() / utility_correction)                  # max of û (a tensor)
    return [torch.stack(maxima)] if maxima else []


def _apply_single(bucket, group, eta, noise, adaptive) -> None:
    """w <- w (1 - lr wd) - 2 lr (d + sigma xi)(1 - s), one tensor at a time."""
    lr, sigma, wd = group["lr"], group["sigma"], group["weight_decay"]
    utility_correction, step_scale, eps = _corrections(bucket, group, adaptive)
    for i, (p, g, u) in enumerate(zip(bucket["params"], bucket["grads"], bucket["utility"])):
        gate = torch.mul(u, _gate_scale(eta, p, utility_correction)).sigmoid_()  # 1 - s
        if noise is not None:
            p.addcmul_(noise[i], gate, value=-2.0 * lr * sigma)    # - 2 lr xi (1 - s)
        if wd != 0.0:
            p.mul_(1.0 - lr * wd)
        if adaptive:
            # - 2 lr m̂/(sqrt(v̂) + eps) (1 - s) written as m / ((sqrt(v) + eps') / (1 - s)):
            # a gate of exactly 0 gives m / inf = 0, never NaN (the denominator is >= eps')
            denom = bucket["exp_avg_sq"][i].sqrt().add_(eps).div_(gate)
            p.addcdiv_(bucket["exp_avg"][i], denom, value=-2.0 * lr * step_scale)
        else:
            p.addcmul_(g, gate, value=-2.0 * lr)



def _scalar(value: float, like: Tensor) -> float | Tensor:
    """A factor for ``torch._foreach_mul_``. On the CPU a 0-d tensor of the operands' dtype:
    the CPU kernel wraps a Python number into a fresh tensor once per list element, which
    doubles the cost of the call on small tensors; the value is identical (the kernel computes
    in the tensors' dtype either way). Elsewhere the number itself, which fused kernels take
    as an argument (a device tensor would need a host-to-device copy)."""
    return torch.tensor(value, dtype=like.dtype) if like.device.type == "cpu" else value


def _stats_foreach(bucket, group, adaptive) -> list[Tensor]:
    beta_u = group["beta_utility"]
    utility_correction = 1.0 - beta_u ** bucket["step"]
    params, grads, utility = bucket["params"], bucket["grads"], bucket["utility"]
    if adaptive:
        beta1, beta2 = group["betas"]
        torch._foreach_lerp_(bucket["exp_avg"], grads, 1.0 - beta1)
        torch._foreach_mul_(bucket["exp_avg_sq"], _scalar(beta2, params[0]))
        torch._foreach_addcmul_(bucket["exp_avg_sq"], grads, grads, value=1.0 - beta2)
    torch._foreach_mul_(utility, _scalar(beta_u, params[0]))
    torch._foreach_addcmul_(utility, grads, params, value=-(1.0 - beta_u))
    nonempty = [u for u in utility if u.numel()]
    if not nonempty:
        return []
    return [torch.stack(torch._foreach_max(nonempty)).div_(utility_correction)]


def _apply_foreach(bucket, group, eta, noise, adaptive, workspace: _Workspace) -> None:
    lr, sigma, wd = group["lr"], group["sigma"], group["weight_decay"]
    utility_correction, step_scale, eps = _corrections(bucket, group, adaptive)
    params, utility = bucket["params"], bucket["utility"]
    # Large buckets: temporaries in reusable memory, written by per-tensor out= calls (the
    # per-call overhead is negligible there and each temporary costs one pass, no page faults).
    # Small buckets: out-of-place foreach calls (few dispatches; small allocations are cheap).
    large = sum(p.numel() for p in params) >= workspace.large
    scale = _gate_scale(eta, params[0], utility_correction)
    if large:
        gate = workspace.views("gate", params)[1]
        for u, out in zip(utility, gate):
            torch.mul(u, scale, out=out)
    else:
        gate = torch._foreach_mul(utility, scale)
    torch._foreach_sigmoid_(gate)                                            # 1 - s
    if noise is not None:
        torch._foreach_addcmul_(params, noise, gate, value=-2.0 * lr * sigma)
    if wd != 0.0:
        torch._foreach_mul_(params, _scalar(1.0 - lr * wd, params[0]))
    if adaptive:
        if large:  # the noise has been applied: its memory is free for the denominator
            denom = noise if noise is not None else workspace.views("denom", params)[1]
            for v, out in zip(bucket["exp_avg_sq"], denom):
                torch.sqrt(v, out=out)
        else:
            denom = torch._foreach_sqrt(bucket["exp_avg_sq"])
        torch._foreach_add_(denom, eps)
        torch._foreach_div_(denom, gate)
        torch._foreach_addcdiv_(params, bucket["exp_avg"], denom, value=-2.0 * lr * step_scale)
    else:
        torch._foreach_addcmul_(params, bucket["grads"], gate, value=-2.0 * lr)



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

    ``w <- w (1 - lr wd) - 2 lr (g + xi) (1 - sigmoid(û / eta))``, see the module docstring.

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

    The utility still uses the raw gradient; weight decay is decoupled; at neutral utility
    (``1 - s = 1/2``) the step is Adam's at the same ``lr``.
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
