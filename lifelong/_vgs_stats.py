"""The scaler's statistics: the EMA updates, the noise-to-signal ratios, their quantile, the factor.

Per parameter tensor ``i`` in the optimizer's parameter order, with ``t_i`` the number of steps
at which tensor ``i`` had a gradient and ``c_i = 1 - beta ** t_i``::

    m_i  = EMA_beta(g_i)          element-wise, bias-corrected: m_i / c_i
    s_i  = EMA_beta(g_i ** 2)     element-wise, bias-corrected: s_i / c_i
    r_i  = max(sum(s_i - m_i**2), 0) / (sum(m_i**2) + eps)
    r    = quantile(r_i over tensors that have statistics, q=quantile)  (linear interpolation)
    factor = 1 / (1 + alpha * r)

``s_i`` is kept as its sum, ``sum(s_i) = EMA_beta(||g_i||^2)``, one float64 number per tensor;
``m_i`` is a buffer of the parameter's size, and ``sum(m_i**2)`` is kept as ``||m_i||^2``.
"""
from __future__ import annotations

import math
import sys

import torch

_FLOAT_MAX = sys.float_info.max
_FLOAT_TINY = sys.float_info.min  # smallest positive normal double: the factor's floor


def _update_grad_ema(
    ema: list[torch.Tensor | None], index: list[int], grads: list[torch.Tensor], beta: float
) -> list[torch.Tensor]:
    """``m_i <- beta m_i + (1 - beta) g_i`` (one multi-tensor lerp) for every tensor ``i = index[k]``
    that has a gradient ``grads[k]``. A missing ``m_i`` starts at zeros; one on another device or
    dtype than its gradient is moved there first (stored back into ``ema``). Returns the ``m_i``."""
    ms: list[torch.Tensor] = []
    for i, g in zip(index, grads):
        m = ema[i]
        if m is None:
            m = ema[i] = torch.zeros_like(g)
        elif m.device != g.device or m.dtype != g.dtype:  # e.g. after load_state_dict
            m = ema[i] = m.to(device=g.device, dtype=g.dtype)
        ms.append(m)
    torch._foreach_lerp_(ms, grads, 1.0 - beta)
    return ms


def _update_norm_emas(
    index: list[int],
    grad_norms: list[float],
    ema_norms: list[float],
    beta: float,
    counts: list[int],
    grad_sq_norm_ema: list[float],
    grad_ema_sq_norm: list[float],
) -> None:
    """In place, for every tensor ``i = index[k]`` that has a gradient: ``t_i += 1``,
    ``sum(s_i) <- beta sum(s_i) + (1 - beta) ||g_i||^2`` from ``grad_norms[k]`` and
    ``||m_i||^2`` from ``ema_norms[k]`` (the norm of the freshly updated ``m_i``)."""
    for k, i in enumerate(index):
        gn = grad_norms[k]
        counts[i] += 1
        grad_sq_norm_ema[i] = beta * grad_sq_norm_ema[i] + (1.0 - beta) * (gn * gn)
        mn = ema_norms[k]
        grad_ema_sq_norm[i] = mn * mn


def _ratios(
    counts: list[int],
    grad_sq_norm_ema: list[float],
    grad_ema_sq_norm: list[float],
    beta: float,
    eps: float,
) -> tuple[list[float], list[float]]:
    """Per-tensor ratios ``r_i`` (host floats): all of them, NaN for a tensor without statistics,
    and those of the tensors that have statistics (what the quantile is taken over)."""
    ratios: list[float] = []
    observed: list[float] = []
    for t, s, m2 in zip(counts, grad_sq_norm_ema, grad_ema_sq_norm):
        if t == 0:
            ratios.append(math.nan)
            continue
        c = 1.0 - beta**t
        signal = m2 / (c * c)
        noise = s / c - signal
        r = (noise if noise > 0.0 else 0.0) / (signal + eps)
        if not r <= _FLOAT_MAX:  # overflow (inf); NaN cannot arise from finite inputs
            r = _FLOAT_MAX
        ratios.append(r)
        observed.append(r)
    return ratios, observed


def _quantile(values: list[float], q: float) -> float:
    """``torch.quantile(values, q)`` (linear interpolation) on a short host list."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    w = pos - lo
    if w == 0.0 or lo + 1 >= len(v):
        return v[lo]
    return v[lo] + (v[lo + 1] - v[lo]) * w


def _scale_factor(alpha: float, ratio: float) -> float:
    """``1 / (1 + alpha * r)``, floored at the smallest positive normal double."""
    return max(1.0 / (1.0 + alpha * ratio), _FLOAT_TINY)
