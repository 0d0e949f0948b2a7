"""The per-tensor reference path of the UPGD step (``foreach=False``), written for reading.

Performs the same floating-point operations in the same order as the multi-tensor path in
:mod:`lifelong.optim._foreach`, one tensor at a time, and gives bit-identical results.
"""
from __future__ import annotations

import torch
from torch import Tensor

from lifelong.optim._common import _corrections, _gate_scale


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
    """w <- w (1 - lr wd) - lr (d + sigma xi)(1 - s), one tensor at a time."""
    lr, sigma, wd = group["lr"], group["sigma"], group["weight_decay"]
    utility_correction, step_scale, eps = _corrections(bucket, group, adaptive)
    for i, (p, g, u) in enumerate(zip(bucket["params"], bucket["grads"], bucket["utility"])):
        gate = torch.mul(u, _gate_scale(eta, p, utility_correction)).sigmoid_()  # 1 - s
        if noise is not None:
            p.addcmul_(noise[i], gate, value=-lr * sigma)          # - lr xi (1 - s)
        if wd != 0.0:
            p.mul_(1.0 - lr * wd)
        if adaptive:
            # - lr m̂/(sqrt(v̂) + eps) (1 - s) written as m / ((sqrt(v) + eps') / (1 - s)):
            # a gate of exactly 0 gives m / inf = 0, never NaN (the denominator is >= eps')
            denom = bucket["exp_avg_sq"][i].sqrt().add_(eps).div_(gate)
            p.addcdiv_(bucket["exp_avg"][i], denom, value=-lr * step_scale)
        else:
            p.addcmul_(g, gate, value=-lr)
