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

This module holds the scaler; beside it are the argument checks (``lifelong._vgs_validation``),
the statistics (``lifelong._vgs_stats``), the gradient norms, finiteness check and clipping
(``lifelong._vgs_grads``) and the layout messages (``lifelong._vgs_layout``).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from lifelong._vgs_grads import _clip_, _first_nonfinite, _stack, _total_norm
from lifelong._vgs_layout import _layout_message
from lifelong._vgs_stats import _quantile, _ratios, _scale_factor, _update_grad_ema, _update_norm_emas
from lifelong._vgs_validation import (
    _check_alpha,
    _check_beta,
    _check_count,
    _check_eps,
    _check_flag,
    _check_max_grad_norm,
    _check_quantile,
    _check_warmup,
    _real,
)

__all__ = ["VarianceGradientScaler"]

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
        if not math.isfinite(total):
            self._grad_norm = total
            message = _first_nonfinite(groups, index, grads, host)
            if not self._skip_nonfinite:
                raise FloatingPointError(message)
            return None
        self._grad_norm = total

        # statistics from the raw gradients
        beta = self._beta
        ms = _update_grad_ema(self._grad_ema, index, grads, beta)
        m_host = _stack(torch._foreach_norm(ms), dev, one_device).tolist()  # sync 2
        _update_norm_emas(
            index, host, m_host, beta, self._counts, self._grad_sq_norm_ema, self._grad_ema_sq_norm
        )

        _clip_(grads, stacked, total, total_norm, max_norm, one_device)
        return total

    def _compute_ratio(self) -> float:
        """Per-tensor ratios r_i (host floats, stored for last_stats) and their quantile."""
        ratios, observed = _ratios(
            self._counts, self._grad_sq_norm_ema, self._grad_ema_sq_norm, self._beta, self._eps
        )
        self._ratios = ratios
        return _quantile(observed, self._quantile) if observed else 0.0
