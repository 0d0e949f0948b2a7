"""The multi-tensor path of the UPGD step (the default), built on ``torch._foreach_*``.

Performs the same floating-point operations in the same order as the per-tensor reference
path in :mod:`lifelong.optim._reference` and gives bit-identical results; large temporaries
live in a :class:`~lifelong.optim._workspace._Workspace`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lifelong.optim._common import _corrections, _gate_scale
from lifelong.optim._workspace import _Workspace


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
        torch._foreach_addcmul_(params, noise, gate, value=-lr * sigma)
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
        torch._foreach_addcdiv_(params, bucket["exp_avg"], denom, value=-lr * step_scale)
    else:
        torch._foreach_addcmul_(params, bucket["grads"], gate, value=-lr)
