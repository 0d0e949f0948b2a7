"""The per-minibatch gradient chores of :meth:`DistributionalPPO.train`, without the per-call
overhead of their general-purpose torch versions (measured on the default CartPole policy, one
CPU thread: ``Optimizer.zero_grad`` 31 -> 6 us, ``clip_grad_norm_`` 170 -> 80 us, the fused
``Adam.step`` 94 -> 54 us). Each reads the parameters from the optimizer at each call (nothing
else holds them) and computes exactly what torch's version computes, to the bit; each falls back
to torch's where its shortcut would not apply.
"""
from __future__ import annotations

from typing import Any

import torch as th
from torch.optim import optimizer as torch_optimizer

__all__ = ["clip_grad_norm", "clip_listed", "fused_adam_calls", "step_fused_adam", "take_step", "zero_grad"]

# Adam options under which one call of torch's fused kernel is the whole of ``Adam.step``.
_PLAIN_FUSED_ADAM = {"fused": True, "amsgrad": False, "maximize": False, "capturable": False,
                     "differentiable": False, "decoupled_weight_decay": False}


def zero_grad(optimizer: th.optim.Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)``: every parameter's ``grad`` to ``None``, without
    the profiler scope torch opens on each call (an optimizer that overrides ``zero_grad`` gets
    its own)."""
    if type(optimizer).zero_grad is not th.optim.Optimizer.zero_grad:
        optimizer.zero_grad(set_to_none=True)
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def clip_grad_norm(optimizer: th.optim.Optimizer, max_norm: float) -> th.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` over the optimizer's parameters, L2, returning the total
    norm before clipping: ``total = ||(||g_1||, ..., ||g_n||)||``, every gradient multiplied by
    ``min(1, max_norm / (total + 1e-6))``, with the same ``_foreach`` kernels and order as torch's
    when all gradients share one device and dtype (else torch's own function)."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return th.tensor(0.0)
    first = grads[0]
    if any(g.device != first.device or g.dtype != first.dtype or g.is_sparse for g in grads):
        return th.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_norm)
    return clip_listed(grads, max_norm)


def clip_listed(grads: list[th.Tensor], max_norm: float) -> th.Tensor:
    """:func:`clip_grad_norm`'s arithmetic on ``grads`` as listed (dense, one device and dtype,
    in the optimizer's parameter order; non-empty): for a caller that has checked them, such as
    the lists of :func:`fused_adam_calls`."""
    total = th.linalg.vector_norm(th.stack(th._foreach_norm(grads, 2.0)), 2.0)
    # clamp(max_norm / (total + 1e-6), max=1) as torch computes it (a float over a tensor is
    # reciprocal() * float), in place on one temporary
    coefficient = (total + 1e-6).reciprocal_().mul_(max_norm).clamp_(max=1.0)
    th._foreach_mul_(grads, coefficient)
    return total


def _contiguous_gradient(p: th.Tensor) -> th.Tensor:
    """``p.grad``, replaced first by a contiguous copy (same values) if it is not contiguous:
    torch 2.13's CPU fused Adam/AdamW read a gradient in the parameter's memory order, so a
    transposed gradient would update the wrong weights."""
    if not p.grad.is_contiguous():
        p.grad = p.grad.contiguous()
    return p.grad


def _real_step(optimizer: th.optim.Optimizer) -> None:
    """``optimizer.step()``, its fused groups' gradients made contiguous first."""
    for group in optimizer.param_groups:
        if group.get("fused"):
            for p in group["params"]:
                if p.grad is not None:
                    _contiguous_gradient(p)
    optimizer.step()


