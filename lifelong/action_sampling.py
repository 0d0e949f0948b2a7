"""Action sampling for :class:`~lifelong.policy.DistributionalActorCriticPolicy`: fast paths for
SB3's ``CategoricalDistribution`` and ``DiagGaussianDistribution`` (the same distributions,
drawn from the same global torch generator, without building ``torch.distributions`` objects),
falling back to SB3's distribution objects for the other action spaces.
"""
from __future__ import annotations

import math
from typing import Any

import torch as th
from stable_baselines3.common.distributions import CategoricalDistribution, DiagGaussianDistribution

__all__ = ["sample_actions", "log_prob_entropy"]


def sample_actions(policy: Any, latent_pi: th.Tensor, deterministic: bool) -> tuple[th.Tensor, th.Tensor]:
    """``(actions, log_prob)`` of ``policy``'s action distribution at actor latent ``latent_pi``."""
    # Fast paths for the two common distributions: the same distributions as SB3's, drawn
    # from the same global torch generator, without building torch.distributions objects
    # (their construction and argument validation dominated the rollout step's profile).
    if isinstance(policy.action_dist, CategoricalDistribution):
        logp_all = th.log_softmax(policy.action_net(latent_pi), dim=-1)
        if deterministic:
            actions = logp_all.argmax(dim=-1)
        else:
            actions = th.multinomial(logp_all.exp(), 1).squeeze(-1)
        return actions, logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    if isinstance(policy.action_dist, DiagGaussianDistribution):
        mean = policy.action_net(latent_pi)
        log_std = policy.log_std.expand_as(mean)
        if deterministic:
            actions = mean
            log_prob = (-log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        else:
            noise = th.randn_like(mean)
            actions = mean + noise * log_std.exp()
            log_prob = (-0.5 * noise * noise - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return actions, log_prob
    distribution = policy._get_action_dist_from_latent(latent_pi)
    actions = distribution.get_actions(deterministic=deterministic)
    return actions, distribution.log_prob(actions)


def log_prob_entropy(policy: Any, latent_pi: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor | None]:
    """``(log_prob, entropy or None)`` of ``actions`` under ``policy``'s action distribution."""
    # Fast paths (same values as SB3's distributions, without building torch.distributions
    # objects and their argument validation on every minibatch).
    if isinstance(policy.action_dist, CategoricalDistribution):
        logp_all = th.log_softmax(policy.action_net(latent_pi), dim=-1)
        log_prob = logp_all.gather(-1, actions.long().reshape(-1, 1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return log_prob, entropy
    if isinstance(policy.action_dist, DiagGaussianDistribution):
        mean = policy.action_net(latent_pi)
        log_std = policy.log_std.expand_as(mean)
        z = (actions - mean) * th.exp(-log_std)
        log_prob = (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)
        return log_prob, entropy
    distribution = policy._get_action_dist_from_latent(latent_pi)
    return distribution.log_prob(actions), distribution.entropy()
