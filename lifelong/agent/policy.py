"""Actor-critic policy with one or two distributional critics, for Stable-Baselines3.

The actor is Stable-Baselines3's (features extractor, ``mlp_extractor.policy_net``,
``action_net``, action distribution). The critics are a :class:`CriticEnsemble`: ``n_critics``
MLPs with *independent* parameters stored stacked (``[n_critics, in, out]`` per layer) and
evaluated as one batched computation (``torch.baddbmm``), so two critics cost about one
wider matmul per layer instead of two sequential networks. By default every critic has its own
trunk; ``share_critic_trunk=True`` gives one trunk with ``n_critics`` heads.

Outputs are in the return normaliser's units (see :mod:`lifelong.agent.normalization`): a quantile critic
outputs ``n_quantiles`` quantiles, a categorical critic ``n_atoms`` logits on ``[v_min, v_max]``.

Public methods beyond Stable-Baselines3's ``ActorCriticPolicy``:

* ``critic_outputs(obs) -> [n_critics, batch, K]`` raw head outputs (quantiles or logits);
* ``critic_values(obs) -> [n_critics, batch]`` each critic's expected value, in return units;
* ``predict_values(obs) -> [batch, 1]`` the aggregate (``min``/``mean`` of the expected values,
  or the CVaR of the aggregated quantile distribution when ``cvar_alpha`` is set), in return
  units: what GAE, the time-limit bootstrap and explained variance use;
* ``evaluate_actions_distributional(obs, actions) -> (log_prob, entropy, critic_outputs)``:
  everything the loss needs from one forward pass (nothing is cached on the policy).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    MlpExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from lifelong.agent import critics as C
from lifelong.agent.critics import (
    CriticEnsemble,
    CriticSpec,
    critic_spec_attributes,
)
from lifelong.agent.normalization import ReturnNormalizer
from lifelong.agent.optimizer import check_optimizer_groups, optimizer_param_groups

__all__ = ["DistributionalActorCriticPolicy", "DistributionalMultiInputPolicy", "DistributionalCnnPolicy", "sample_actions", "categorical_sample", "log_prob_entropy", "gsde_latent_and_scale", "normal_log_prob", "categorical_terms", "gaussian_terms", "gsde_terms"]


def _split_net_arch(net_arch: Any, features_extractor_class: type) -> tuple[list[int], list[int]]:
    """(actor hidden layers, critic hidden layers) of a ``net_arch``. The pre-1.8 format
    ``[dict(pi=..., vf=...)]`` means its first dict, as in Stable-Baselines3 2.x (whose
    ``ActorCriticPolicy`` warns about it when this policy's constructor passes it on)."""
    if isinstance(net_arch, list) and net_arch and isinstance(net_arch[0], dict):
        net_arch = net_arch[0]
    if net_arch is None:
        return ([], []) if features_extractor_class == NatureCNN else ([64, 64], [64, 64])
    if isinstance(net_arch, dict):
        return list(net_arch.get("pi", [])), list(net_arch.get("vf", []))
    if isinstance(net_arch, (list, tuple)):
        return list(net_arch), list(net_arch)
    raise ValueError(f"net_arch must be None, a list of layer sizes or dict(pi=[...], vf=[...]), got {net_arch!r}")



@critic_spec_attributes
class DistributionalActorCriticPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` whose value function is ``n_critics`` distributional critics.

    Extra arguments (the algorithm fills them in from its own): ``critic`` ("quantile" or
    "categorical"), ``n_quantiles``, ``huber_kappa``, ``n_atoms``, ``v_min``, ``v_max``,
    ``categorical_projection``, ``n_critics`` (1 or 2), ``value_aggregation`` ("min" or "mean"),
    ``cvar_alpha`` (None or in (0, 1], quantile critic only), ``normalize_returns``,
    ``share_critic_trunk`` (default False: independent trunks).
    The critics use ``net_arch["vf"]`` (or the shared list) for their hidden layers.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        optimizer_groups: dict[str, dict[str, Any]] | None = None,
        critic: str = "quantile",
        n_quantiles: int = 32,
        huber_kappa: float = 0.03,
        quantile_mean_loss: str = "squared_error",
        n_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        categorical_projection: str = "two_hot",
        n_critics: int = 2,
        value_aggregation: str = "min",
        cvar_alpha: float | None = None,
        normalize_returns: bool = True,
        normalize_returns_horizon: float | None = None,
        share_critic_trunk: bool = False,
    ) -> None:
        self.critic_spec = CriticSpec.build(
            critic=critic, n_quantiles=n_quantiles, huber_kappa=huber_kappa, n_atoms=n_atoms, v_min=v_min,
            v_max=v_max, categorical_projection=categorical_projection, value_aggregation=value_aggregation,
            cvar_alpha=cvar_alpha, normalize_returns=normalize_returns,
            normalize_returns_horizon=normalize_returns_horizon, quantile_mean_loss=quantile_mean_loss,
        )
        if n_critics not in (1, 2):
            raise ValueError(f"n_critics must be 1 or 2, got {n_critics!r}")
        # Plain attributes needed by _build (called inside super().__init__); the critic
        # settings (critic, n_quantiles, ...) are read-only views of self.critic_spec.
        self.n_critics = int(n_critics)
        self.optimizer_groups = check_optimizer_groups(optimizer_groups)
        self.share_critic_trunk = bool(share_critic_trunk)
        self._pi_arch, self._vf_arch = _split_net_arch(net_arch, features_extractor_class)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            use_sde=use_sde,
            log_std_init=log_std_init,
            full_std=full_std,
            use_expln=use_expln,
            squash_output=squash_output,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    # ------------------------------------------------------------------ construction
    @property
    def n_outputs(self) -> int:
        return self.n_quantiles if self.critic == "quantile" else self.n_atoms

    @property
    def critic_input_dim(self) -> int:
        """Width of what the critics' trunks read: the features (a recurrent policy: its LSTM's output)."""
        return self.features_dim

    def _build_mlp_extractor(self) -> None:
        # Actor trunk only; the critics' trunks live in the CriticEnsemble.
        self.mlp_extractor = MlpExtractor(
            self.features_dim, net_arch=dict(pi=self._pi_arch, vf=[]), activation_fn=self.activation_fn, device=self.device
        )

    def _build(self, lr_schedule: Schedule) -> None:
        self._build_mlp_extractor()
        latent_dim_pi = self.mlp_extractor.latent_dim_pi
        if isinstance(self.action_dist, DiagGaussianDistribution):
            self.action_net, self.log_std = self.action_dist.proba_distribution_net(
                latent_dim=latent_dim_pi, log_std_init=self.log_std_init
            )
        elif isinstance(self.action_dist, StateDependentNoiseDistribution):
            self.action_net, self.log_std = self.action_dist.proba_distribution_net(
                latent_dim=latent_dim_pi, latent_sde_dim=latent_dim_pi, log_std_init=self.log_std_init
            )
        elif isinstance(self.action_dist, (CategoricalDistribution, MultiCategoricalDistribution, BernoulliDistribution)):
            self.action_net = self.action_dist.proba_distribution_net(latent_dim=latent_dim_pi)
        else:
            raise NotImplementedError(f"Unsupported distribution '{self.action_dist}'.")

        self.critics = CriticEnsemble(
            self.critic_input_dim,
            self._vf_arch,
            self.n_critics,
            self.n_outputs,
            activation_fn=self.activation_fn,
            share_trunk=self.share_critic_trunk,
        )
        self.return_normalizer = ReturnNormalizer(
            enabled=self.normalize_returns, horizon=self.normalize_returns_horizon
        )
        self.register_buffer(
            "support", C.categorical_support(self.v_min, self.v_max, max(self.n_atoms, 2)), persistent=False
        )
        self.register_buffer("taus", C.quantile_taus(max(self.n_quantiles, 1)), persistent=False)

        if self.ortho_init:
            gains = {self.mlp_extractor: np.sqrt(2), self.action_net: 0.01}
            if self.share_features_extractor:
                gains[self.features_extractor] = np.sqrt(2)
            else:
                gains[self.pi_features_extractor] = np.sqrt(2)
                gains[self.vf_features_extractor] = np.sqrt(2)
            for module, gain in gains.items():
                module.apply(lambda m, g=gain: self.init_weights(m, gain=g))
            head_gain = 1.0 if self.critic == "quantile" else 0.01
            self.critics.reset_parameters(ortho=True, hidden_gain=np.sqrt(2), head_gain=head_gain)
        # One optimizer over every parameter of the policy, built once (param groups: optimizer_groups).
        lr = lr_schedule(1)
        groups = optimizer_param_groups(self.named_parameters(), self.optimizer_groups, self.optimizer_class,
                                        self.optimizer_kwargs, lr)
        self.optimizer = self.optimizer_class(groups, lr=lr, **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            critic=self.critic,
            n_quantiles=self.n_quantiles,
            huber_kappa=self.huber_kappa,
            quantile_mean_loss=self.quantile_mean_loss,
            n_atoms=self.n_atoms,
            v_min=self.v_min,
            v_max=self.v_max,
            categorical_projection=self.categorical_projection,
            n_critics=self.n_critics,
            optimizer_groups=self.optimizer_groups,
            value_aggregation=self.value_aggregation,
            cvar_alpha=self.cvar_alpha,
            normalize_returns=self.normalize_returns,
            normalize_returns_horizon=self.normalize_returns_horizon,
            share_critic_trunk=self.share_critic_trunk,
            share_features_extractor=self.share_features_extractor,
        )
        return data

    # ------------------------------------------------------------------ features
    def _split_features(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        features = self.extract_features(obs)
        if self.share_features_extractor:
            return features, features  # type: ignore[return-value]
        return features  # type: ignore[return-value]

    def _vf_features(self, obs: PyTorchObs) -> th.Tensor:
        return super(ActorCriticPolicy, self).extract_features(obs, self.vf_features_extractor)

    # ------------------------------------------------------------------ values
    def expected_outputs(self, outputs: th.Tensor) -> th.Tensor:
        """Critic outputs ``[..., K]`` -> expected values ``[...]`` in normalised units."""
        if self.critic == "quantile":
            return outputs.mean(-1)
        return C.categorical_expectation(outputs, self.support)

    def aggregate_outputs(self, outputs: th.Tensor) -> th.Tensor:
        """``[n_critics, B, K]`` -> the value used for advantages ``[B]``, normalised units."""
        if self.cvar_alpha is not None:
            return C.cvar_from_quantiles(C.aggregate_quantiles(outputs, self.value_aggregation), self.cvar_alpha)
        return C.aggregate(self.expected_outputs(outputs), self.value_aggregation)

    def spread_outputs(self, outputs: th.Tensor) -> th.Tensor:
        """Std of each critic's predicted return distribution ``[n, B]``, normalised units."""
        if self.critic == "quantile":
            return outputs.std(-1, unbiased=False) if outputs.shape[-1] > 1 else th.zeros_like(outputs[..., 0])
        return C.categorical_std(outputs, self.support)

    def critic_outputs(self, obs: PyTorchObs) -> th.Tensor:
        """Raw critic head outputs ``[n_critics, batch, K]`` (quantiles or logits, normalised units)."""
        return self.critics(self._vf_features(obs))

    def critic_values(self, obs: PyTorchObs) -> th.Tensor:
        """Each critic's expected value ``[n_critics, batch]`` in return units."""
        return self.return_normalizer.denormalize(self.expected_outputs(self.critic_outputs(obs)))

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        """Aggregated value ``[batch, 1]`` in return units (what the policy's advantages and
        explained variance use)."""
        agg = self.aggregate_outputs(self.critic_outputs(obs))
        return self.return_normalizer.denormalize(agg).unsqueeze(-1)

    @property
    def targets_use_aggregate(self) -> bool:
        """True when the aggregate *is* the critics' mean value (``value_aggregation="mean"`` or a
        single critic, and no CVaR): the critics' bootstrap targets then equal the advantages'
        returns, and one GAE pass serves both."""
        return self.cvar_alpha is None and (self.value_aggregation == "mean" or self.n_critics == 1)

    def bootstrap_values(self, outputs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Critic outputs ``[n_critics, B, K]`` -> ``(aggregate [B], critics' mean [B])`` in return
        units: the aggregate (``min``/``mean``/CVaR) bootstraps the policy's advantages, the
        twins' mean expected value bootstraps the critics' own targets (see
        :mod:`lifelong.agent.rollout`). The second is the first when :attr:`targets_use_aggregate`."""
        denormalize = self.return_normalizer.denormalize
        values = denormalize(self.aggregate_outputs(outputs))
        if self.targets_use_aggregate:
            return values, values
        return values, denormalize(C.aggregate(self.expected_outputs(outputs), "mean"))

    def act(self, obs: PyTorchObs, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """The actor alone: ``(actions [B, ...], log_prob [B])`` (the rollout evaluates the critics
        once for the whole rollout, see :mod:`lifelong.agent.rollout`)."""
        pi_features = super(ActorCriticPolicy, self).extract_features(obs, self.pi_features_extractor)
        latent_pi = self.mlp_extractor.forward_actor(pi_features)
        actions, log_prob = self._sample(latent_pi, deterministic)
        return actions.reshape((-1, *self.action_space.shape)), log_prob  # type: ignore[misc]

    # ------------------------------------------------------------------ SB3 API
    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """SB3's rollout step: ``(actions, aggregated values [B, 1] in return units, log_prob)``."""
        pi_features, vf_features = self._split_features(obs)
        latent_pi = self.mlp_extractor.forward_actor(pi_features)
        actions, log_prob = self._sample(latent_pi, deterministic)
        values = self.return_normalizer.denormalize(self.aggregate_outputs(self.critics(vf_features))).unsqueeze(-1)
        actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        return actions, values, log_prob

    def _sample(self, latent_pi: th.Tensor, deterministic: bool) -> tuple[th.Tensor, th.Tensor]:
        return sample_actions(self, latent_pi, deterministic)

    def evaluate_actions_distributional(
        self, obs: PyTorchObs, actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor | None, th.Tensor]:
        """One forward pass for the loss: ``(log_prob [B], entropy [B] or None,
        critic outputs [n_critics, B, K])``."""
        pi_features, vf_features = self._split_features(obs)
        latent_pi = self.mlp_extractor.forward_actor(pi_features)
        log_prob, entropy = self._log_prob_entropy(latent_pi, actions)
        return log_prob, entropy, self.critics(vf_features)

    def _log_prob_entropy(self, latent_pi: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor | None]:
        return log_prob_entropy(self, latent_pi, actions)

    def evaluate_actions(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """SB3 contract: ``(aggregated values [B, 1] in return units, log_prob, entropy)``."""
        log_prob, entropy, outputs = self.evaluate_actions_distributional(obs, actions)
        values = self.return_normalizer.denormalize(self.aggregate_outputs(outputs)).unsqueeze(-1)
        return values, log_prob, entropy


class DistributionalMultiInputPolicy(DistributionalActorCriticPolicy):
    """For ``Dict`` observation spaces (SB3's ``CombinedExtractor`` by default)."""

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class DistributionalCnnPolicy(DistributionalActorCriticPolicy):
    """For image observations (SB3's ``NatureCNN`` by default)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


def sample_actions(
    policy: Any, latent_pi: th.Tensor, deterministic: bool, validate: bool = True, head: th.Tensor | None = None
) -> tuple[th.Tensor, th.Tensor]:
    """``(actions, log_prob)`` of ``policy``'s action distribution at actor latent ``latent_pi``.

    ``head``: ``policy.action_net(latent_pi)`` (logits or mean) when the caller has computed it.

    ``validate=False`` draws categorical actions with :func:`categorical_sample` (the same draw
    as ``torch.multinomial``, without its per-call checks, which read scalars back from the
    device): the caller then checks the log-probabilities for NaN itself, as the rollout does
    once per rollout."""
    # Fast paths for the two common distributions: the same distributions as SB3's, drawn
    # from the same global torch generator, without building torch.distributions objects
    # (their construction and argument validation dominated the rollout step's profile).
    if head is None and (isinstance(policy.action_dist, (CategoricalDistribution, DiagGaussianDistribution))
                         or _plain_gsde(policy)):
        head = policy.action_net(latent_pi)
    if isinstance(policy.action_dist, CategoricalDistribution):
        logp_all = th.log_softmax(head, dim=-1)
        if deterministic:
            actions = logp_all.argmax(dim=-1)
        elif validate:
            actions = th.multinomial(logp_all.exp(), 1).squeeze(-1)
        else:
            actions = categorical_sample(logp_all.exp())
        return actions, logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    if isinstance(policy.action_dist, DiagGaussianDistribution):
        mean = head
        log_std = policy.log_std.expand_as(mean)
        if deterministic:
            actions = mean
            log_prob = (-log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        else:
            noise = th.randn_like(mean)
            actions = mean + noise * log_std.exp()
            log_prob = (-0.5 * noise * noise - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return actions, log_prob
    if _plain_gsde(policy):
        mean = head
        latent_sde, scale = gsde_latent_and_scale(policy, latent_pi)
        actions = mean if deterministic else mean + policy.action_dist.get_noise(latent_sde)
        return actions, normal_log_prob(actions, mean, scale, scale.log()).sum(dim=1)
    distribution = policy._get_action_dist_from_latent(latent_pi)
    actions = distribution.get_actions(deterministic=deterministic)
    return actions, distribution.log_prob(actions)


def categorical_sample(probs: th.Tensor) -> th.Tensor:
    """One draw per row of ``probs [B, n]``: ``argmax_i p_i / q_i`` with ``q ~ Exp(1)`` from torch's
    default generator of the device. That is the algorithm ``torch.multinomial(probs, 1)`` runs
    for a single sample (``aten/src/ATen/native/Distributions.cpp``): the same actions and the
    same generator state afterwards (tested against it, and the rollout against
    Stable-Baselines3's), 4 us against 16 us per CartPole step, because it skips multinomial's
    checks that the probabilities are finite and non-negative: for a softmax's output only NaN
    can fail them, and the caller checks for it."""
    q = th.empty_like(probs).exponential_(1)
    return th.div(probs, q).argmax(-1)


def _plain_gsde(policy: Any) -> bool:
    """gSDE without a squashing bijector (SB3's default for PPO): its distribution is a Normal of
    mean ``action_net(latent)`` and a state-dependent scale, sampled through the exploration
    matrix, which :func:`sample_actions` and :func:`log_prob_entropy` compute without building
    the ``torch.distributions.Normal`` SB3 builds at every call."""
    return isinstance(policy.action_dist, StateDependentNoiseDistribution) and policy.action_dist.bijector is None


def gsde_latent_and_scale(policy: Any, latent_pi: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """SB3's ``StateDependentNoiseDistribution.proba_distribution``, op for op: the latent the
    noise reads (detached unless ``learn_features``) and the scale
    ``sqrt((latent^2) @ std^2 + epsilon)``."""
    dist = policy.action_dist
    latent_sde = latent_pi if dist.learn_features else latent_pi.detach()
    variance = th.mm(latent_sde**2, dist.get_std(policy.log_std) ** 2)
    return latent_sde, th.sqrt(variance + dist.epsilon)


def normal_log_prob(value: th.Tensor, loc: th.Tensor, scale: th.Tensor, log_scale: th.Tensor) -> th.Tensor:
    """``torch.distributions.Normal(loc, scale).log_prob(value)``, the same operations in the same
    order: ``-(value - loc)^2 / (2 scale^2) - log(scale) - log(sqrt(2 pi))`` (``log_scale`` given,
    so that the entropy reuses it)."""
    return -((value - loc) ** 2) / (2 * scale**2) - log_scale - math.log(math.sqrt(2 * math.pi))


def categorical_terms(logits: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """``(log_prob, entropy, log p over all actions, p)`` of a categorical distribution with
    ``logits`` (the intermediates are what a hand-written backward pass needs)."""
    logp_all = th.log_softmax(logits, dim=-1)
    log_prob = logp_all.gather(-1, actions.long().reshape(-1, 1)).squeeze(-1)
    probs = logp_all.exp()
    return log_prob, -(probs * logp_all).sum(-1), logp_all, probs


def gaussian_terms(mean: th.Tensor, log_std: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """``(log_prob, entropy, z, 1 / std)`` of a diagonal Gaussian, ``z = (a - mean) / std``."""
    log_std = log_std.expand_as(mean)
    inv_std = th.exp(-log_std)
    z = (actions - mean) * inv_std
    log_prob = (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)
    return log_prob, entropy, z, inv_std


def gsde_terms(policy: Any, latent_pi: th.Tensor, mean: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """``(log_prob, entropy, the noise's latent, scale)`` of SB3's plain gSDE distribution."""
    latent_sde, scale = gsde_latent_and_scale(policy, latent_pi)
    log_scale = scale.log()
    # Normal's entropy, 0.5 + 0.5 log(2 pi) + log(scale), summed over the action dimensions
    entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_scale).sum(dim=1)
    return normal_log_prob(actions, mean, scale, log_scale).sum(dim=1), entropy, latent_sde, scale


def log_prob_entropy(policy: Any, latent_pi: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor | None]:
    """``(log_prob, entropy or None)`` of ``actions`` under ``policy``'s action distribution."""
    # Fast paths (same values as SB3's distributions, without building torch.distributions
    # objects and their argument validation on every minibatch).
    if isinstance(policy.action_dist, CategoricalDistribution):
        return categorical_terms(policy.action_net(latent_pi), actions)[:2]
    if isinstance(policy.action_dist, DiagGaussianDistribution):
        return gaussian_terms(policy.action_net(latent_pi), policy.log_std, actions)[:2]
    if _plain_gsde(policy):
        return gsde_terms(policy, latent_pi, policy.action_net(latent_pi), actions)[:2]
    distribution = policy._get_action_dist_from_latent(latent_pi)
    return distribution.log_prob(actions), distribution.entropy()
