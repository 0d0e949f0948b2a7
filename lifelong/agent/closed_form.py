"""The PPO minibatch step with hand-written backpropagation, for MLP policies: the fast path of
:meth:`DistributionalPPO.train <lifelong.agent.ppo.DistributionalPPO.train>`.

Why: on PPO-sized networks (a 64x64 actor, two 64x64 critics, minibatches of 64-256) a training
step costs what PyTorch's dispatcher and autograd engine do per operation, not arithmetic: the
autograd path records about 60 nodes and runs about 600 aten calls per minibatch, most of them
views, type conversions and bookkeeping. The network's gradients have a short closed form, so
this module computes the forward pass, the loss and every parameter's gradient directly, in
about 130 tensor operations (350 aten calls) and no autograd graph (docs/performance.md
measures it).

What it computes: the autograd path's loss (:func:`lifelong.agent.update.minibatch_loss`, the
same operations in the same order; with ReLU units the loss, the statistics and the approximate
KL are bitwise the same, with Tanh units equal to float rounding, because :func:`tanh` replaces
``torch.tanh``'s slow CPU kernel) and the gradient of that loss with respect to every parameter
of the policy, equal to autograd's to float rounding (tested in float64 against
``loss.backward()``). With the
actor ``h_0 = x, z_l = h_{l-1} W_l^T + b_l, h_l = f(z_l)``, logits or mean ``y = h_L W^T + b``,
and the loss's gradient ``g_y`` with respect to ``y``::

    dL/dW = g_z^T h_{l-1},   dL/db = sum_batch g_z,   g_{h_{l-1}} = g_z W_l,
    g_z = g_h * f'(z),  f' = 1 - h^2 (Tanh) or 1{h > 0} (ReLU)

and for the critics the same with batched matrices (``[n_critics, in, out]`` weights). The
loss's gradients with respect to its inputs:

* the clipped surrogate's, ``d/d log pi_b = -w_b A_b r_b`` where the unclipped term is the
  minimum (:func:`lifelong.agent.update.surrogate_terms`), the entropy bonus's
  ``-ent_coef w_b``, and each critic's (:func:`lifelong.agent.critics.mean_anchored_quantile_terms`);
* categorical actor, ``p = softmax(y)``: ``d log p_a / dy = onehot(a) - p`` and
  ``dH/dy = -p (log p + H)``;
* diagonal Gaussian actor, ``z = (a - mu) e^{-log sigma}``: ``d log pi / d mu = z e^{-log sigma}``,
  ``d log pi / d log sigma = z^2 - 1``, ``dH / d log sigma = 1``;
* gSDE (Stable-Baselines3's default: ``full_std``, no ``expln``, no squashing, the noise's
  latent ``l`` detached), ``s = sqrt(l^2 @ std^2 + eps)``, ``std = e^{log_std}``:
  ``d log pi / d mu = (a - mu) / s^2``, ``d log pi / ds = ((a - mu)^2 / s^2 - 1) / s``,
  ``dH/ds = 1 / s``, and ``dL/d log_std = 2 std^2 * (l^2)^T (g_s / 2s)``.

When it applies (:func:`unsupported_reason` says why not, and the train loop then takes the
autograd path): the feed-forward policy with parameter-free features extractors
(``FlattenExtractor``; ``CombinedExtractor`` over vector and discrete parts), an actor of
``nn.Linear`` layers with ``Tanh`` or ``ReLU``, a ``Categorical``, diagonal-Gaussian or gSDE
action distribution as above, the quantile critic with its default loss
(``quantile_mean_loss="squared_error"``), no value clipping, and every parameter trainable.
That is the default agent on ``Discrete`` and ``Box`` action spaces. Module hooks are not called
on this path; ``model.closed_form_gradients = False`` selects the autograd path (the reference)
for a model.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn
from torch.distributions import Distribution

from lifelong.agent import critics as C
from lifelong.agent import update
from lifelong.agent.policy import (
    DistributionalActorCriticPolicy,
    categorical_terms,
    gaussian_terms,
    gsde_terms,
    sample_actions,
)

__all__ = ["ClosedFormStep", "Plan", "plan", "unsupported_reason", "act", "tanh", "minibatch_step", "compiled_minibatch_step",
           "apply_gradients", "gradient_buffers"]

_ACTIVATIONS = (nn.Tanh, nn.ReLU)


class ClosedFormStep(NamedTuple):
    """``loss`` (the autograd path's :class:`~lifelong.agent.update.MinibatchLoss`, detached; the
    eager step leaves its total ``loss.loss`` None, :func:`~lifelong.agent.update.loss_from_stats`
    derives it) and
    ``gradients``: ``(parameter, gradient)`` for every parameter of the policy."""

    loss: update.MinibatchLoss
    gradients: list[tuple[nn.Parameter, th.Tensor]]


class Plan(NamedTuple):
    """What :func:`minibatch_step` walks, looked up once per ``train()`` call (not kept on the
    policy): the actor's modules and the policy's parameters in gradient order."""

    actor_layers: list[nn.Module]
    parameters: list[nn.Parameter]


def plan(model: Any) -> Plan | None:
    """The closed-form path's :class:`Plan` for ``model``, or None when it does not apply
    (:func:`unsupported_reason`)."""
    return _examine(model)[1]


def _actor_layers(policy: Any) -> list[nn.Module] | None:
    """The actor's modules, ``[Linear, act, Linear, act, ..., action_net]``, or None when its
    trunk is anything else."""
    trunk = list(policy.mlp_extractor.policy_net)
    for i, module in enumerate(trunk):  # Linear at even positions, an activation at odd ones
        if (type(module) is not nn.Linear) if i % 2 == 0 else (type(module) not in _ACTIVATIONS):
            return None
    if len(trunk) % 2 != 0 or type(policy.action_net) is not nn.Linear:
        return None
    return [*trunk, policy.action_net]


def _extractors(policy: Any) -> list[nn.Module]:
    if policy.share_features_extractor:
        return [policy.features_extractor]
    return [policy.pi_features_extractor, policy.vf_features_extractor]


def unsupported_reason(model: Any) -> str | None:
    """Why ``model``'s minibatch step cannot take the closed-form path, or None when it can."""
    return _examine(model)[0]


