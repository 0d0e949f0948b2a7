"""The raw gradients in the scaler's step: their norms, the finiteness check, the message that
names a non-finite gradient, and clipping with ``clip_grad_norm_`` semantics."""
from __future__ import annotations

import math
from typing import Any

import torch

from lifelong._vgs_layout import _locate

_F32_NORM_WATCH = 1e18  # above this the float32 total norm may overflow (sqrt(f32 max) ~ 1.8e19)


def _stack(norms: list[torch.Tensor], dev: torch.device, one_device: bool) -> torch.Tensor:
    """Per-tensor norms (0-d tensors) stacked into one tensor on ``dev``; moved there first when
    the tensors are spread over several devices."""
    return torch.stack(norms) if one_device else torch.stack([x.to(dev) for x in norms])


def _total_norm(host: list[float], stacked: torch.Tensor) -> tuple[float, torch.Tensor | None]:
    """The total 2-norm from the per-tensor norms: in float64 on the host (NaN/Inf if any norm
    is), and ``inf`` when the float32 total norm ``clip_grad_norm_`` uses overflows. Also returns
    that float32 total norm (a 0-d tensor) when it was computed, else None."""
    total = math.sqrt(math.fsum(x * x for x in host))  # NaN/Inf if any norm is
    total_norm: torch.Tensor | None = None
    if math.isfinite(total) and total > _F32_NORM_WATCH:
        # The float32 total norm clip_grad_norm_ uses may overflow where the float64 one
        # does not: check it (a rare path).
        total_norm = torch.linalg.vector_norm(stacked)
        if not math.isfinite(total_norm.item()):
            total = math.inf
    return total, total_norm


def _clip_(
    grads: list[torch.Tensor],
    stacked: torch.Tensor,
    total: float,
    total_norm: torch.Tensor | None,
    max_norm: float | None,
    one_device: bool,
) -> None:
    """``clip_grad_norm_(max_norm)`` on the gradients, in place, given their stacked per-tensor
    norms, the float64 total ``total`` and (if already computed) the float32 ``total_norm``."""
    # clip_grad_norm_, exactly (same float32 coefficient tensor); skipped when the
    # coefficient is clearly clamped to 1.0, where the multiplication is an identity.
    if max_norm is not None and not max_norm / (total + 1e-6) > 1.0 + 1e-5:
        if total_norm is None:
            total_norm = torch.linalg.vector_norm(stacked)
        coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
        if one_device:
            torch._foreach_mul_(grads, coef)
        else:
            for g in grads:
                g.mul_(coef.to(g.device))


def _first_nonfinite(
    groups: list[dict[str, Any]],
    index: list[int],
    grads: list[torch.Tensor],
    host: list[float],
) -> str:
    """Message naming the first offending tensor (error path only: syncs per tensor)."""
    for k, (i, g) in enumerate(zip(index, grads)):
        if not math.isfinite(host[k]):
            with torch.no_grad():
                has_nan = bool(torch.isnan(g).any())
                has_inf = bool(torch.isinf(g).any())
            what = (
                " and ".join(w for w, f in (("NaN", has_nan), ("Inf", has_inf)) if f)
                or "values whose norm overflows"
            )
            group, j = _locate(i, groups)
            return (
                f"non-finite gradient: parameter {i} in the optimizer's order "
                f"(param_groups[{group}]['params'][{j}], shape {list(g.shape)}) has {what}; "
                "the weights and the scaler's statistics were not changed"
            )
    return (
        "non-finite gradient: the total gradient norm overflows although every tensor's "
        "norm is finite; the weights and the scaler's statistics were not changed"
    )
