"""Variance gradient scaler: shrink the optimizer's *step* when gradient noise is high.

One call replaces ``clip_grad_norm_`` + ``optimizer.step()``::

    vgs = VarianceGradientScaler(alpha=0.1, beta=0.99, warmup_steps=100)
    loss.backward()
    factor = vgs.step(optimizer, max_grad_norm=0.5)

Inside ``step``: read the parameters from ``optimizer.param_groups`` (never stored) ->
check that the raw gradients are finite -> update the statistics from the raw gradients ->
clip them (``clip_grad_norm_`` semantics) -> ``optimizer.step()`` with every group's ``lr``
multiplied by the factor -> restore every ``lr`` exactly (also when the step raises).

Statistics, per parameter tensor ``i`` in the optimizer's parameter order (all groups, in
order), with ``t_i`` the number of steps at which tensor ``i`` had a gradient and
``c_i = 1 - beta ** t_i``::

    m_i  = EMA_beta(g_i)          element-wise, bias-corrected: m_i / c_i
    s_i  = EMA_beta(g_i ** 2)     element-wise, bias-corrected: s_i / c_i
    r_i  = max(sum(s_i - m_i**2), 0) / (sum(m_i**2) + eps)
    r    = quantile(r_i over tensors that have statistics, q=quantile)  (linear interpolation)
    factor = 1 / (1 + alpha * r)   (exactly 1.0 during the first ``warmup_steps`` calls)

``s_i`` enters ``r_i`` only through its sum, and the sum of an element-wise EMA is the EMA of
the sum: ``sum(s_i) = EMA_beta(||g_i||^2)``.  So ``s_i`` is kept as that one float64 number
per tensor (same value, less round-off, no parameter-sized buffer, and ``||g_i||`` is already
computed for clipping).  ``m_i`` is a buffer of the parameter's size.

Nothing here holds a parameter, an optimizer or a logger between calls: the state is the
statistics, keyed by *position* in the optimizer's parameter order, plus the recorded
parameter shapes, so a changed layout is a ``ValueError`` instead of a silent mix-up.

This module holds, in order: the argument checks, the layout messages, the statistics, the
gradient norms with the finiteness check and clipping, and the scaler itself.
"""
from __future__ import annotations

import math
import numbers
import sys
from typing import Any

import torch

__all__ = ["VarianceGradientScaler"]


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN, got {value!r}")
    return value


def _check_alpha(value: Any) -> float:
    v = _real("alpha", value)
    if not (0.0 <= v < math.inf):
        raise ValueError(f"alpha must be a finite number >= 0, got {value!r}")
    return v


def _check_beta(value: Any) -> float:
    v = _real("beta", value)
    if not (0.0 < v < 1.0):
        raise ValueError(f"beta must be in the open interval (0, 1), got {value!r}")
    return v


def _check_eps(value: Any) -> float:
    v = _real("eps", value)
    if not (0.0 < v < math.inf):
        raise ValueError(f"eps must be a finite number > 0, got {value!r}")
    return v


def _check_quantile(value: Any) -> float:
    v = _real("quantile", value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"quantile must be in the closed interval [0, 1], got {value!r}")
    return v


def _check_warmup(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"warmup_steps must be an integer >= 0, got {value!r}")
    v = int(value)
    if v < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {value!r}")
    return v


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _check_max_grad_norm(value: Any) -> float | None:
    if value is None:
        return None
    v = _real("max_grad_norm", value)
    if not v > 0.0:
        raise ValueError(f"max_grad_norm must be None or a number > 0, got {value!r}")
    return v


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"state_dict[{name!r}] must be an integer >= 0, got {value!r}")
    return int(value)



def _describe_shapes(shapes: list[tuple[int, ...]]) -> str:
    if len(shapes) <= 8:
        return f"{len(shapes)} tensors {[list(s) for s in shapes]}"
    return f"{len(shapes)} tensors {[list(s) for s in shapes[:8]]} ..."