def _examine(model: Any) -> tuple[str | None, Plan | None]:
    """``(why the closed-form path does not apply, None)`` or ``(None, its Plan)``: one walk over
    the policy for both (the rollout and the train loop ask once each per update)."""
    policy = model.policy
    base = DistributionalActorCriticPolicy
    if not isinstance(policy, base):
        return f"the policy is a {type(policy).__name__}", None
    for name in ("evaluate_actions_distributional", "_log_prob_entropy", "_split_features", "extract_features",
                 "act", "_sample"):
        if getattr(type(policy), name) is not getattr(base, name):
            return f"{type(policy).__name__} overrides {name}", None
    if any(True for e in _extractors(policy) for _ in e.parameters()):
        return "a features extractor has parameters", None
    dist = policy.action_dist
    if type(dist) not in (CategoricalDistribution, DiagGaussianDistribution, StateDependentNoiseDistribution):
        return f"the action distribution is a {type(dist).__name__}", None
    if isinstance(dist, StateDependentNoiseDistribution) and (
        dist.bijector is not None or not dist.full_std or dist.use_expln or dist.learn_features
    ):
        return "gSDE other than SB3's default (squash_output, full_std=False, use_expln or learn_features)", None
    layers = _actor_layers(policy)
    if layers is None:
        return "the actor is not Linear layers with Tanh or ReLU", None
    if type(policy.critics.activation) not in _ACTIVATIONS:
        return f"the critics' activation is {type(policy.critics.activation).__name__}", None
    if policy.critic != "quantile" or policy.quantile_mean_loss != "squared_error":
        return f"critic={policy.critic!r}, quantile_mean_loss={policy.quantile_mean_loss!r}", None
    if model.clip_range_vf is not None:
        return "value clipping (clip_range_vf) is on", None
    covered = _parameter_order(policy)
    params = list(policy.parameters())
    known = set(covered)  # tensors hash by identity
    if len(covered) != len(params) or not all(p in known for p in params):
        return "the policy has parameters outside the actor and the critics", None
    if not all(p.requires_grad for p in params):
        return "a parameter does not require a gradient", None
    return None, Plan(layers, covered)


