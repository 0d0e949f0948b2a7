"""UPGD optimizer family: utility-based perturbed gradient descent (Elsayed & Mahmood, ICLR 2024).

Three ordinary :class:`torch.optim.Optimizer` subclasses:

* :class:`UPGD` -- first-order, global utility, protecting;
* :class:`AdaptiveUPGD` -- the same gating around Adam's bias-corrected direction;
* :class:`UPGDW` -- :class:`AdaptiveUPGD` with AdamW's defaults.

For every weight ``w`` with gradient ``g`` at that weight's step ``t``::

    u_t   = beta_utility * u_{t-1} + (1 - beta_utility) * (-g * w)
    û_t   = u_t / (1 - beta_utility ** t)
    eta   = max(max over all stepping weights of all groups of the finite û_t, tiny)
    s     = sigmoid(û_t / eta)
    w    <- w * (1 - lr * weight_decay) - 2 * lr * (d + xi) * (1 - s),   xi ~ N(0, sigma^2)

with ``d = g`` (UPGD) or ``d = m̂ / (sqrt(v̂) + eps)`` (AdaptiveUPGD, UPGDW; Adam's moments of
the raw gradient, each bias-corrected with the parameter's own step count).

**Step convention: the factor 2 of the official code.** With no utility information (all
utilities equal, ``s = 1/2``) the step is exactly the base optimizer's at the same ``lr``:
UPGD's is SGD's, AdaptiveUPGD's is Adam's, UPGDW's is AdamW's. A learning rate tuned for Adam
therefore carries over, and so do PBT search ranges. (Without the 2, the gate ``1 - s``, which
stays near 1/2 in PPO-sized networks, halves every step.) ``tiny`` is
``torch.finfo(dtype).tiny``, the smallest positive normal number of the parameter dtype: the
floor only changes anything when no utility is positive, and then no division by zero (or sign
inversion of the gating) can happen.

**Mechanisms beyond the paper**, per param group, each off by default (the rule above exactly):
``gate="layer"`` (eta per parameter tensor), ``gate="none"`` (``1 - s = 1/2``: the gate off,
so that ``AdaptiveUPGD(gate="none", sigma=0, weight_decay=0)`` is Adam and, with ``l2_init``,
Adam with L2-Init), ``gate_temperature=T`` (``s = sigmoid(û / (eta
T))``), ``utility="unit"`` (one utility per output unit, ``-sum`` over its row of ``g * w``,
its gate shared by the row) and ``l2_init`` (L2-Init, Kumar et al. 2023: ``w <- w - lr * l2_init
* (w - w0)``, ``w0`` in the state as ``"initial"``) and ``reset_after=K`` (a weight whose
gradient has been exactly zero for ``K`` consecutive steps returns to ``w0`` with its moments
zeroed: dead ReLU units come back; counted in the state as ``"zero_steps"``) and
``reset_every=N`` (every ``N`` steps of a parameter, its weights return to ``w0`` and its state
to a fresh optimizer's: the periodic resets of Nikishin et al. 2022, for a param group holding
the layers to reset, typically the output layer).

**Non-finite gradients** stay confined to their own weight, as in Adam: the utility trace of
an element whose trace is NaN or +inf is set to -inf (:func:`lifelong.optim.gating.clean_utility_`),
so it takes no part in eta and changes no other weight's gate; its own weight goes non-finite
exactly where torch's SGD/Adam/AdamW's does. No NaN or Inf from finite input.

Two paths compute the step: the flat fast path (:mod:`lifelong.optim.flat`, the default) and
the per-tensor reference (:mod:`lifelong.optim.reference`, ``foreach=False``, and the fallback
for groups the fast path does not cover). They agree to float rounding.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lifelong.optim import flat, reference
from lifelong.optim.gating import global_eta, utility_shape
from lifelong.optim.hyperparameters import MECHANISMS_OFF, validate_group

__all__ = ["UPGD", "AdaptiveUPGD", "UPGDW"]


_GENERATOR_KEY = "generator_state"


def _check_loaded_state(state: dict[str, Any], p: Tensor, group: dict[str, Any], index: int) -> None:
    """Refuse a loaded per-parameter state that this parameter cannot use: a non-integer or
    negative ``step``, or a state tensor whose shape is not the parameter's (``utility``: the
    shape its group's ``utility`` mode needs). Checked at load, so that a foreign or edited
    state dict fails with the parameter and key named, not deep inside a later step."""
    step = state.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"optimizer state of parameter {index} of its group: 'step' must be a "
                         f"non-negative integer, got {step!r}")
    for name, value in state.items():
        if name == "step":
            continue
        if not isinstance(value, Tensor):
            raise ValueError(f"optimizer state of parameter {index} of its group: {name!r} must be "
                             f"a tensor, got {type(value).__name__}")
        expected = utility_shape(p, group["utility"]) if name == "utility" else tuple(p.shape)
        if tuple(value.shape) != expected:
            raise ValueError(f"optimizer state of parameter {index} of its group: {name!r} has shape "
                             f"{tuple(value.shape)}, expected {expected} for a parameter of shape "
                             f"{tuple(p.shape)}")


# --------------------------------------------------------------------------------------------
# the optimizer
# --------------------------------------------------------------------------------------------
class _UPGDBase(Optimizer):
    """Shared machinery; use :class:`UPGD`, :class:`AdaptiveUPGD` or :class:`UPGDW`."""

    _adaptive: bool = False

    def __init__(self, params: Iterable, defaults: dict[str, Any],
                 generator: torch.Generator | None) -> None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {generator!r}")
        validate_group(dict(defaults), self._adaptive)  # clear error before any group is built
        self._generator = generator
        self._layouts: dict[int, flat.FlatGroup] = {}
        super().__init__(params, defaults)

    # -- groups, pickling, state_dict ------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        validate_group(self.param_groups[-1], self._adaptive)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickling passes "_generator_blob" (see __getstate__); torch's load_state_dict also
        # calls __setstate__, without it, and must leave the generator alone.
        has_blob = "_generator_blob" in state
        blob = state.pop("_generator_blob", None)
        super().__setstate__(state)
        if has_blob:  # unpickling: __init__ did not run
            self._generator = None
            if blob is not None:
                self._generator = torch.Generator(device=blob[0])
                self._generator.set_state(blob[1])
        self._layouts = {}  # rebuilt from the state on the next fast step
        for group in self.param_groups:
            group.setdefault("foreach", None)
            for key, off in MECHANISMS_OFF.items():  # a group saved before the mechanism existed
                group.setdefault(key, off)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        generator = self._generator
        state["_generator_blob"] = (None if generator is None
                                    else (str(generator.device), generator.get_state()))
        return state

    @property
    def generator(self) -> torch.Generator | None:
        """The generator the noise is drawn from (``None``: torch's global RNG of the device)."""
        return self._generator

    def state_dict(self) -> dict[str, Any]:
        """Torch's optimizer state dict, plus ``"generator_state"`` (a uint8 tensor) when the
        optimizer draws its noise from its own generator. Tensors, numbers and strings only.
        The per-parameter state tensors are the live state (views of the fast path's flat
        buffers), as torch's optimizers return theirs: clone them to keep a snapshot."""
        sd = super().state_dict()
        if self._generator is not None:
            sd[_GENERATOR_KEY] = self._generator.get_state().clone()
        return sd

    def check_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Raise ``ValueError`` for a state dict :meth:`load_state_dict` would refuse, changing
        nothing: param groups whose number or sizes differ from this optimizer's, a group
        hyperparameter out of range, a per-parameter state that does not fit its parameter (a
        non-integer or negative ``step``, a tensor of another shape than the parameter's, or
        than its group's ``utility`` mode needs), a ``generator_state`` that is not a uint8
        tensor. Saved parameters match live ones by position, group by group, as torch's
        ``load_state_dict`` matches them."""
        groups, state = state_dict.get("param_groups"), state_dict.get("state")
        if not isinstance(groups, list) or not isinstance(state, dict):
            raise ValueError("expected an optimizer state dict with 'state' and 'param_groups'")
        sizes = [len(g.get("params", ())) if isinstance(g, dict) else -1 for g in groups]
        live_sizes = [len(g["params"]) for g in self.param_groups]
        if sizes != live_sizes:
            raise ValueError(f"the state dict's param groups have sizes {sizes}, this optimizer's "
                             f"{live_sizes}")
        for saved, live in zip(groups, self.param_groups):
            group = {**MECHANISMS_OFF, **saved, "params": live["params"]}
            validate_group(group, self._adaptive)
            for index, (key, p) in enumerate(zip(saved["params"], live["params"])):
                entry = state.get(key, {})
                if not isinstance(entry, dict):
                    raise ValueError(f"optimizer state of parameter {index} of its group: expected a "
                                     f"dict, got {type(entry).__name__}")
                _check_loaded_state(entry, p, group, index)
        generator_state = state_dict.get(_GENERATOR_KEY)
        if generator_state is not None and (not isinstance(generator_state, Tensor)
                                            or generator_state.dtype != torch.uint8):
            raise ValueError(f"generator_state must be a uint8 tensor, got {type(generator_state).__name__}")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict from :meth:`state_dict`, after :meth:`check_state_dict` (a refused
        state dict leaves the optimizer as it was). The state tensors are copied, so the
        optimizer never shares memory with the dict (or with the optimizer it came from)."""
        self.check_state_dict(state_dict)
        state_dict = dict(state_dict)
        generator_state = state_dict.pop(_GENERATOR_KEY, None)
        state_dict["state"] = {k: {n: (v.clone() if isinstance(v, Tensor) else v)
                                   for n, v in s.items()}
                               for k, s in state_dict["state"].items()}
        state_dict["param_groups"] = [{**MECHANISMS_OFF, **g} for g in state_dict["param_groups"]]
        super().load_state_dict(state_dict)
        for entry in self.state.values():  # torch casts every state tensor to the parameter's dtype
            if "zero_steps" in entry:
                entry["zero_steps"] = entry["zero_steps"].to(torch.int32)
        if generator_state is not None and self._generator is not None:
            self._generator.set_state(generator_state.cpu())

    # -- the step ------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step. ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:  # refuse before any state changes
            for p in group["params"]:
                if p.grad is not None and (p.grad.is_sparse or p.dtype.is_complex):
                    kind = "sparse gradients" if p.grad.is_sparse else "complex parameters"
                    raise RuntimeError(f"{type(self).__name__} does not support {kind}")

        # Phase 1: moments and utilities of every parameter that has a gradient, and the partial
        # maxima of the bias-corrected utility (as tensors: no host synchronisation).
        plans = []
        maxima: list[Tensor] = []
        fused: dict[tuple, list[list[Tensor]]] = {}  # gate off: Adam's step, one kernel call per batch
        adaptive = self._adaptive
        for index, group in enumerate(self.param_groups):
            layout = self._layout(index, group)
            if layout is not None and flat.fuses_adam(group, adaptive):
                flat.prepare_fused_adam(layout, group, fused)
                continue
            if layout is not None:
                maxima.extend(flat.update_statistics(layout, group, adaptive))
                plans.append((group, layout))
                continue
            buckets = self._buckets(group)
            if buckets:
                for bucket in buckets:
                    maxima.extend(reference.update_statistics(bucket, group, adaptive))
                plans.append((group, buckets))
        flat.fused_adam_steps(fused)
        if not plans and not fused:
            return loss

        if plans:
            eta = global_eta(maxima)
            # Phase 2: gates, weight decay, decay toward w0, noise and the step.
            for group, plan in plans:
                if isinstance(plan, flat.FlatGroup):
                    flat.apply_update(plan, group, eta, self._generator, adaptive)
                    continue
                noise = reference.bucket_noise(plan, group["sigma"], self._generator)
                for bucket, bucket_noise in zip(plan, noise):
                    reference.apply_update(bucket, group, eta, bucket_noise, adaptive)
        self._reset_periodically()
        return loss

    def _reset_periodically(self) -> None:
        """``reset_every=N``: a parameter whose step count has reached ``N`` returns to ``w0``
        and its state to a fresh optimizer's (moments, utility and zero-gradient runs zero, step
        count 0), so the next step is a first step again. In place: the flat path's views stay
        its state, and a group's parameters, which step together, keep equal step counts."""
        for group in self.param_groups:
            every = group["reset_every"]
            if every == 0:
                continue
            for p in group["params"]:
                state = self.state.get(p)
                if not state or state["step"] < every:
                    continue
                p.copy_(state["initial"])
                for name, value in state.items():
                    if name not in ("step", "initial"):
                        value.zero_()
                state["step"] = 0

    def _layout(self, index: int, group: dict[str, Any]) -> flat.FlatGroup | None:
        """The flat layout of group ``index`` if the group takes the fast path this step (see
        :mod:`lifelong.optim.flat`), rebuilt when the state is no longer its views."""
        if group["foreach"] is False or not group["params"]:
            return None
        names = flat.state_names(group, self._adaptive)
        layout = self._layouts.get(index)
        if layout is not None and layout.current(group, self.state, names):
            return layout if layout.ready() else None
        if not flat.eligible(group, self.state):
            return None
        layout = self._layouts[index] = flat.FlatGroup(group, self.state, names)
        return layout

    def _buckets(self, group: dict[str, Any]) -> list[dict[str, Any]]:
        """Parameters of ``group`` that have a gradient, grouped by (device, dtype, step count)
        in their order of first appearance; initialises missing state and counts the step."""
        buckets: dict[tuple, dict[str, Any]] = {}
        names = flat.state_names(group, self._adaptive)
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            state = self.state[p]
            state.setdefault("step", 0)
            for name in names:
                if name not in state:
                    state[name] = (p.detach().clone() if name == "initial" else
                                   torch.zeros(utility_shape(p, group["utility"]) if name == "utility"
                                               else p.shape, dtype=flat.state_dtype(name, p.dtype),
                                               device=p.device))
            if tuple(state["utility"].shape) != utility_shape(p, group["utility"]):
                raise ValueError(
                    f"the optimizer state 'utility' has shape {tuple(state['utility'].shape)} but "
                    f"utility={group['utility']!r} needs {utility_shape(p, group['utility'])}: the "
                    "utility mode of a param group cannot change after its first step")
            state["step"] += 1
            key = (p.device, p.dtype, state["step"])
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = {"step": state["step"], "params": [], "grads": [],
                                         "utility": [], "exp_avg": [], "exp_avg_sq": [],
                                         "initial": [], "zero_steps": []}
            bucket["params"].append(p)
            bucket["grads"].append(g)
            for name in ("utility", "exp_avg", "exp_avg_sq", "initial", "zero_steps"):
                if name in state:
                    bucket[name].append(state[name])
        return list(buckets.values())

    # -- diagnostics -----------------------------------------------------------------------
    @torch.no_grad()
    def _utility_gates(self) -> list[tuple[Tensor, Tensor, Tensor]]:
        """``(parameter, û, 1 - s)`` for every parameter with a utility, in the optimizer's
        order; ``û`` the bias-corrected utility ``u / (1 - beta_utility ** t)`` in float64 and
        the gate on the utility's shape (the parameter's, or one per unit with
        ``utility="unit"``). ``eta`` is the floored maximum of the finite ``û`` over every
        group with ``gate="global"`` (per parameter tensor with ``gate="layer"``); a
        ``gate="none"`` group's gate is 1/2. The one place the gate is recomputed from the
        state (:meth:`gates`, :meth:`gating_stats`)."""
        entries = []
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state or state["utility"].numel() == 0:
                    continue
                correction = 1.0 - group["beta_utility"] ** state["step"]
                entries.append((p, state["utility"].detach().double() / correction, group))
        if not entries:
            return []
        device = entries[0][1].device
        tiny = torch.tensor(torch.finfo(torch.float64).tiny, dtype=torch.float64, device=device)

        def finite_max(u: Tensor) -> Tensor:  # -inf where nothing is finite, then floored
            return torch.where(torch.isfinite(u), u, -torch.inf).max().to(device).clamp_min(tiny)

        global_maxima = [finite_max(u) for _, u, group in entries if group["gate"] == "global"]
        eta_global = torch.stack(global_maxima).max() if global_maxima else tiny
        out = []
        for p, u, group in entries:
            if group["gate"] == "none":  # the gate off: 1 - s = 1/2 everywhere
                gate = torch.full_like(u, 0.5)
            else:
                eta = eta_global if group["gate"] == "global" else finite_max(u)
                gate = torch.sigmoid(u / -(eta.to(u.device) * group["gate_temperature"]))
            out.append((p, u, gate))
        return out

    def gates(self) -> list[Tensor]:
        """The gate ``1 - s = sigmoid(-û / (eta * gate_temperature))`` of every weight, from the
        optimizer state: one float64 tensor shaped like its parameter per parameter with state,
        in the optimizer's order (a unit's gate on every weight of its row with
        ``utility="unit"``; 1/2 in a ``gate="none"`` group). ``[]`` before the first step. What
        :func:`lifelong.diagnostics.upgd_gates` returns and the run report's histogram shows."""
        gates = []
        for p, _, gate in self._utility_gates():
            if gate.shape != p.shape:  # one utility per unit (row)
                gate = gate.repeat_interleave(p.numel() // max(gate.numel(), 1)).view(p.shape)
            gates.append(gate)
        return gates

    def gating_stats(self) -> dict[str, float]:
        """Summary of the gating, computed from the optimizer state (one host sync), in float64.

        ``gate_mean``: mean of ``1 - s`` over all weights with a finite utility (each group
        with its own gate, temperature and utility mode; a unit's gate counts once per weight
        of its row; a ``gate="none"`` group counts 1/2 per weight); ``utility_mean`` and
        ``utility_min``: of the finite bias-corrected utilities ``û``; ``utility_max``: the
        global ``eta`` (floored maximum of the finite ``û``), i.e. the last step's ``eta`` when
        every parameter took part in it. Finite for finite input. Empty before the first step
        (or when no utility is finite)."""
        entries = self._utility_gates()
        if not entries:
            return {}
        # masked reductions (no boolean indexing, whose output size would need a host sync per
        # tensor on an accelerator): the one sync is the final .tolist()
        device = entries[0][1].device
        gate_sums, weight_counts, utility_sums, utility_counts, maxima, minima = [], [], [], [], [], []
        for p, u, gate in entries:
            finite = torch.isfinite(u)
            per = max(p.numel() // max(u.numel(), 1), 1)  # weights per utility
            count = finite.sum(dtype=torch.float64)
            gate_sums.append(torch.where(finite, gate, 0.0).sum().to(device) * per)
            weight_counts.append(count.to(device) * per)
            utility_sums.append(torch.where(finite, u, 0.0).sum().to(device))
            utility_counts.append(count.to(device))
            maxima.append(torch.where(finite, u, -torch.inf).max().to(device))
            minima.append(torch.where(finite, u, torch.inf).min().to(device))
        n_finite = torch.stack(utility_counts).sum()
        tiny = torch.finfo(torch.float64).tiny
        n, gate_mean, utility_mean, utility_max, utility_min = torch.stack([
            n_finite, torch.stack(gate_sums).sum() / torch.stack(weight_counts).sum(),
            torch.stack(utility_sums).sum() / n_finite, torch.stack(maxima).max().clamp_min(tiny),
            torch.stack(minima).min()]).tolist()
        if n == 0:
            return {}
        return {"gate_mean": gate_mean, "utility_mean": utility_mean, "utility_max": utility_max,
                "utility_min": utility_min}


# --------------------------------------------------------------------------------------------
# public classes
# --------------------------------------------------------------------------------------------
class UPGD(_UPGDBase):
    r"""Utility-based perturbed gradient descent (first-order, global utility, protecting).

    ``w <- w (1 - lr wd) - 2 lr (g + xi) (1 - sigmoid(û / eta))``, see the module docstring.

    Args:
        params: parameters or param groups, as for any torch optimizer.
        lr: step size (``>= 0``).
        weight_decay: decoupled weight decay, ``w * (1 - lr * weight_decay)`` (``>= 0``).
        beta_utility: decay of the utility trace, in ``[0, 1)``.
        sigma: standard deviation of the Gaussian perturbation (``>= 0``; 0 turns it off).
        gate: ``"global"`` (the paper: ``eta`` is the maximum over every stepping weight of
            every group with a global gate), ``"layer"`` (``eta`` per parameter tensor) or
            ``"none"`` (``1 - s = 1/2`` for every weight: no protection, the base optimizer's
            step plus ``weight_decay``, ``l2_init`` and noise; the utility trace is still
            kept, for diagnostics and for a later switch of the gate).
        gate_temperature: ``T > 0`` in ``s = sigmoid(û / (eta * T))``; 1 is the paper's, a
            smaller ``T`` spreads the gate away from 1/2.
        utility: ``"weight"`` (the paper's per-weight ``-g * w``) or ``"unit"`` (one utility
            per output unit: ``-sum`` of ``g * w`` over the unit's row, the first-order
            estimate of removing the unit's incoming weights; every weight of a row shares
            its unit's gate). Fixed after a group's first step.
        l2_init: decay toward the initial weights (L2-Init, Kumar et al. 2023),
            ``w <- w - lr * l2_init * (w - w0)`` (``>= 0``; 0 is off). ``w0`` (state
            ``"initial"``) is the weights at the parameter's first step with ``l2_init > 0``
            (or ``reset_after``, ``reset_every > 0``).
        reset_after: reset a weight whose gradient has been exactly zero for this many
            consecutive steps to its initial value ``w0``, and its Adam moments to zero
            (``>= 0``; 0 is off). Revives dead ReLU units without knowing the network: a unit
            that outputs zero on every input gives exactly zero gradient to its incoming
            weights, its bias and its outgoing weights, so after ``reset_after`` steps all of
            them return to their initial values, where the unit was alive (cf. ReDo, Sokar et
            al. 2023, and continual backprop, Dohare et al. 2024, which reset by unit). A live
            unit's weights get exact zeros only on samples where it is off, so ``reset_after``
            must exceed the longest such run (hundreds of steps at batch size 1; an
            activation such as tanh never gives exact zeros). State: ``"initial"`` and
            ``"zero_steps"`` (the current run of zero gradients, per weight).
        reset_every: every this many steps of a parameter (``>= 0``; 0 is off), return its
            weights to ``w0`` and its state to a fresh optimizer's (moments, utility, zero
            runs; step count 0). Meant for a param group of its own holding the layers to
            reset (Nikishin et al. 2022 reset an agent's last layers periodically): on a
            stream of tasks that change what the output means, a fresh output layer over
            the learned features relearns faster than a confident stale one unlearns.
            State: ``"initial"``; the step count is the period's clock.
        generator: optional :class:`torch.Generator` for the noise (on the parameters' device
            or the CPU); its state is part of :meth:`state_dict`. ``None`` uses torch's
            global generator of the parameters' device.
        foreach: ``None`` or ``True`` (default: the flat fast path where a group allows it,
            see :mod:`lifelong.optim.flat`) or ``False`` (per-tensor reference path). Both
            agree to float rounding.
    """

    def __init__(self, params: Iterable, lr: float = 1e-5, weight_decay: float = 0.001,
                 beta_utility: float = 0.999, sigma: float = 0.001, *, gate: str = "global",
                 gate_temperature: float = 1.0, utility: str = "weight", l2_init: float = 0.0,
                 reset_after: int = 0, reset_every: int = 0, generator: torch.Generator | None = None,
                 foreach: bool | None = None) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, beta_utility=beta_utility,
                        sigma=sigma, gate=gate, gate_temperature=gate_temperature,
                        utility=utility, l2_init=l2_init, reset_after=reset_after,
                        reset_every=reset_every, foreach=foreach)
        super().__init__(params, defaults, generator)


class AdaptiveUPGD(_UPGDBase):
    r"""UPGD around Adam's direction: ``g`` in the update becomes ``m̂ / (sqrt(v̂) + eps)``.

    The utility still uses the raw gradient; weight decay is decoupled; at neutral utility
    (``1 - s = 1/2``) the step is Adam's at the same ``lr``.
    Arguments as :class:`UPGD`, plus ``betas`` (each in ``[0, 1)``) and ``eps`` (``> 0``)
    for Adam's moments.
    """

    _adaptive = True

    def __init__(self, params: Iterable, lr: float = 3e-4, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.001, beta_utility: float = 0.999,
                 sigma: float = 0.001, *, gate: str = "global", gate_temperature: float = 1.0,
                 utility: str = "weight", l2_init: float = 0.0, reset_after: int = 0,
                 reset_every: int = 0, generator: torch.Generator | None = None,
                 foreach: bool | None = None) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        beta_utility=beta_utility, sigma=sigma, gate=gate,
                        gate_temperature=gate_temperature, utility=utility, l2_init=l2_init,
                        reset_after=reset_after, reset_every=reset_every, foreach=foreach)
        super().__init__(params, defaults, generator)


class UPGDW(AdaptiveUPGD):
    r""":class:`AdaptiveUPGD` with AdamW's defaults (``lr=1e-3``, ``weight_decay=0.01``):
    a drop-in for :class:`torch.optim.AdamW`."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, beta_utility: float = 0.999,
                 sigma: float = 0.001, *, gate: str = "global", gate_temperature: float = 1.0,
                 utility: str = "weight", l2_init: float = 0.0, reset_after: int = 0,
                 reset_every: int = 0, generator: torch.Generator | None = None,
                 foreach: bool | None = None) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         beta_utility=beta_utility, sigma=sigma, gate=gate,
                         gate_temperature=gate_temperature, utility=utility, l2_init=l2_init,
                         reset_after=reset_after, reset_every=reset_every, generator=generator,
                         foreach=foreach)