def _layout_message(expected: list[tuple[int, ...]], got: list[tuple[int, ...]]) -> str:
    first = next(
        (k for k, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got))
    )
    at = (
        f"expected {list(expected[first])}, got {list(got[first])}"
        if first < min(len(expected), len(got))
        else f"expected {len(expected)} tensors, got {len(got)}"
    )
    return (
        "VarianceGradientScaler: the optimizer's parameter layout changed: expected "
        f"{_describe_shapes(expected)}, got {_describe_shapes(got)}; first difference at "
        f"position {first}: {at}. The statistics belong to another model: use a new scaler "
        "(or vgs.reset())."
    )


def _locate(i: int, groups: list[dict[str, Any]]) -> tuple[int, int]:
    """Position ``i`` in the optimizer's parameter order as ``(group, index in the group)``."""
    for k, group in enumerate(groups):
        n = len(group["params"])
        if i < n:
            return k, i
        i -= n
    raise IndexError(i)



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


def _wide_norms(tensors: list[torch.Tensor]) -> list[float]:
    """Per-tensor 2-norms accumulated in float64 (host floats): finite for every finite float32
    or float16 tensor, where the float32 norm overflows once elements reach ~1e19."""
    return [float(torch.linalg.vector_norm(t, dtype=torch.float64)) for t in tensors]


def _clip_wide_(grads: list[torch.Tensor], total: float, max_norm: float | None) -> None:
    """``clip_grad_norm_`` for finite gradients whose float32 total norm overflows: the
    coefficient ``max_norm / (total + 1e-6)`` from the float64 ``total``, applied in place."""
    if max_norm is None:
        return
    coef = min(1.0, max_norm / (total + 1e-6))
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)


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



_FORMAT = 1