def _parameter_order(policy: Any) -> list[nn.Parameter]:
    out = []
    for module in _actor_layers(policy) or []:
        if isinstance(module, nn.Linear):
            out.append(module.weight)
            if module.bias is not None:
                out.append(module.bias)
    if isinstance(policy.action_dist, (DiagGaussianDistribution, StateDependentNoiseDistribution)):
        out.append(policy.log_std)
    return out + list(policy.critics.weights) + list(policy.critics.biases)


def _layer(module: nn.Module, h: th.Tensor) -> th.Tensor:
    """``module(h)`` for the actor's module types, as the functional call ``module.forward``
    makes (the same operations: equal bits), without ``nn.Module.__call__``'s dispatch."""
    if isinstance(module, nn.Linear):
        return F.linear(h, module.weight, module.bias)
    return th.tanh(h) if isinstance(module, nn.Tanh) else th.relu(h)


def tanh(x: th.Tensor) -> th.Tensor:
    """``tanh(x)`` as ``2 sigmoid(2x) - 1``: the minibatch step's Tanh activation.

    Why: torch's CPU ``tanh`` kernel is slow, about 3x ``sigmoid`` on the same tensor (84 against
    29 us for a ``[2, 256, 64]`` float32 tensor on one thread), and the default policy's step
    applies it four times; with this form a CartPole minibatch step of 256 costs about 15% less
    (docs/performance.md). The price is accuracy near 0: the absolute error stays below 2e-7 in
    float32 (about 1.5 ulps of 1; tested), the relative error does not (``1 - 2 / (e^{2x} + 1)``
    cancels for small ``x``). For an activation whose outputs are summed by the next layer the
    absolute error is the one that matters. ``|tanh(x)| <= 1``, ``tanh(0) = 0``, ``±inf -> ±1``,
    NaN stays NaN. Not the bits of ``torch.tanh``: with Tanh units the closed-form loss equals the
    autograd path's to float rounding, not bitwise (the rollout's actor keeps ``torch.tanh``)."""
    return th.sigmoid(x + x).mul_(2.0).sub_(1.0)


def _forward_activation(activation: nn.Module, h: th.Tensor) -> th.Tensor:
    """The minibatch step's activation: :func:`tanh` for ``Tanh``, ``relu`` for ``ReLU``."""
    return tanh(h) if isinstance(activation, nn.Tanh) else th.relu(h)


def act(policy: Any, plan: Plan, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor]:
    """``policy.act(obs, deterministic)``, the rollout's actor step, with the actor's trunk as
    functional calls (about 20 us less per step on CartPole's 64x64 actor) and categorical
    actions drawn by :func:`~lifelong.agent.policy.categorical_sample` (12 us less): the same
    bits as ``policy.act``, tested, and tests/agent/test_rollout.py compares the rollout with
    Stable-Baselines3's. A NaN in the network gives NaN log-probabilities here instead of
    multinomial's error: the rollout checks them once per rollout."""
    h = _actor_features(policy, obs)
    for module in plan.actor_layers[:-1]:
        h = _layer(module, h)
    head = _layer(plan.actor_layers[-1], h)
    actions, log_prob = sample_actions(policy, h, deterministic, validate=False, head=head)
    shape = policy.action_space.shape
    return (actions if actions.shape[1:] == shape else actions.reshape((-1, *shape))), log_prob


