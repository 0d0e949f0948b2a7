"""Per-step scalars shared by the per-tensor and the multi-tensor update paths.

Bias corrections of one bucket, the global ``eta`` (largest bias-corrected utility ``û`` over
everything that stepped) and the factor ``c`` of the gate ``1 - s = sigmoid(c * u)``; see
:mod:`lifelong.optim.upgd` for the update these feed.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


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
