"""The per-tensor path of the UPGD family (``foreach=False``): the rule written to be read next to
the formula, one parameter tensor at a time. It is the tested oracle of the flat fast path
(:mod:`lifelong.optim.flat`) and the path taken by any group the fast path does not cover
(some parameters without a gradient this step, mixed step counts, dtypes or devices).

Per parameter with gradient ``g`` at its own step ``t`` (see :mod:`lifelong.optim.upgd`)::

    u <- beta_u u + (1 - beta_u) x,   x = -g * w  (utility="weight")
                                      x = -sum over the unit's row of g * w  (utility="unit")
    gate = 1 - s = sigmoid(-û / (eta * temperature))     (gate="none": 1/2)
    w <- w (1 - lr wd - lr l2_init) + lr l2_init w0 - 2 lr (d + sigma xi) gate
    z <- (z + 1) [g = 0];  where z >= reset_after: w <- w0, m <- 0, v <- 0, z <- 0
    after the step, where t = reset_every: w <- w0, every state tensor <- 0, t <- 0 (in upgd.py)
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lifelong.optim.gating import (
    clean_utility_,
    corrections,
    draw_noise,
    gate_scale,
    reset_dead_,
    row_sums,
    unit_rows,
)


def update_statistics(bucket: dict[str, Any], group: dict[str, Any], adaptive: bool) -> list[Tensor]:
    """Update the moments and utility traces of one bucket (parameters of one group with the same
    step count), one tensor at a time. Returns the partial maxima of û for the global eta (a
    list of one 1-d tensor, or empty: ``gate="layer"`` or only empty tensors)."""
    beta_u = group["beta_utility"]
    unit = group["utility"] == "unit"
    utility_correction = 1.0 - beta_u ** bucket["step"]
    maxima = []
    for i, (p, g, u) in enumerate(zip(bucket["params"], bucket["grads"], bucket["utility"])):
        if adaptive:
            beta1, beta2 = group["betas"]
            bucket["exp_avg"][i].lerp_(g, 1.0 - beta1)
            bucket["exp_avg_sq"][i].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        if unit:  # u = b u + (1 - b) (-sum_row g w)
            u.mul_(beta_u).add_(row_sums(torch.mul(g, p), unit_rows(p)), alpha=-(1.0 - beta_u))
        else:     # u = b u + (1 - b) (-g w)
            u.mul_(beta_u).addcmul_(g, p, value=-(1.0 - beta_u))
        clean_utility_(u)
        if u.numel() and group["gate"] == "global":
            maxima.append(u.max() / utility_correction)
    return [torch.stack(maxima)] if maxima else []


def _gate(u: Tensor, p: Tensor, group: dict[str, Any], eta: Tensor | None,
          utility_correction: float) -> Tensor | None:
    """``1 - s`` shaped like ``p``; None for ``gate="none"`` (``1 - s = 1/2`` everywhere)."""
    if group["gate"] == "none":
        return None
    if group["gate"] == "layer":
        eta = u.max() / utility_correction if u.numel() else None
    gate = torch.mul(u, gate_scale(eta, p, utility_correction, group["gate_temperature"])).sigmoid_()
    if group["utility"] == "unit":
        gate = gate.repeat_interleave(p.numel() // max(unit_rows(p), 1)).view(p.shape)
    return gate


def apply_update(bucket: dict[str, Any], group: dict[str, Any], eta: Tensor | None,
                 noise: list[Tensor] | None, adaptive: bool) -> None:
    """w <- w (1 - lr wd - lr l2) + lr l2 w0 - 2 lr (d + sigma xi)(1 - s), one tensor at a time."""
    lr, sigma = group["lr"], group["sigma"]
    l2 = group["l2_init"]
    decay = 1.0 - lr * group["weight_decay"] - lr * l2
    utility_correction, step_scale, eps = corrections(bucket["step"], group, adaptive)
    for i, (p, g, u) in enumerate(zip(bucket["params"], bucket["grads"], bucket["utility"])):
        if p.numel() == 0:
            continue
        gate = _gate(u, p, group, eta, utility_correction)                     # 1 - s
        if decay != 1.0:
            p.mul_(decay)
        if l2 != 0.0:
            p.add_(bucket["initial"][i], alpha=lr * l2)                       # + lr l2 w0
        if gate is None:  # gate="none": 2 (1 - s) = 1, the base optimizer's step
            if noise is not None:
                p.add_(noise[i], alpha=-lr * sigma)                            # - lr xi
            if adaptive:
                denom = bucket["exp_avg_sq"][i].sqrt().add_(eps)
                p.addcdiv_(bucket["exp_avg"][i], denom, value=-lr * step_scale)
            else:
                p.add_(g, alpha=-lr)
            _reset(bucket, group, i, adaptive)
            continue
        if noise is not None:
            p.addcmul_(noise[i], gate, value=-2.0 * lr * sigma)                # - 2 lr xi (1 - s)
        if adaptive:
            # - 2 lr m̂/(sqrt(v̂) + eps) (1 - s) written as m / ((sqrt(v) + eps') / (1 - s)):
            # a gate of exactly 0 gives m / inf = 0, never NaN (the denominator is >= eps')
            denom = bucket["exp_avg_sq"][i].sqrt().add_(eps).div_(gate)
            p.addcdiv_(bucket["exp_avg"][i], denom, value=-2.0 * lr * step_scale)
        else:
            p.addcmul_(g, gate, value=-2.0 * lr)
        _reset(bucket, group, i, adaptive)


def _reset(bucket: dict[str, Any], group: dict[str, Any], i: int, adaptive: bool) -> None:
    """``reset_after``: weights whose gradient has been exactly zero for ``reset_after``
    consecutive steps return to ``w0`` with zeroed moments (:func:`lifelong.optim.gating.reset_dead_`)."""
    if group["reset_after"] > 0:
        moments = [bucket["exp_avg"][i], bucket["exp_avg_sq"][i]] if adaptive else []
        reset_dead_(bucket["params"][i], bucket["grads"][i], bucket["zero_steps"][i],
                    bucket["initial"][i], moments, group["reset_after"])


def bucket_noise(buckets: list[dict[str, Any]], sigma: float,
                 generator: torch.Generator | None) -> list[list[Tensor] | None]:
    """Standard normal noise for every stepping parameter of one group, drawn in one call
    (parameters in bucket order), as tensors shaped like the parameters; None per bucket when
    ``sigma == 0``. The same draw as the flat path's for the same parameters."""
    if sigma == 0.0:
        return [None] * len(buckets)
    params = [p for b in buckets for p in b["params"]]
    first = params[0]
    flat = draw_noise(torch.empty(sum(p.numel() for p in params), device=first.device,
                                  dtype=first.dtype), generator)
    out, offset = [], 0
    for b in buckets:
        pieces = []
        for p in b["params"]:
            piece = flat[offset:offset + p.numel()].view(p.shape)
            if piece.device != p.device or piece.dtype != p.dtype:  # mixed group: cast
                piece = piece.to(device=p.device, dtype=p.dtype)
            pieces.append(piece)
            offset += p.numel()
        out.append(pieces)
    return out