def _actor_features(policy: Any, obs: th.Tensor) -> th.Tensor:
    """``extract_features(obs)`` for the actor: ``obs`` itself where Stable-Baselines3's
    preprocessing and ``FlattenExtractor`` leave it as it is (float32 ``[B, d]`` from a ``Box``
    space: ``.float()`` and ``flatten(1)`` return their input), which saves their two calls on
    every rollout step."""
    extractor = policy.pi_features_extractor
    if (type(extractor) is FlattenExtractor and type(policy.observation_space) is spaces.Box
            and obs.dtype == th.float32 and obs.dim() == 2):
        return obs
    return BaseModel.extract_features(policy, obs, extractor)


_TANH_BACKWARD = th.ops.aten.tanh_backward.default
_THRESHOLD_BACKWARD = th.ops.aten.threshold_backward.default


def _backprop_activation(activation: nn.Module, grad: th.Tensor, h: th.Tensor) -> th.Tensor:
    """``grad * f'(z)`` from the activation's output ``h = f(z)``: ``1 - h^2`` for Tanh, ``1{h > 0}``
    for ReLU (the kernels autograd's own backward functions call)."""
    if isinstance(activation, nn.Tanh):
        return _TANH_BACKWARD(grad, h)
    return _THRESHOLD_BACKWARD(grad, h, 0)


