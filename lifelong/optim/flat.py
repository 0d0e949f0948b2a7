"""The fast path of the UPGD family: one param group's optimizer state in flat buffers.

**Design.** For each param group the fast path keeps every state tensor kind (``utility``,
``exp_avg``, ``exp_avg_sq``, ``initial``) in ONE flat buffer, and the per-parameter entries of
``optimizer.state`` are views of it. The flat buffer is the only storage: there is no second
copy to keep in sync, ``state_dict()`` returns the per-parameter views (so torch's semantics,
``load_state_dict`` and ``torch.load(weights_only=True)`` hold unchanged), and an update through
either the flat buffer or a view is seen by both. When the views stop being the state (after
``load_state_dict``, which puts fresh tensors there, or when a parameter gets state the layout
does not cover), the layout is rebuilt on the next fast step: the state is copied into new
flat buffers, bit for bit, and the entries become views again. The layout is a cache of that
arrangement, never a source of values.

**When it applies.** A group takes the fast path when every parameter of it has a gradient this
step, all share one device, dtype and step count, and ``foreach`` is not ``False``. Otherwise
(a parameter without a gradient, mixed dtypes or devices, mixed step counts) the group takes the
per-tensor path of :mod:`lifelong.optim.reference`, which updates the same views in place. The
choice depends only on the gradients present and on the saved state, so a resumed run takes the
same paths as an uninterrupted one.

**The step.** Small groups (at most :data:`GATHER_LIMIT` elements, where per-call overhead
dominates) gather the gradients and weights into flat scratch buffers, so that every operation
of the step is ONE call on one tensor, and write the weights back with one ``_foreach_copy_``.
Larger groups run the few operations that touch the parameters as ``torch._foreach_*`` calls
over the parameters and views of the flat state (no gather or write-back pass), and everything
else (utility decay, clean-up, maximum, gate, denominator) on the flat buffers. The Gaussian
noise of the whole group is drawn in one call into a flat buffer. The operations and scalars are
those of the reference path, in the same order; the only differences are in the last bits of
the CPU's vectorised ``sigmoid`` (elements of a short tensor tail go through the scalar ``exp``
there), so the two paths agree to float rounding (tested at ``rtol=1e-6``), and each is
deterministic, so save -> load -> continue is bit-identical to an uninterrupted run.
No host synchronisation: the maxima stay on the device.
"""
from __future__ import annotations

import operator
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
    utility_shape,
)

#: groups of at most this many elements gather gradients and weights into flat buffers
GATHER_LIMIT = 1 << 17


def state_names(group: dict[str, Any], adaptive: bool) -> tuple[str, ...]:
    """The state tensors a parameter of ``group`` needs (``initial`` only with ``l2_init``,
    ``reset_after`` or ``reset_every``, ``zero_steps`` only with ``reset_after``)."""
    names = ("utility",) + (("exp_avg", "exp_avg_sq") if adaptive else ())
    if group["l2_init"] > 0.0 or group["reset_after"] > 0 or group["reset_every"] > 0:
        names += ("initial",)
    return names + (("zero_steps",) if group["reset_after"] > 0 else ())


def state_dtype(name: str, param_dtype: torch.dtype) -> torch.dtype:
    """``zero_steps`` counts steps (int32, exact for any parameter dtype); the rest are floats
    of the parameter's dtype."""
    return torch.int32 if name == "zero_steps" else param_dtype


def eligible(group: dict[str, Any], state) -> bool:
    """Whether ``group`` takes the fast path this step (see the module docstring); once a
    layout exists, :meth:`FlatGroup.ready` decides the same without hashing parameters."""
    if group["foreach"] is False:
        return False
    params = group["params"]
    if not params:
        return False
    first = params[0]
    step = state[first].get("step", 0) if first in state else 0
    for p in params:
        if p.grad is None or p.device != first.device or p.dtype != first.dtype:
            return False
        if (state[p].get("step", 0) if p in state else 0) != step:
            return False
    return True


