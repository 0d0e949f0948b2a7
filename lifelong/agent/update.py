"""One PPO minibatch update, shared by :class:`~lifelong.agent.ppo.DistributionalPPO` and
:class:`~lifelong.agent.recurrent.DistributionalRecurrentPPO`: the critics' losses, the clipped
surrogate objective, the entropy bonus, the early-stopping test on the approximate KL, and the
optimizer step (through the scaler when it is on).

Every function takes an optional boolean ``mask`` over the minibatch's samples: the recurrent
agent's minibatches are sequences padded to a common length, and a padded sample counts in no
mean (``mean over mask`` instead of ``mean``). ``mask=None`` is the feed-forward agent's case and
computes exactly what it computed before these functions were shared.

The loss of one minibatch (normalised advantages ``A``, probability ratio ``r = pi / pi_old``)::

    L = -mean(min(A r, A clip(r, 1 - eps, 1 + eps))) + ent_coef * L_ent + vf_coef * sum_k L_k

where ``L_k`` is critic ``k``'s loss (see :mod:`lifelong.agent.critics`: by default the squared
error of the quantiles' mean plus the quantile-Huber loss of their deviations,
``mean_anchored_quantile_loss``; the plain quantile-Huber loss with
``quantile_mean_loss="quantile_huber"``; cross-entropy for the categorical critic; each critic
gets the gradient a single critic would get) and
``L_ent = -mean(entropy)`` (or ``mean(log pi)`` when the distribution has no entropy formula).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch as th

from lifelong.agent import critics as C
from lifelong.agent.gradients import FusedAdamCall, clip_grad_norm, clip_listed, step_fused_adam, take_step, zero_grad

__all__ = ["surrogate_terms", "clipped_surrogate", "critic_losses", "minibatch_loss", "normalized_advantages", "combine_losses", "stop_early", "gradient_step", "optimizer_step", "MinibatchLoss"]


def _mean(x: th.Tensor, mask: th.Tensor | None) -> th.Tensor:
    """``mean(x)``, over the valid samples only when ``mask`` is given (``x`` is ``[B]``)."""
    return x.mean() if mask is None else x[mask].mean()


def surrogate_terms(
    log_prob: th.Tensor, old_log_prob: th.Tensor, advantages: th.Tensor, clip_range: float, weights: th.Tensor
) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """:func:`clipped_surrogate`'s values and gradient, no autograd: ``(loss, approx_kl,
    clip_fraction, d loss / d log_prob)``, with the per-sample ``weights`` (summing to 1) of the
    mean. ``d loss / d log_prob_b = -w_b A_b r_b`` where the unclipped term is the minimum, else 0."""
    log_ratio = log_prob - old_log_prob
    ratio = th.exp(log_ratio)
    unclipped = advantages * ratio
    clipped = advantages * ratio.clamp(1 - clip_range, 1 + clip_range)
    loss = -(th.minimum(unclipped, clipped) @ weights)
    # written so that a NaN sample's gradient is NaN, as autograd's would be
    grad = th.where(clipped < unclipped, 0.0, unclipped).mul_(weights).neg_()
    ratio_minus_one = ratio - 1
    approx_kl = (ratio_minus_one - log_ratio) @ weights
    clip_fraction = (ratio_minus_one.abs() > clip_range).to(weights.dtype) @ weights
    return loss, approx_kl, clip_fraction, grad


class _ClippedSurrogate(th.autograd.Function):
    """:func:`clipped_surrogate` as one autograd node (loss and gradient in the forward pass)."""

    @staticmethod
    def forward(ctx: Any, log_prob: th.Tensor, old_log_prob: th.Tensor, advantages: th.Tensor, clip_range: float, weights: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:  # type: ignore[override]
        loss, approx_kl, clip_fraction, grad = surrogate_terms(log_prob, old_log_prob, advantages, clip_range, weights)
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(approx_kl, clip_fraction)
        return loss, approx_kl, clip_fraction

    @staticmethod
    @th.autograd.function.once_differentiable
    def backward(ctx: Any, grad_loss: th.Tensor, _kl: th.Tensor, _clip: th.Tensor) -> tuple[th.Tensor | None, ...]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_loss, None, None, None, None


def clipped_surrogate(
    log_prob: th.Tensor, old_log_prob: th.Tensor, advantages: th.Tensor, clip_range: float, mask: th.Tensor | None = None
) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """PPO's clipped surrogate loss with its statistics: ``(loss, approx_kl, clip_fraction)``.

    With ``r = exp(log_prob - old_log_prob)`` and (already normalised) advantages ``A``::

        loss          = -mean(min(A r, A clip(r, 1 - eps, 1 + eps)))
        approx_kl     = mean((r - 1) - log r)          (Schulman's k3 estimator)
        clip_fraction = mean(|r - 1| > eps)

    means over the valid samples when ``mask`` is given. One autograd node: the gradient,
    ``d loss / d log_prob = -A r / B`` where the unclipped term is the minimum (ties included:
    inside the clip range both terms carry the same gradient) and 0 where the clipped one is, is
    computed in the forward pass (the autograd form records eight nodes for it). Only
    ``log_prob`` gets a gradient; the statistics carry none.
    """
    return _ClippedSurrogate.apply(log_prob, old_log_prob, advantages, float(clip_range), C.sample_weights(log_prob, mask))


def critic_losses(
    policy: Any,
    outputs: th.Tensor,
    targets: th.Tensor,
    target_probs: th.Tensor | None,
    old_outputs: th.Tensor | None,
    old_means: th.Tensor | None,
    clip_range_vf: float | None,
    mask: th.Tensor | None = None,
) -> th.Tensor:
    """Per-critic loss ``[n_critics]`` for outputs ``[n, B, K]`` and normalised targets ``[B]``."""
    if policy.critic == "quantile" and policy.quantile_mean_loss == "squared_error":
        if clip_range_vf is None:  # the default: one autograd node, gradient in closed form
            return C.batch_mean_anchored_quantile_loss(outputs, targets, policy.huber_kappa, policy.taus, mask)
        per_sample = C.mean_anchored_quantile_loss(
            outputs, targets, policy.huber_kappa, policy.taus, old_outputs, clip_range_vf
        )
    elif policy.critic == "quantile":
        if clip_range_vf is None:
            per_sample = C.quantile_huber_loss(outputs, targets, policy.huber_kappa, policy.taus)
        else:
            assert old_outputs is not None
            clipped = old_outputs + (outputs - old_outputs).clamp(-clip_range_vf, clip_range_vf)
            per_sample = th.maximum(
                C.quantile_huber_loss(outputs, targets, policy.huber_kappa, policy.taus, reduce=False),
                C.quantile_huber_loss(clipped, targets, policy.huber_kappa, policy.taus, reduce=False),
            ).mean(-1)
    else:
        assert target_probs is not None
        per_sample = C.categorical_cross_entropy(outputs, target_probs)
        if clip_range_vf is not None:
            assert old_means is not None
            means = C.categorical_expectation(outputs, policy.support)
            clipped = old_means + (means - old_means).clamp(-clip_range_vf, clip_range_vf)
            stop = (clipped - targets).square() > (means - targets).square()
            per_sample = th.where(stop, per_sample.detach(), per_sample)
    if mask is not None:
        per_sample = per_sample[:, mask]
    return per_sample.mean(-1)


class MinibatchLoss(NamedTuple):
    """``loss`` (to backpropagate; None from a step that computes its gradients itself and
    leaves the total to :func:`loss_from_stats`), ``stats`` (detached ``[policy loss, entropy
    loss, clip fraction, critic losses...]``, for :func:`lifelong.agent.metrics.log_train`) and
    ``approx_kl`` (detached)."""

    loss: th.Tensor | None
    stats: th.Tensor
    approx_kl: th.Tensor


def minibatch_loss(
    model: Any,
    log_prob: th.Tensor,
    entropy: th.Tensor | None,
    outputs: th.Tensor,
    old_log_prob: th.Tensor,
    advantages: th.Tensor,
    targets: th.Tensor,
    target_probs: th.Tensor | None,
    old_outputs: th.Tensor | None,
    old_means: th.Tensor | None,
    clip_range: float,
    clip_range_vf: float | None,
    mask: th.Tensor | None = None,
) -> MinibatchLoss:
    """The PPO loss of one minibatch (see the module docstring) and its statistics."""
    advantages = normalized_advantages(model, advantages, mask)
    policy_loss, approx_kl, clip_fraction = clipped_surrogate(log_prob, old_log_prob, advantages, clip_range, mask)
    losses = critic_losses(model.policy, outputs, targets, target_probs, old_outputs, old_means, clip_range_vf, mask)
    entropy_loss = _mean(log_prob, mask) if entropy is None else -_mean(entropy, mask)
    return combine_losses(model, policy_loss, entropy_loss, clip_fraction, losses, approx_kl)


def normalized_advantages(model: Any, advantages: th.Tensor, mask: th.Tensor | None = None) -> th.Tensor:
    """The minibatch's advantages, standardised when ``model.normalize_advantage`` (over the valid
    samples when ``mask`` is given; a one-sample minibatch is left as it is)."""
    if not model.normalize_advantage:
        return advantages
    if mask is None:
        if advantages.shape[0] > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return advantages
    valid = advantages[mask]
    # one valid sample has no std: it then gets advantage 0, not NaN
    return (advantages - valid.mean()) / (th.nan_to_num(valid.std(), nan=0.0) + 1e-8)


def combine_losses(
    model: Any, policy_loss: th.Tensor, entropy_loss: th.Tensor, clip_fraction: th.Tensor, losses: th.Tensor,
    approx_kl: th.Tensor, ent_coef: float | th.Tensor | None = None, vf_coef: float | th.Tensor | None = None,
    with_loss: bool = True,
) -> MinibatchLoss:
    """``policy_loss + ent_coef * entropy_loss + vf_coef * sum_k L_k`` and the statistics (the
    coefficients: the model's unless given). ``with_loss=False``: the statistics only (the
    total is then :func:`loss_from_stats` of them, the same bits)."""
    ent_coef = model.ent_coef if ent_coef is None else ent_coef
    vf_coef = model.vf_coef if vf_coef is None else vf_coef
    loss = _total_loss(policy_loss, entropy_loss, losses, ent_coef, vf_coef) if with_loss else None
    stats = th.cat([th.stack([policy_loss.detach(), entropy_loss.detach(), clip_fraction]), losses.detach()])
    return MinibatchLoss(loss, stats, approx_kl)


def _total_loss(policy_loss: th.Tensor, entropy_loss: th.Tensor, critic_losses: th.Tensor,
                ent_coef: float | th.Tensor, vf_coef: float | th.Tensor) -> th.Tensor:
    """``policy_loss + ent_coef * entropy_loss + vf_coef * sum_k L_k``, the one place the total
    is formed. Summed over critics: each critic gets the gradient a single critic would get."""
    return policy_loss + ent_coef * entropy_loss + vf_coef * critic_losses.sum()


def loss_from_stats(model: Any, stats: th.Tensor) -> th.Tensor:
    """The total loss of :func:`combine_losses` (the model's coefficients) from its ``stats``:
    the same operations on the same values, so the same bits as the loss it would have returned.
    The closed-form train loop logs only the last minibatch's total, so it derives that one
    instead of computing every minibatch's."""
    return _total_loss(stats[0], stats[1], stats[3:], model.ent_coef, model.vf_coef)


def stop_early(model: Any, approx_kl: th.Tensor, epoch: int) -> bool:
    """``True`` when ``target_kl`` is set and ``approx_kl > 1.5 * target_kl`` (PPO's early stop)."""
    if model.target_kl is not None and approx_kl.item() > 1.5 * model.target_kl:
        if model.verbose >= 1:
            print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl.item():.2f}")
        return True
    return False