def minibatch_step(
    model: Any,
    plan: Plan,
    obs: th.Tensor,
    actions: th.Tensor,
    old_log_prob: th.Tensor,
    advantages: th.Tensor,
    targets: th.Tensor,
    clip_range: float | th.Tensor,
    ent_coef: float | th.Tensor | None = None,
    vf_coef: float | th.Tensor | None = None,
    out: list[th.Tensor] | None = None,
) -> ClosedFormStep:
    """The loss of one minibatch and every parameter's gradient (see the module docstring).

    ``obs`` as the policy reads them, ``actions`` (``long [B]`` for a categorical actor),
    ``old_log_prob``, ``advantages`` (raw: normalised here as in the autograd path) and the
    critics' normalised ``targets``, all ``[B]``-leading; ``plan`` from :func:`plan` (this
    model's, in this ``train()`` call). ``ent_coef`` and ``vf_coef`` default to the model's;
    :func:`compiled_minibatch_step` passes them and ``clip_range`` as 0-dim tensors, so that a
    new value is a new input of the compiled graph, not a recompilation.

    ``out``: tensors to write the gradients into, in ``plan.parameters``' order (the train
    loop passes the parameters' ``.grad`` tensors, :func:`gradient_buffers`); the returned
    gradients are then these tensors. Without it the gradients are new tensors.

    Eager, the step runs in ``torch.inference_mode`` (no version counters or autograd metadata
    on its ~130 intermediate tensors: 4-13% of the step on the default policies, measured in
    docs/performance.md); its loss and statistics are then inference tensors (read-only
    outside that mode, which the train loop only reads), and its gradients too unless written
    into ``out``. Compiled, it is traced in ``no_grad``."""
    policy = model.policy
    ent_coef = float(model.ent_coef) if ent_coef is None else ent_coef
    vf_coef = float(model.vf_coef) if vf_coef is None else vf_coef
    # a Python 0 skips the entropy terms; a tensor coefficient always takes part (compiled graph)
    entropy_on = isinstance(ent_coef, th.Tensor) or ent_coef != 0.0
    slots = [None] * len(plan.parameters) if out is None else out
    if len(slots) != len(plan.parameters):
        raise ValueError(f"out has {len(slots)} tensors, expected one per parameter ({len(plan.parameters)})")
    with th.no_grad() if th.compiler.is_compiling() else th.inference_mode():
        if policy.share_features_extractor:
            pi_features = vf_features = _actor_features(policy, obs)
        else:
            pi_features, vf_features = policy._split_features(obs)
        layers = plan.actor_layers
        # ---- actor forward (the same operations as nn.Linear / the activation modules)
        actor_inputs = []
        h = pi_features
        for module in layers:
            if isinstance(module, nn.Linear):
                actor_inputs.append(h)
                h = F.linear(h, module.weight, module.bias)
            else:
                h = _forward_activation(module, h)
        head = h  # logits or Gaussian mean
        # ---- critics forward: member k reads slice k of every layer
        ens = policy.critics
        critic_inputs = []
        hc = vf_features.expand(ens.weights[0].shape[0], *vf_features.shape)
        for i, (w, b) in enumerate(zip(ens.weights, ens.biases)):
            if hc.shape[0] != w.shape[0]:
                hc = hc.expand(w.shape[0], -1, -1)
            critic_inputs.append(hc)
            hc = th.baddbmm(b, hc, w)
            if i < len(ens.weights) - 1:
                hc = _forward_activation(ens.activation, hc)
        quantiles = hc

        # ---- the loss, as update.minibatch_loss computes it
        weights = C.sample_weights(old_log_prob, None)
        gaussian = isinstance(policy.action_dist, DiagGaussianDistribution)
        gsde = isinstance(policy.action_dist, StateDependentNoiseDistribution)
        if gsde:
            log_prob, entropy, latent_sde, scale = gsde_terms(policy, actor_inputs[-1], head, actions)
        elif gaussian:
            log_prob, entropy, z, inv_std = gaussian_terms(head, policy.log_std, actions)
        else:
            log_prob, entropy, logp_all, probs = categorical_terms(head, actions)
        adv = update.normalized_advantages(model, advantages)
        policy_loss, approx_kl, clip_fraction, grad_log_prob = update.surrogate_terms(
            log_prob, old_log_prob, adv, clip_range if isinstance(clip_range, th.Tensor) else float(clip_range), weights
        )
        losses, grad_quantiles = C.mean_anchored_quantile_terms(quantiles, targets, policy.huber_kappa, policy.taus, weights)
        entropy_loss = -entropy.mean()
        # eager: the total loss is left to update.loss_from_stats (only the last one is logged);
        # compiled: part of the graph's outputs
        step = update.combine_losses(model, policy_loss, entropy_loss, clip_fraction, losses, approx_kl, ent_coef,
                                     vf_coef, with_loss=th.compiler.is_compiling())

        # ---- gradients of the loss w.r.t. the actor's head and the critics' outputs
        log_std_grad: list[th.Tensor] = []
        if gsde:
            # log pi = sum_j -(a_j - mu_j)^2 / (2 s_j^2) - log s_j - c, H = sum_j log s_j + c',
            # s = sqrt(latent^2 @ std^2 + eps), std = exp(log_std)
            diff_over_var = (actions - head) / (scale * scale)
            g_head = diff_over_var * grad_log_prob.unsqueeze(-1)
            g_scale = (diff_over_var * (actions - head) - 1).div_(scale).mul_(grad_log_prob.unsqueeze(-1))
            if entropy_on:
                if isinstance(ent_coef, th.Tensor):
                    g_scale.sub_(weights.unsqueeze(-1) / scale * ent_coef)
                else:
                    g_scale.sub_(weights.unsqueeze(-1) / scale, alpha=ent_coef)
            std = policy.action_dist.get_std(policy.log_std)
            # d s / d var = 1 / (2 s); d var / d std^2 = latent^2; d std^2 / d log_std = 2 std^2
            g_std_sq = (latent_sde * latent_sde).t().mm(g_scale.div_(2 * scale))
            log_std_grad.append(g_std_sq.mul_(2 * std * std))
        elif gaussian:
            g_head = (z * inv_std).mul_(grad_log_prob.unsqueeze(-1))
            # d loss / d log_std = sum_b g_b (z_b^2 - 1), minus ent_coef (entropy bonus, per dimension)
            g_log_std = (z * z - 1).mul_(grad_log_prob.unsqueeze(-1)).sum(0)
            if entropy_on:
                g_log_std = g_log_std - ent_coef
            log_std_grad.append(g_log_std)
        else:
            g_head = probs * -grad_log_prob.unsqueeze(-1)
            g_head.scatter_add_(-1, actions.long().reshape(-1, 1), grad_log_prob.unsqueeze(-1))
            if entropy_on:
                # entropy_loss = -mean(H): d/dy = mean-weight * p (log p + H) * ent_coef
                if isinstance(ent_coef, th.Tensor):
                    g_head.add_(probs * (logp_all + entropy.unsqueeze(-1)) * (ent_coef / head.shape[0]))
                else:
                    g_head.addcmul_(probs, logp_all + entropy.unsqueeze(-1), value=ent_coef / head.shape[0])

        # ---- actor backward, last layer first; per Linear [weight grad, bias grad]
        # where each Linear's (weight, bias) gradients go in plan.parameters' order
        slot = 0
        first_slot = {}
        for j, module in enumerate(layers):
            if isinstance(module, nn.Linear):
                first_slot[j] = slot
                slot += 1 if module.bias is None else 2
        actor_grads: list[list[th.Tensor]] = []
        g = g_head
        for j in range(len(layers) - 1, -1, -1):
            module = layers[j]
            if isinstance(module, nn.Linear):
                k = first_slot[j]
                layer_grads = [th.mm(g.t(), actor_inputs[j // 2], out=slots[k])]
                if module.bias is not None:
                    layer_grads.append(th.sum(g, 0, out=slots[k + 1]))
                actor_grads.append(layer_grads)
                if j > 0:
                    g = g.mm(module.weight)
            else:  # activation: its output is the next Linear's input
                g = _backprop_activation(module, g, actor_inputs[j // 2 + 1])

        # ---- critics backward, last layer first
        g = grad_quantiles if not isinstance(vf_coef, th.Tensor) and vf_coef == 1.0 else grad_quantiles.mul_(vf_coef)
        weight_grads: list[th.Tensor] = []
        bias_grads: list[th.Tensor] = []
        n_layers = len(ens.weights)
        critic_slot = slot + len(log_std_grad)
        for i in range(n_layers - 1, -1, -1):
            w, x = ens.weights[i], critic_inputs[i]
            if x.shape[0] == w.shape[0] and g.shape[0] != w.shape[0]:  # a shared trunk layer feeds every member
                g = g.sum(0, keepdim=True)
            weight_grads.append(th.bmm(x.transpose(1, 2), g, out=slots[critic_slot + i]))
            bias_grads.append(th.sum(g, 1, keepdim=True, out=slots[critic_slot + n_layers + i]))
            if i > 0:
                g = _backprop_activation(ens.activation, th.bmm(g, w.transpose(1, 2)), x)
    # the order of _parameter_order: actor layers' (weight, bias) first to last, log_std, critics'
    # weights, critics' biases
    ordered = [t for layer_grads in reversed(actor_grads) for t in layer_grads]
    if log_std_grad and out is not None:
        log_std_grad = [out[slot].copy_(log_std_grad[0])]
    ordered += log_std_grad + weight_grads[::-1] + bias_grads[::-1]
    return ClosedFormStep(step, list(zip(plan.parameters, ordered, strict=True)))


def compiled_minibatch_step(
    model: Any,
    plan: Plan,
    obs: th.Tensor,
    actions: th.Tensor,
    old_log_prob: th.Tensor,
    advantages: th.Tensor,
    targets: th.Tensor,
    clip_range: float,
) -> ClosedFormStep:
    """:func:`minibatch_step` compiled by ``torch.compile`` (TorchInductor): the same arithmetic,
    its elementwise chains fused into generated kernels, about half the time of the eager step on
    the CPU (docs/performance.md), rounded differently (gradients equal to the eager step's to
    float32 rounding, tested).

    One compiled graph per policy architecture, minibatch shape and device (``dynamic=False``),
    shared by every model of that architecture in the process: ``clip_range``, ``ent_coef`` and
    ``vf_coef`` enter as tensors, so schedules and PBT changes do not recompile. The first call
    of a shape compiles (about 20 s on a cold cache, a few with TorchInductor's on-disk
    cache) and needs a C++ compiler; torch's errors then propagate."""
    coefficients = th.tensor([clip_range, float(model.ent_coef), float(model.vf_coef)], dtype=targets.dtype,
                             device=targets.device)
    loss, stats, approx_kl, gradients = _compiled_tensor_step()(
        model, plan, obs, actions, old_log_prob, advantages, targets, coefficients
    )
    return ClosedFormStep(update.MinibatchLoss(loss, stats, approx_kl), list(zip(plan.parameters, gradients, strict=True)))


@functools.cache
def _compiled_tensor_step() -> Callable[..., tuple[th.Tensor, th.Tensor, th.Tensor, list[th.Tensor]]]:
    """:func:`minibatch_step` with tensor coefficients and tensor outputs, compiled; built on first
    use (importing the package compiles nothing). The eager step is bound here, so the compiled graph
    does not depend on the module attribute (which a profiler may wrap).

    The process's ``torch.distributions`` argument validation is left as it was: the first
    ``torch.compile`` call in a process turns it off for every distribution in the process
    (``torch._dynamo``'s ``TorchPatcher``, once per process), which would silence, for instance,
    Stable-Baselines3's ``ValueError`` on NaN logits in every other model of the process, and
    make Stable-Baselines3's own agents about 9% faster beside ours (docs/performance.md). The
    compiled step builds no distribution objects, so it does not need validation off."""
    step_fn = minibatch_step

    def tensor_step(
        model: Any, plan: Plan, obs: th.Tensor, actions: th.Tensor, old_log_prob: th.Tensor, advantages: th.Tensor,
        targets: th.Tensor, coefficients: th.Tensor,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, list[th.Tensor]]:
        step = step_fn(model, plan, obs, actions, old_log_prob, advantages, targets,
                       coefficients[0], coefficients[1], coefficients[2])
        return step.loss.loss, step.loss.stats, step.loss.approx_kl, [g for _, g in step.gradients]

    validation = Distribution._validate_args  # torch has no public getter for the default
    compiled = th.compile(tensor_step, dynamic=False, fullgraph=True)
    Distribution.set_default_validate_args(validation)
    return compiled


def apply_gradients(model: Any, step: ClosedFormStep, fused_adam: list[Any] | None = None) -> None:
    """Write ``step``'s gradients to ``.grad`` and take the optimizer step
    (:func:`lifelong.agent.update.optimizer_step`: the scaler, clipping, the optimizer, with
    ``fused_adam`` the caller's prepared :func:`~lifelong.agent.gradients.fused_adam_calls`). A
    gradient that is already the parameter's ``.grad`` (written there through ``out``) stays;
    an inference tensor is copied (``.grad`` must be writable outside inference mode)."""
    for p, g in step.gradients:
        if p.grad is not g:
            p.grad = g.clone() if g.is_inference() else g
    update.optimizer_step(model, fused_adam)


def gradient_buffers(plan: Plan) -> list[th.Tensor]:
    """The parameters' ``.grad`` tensors, in ``plan.parameters``' order, for
    :func:`minibatch_step`'s ``out``: each parameter's own ``.grad`` where it is a plain tensor of
    the parameter's shape, dtype and device (contiguous, not an inference tensor), else a new
    one of zeros set as its ``.grad``. Torch's autograd likewise accumulates into an existing
    ``.grad``; the train loop calls this once per ``train()``."""
    buffers = []
    for p in plan.parameters:
        grad = p.grad
        if (grad is None or grad.shape != p.shape or grad.dtype != p.dtype or grad.device != p.device
                or grad.is_inference() or grad.is_sparse or not grad.is_contiguous()):
            grad = p.grad = th.zeros_like(p, memory_format=th.contiguous_format)
        buffers.append(grad)
    return buffers