class FlatGroup:
    """The flat buffers of one param group and the per-parameter views that are its state."""

    def __init__(self, group: dict[str, Any], state, names: tuple[str, ...]) -> None:
        params = tuple(group["params"])
        self.params = params
        self.names = names
        self.utility = group["utility"]
        first = params[0]
        self.device, self.dtype = first.device, first.dtype
        self.numels = [p.numel() for p in params]
        self.n = sum(self.numels)
        self.rows = [unit_rows(p) for p in params]
        self.n_utility = self.n if self.utility == "weight" else sum(self.rows)
        self.gather = self.n <= GATHER_LIMIT
        self.utility_sizes = self.numels if self.utility == "weight" else self.rows
        self.utility_counts = torch.tensor(self.utility_sizes, dtype=torch.long, device=self.device)
        if self.utility == "unit":  # weights per unit, to spread a unit's gate over its row
            cols = [numel // rows if rows else 0 for numel, rows in zip(self.numels, self.rows)]
            self.repeats = torch.tensor([c for c, r in zip(cols, self.rows) for _ in range(r)],
                                        dtype=torch.long, device=self.device)
        self.buffers: dict[str, Tensor] = {}
        self.views: dict[str, list[Tensor]] = {}
        self._scratch: dict[str, Tensor] = {}
        self._scratch_views: dict[str, list[Tensor]] = {}
        self.state_ref = state
        self.entries = [state[p] for p in params]  # the per-parameter state dicts, in order
        for name in names:
            size = self.n_utility if name == "utility" else self.n
            flat = torch.zeros(size, device=self.device, dtype=state_dtype(name, self.dtype))
            views = self.split(flat, utility=name == "utility")
            for p, view in zip(params, views):
                st = state[p]
                st.setdefault("step", 0)
                old = st.get(name)
                if old is not None:
                    if tuple(old.shape) != tuple(view.shape):
                        raise ValueError(_shape_message(name, old, view, self.utility))
                    view.copy_(old)
                elif name == "initial":
                    view.copy_(p)  # w0: the weights at the parameter's first step with l2_init, reset_after or reset_every
                st[name] = view
            self.buffers[name] = flat
            self.views[name] = views

    def split(self, flat: Tensor, utility: bool = False) -> list[Tensor]:
        """Views of ``flat`` shaped like each parameter (or like its utility state)."""
        views, offset = [], 0
        for p, numel, rows in zip(self.params, self.numels, self.rows):
            shape = utility_shape(p, self.utility) if utility else p.shape
            size = rows if utility and self.utility == "unit" else numel
            views.append(flat[offset:offset + size].view(shape))
            offset += size
        return views

    def current(self, group: dict[str, Any], state, names: tuple[str, ...]) -> bool:
        """Whether this layout still is the group's state: the same state mapping (torch's
        ``load_state_dict`` replaces it), the same parameters, every parameter's entry in the
        mapping still the layout's (``optimizer.state.pop(p)``, the usual way to give a parameter
        fresh state, removes it), and every entry still the layout's view. One dict lookup per
        parameter (hashing a tensor is by identity) and identity checks."""
        params = group["params"]
        if (state is not self.state_ref or names != self.names or group["utility"] != self.utility
                or len(params) != len(self.params)):
            return False
        if not all(map(operator.is_, params, self.params)):
            return False
        if not all(map(operator.is_, map(state.get, params), self.entries)):
            return False
        return all(all(map(operator.is_, map(operator.methodcaller("get", name), self.entries),
                           self.views[name])) for name in names)

    def ready(self) -> bool:
        """Whether the group takes the fast path this step: every parameter has a gradient, all
        step counts are equal, and no parameter has moved to another dtype or device."""
        step = self.entries[0]["step"]
        device, dtype = self.device, self.dtype
        for p, st in zip(self.params, self.entries):
            if p.grad is None or st["step"] != step or p.dtype != dtype or p.device != device:
                return False
        return True

    def scratch(self, name: str, size: int) -> Tensor:
        """Reusable scratch memory (never state): allocating multi-megabyte temporaries on
        every step costs page faults that exceed the arithmetic done in them."""
        buf = self._scratch.get(name)
        if buf is None:
            buf = self._scratch[name] = torch.empty(size, device=self.device, dtype=self.dtype)
        return buf

    def scratch_views(self, name: str, size: int) -> list[Tensor]:
        views = self._scratch_views.get(name)
        if views is None:
            views = self._scratch_views[name] = self.split(self.scratch(name, size))
        return views


def _shape_message(name: str, old: Tensor, view: Tensor, utility: str) -> str:
    return (f"the optimizer state {name!r} has shape {tuple(old.shape)} but utility={utility!r} "
            f"needs {tuple(view.shape)}: the utility mode of a param group cannot change after "
            "its first step")


def update_statistics(layout: FlatGroup, group: dict[str, Any], adaptive: bool) -> list[Tensor]:
    """Count the step and update moments and utilities of the whole group. Returns the partial
    maxima of û for the global eta (empty for ``gate="layer"``)."""
    params = layout.params
    for st in layout.entries:
        st["step"] += 1
    step = layout.entries[0]["step"]
    grads = [p.grad for p in params]
    buffers = layout.buffers
    if layout.gather:
        G = layout.scratch("grad", layout.n)
        W = layout.scratch("param", layout.n)
        torch._foreach_copy_(layout.scratch_views("grad", layout.n), grads)
        torch._foreach_copy_(layout.scratch_views("param", layout.n), list(params))
        P, Gs = [W], [G]
    else:
        P, Gs = list(params), grads
    beta_u = group["beta_utility"]
    if adaptive:
        beta1, beta2 = group["betas"]
        torch._foreach_lerp_(_operand(layout, "exp_avg"), Gs, 1.0 - beta1)
        buffers["exp_avg_sq"].mul_(beta2)
        torch._foreach_addcmul_(_operand(layout, "exp_avg_sq"), Gs, Gs, value=1.0 - beta2)
    u = buffers["utility"]
    u.mul_(beta_u)
    if layout.utility == "weight":
        torch._foreach_addcmul_(_operand(layout, "utility"), Gs, P, value=-(1.0 - beta_u))
    else:
        product = layout.scratch("product", layout.n)
        if layout.gather:
            torch.mul(Gs[0], P[0], out=product)
        else:
            for g, p, out in zip(grads, params, layout.scratch_views("product", layout.n)):
                torch.mul(g, p, out=out)
        sums = layout.scratch("row_sums", layout.n_utility)
        offset_w = offset_u = 0
        for numel, rows in zip(layout.numels, layout.rows):
            row_sums(product[offset_w:offset_w + numel], rows, out=sums[offset_u:offset_u + rows])
            offset_w, offset_u = offset_w + numel, offset_u + rows
        u.add_(sums, alpha=-(1.0 - beta_u))
    clean_utility_(u)
    if group["gate"] != "global" or u.numel() == 0:
        return []
    return [(u.max() / (1.0 - beta_u ** step)).reshape(1)]


def _operand(layout: FlatGroup, name: str) -> list[Tensor]:
    """A state kind as the operand of a ``_foreach`` call next to the parameters: the flat
    buffer when they are gathered, else the per-parameter views."""
    return [layout.buffers[name]] if layout.gather else layout.views[name]


def _scratch_operand(layout: FlatGroup, name: str, flat: Tensor) -> list[Tensor]:
    return [flat] if layout.gather else layout.scratch_views(name, layout.n)


def apply_update(layout: FlatGroup, group: dict[str, Any], eta: Tensor | None,
                 generator: torch.Generator | None, adaptive: bool) -> None:
    """Gate, weight decay, decay toward w0, noise and the step for the whole group."""
    params = layout.params
    step = layout.entries[0]["step"]
    lr, sigma = group["lr"], group["sigma"]
    utility_correction, step_scale, eps = corrections(step, group, adaptive)
    temperature = group["gate_temperature"]
    if group["gate"] == "none":
        _apply_ungated(layout, group, generator, adaptive, step_scale, eps)
        return
    u = layout.buffers["utility"]
    gate = layout.scratch("gate", layout.n_utility)
    if group["gate"] == "layer" and 0 not in layout.utility_sizes:  # eta per tensor, at once
        etas = torch.stack(torch._foreach_max(layout.views["utility"])).div_(utility_correction)
        scales = gate_scale(etas, u, utility_correction, temperature)
        if layout.gather:  # few elements: spread the factors, one multiplication
            torch.mul(u, torch.repeat_interleave(scales, layout.utility_counts,
                                                 output_size=layout.n_utility), out=gate)
        else:  # large tensors: one multiplication each, no pass to spread the factors
            for u_i, out, scale in zip(layout.views["utility"], layout.split(gate, utility=True),
                                       scales.unbind()):
                torch.mul(u_i, scale, out=out)
    elif group["gate"] == "layer":  # some tensor has no utility: one tensor at a time
        for u_i, out in zip(layout.views["utility"], layout.split(gate, utility=True)):
            if u_i.numel():
                scale = gate_scale(u_i.max() / utility_correction, u_i, utility_correction,
                                   temperature)
                torch.mul(u_i, scale, out=out)
    else:
        torch.mul(u, gate_scale(eta, u, utility_correction, temperature), out=gate)
    gate.sigmoid_()                                                                # 1 - s
    if layout.utility == "unit":  # a unit's gate on every weight of its row
        gate = torch.repeat_interleave(gate, layout.repeats, output_size=layout.n)
        gates = [gate] if layout.gather else layout.split(gate)
    else:
        gates = _scratch_operand(layout, "gate", gate)
    P, Gs = _decayed_operands(layout, group)
    noise = None
    if sigma != 0.0:
        noise = draw_noise(layout.scratch("noise", layout.n), generator)
        torch._foreach_addcmul_(P, _scratch_operand(layout, "noise", noise), gates,
                                value=-2.0 * lr * sigma)                          # - 2 lr xi (1-s)
    if adaptive:  # the noise is applied: its memory is free for the denominator
        name = "noise" if noise is not None else "denom"
        denom = layout.scratch(name, layout.n)
        torch.sqrt(layout.buffers["exp_avg_sq"], out=denom)
        denom.add_(eps).div_(gate)
        torch._foreach_addcdiv_(P, _operand(layout, "exp_avg"), _scratch_operand(layout, name, denom),
                                value=-2.0 * lr * step_scale)
    else:
        torch._foreach_addcmul_(P, Gs, gates, value=-2.0 * lr)
    if group["reset_after"] > 0:
        _reset_dead(layout, group, adaptive)
    if layout.gather:
        torch._foreach_copy_(list(params), layout.scratch_views("param", layout.n))


def _decayed_operands(layout: FlatGroup, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
    """The weights and gradients as ``_foreach`` operands (the gathered flat scratch buffers, or
    the parameters themselves), after ``w <- w (1 - lr wd - lr l2) + lr l2 w0``."""
    lr, l2 = group["lr"], group["l2_init"]
    if layout.gather:
        P, Gs = [layout.scratch("param", layout.n)], [layout.scratch("grad", layout.n)]
    else:
        P, Gs = list(layout.params), [p.grad for p in layout.params]
    decay = 1.0 - lr * group["weight_decay"] - lr * l2
    if decay != 1.0:
        torch._foreach_mul_(P, decay)
    if l2 != 0.0:
        torch._foreach_add_(P, _operand(layout, "initial"), alpha=lr * l2)       # + lr l2 w0
    return P, Gs


def _apply_ungated(layout: FlatGroup, group: dict[str, Any], generator: torch.Generator | None,
                   adaptive: bool, step_scale: float, eps: float) -> None:
    """``gate="none"``: ``1 - s = 1/2`` for every weight, so ``2 (1 - s) = 1`` and the step is
    the base optimizer's (SGD's or Adam's) plus decay and noise, with no gate pass at all."""
    params = layout.params
    lr, sigma = group["lr"], group["sigma"]
    P, Gs = _decayed_operands(layout, group)
    if sigma != 0.0:
        noise = draw_noise(layout.scratch("noise", layout.n), generator)
        torch._foreach_add_(P, _scratch_operand(layout, "noise", noise), alpha=-lr * sigma)
    if adaptive:
        denom = layout.scratch("denom", layout.n)
        torch.sqrt(layout.buffers["exp_avg_sq"], out=denom)
        denom.add_(eps)
        torch._foreach_addcdiv_(P, _operand(layout, "exp_avg"), _scratch_operand(layout, "denom", denom),
                                value=-lr * step_scale)
    else:
        torch._foreach_add_(P, Gs, alpha=-lr)
    if group["reset_after"] > 0:
        _reset_dead(layout, group, adaptive)
    if layout.gather:
        torch._foreach_copy_(list(params), layout.scratch_views("param", layout.n))


def _reset_dead(layout: FlatGroup, group: dict[str, Any], adaptive: bool) -> None:
    """``reset_after``: count each weight's run of exactly-zero gradients (``z <- (z + 1) [g =
    0]``) and return the weights whose run reached ``reset_after`` to ``w0``, with their
    moments and run zeroed. After the step, before the gathered weights are written back."""
    names = ("exp_avg", "exp_avg_sq") if adaptive else ()
    if layout.gather:
        pieces = [(layout.scratch("param", layout.n), layout.scratch("grad", layout.n),
                   *(layout.buffers[n] for n in ("zero_steps", "initial", *names)))]
    else:
        pieces = zip(layout.params, (p.grad for p in layout.params),
                     *(layout.views[n] for n in ("zero_steps", "initial", *names)))
    for w, g, zero_steps, initial, *moments in pieces:
        reset_dead_(w, g, zero_steps, initial, moments, group["reset_after"])


# ------------------------------------------------------------------------ gate off: fused Adam
def fuses_adam(group: dict[str, Any], adaptive: bool) -> bool:
    """Whether the group's step is Adam's plus decay, so that torch's fused Adam kernel can take
    it: the adaptive family with ``gate="none"`` (``2 (1 - s) = 1``), no noise, no
    ``reset_after``, the per-weight utility (the trace is kept, for the diagnostics), and
    contiguous parameters and gradients: torch 2.13's CPU kernel reads a gradient's memory in
    the parameter's order, so a transposed gradient updates the wrong weights (reproduced with
    ``torch.optim.Adam(fused=True)`` itself); other groups take the ``_foreach`` path."""
    return (adaptive and group["gate"] == "none" and group["sigma"] == 0.0 and group["reset_after"] == 0
            and group["utility"] == "weight"
            and all(p.is_contiguous() and p.grad.is_contiguous() for p in group["params"]))


def prepare_fused_adam(layout: FlatGroup, group: dict[str, Any], batches: dict[tuple, list[list[Tensor]]]) -> None:
    """The fused group's step up to Adam's: count the step, update the utility trace
    (``u <- beta_u u - (1 - beta_u) g w``, cleaned), decay the weights
    (``w <- w (1 - lr wd - lr l2) + lr l2 w0``), then add the parameters, gradients and moment
    views to the batch of groups that share one kernel call (:func:`fused_adam_steps`): the
    same device, dtype, step count and Adam hyperparameters."""
    params = list(layout.params)
    for st in layout.entries:
        st["step"] += 1
    step = layout.entries[0]["step"]
    grads = [p.grad for p in params]
    beta_u = group["beta_utility"]
    u = layout.buffers["utility"]
    u.mul_(beta_u)
    torch._foreach_addcmul_(layout.views["utility"], grads, params, value=-(1.0 - beta_u))
    clean_utility_(u)
    lr, l2 = group["lr"], group["l2_init"]
    decay = 1.0 - lr * group["weight_decay"] - lr * l2
    if decay != 1.0:
        torch._foreach_mul_(params, decay)
    if l2 != 0.0:
        torch._foreach_add_(params, layout.views["initial"], alpha=lr * l2)   # + lr l2 w0
    beta1, beta2 = group["betas"]
    key = (params[0].device, params[0].dtype, step, float(lr), float(beta1), float(beta2), float(group["eps"]))
    batch = batches.setdefault(key, [[], [], [], []])
    batch[0].extend(params)
    batch[1].extend(grads)
    batch[2].extend(layout.views["exp_avg"])
    batch[3].extend(layout.views["exp_avg_sq"])


def fused_adam_steps(batches: dict[tuple, list[list[Tensor]]]) -> None:
    """One call of ``torch._fused_adam_`` per batch: Adam's moments and
    ``w <- w - lr m̂ / (sqrt(v̂) + eps)``, the gated step with ``2 (1 - s) = 1`` (equal to the
    flat path's arithmetic to float rounding; the kernel reads the step count from a tensor)."""
    for (device, _, step, lr, beta1, beta2, eps), (params, grads, exp_avgs, exp_avg_sqs) in batches.items():
        steps = [torch.tensor(float(step), dtype=torch.float32, device=device)] * len(params)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=lr, beta1=beta1, beta2=beta2,
                           weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