def gradient_step(model: Any, loss: th.Tensor) -> None:
    """Backpropagate ``loss`` and take the optimizer step (:func:`optimizer_step`)."""
    zero_grad(model.policy.optimizer)
    loss.backward()
    optimizer_step(model)


def optimizer_step(model: Any, fused_adam: list[FusedAdamCall] | None = None) -> None:
    """Step the optimizer on the gradients in ``.grad``: ``vgs.step(optimizer, max_grad_norm)``
    when the scaler is on, else gradient clipping and ``optimizer.step()``
    (:mod:`lifelong.agent.gradients`: the same arithmetic without torch's per-call overhead;
    ``fused_adam``: :func:`~lifelong.agent.gradients.fused_adam_calls` prepared by the caller for
    this optimizer, which then skips their checks)."""
    optimizer = model.policy.optimizer
    if model.vgs is not None:
        model.vgs.step(optimizer, max_grad_norm=model.max_grad_norm)
    elif fused_adam is None:
        clip_grad_norm(optimizer, model.max_grad_norm)
        take_step(optimizer)
    else:  # the prepared lists hold every gradient, in the optimizer's order, checked
        grads = [g for call in fused_adam for g in call[2]]
        if grads:
            clip_listed(grads, model.max_grad_norm)
        step_fused_adam(fused_adam)