def take_step(optimizer: th.optim.Optimizer) -> None:
    """``optimizer.step()``. For a plain fused ``torch.optim.Adam`` (the agent's default) whose
    step nothing observes or wraps, the step is the two operations ``Adam.step`` itself ends with,
    ``_foreach_add_(steps, 1)`` and ``_fused_adam_(...)``, called directly: the same kernel on the
    same tensors (bitwise the same parameters and state, tested), without the ~50 us of Python
    around it (the profiler scope, hook dispatch, ``_init_group``, grouping by device and dtype).

    For an optimizer with a fused group, a gradient that is not contiguous (a transposed
    tensor assigned to ``.grad``; autograd's match their parameter's layout) is first replaced
    by a contiguous copy: torch 2.13's CPU kernel reads it in the parameter's memory order, so
    ``Adam(fused=True).step()`` alone updates the wrong weights with it (with the copy: the
    ``foreach`` path's step, tested).

    Any other case calls ``optimizer.step()``: another optimizer class or a subclass, a step
    wrapped on the instance (a learning-rate scheduler does that), registered step hooks (the
    optimizer's or torch's global ones), a ``GradScaler``'s ``grad_scale``/``found_inf``, a group
    with other options (``amsgrad``, ``maximize``, ``capturable``, ``differentiable``,
    ``decoupled_weight_decay``, a tensor ``lr``), a first step (state not yet created), a
    parameter that is not contiguous, or parameters and gradients on several devices or dtypes."""
    calls = fused_adam_calls(optimizer)
    if calls is None:
        _real_step(optimizer)
    else:
        step_fused_adam(calls)


FusedAdamCall = tuple[dict[str, Any], list[th.Tensor], list[th.Tensor], list[th.Tensor], list[th.Tensor], list[th.Tensor]]


def fused_adam_calls(optimizer: th.optim.Optimizer) -> list[FusedAdamCall] | None:
    """What :func:`take_step`'s direct path calls for ``optimizer`` as it is now, one entry per
    param group with gradients: ``(group, params, grads, exp_avgs, exp_avg_sqs, steps)``, or None
    where :func:`take_step` calls ``optimizer.step()`` (see there). Non-contiguous gradients are
    made contiguous first (the new ``.grad`` is listed).

    The lists hold the tensors themselves, which the step updates in place, so a caller that
    steps the same optimizer many times in a row, with gradients written into the same ``.grad``
    tensors and nothing else touching the optimizer in between (the closed-form train loop within
    one ``train()``), checks once and then calls :func:`step_fused_adam` with them; the group's
    ``lr``, betas, ``eps`` and ``weight_decay`` are read at each step."""
    if (type(optimizer) is not th.optim.Adam or "step" in vars(optimizer)
            or optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
            or torch_optimizer._global_optimizer_pre_hooks or torch_optimizer._global_optimizer_post_hooks
            or vars(optimizer).get("grad_scale") is not None or vars(optimizer).get("found_inf") is not None):
        return None
    calls: list[FusedAdamCall] = []
    device = dtype = None
    for group in optimizer.param_groups:
        if any(group[key] != value for key, value in _PLAIN_FUSED_ADAM.items()) or isinstance(group["lr"], th.Tensor):
            return None
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            state = optimizer.state.get(p)
            if (not state or grad.is_sparse or p.device != grad.device or p.dtype != grad.dtype
                    or not p.is_contiguous()):
                return None
            if device is None:
                device, dtype = p.device, p.dtype
            elif p.device != device or p.dtype != dtype:
                return None
            params.append(p)
            grads.append(_contiguous_gradient(p))
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if params:
            calls.append((group, params, grads, exp_avgs, exp_avg_sqs, steps))
    return calls


def step_fused_adam(calls: list[FusedAdamCall]) -> None:
    """The two operations ``Adam.step`` ends with, for :func:`fused_adam_calls`' lists: the step
    counts incremented, then torch's fused kernel."""
    with th.no_grad():
        for group, params, grads, exp_avgs, exp_avg_sqs, steps in calls:
            beta1, beta2 = group["betas"]
            th._foreach_add_(steps, 1)
            th._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                            beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                            maximize=False, grad_scale=None, found_inf=None)
