"""The arithmetic both step paths share: scalars, the utility trace's clean-up, eta, the gate scale,
unit rows, the noise draw and ``reset_after``'s reset of dead weights.

Both paths (:mod:`lifelong.optim.reference`, :mod:`lifelong.optim.flat`) call these, so that they
perform the same floating-point operations with the same scalars.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def corrections(step: int, group: dict[str, Any], adaptive: bool) -> tuple[float, float, float]:
    """Per-step scalars: the utility's bias correction ``1 - beta_utility ** t`` and, for the
    adaptive family, Adam's step scale and eps such that
    ``m̂ / (sqrt(v̂) + eps) == step_scale * m / (sqrt(v) + eps')``."""
    utility_correction = 1.0 - group["beta_utility"] ** step
    if not adaptive:
        return utility_correction, 1.0, 0.0
    beta1, beta2 = group["betas"]
    sqrt_c2 = math.sqrt(1.0 - beta2 ** step)
    return utility_correction, sqrt_c2 / (1.0 - beta1 ** step), group["eps"] * sqrt_c2


def clean_utility_(u: Tensor) -> Tensor:
    """Keep the utility trace free of NaN and +inf, in place (one pass).

    An element whose trace is NaN or +inf (a non-finite gradient, or ``|g * w|`` beyond the
    dtype's range) becomes ``-inf``: the lowest utility, so it takes no part in ``eta`` (the max
    over finite utilities) and cannot change any other weight's gate. ``-inf`` already in the
    trace becomes ``-finfo.max``, so that a finite input can never produce ``inf - inf``."""
    return torch.nan_to_num_(u, nan=-math.inf, posinf=-math.inf, neginf=-torch.finfo(u.dtype).max)


def unit_rows(p: Tensor) -> int:
    """Number of units (output features) of a parameter for ``utility="unit"``: the size of its
    first dimension (a Linear weight's rows, a conv weight's output channels; every element of a
    bias is its own unit); a 0-d parameter is one unit."""
    return p.shape[0] if p.dim() >= 1 else 1


def utility_shape(p: Tensor, utility: str) -> tuple[int, ...]:
    return tuple(p.shape) if utility == "weight" else (unit_rows(p),)


def row_sums(product: Tensor, rows: int, out: Tensor | None = None) -> Tensor:
    """Sum over each unit's row of ``product`` (``g * w`` shaped like the parameter)."""
    if product.numel() == 0:  # no weights (a (rows, 0) or an empty parameter): utility 0
        return product.new_zeros(rows) if out is None else out.zero_()
    flat = product.reshape(rows, -1)
    if out is None:
        return flat.sum(1)
    return torch.sum(flat, 1, out=out)


def global_eta(maxima: list[Tensor]) -> Tensor | None:
    """eta before flooring: the largest bias-corrected utility over everything that stepped
    with ``gate="global"``, as a 0-d tensor (no host synchronisation). ``maxima``: 0-d or 1-d
    tensors of partial maxima."""
    if not maxima:
        return None
    if len(maxima) == 1 and maxima[0].dtype in (torch.float32, torch.float64):
        return maxima[0].max()
    dtype = torch.float32
    for m in maxima:
        dtype = torch.promote_types(dtype, m.dtype)
    device = maxima[0].device
    return torch.cat([m.to(device=device, dtype=dtype).reshape(-1) for m in maxima]).max()


def gate_scale(eta: Tensor | None, like: Tensor, utility_correction: float,
               temperature: float) -> Tensor:
    """The factor ``c`` with ``1 - s = sigmoid(c * u)``: ``c = -1 / (correction * temperature
    * eta)``, eta floored at ``finfo(dtype).tiny`` and capped at ``finfo.max``, ``c`` clamped
    finite (so that ``c * 0`` is never NaN). ``eta`` None: nothing with a utility stepped.
    ``eta`` may be a vector (one per tensor, ``gate="layer"``): then so is ``c``."""
    finfo = torch.finfo(like.dtype)
    if eta is None:
        return torch.full((), -1.0, dtype=like.dtype, device=like.device)
    eta = eta.to(device=like.device, dtype=like.dtype).clamp(finfo.tiny, finfo.max)
    return torch.div(-1.0 / (utility_correction * temperature), eta).clamp_min(-finfo.max)


def draw_noise(out: Tensor, generator: torch.Generator | None) -> Tensor:
    """Fill ``out`` (a flat buffer for all stepping weights of one group, in parameter order)
    with standard normal noise in one call, from ``generator`` or torch's global generator."""
    if generator is None or generator.device == out.device:
        return out.normal_(generator=generator)
    return out.copy_(torch.randn(out.numel(), generator=generator, device=generator.device,
                                 dtype=out.dtype))


def reset_dead_(w: Tensor, g: Tensor, zero_steps: Tensor, initial: Tensor, moments: list[Tensor],
                reset_after: int) -> None:
    """In place on one tensor (the rule both paths share): ``z <- (z + 1) * [g == 0]``; where
    ``z >= reset_after``: ``w <- w0``, each moment ``<- 0``, ``z <- 0``. A NaN gradient is not
    zero: it ends the run."""
    zero_steps.add_(1).mul_(g == 0)
    reset = zero_steps >= reset_after
    torch.where(reset, initial, w, out=w)
    for m in moments:
        m.masked_fill_(reset, 0)
    zero_steps.masked_fill_(reset, 0)