# ----------------------------------------------------------------------------- the scaler
class VarianceGradientScaler:
    """Scale the optimizer's step by ``1 / (1 + alpha * r)``, ``r`` a gradient noise-to-signal ratio.

    Args:
        alpha: strength; 0 disables the scaling (statistics are still kept). Settable
            (``vgs.alpha = 0.2``), validated.
        beta: EMA rate of the gradient statistics, in (0, 1).
        warmup_steps: the first ``warmup_steps`` calls of :meth:`step` that run the optimizer
            return exactly 1.0 (statistics are still gathered). Calls skipped for non-finite
            gradients do not count.
        eps: added to the signal ``sum(m_i^2)`` in each ratio, > 0.
        quantile: which quantile of the per-tensor ratios is the global ratio, in [0, 1].
        skip_nonfinite: on non-finite gradients, skip the optimizer step and return 0.0
            (counted in :attr:`skipped_steps`) instead of raising ``FloatingPointError``.
    """

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 0.99,
        warmup_steps: int = 100,
        eps: float = 1e-8,
        quantile: float = 0.9,
        skip_nonfinite: bool = False,
    ) -> None:
        self._alpha = _check_alpha(alpha)
        self._beta = _check_beta(beta)
        self._warmup_steps = _check_warmup(warmup_steps)
        self._eps = _check_eps(eps)
        self._quantile = _check_quantile(quantile)
        self._skip_nonfinite = _check_flag("skip_nonfinite", skip_nonfinite)
        self.reset()

    # ------------------------------------------------------------------ hyperparameters
    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = _check_alpha(value)

    @property
    def beta(self) -> float:
        return self._beta

    @property
    def warmup_steps(self) -> int:
        return self._warmup_steps

    @property
    def eps(self) -> float:
        return self._eps

    @property
    def quantile(self) -> float:
        return self._quantile

    @property
    def skip_nonfinite(self) -> bool:
        return self._skip_nonfinite

    # ------------------------------------------------------------------ read-outs
    @property
    def factor(self) -> float:
        """The factor of the last call (1.0 before any; 0.0 after a skipped call)."""
        return self._factor

    @property
    def steps(self) -> int:
        """Calls of :meth:`step` that ran the optimizer (what warm-up counts)."""
        return self._steps

    @property
    def skipped_steps(self) -> int:
        """Calls skipped because of non-finite gradients (``skip_nonfinite=True``)."""
        return self._skipped_steps

    @property
    def last_stats(self) -> dict[str, Any]:
        """Metrics of the last call, plain Python numbers (no device sync to read).

        ``factor``; ``ratio`` (the global ratio r, also during warm-up); ``ratios`` (r_i per
        parameter tensor in optimizer order, NaN for a tensor never seen with a gradient);
        ``grad_norm`` (total 2-norm of the raw gradients before clipping, NaN before the first
        call in this process); ``steps``; ``skipped_steps``.
        """
        return {
            "factor": self._factor,
            "ratio": self._ratio,
            "ratios": list(self._ratios),
            "grad_norm": self._grad_norm,
            "steps": self._steps,
            "skipped_steps": self._skipped_steps,
        }

    def __repr__(self) -> str:
        return (
            f"VarianceGradientScaler(alpha={self._alpha}, beta={self._beta}, "
            f"warmup_steps={self._warmup_steps}, eps={self._eps}, quantile={self._quantile}, "
            f"skip_nonfinite={self._skip_nonfinite})"
        )

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget all statistics and the recorded layout (hyperparameters are kept)."""
        self._shapes: list[tuple[int, ...]] | None = None
        self._counts: list[int] = []
        self._grad_ema: list[torch.Tensor | None] = []  # m_i, parameter-sized
        self._grad_ema_sq_norm: list[float] = []  # ||m_i||^2 (not bias-corrected)
        self._grad_sq_norm_ema: list[float] = []  # sum(s_i) = EMA of ||g_i||^2 (not bias-corrected)
        self._steps = 0
        self._skipped_steps = 0
        self._factor = 1.0
        self._ratio = 0.0
        self._ratios: list[float] = []
        self._grad_norm = math.nan

    def state_dict(self) -> dict[str, Any]:
        """Tensors and numbers only (loads with ``torch.load(weights_only=True)``); a snapshot:
        the tensors are copies, later steps do not change it."""
        return {
            "format": _FORMAT,
            "alpha": self._alpha,
            "beta": self._beta,
            "warmup_steps": self._warmup_steps,
            "eps": self._eps,
            "quantile": self._quantile,
            "skip_nonfinite": self._skip_nonfinite,
            "steps": self._steps,
            "skipped_steps": self._skipped_steps,
            "factor": self._factor,
            "shapes": None if self._shapes is None else [list(s) for s in self._shapes],
            "counts": list(self._counts),
            "grad_sq_norm_ema": list(self._grad_sq_norm_ema),
            "grad_ema_sq_norm": list(self._grad_ema_sq_norm),
            "grad_ema": [
                torch.empty(0) if m is None else m.detach().clone() for m in self._grad_ema
            ],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and statistics (as ``Optimizer.load_state_dict`` restores its
        groups' hyperparameters). The recorded layout comes with them: the next :meth:`step`
        with an optimizer of another layout raises ``ValueError``. Buffers move to the
        gradients' device and dtype at that step."""
        if not isinstance(state_dict, dict):
            raise ValueError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        fmt = state_dict.get("format")
        if fmt != _FORMAT:
            raise ValueError(
                f"state_dict['format'] is {fmt!r}; this VarianceGradientScaler reads format {_FORMAT}"
            )
        required = (
            "alpha beta warmup_steps eps quantile skip_nonfinite steps skipped_steps factor "
            "shapes counts grad_sq_norm_ema grad_ema_sq_norm grad_ema"
        ).split()
        missing = [k for k in required if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict lacks {missing}")
        sd = state_dict
        alpha = _check_alpha(sd["alpha"])
        beta = _check_beta(sd["beta"])
        warmup = _check_warmup(sd["warmup_steps"])
        eps = _check_eps(sd["eps"])
        quantile = _check_quantile(sd["quantile"])
        skip = _check_flag("skip_nonfinite", sd["skip_nonfinite"])
        steps = _check_count("steps", sd["steps"])
        skipped = _check_count("skipped_steps", sd["skipped_steps"])
        factor = _real("factor", sd["factor"])
        if not 0.0 <= factor <= 1.0:
            raise ValueError(f"state_dict['factor'] must be in [0, 1], got {factor!r}")

        shapes_raw = sd["shapes"]
        if shapes_raw is None:
            shapes = None
            n = 0
        else:
            try:
                shapes = [tuple(int(d) for d in s) for s in shapes_raw]
            except (TypeError, ValueError) as exc:
                raise ValueError(f"state_dict['shapes'] must be a list of shapes: {exc}") from None
            n = len(shapes)
        counts = [_check_count("counts", c) for c in sd["counts"]]
        sq_ema = [_real("grad_sq_norm_ema", x) for x in sd["grad_sq_norm_ema"]]
        m_sq = [_real("grad_ema_sq_norm", x) for x in sd["grad_ema_sq_norm"]]
        emas = list(sd["grad_ema"])
        lengths = {len(counts), len(sq_ema), len(m_sq), len(emas)}
        if lengths != {n}:
            raise ValueError(
                f"state_dict is inconsistent: {n} shapes but counts/grad_sq_norm_ema/"
                f"grad_ema_sq_norm/grad_ema have lengths {len(counts)}/{len(sq_ema)}/"
                f"{len(m_sq)}/{len(emas)}"
            )
        grad_ema: list[torch.Tensor | None] = []
        for i in range(n):
            m = emas[i]
            if not isinstance(m, torch.Tensor):
                raise ValueError(f"state_dict['grad_ema'][{i}] must be a tensor, got {type(m).__name__}")
            if counts[i] == 0:
                grad_ema.append(None)
                continue
            assert shapes is not None
            if tuple(m.shape) != shapes[i]:
                raise ValueError(
                    f"state_dict['grad_ema'][{i}] has shape {list(m.shape)}, "
                    f"but shapes[{i}] is {list(shapes[i])}"
                )
            if not (math.isfinite(sq_ema[i]) and sq_ema[i] >= 0 and math.isfinite(m_sq[i]) and m_sq[i] >= 0):
                raise ValueError(f"state_dict statistics of tensor {i} are not finite and >= 0")
            grad_ema.append(m.detach().clone())

        self._alpha, self._beta, self._warmup_steps = alpha, beta, warmup
        self._eps, self._quantile, self._skip_nonfinite = eps, quantile, skip
        self._shapes = shapes
        self._counts = counts
        self._grad_ema = grad_ema
        self._grad_sq_norm_ema = sq_ema
        self._grad_ema_sq_norm = m_sq
        self._steps, self._skipped_steps = steps, skipped
        self._factor = factor
        self._ratio = self._compute_ratio()
        self._grad_norm = math.nan

    # ------------------------------------------------------------------ the step
    def step(self, optimizer: torch.optim.Optimizer, max_grad_norm: float | None = None) -> float:
        """Observe the raw gradients, clip them (if ``max_grad_norm``), run ``optimizer.step()``
        with every group's ``lr`` multiplied by the factor, restore every ``lr``; return the factor.

        Raises:
            ValueError: the optimizer's parameter layout (count or shapes, all groups in order)
                differs from the one the statistics were gathered on; or a bad ``max_grad_norm``.
            FloatingPointError: a gradient is non-finite (``skip_nonfinite=False``); raised
                before the weights or the statistics are touched.
        """
        max_norm = _check_max_grad_norm(max_grad_norm)
        groups = optimizer.param_groups
        params = [p for group in groups for p in group["params"]]
        shapes = [p.shape for p in params]
        if self._shapes is None:
            self._start_layout(shapes)
        elif shapes != self._shapes:
            raise ValueError(_layout_message(self._shapes, [tuple(s) for s in shapes]))

        index: list[int] = []
        grads: list[torch.Tensor] = []
        for i, p in enumerate(params):
            g = p.grad
            if g is not None:
                index.append(i)
                grads.append(g)

        total = 0.0
        if grads:
            with torch.no_grad():
                total = self._observe_and_clip(groups, index, grads, max_norm)
            if total is None:  # non-finite, skipped (raising happens inside)
                self._skipped_steps += 1
                self._factor = 0.0
                return 0.0
        self._grad_norm = total

        ratio = self._compute_ratio()
        self._ratio = ratio
        if self._steps < self._warmup_steps or self._alpha == 0.0:
            factor = 1.0
        else:
            factor = _scale_factor(self._alpha, ratio)
        self._steps += 1
        self._factor = factor

        if factor == 1.0:
            optimizer.step()
            return factor
        saved = [group["lr"] for group in groups]
        try:
            for group, lr in zip(groups, saved):
                group["lr"] = lr * factor
            optimizer.step()
        finally:
            for group, lr in zip(groups, saved):
                group["lr"] = lr
        return factor

    # ------------------------------------------------------------------ internals
    def _start_layout(self, shapes: list[torch.Size]) -> None:
        n = len(shapes)
        self._shapes = [tuple(s) for s in shapes]
        self._counts = [0] * n
        self._grad_ema = [None] * n
        self._grad_ema_sq_norm = [0.0] * n
        self._grad_sq_norm_ema = [0.0] * n
        self._ratios = [math.nan] * n

    def _observe_and_clip(
        self,
        groups: list[dict[str, Any]],
        index: list[int],
        grads: list[torch.Tensor],
        max_norm: float | None,
    ) -> float | None:
        """Check the raw gradients, update the statistics, clip. Returns the pre-clip total norm,
        or None when the gradients are non-finite and skipped (raises when not skipping).

        Device work: one multi-tensor norm of the gradients and one host sync of the stacked
        norms; one multi-tensor lerp into m_i, one multi-tensor norm of m_i and one host sync;
        the clipping ops of ``clip_grad_norm_`` when the norm exceeds ``max_grad_norm``.
        """
        dev = grads[0].device
        one_device = all(g.device == dev for g in grads)
        stacked = _stack(torch._foreach_norm(grads), dev, one_device)
        host = stacked.tolist()  # sync 1: per-tensor norms, before anything is touched
        total, total_norm = _total_norm(host, stacked)
        wide = False  # finite gradients whose float32 norms overflow (elements >= ~1e19)
        if not math.isfinite(total):
            if all(bool(torch.isfinite(g).all()) for g in grads):  # rare path: decide by isfinite
                wide = True
                host = _wide_norms(grads)
                total = math.sqrt(math.fsum(x * x for x in host))
            else:
                self._grad_norm = total
                message = _first_nonfinite(groups, index, grads, host)
                if not self._skip_nonfinite:
                    raise FloatingPointError(message)
                return None
        self._grad_norm = total

        # statistics from the raw gradients
        beta = self._beta
        ms = _update_grad_ema(self._grad_ema, index, grads, beta)
        m_host = _wide_norms(ms) if wide else _stack(torch._foreach_norm(ms), dev, one_device).tolist()  # sync 2
        _update_norm_emas(
            index, host, m_host, beta, self._counts, self._grad_sq_norm_ema, self._grad_ema_sq_norm
        )

        if wide:
            _clip_wide_(grads, total, max_norm)
        else:
            _clip_(grads, stacked, total, total_norm, max_norm, one_device)
        return total

    def _compute_ratio(self) -> float:
        """Per-tensor ratios r_i (host floats, stored for last_stats) and their quantile."""
        ratios, observed = _ratios(
            self._counts, self._grad_sq_norm_ema, self._grad_ema_sq_norm, self._beta, self._eps
        )
        self._ratios = ratios
        return _quantile(observed, self._quantile) if observed else 0.0
