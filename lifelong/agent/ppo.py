"""DistributionalPPO: PPO with twin distributional critics, the UPGD optimizers and a variance
gradient scaler, as a Stable-Baselines3 ``OnPolicyAlgorithm``.

Swap ``from stable_baselines3 import PPO`` for ``from lifelong import DistributionalPPO``: the
constructor takes PPO's arguments with PPO's defaults, plus the distributional ones (see
:class:`DistributionalPPO`). Everything the training loop uses is a plain attribute of the
model or of its policy, so that checkpoints and PBT act on the live objects:

==============================  ===============================================================
``policy``                      :class:`~lifelong.agent.policy.DistributionalActorCriticPolicy`
                                (``state_dict()`` includes the return statistics)
``policy.optimizer``            the one optimizer over all ``policy.parameters()``
``vgs``                         :class:`~lifelong.vgs.VarianceGradientScaler` or ``None``
``return_normalizer``           ``policy.return_normalizer`` (same object; ``state_dict()``)
``lr_schedule``                 :mod:`lifelong.agent.schedules` ``Constant``/``Linear`` (or a user
                                callable, which ``save`` refuses)
``clip_range``, ``clip_range_vf``  schedules (``clip_range_vf`` may be ``None``)
``learning_rate``               what was given (or last set); ``lr_schedule`` is what is used
``ent_coef``, ``vf_coef``, ``max_grad_norm``, ``n_epochs``, ``batch_size``, ``gamma``,
``gae_lambda``, ``target_kl``   plain numbers (``rollout_buffer.gamma/gae_lambda`` mirror them)
``num_timesteps``, ``_n_updates``  SB3's counters (``_n_updates`` counts epochs, as in SB3)
``_n_train_calls``              number of ``train()`` calls (drives ``diagnostics_every``)
``_current_progress_remaining``, ``_last_obs``, ``_last_episode_starts``,
``_last_original_obs``, ``_episode_num``, ``ep_info_buffer``, ``ep_success_buffer``: SB3's
==============================  ===============================================================

``get_constructor_kwargs()`` returns the JSON-able arguments that rebuild the model
(``cls(policy=model.get_policy_name(), env=env, device=..., **kwargs)``), with the *current*
values of the tunable hyperparameters.
"""
from __future__ import annotations

import warnings
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv

from lifelong.agent import arguments, hyperparameters, metrics, rollout
from lifelong.agent import critics as C
from lifelong.agent.arguments import _POLICY_OWNED_KWARGS, check_ppo_args, check_spaces
from lifelong.agent.critics import CriticSpec, critic_spec_attributes
from lifelong.agent.gradients import clip_grad_norm, zero_grad
from lifelong.agent.normalization import ReturnNormalizer
from lifelong.agent.memory import check_fits
from lifelong.agent.optimizer import (
    DEFAULT_LEARNING_RATE,
    DEFAULT_VGS_KWARGS,
    policy_optimizer_kwargs,
    resolve_learning_rate,
    resolve_optimizer,
)
from lifelong.agent.policy import (
    DistributionalActorCriticPolicy,
    DistributionalCnnPolicy,
    DistributionalMultiInputPolicy,
)
from lifelong.agent.schedules import as_schedule
from lifelong.checkpoint import load_model, register_classes, save_model
from lifelong.checkpoint.codec import from_json
from lifelong.vgs import VarianceGradientScaler

__all__ = ["DistributionalPPO"]

SelfDistributionalPPO = TypeVar("SelfDistributionalPPO", bound="DistributionalPPO")


@critic_spec_attributes
class DistributionalPPO(OnPolicyAlgorithm):
    """PPO (clip) with one or two distributional critics, by default twin quantile critics,
    trained with AdaptiveUPGD under a variance gradient scaler.

    PPO's arguments and defaults (``learning_rate=3e-4``, ``n_steps=2048``, ``batch_size=64``,
    ``n_epochs=10``, ``gamma=0.99``, ``gae_lambda=0.95``, ``clip_range=0.2``, ...) keep their
    Stable-Baselines3 meaning; ``learning_rate``, ``clip_range`` and ``clip_range_vf`` accept a
    number, a :mod:`lifelong.agent.schedules` schedule (or its dict) or any callable (not savable).

    :param critic: ``"quantile"`` (quantile regression with the quantile-Huber loss) or
        ``"categorical"`` (cross-entropy against the target projected on the support).
    :param n_quantiles: quantiles per critic, at ``tau_i = (2i - 1) / 2N``.
    :param huber_kappa: quantile-Huber threshold (> 0), in normalised return units. The default
        0.03 was measured (``benchmarks/huber_kappa.py``): on a skewed unit-variance target the
        learned quantiles' mean is off by -0.003 sd and their spread is 0.985 of the true one,
        against +0.047 sd and 0.79 at ``huber_kappa=1``, which also learns slower.
    :param n_atoms, v_min, v_max: categorical support, in *normalised* return units.
    :param categorical_projection: ``"two_hot"`` (default, mean-preserving) or ``"hl_gauss"``.
    :param twin_critics: two critics with independent parameters trained on the same targets.
    :param value_aggregation: ``"min"`` or ``"mean"`` of the critics' values: the value of the
        policy's advantages. The critics' own targets always bootstrap from the twins' mean
        value (:mod:`lifelong.agent.rollout`), so the aggregate's bias does not compound.
    :param optimizer: ``"adam"``, ``"upgd"``, ``"adaptive_upgd"``, ``"upgdw"`` or an optimizer
        class; built once over all policy parameters.
    :param optimizer_kwargs: extra optimizer arguments. An ``"lr"`` here is the learning rate;
        giving ``learning_rate`` as well is a ``ValueError``. ``"adam"`` defaults to ``eps=1e-5``
        (as Stable-Baselines3).
    :param vgs: use a :class:`~lifelong.vgs.VarianceGradientScaler` (``vgs_kwargs`` are its
        arguments, over the agent's defaults ``DEFAULT_VGS_KWARGS = {"alpha": 1e-3}``); each
        minibatch then ends with ``vgs.step(optimizer, max_grad_norm)``, else with
        ``clip_grad_norm_`` and ``optimizer.step()``. Off by default: no benchmark has shown it
        to help (docs/vgs.md says what its ratio measures).
    :param normalize_returns: critics learn returns normalised by running statistics
        (:mod:`lifelong.agent.normalization`).
    :param normalize_returns_horizon: ``None`` (the statistics weigh every return of the run
        equally) or a number >= 1: an exponential moving average over about that many updates,
        which follows a reward scale that changes (non-stationary tasks).
    :param cvar_alpha: ``None``, or the level in (0, 1] of the CVaR of the aggregated quantile
        distribution used as the value for advantages (quantile critic only).
    :param diagnostics_every: log plasticity diagnostics (dormant fraction, effective rank,
        weight norm) every this many ``train()`` calls; 0 disables.

    Value clipping (``clip_range_vf``), in normalised units, per critic against that critic's
    own rollout prediction: quantile critics clip every quantile and take the element-wise max
    of the clipped and unclipped quantile-Huber losses; categorical critics cannot clip a
    distribution, so PPO's ``max(L(v), L(clip(v)))`` rule is applied to their expected value:
    a sample's cross-entropy is stopped (no gradient) exactly when PPO's clipped squared error
    would be the larger one, i.e. when the expected value has left ``old +- clip_range_vf`` and
    the target pulls it further out.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": DistributionalActorCriticPolicy,
        "MultiInputPolicy": DistributionalMultiInputPolicy,
        "CnnPolicy": DistributionalCnnPolicy,
    }
    policy: DistributionalActorCriticPolicy

    def __init__(
        self,
        policy: str | type[DistributionalActorCriticPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = DEFAULT_LEARNING_RATE,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        critic: str = "quantile",
        n_quantiles: int = 32,
        huber_kappa: float = 0.03,
        n_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        categorical_projection: str = "two_hot",
        twin_critics: bool = True,
        value_aggregation: str = "min",
        optimizer: str | type[th.optim.Optimizer] = "adaptive_upgd",
        optimizer_kwargs: dict[str, Any] | None = None,
        vgs: bool = False,
        vgs_kwargs: dict[str, Any] | None = None,
        normalize_returns: bool = True,
        normalize_returns_horizon: float | None = None,
        cvar_alpha: float | None = None,
        diagnostics_every: int = 10,
        _init_setup_model: bool = True,
    ):
        critic_spec = CriticSpec.build(
            critic=critic, n_quantiles=n_quantiles, huber_kappa=huber_kappa, n_atoms=n_atoms, v_min=v_min,
            v_max=v_max, categorical_projection=categorical_projection, value_aggregation=value_aggregation,
            cvar_alpha=cvar_alpha, normalize_returns=normalize_returns,
            normalize_returns_horizon=normalize_returns_horizon,
        )
        # ---- optimizer and learning rate
        optimizer_class = self._resolve_optimizer(optimizer)
        optimizer_kwargs, learning_rate = resolve_learning_rate(learning_rate, optimizer_kwargs)
        # ---- the other arguments, then PPO's
        check_ppo_args(
            vgs_kwargs=vgs_kwargs,
            twin_critics=twin_critics,
            vgs=vgs,
            diagnostics_every=diagnostics_every,
            n_steps=n_steps,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            gamma=gamma,
            gae_lambda=gae_lambda,
            max_grad_norm=max_grad_norm,
            n_epochs=n_epochs,
            batch_size=batch_size,
            normalize_advantage=normalize_advantage,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            target_kl=target_kl,
        )
        # ---- policy and policy_kwargs
        policy_kwargs = from_json(dict(policy_kwargs or {}))
        clash = sorted(set(policy_kwargs) & set(_POLICY_OWNED_KWARGS))
        if clash:
            raise ValueError(
                f"policy_kwargs must not contain {clash}: pass them as DistributionalPPO arguments "
                "(optimizer=, optimizer_kwargs=, critic=, ...)"
            )
        if isinstance(policy, str):
            if policy not in self.policy_aliases:
                raise ValueError(f"policy={policy!r} is not supported: accepted values are {list(self.policy_aliases)} or a policy class")
        elif not (isinstance(policy, type) and issubclass(policy, DistributionalActorCriticPolicy)):
            raise ValueError(f"policy={policy!r} is invalid: expected {list(self.policy_aliases)} or a subclass of DistributionalActorCriticPolicy")
        if rollout_buffer_class is not None:
            rollout_buffer_class = from_json(rollout_buffer_class)
        # ---- env: make, wrap and check the spaces with clear errors (SB3 would assert)
        if env is not None:
            env = self._wrap_env(maybe_make_env(env, verbose), verbose, True)
            self._check_spaces(policy, env.observation_space, env.action_space)

        super().__init__(
            policy,
            env,  # type: ignore[arg-type]
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=float(gamma),
            gae_lambda=float(gae_lambda),
            ent_coef=float(ent_coef),
            vf_coef=float(vf_coef),
            max_grad_norm=float(max_grad_norm),
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            device=device,
            seed=seed,
            _init_setup_model=False,
            supported_action_spaces=arguments.SUPPORTED_ACTION_SPACES,
        )
        if self.env is not None:
            self._check_batch_size(batch_size, normalize_advantage)
        self.batch_size = int(batch_size)
        self.n_epochs = int(n_epochs)
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = bool(normalize_advantage)
        self.target_kl = None if target_kl is None else float(target_kl)

        # critic, n_quantiles, huber_kappa, n_atoms, v_min, v_max, categorical_projection,
        # value_aggregation, cvar_alpha, normalize_returns, normalize_returns_horizon: read-only
        # views of critic_spec.
        self.critic_spec = critic_spec
        self.twin_critics = bool(twin_critics)
        self.optimizer_class = optimizer_class
        self.optimizer_kwargs = optimizer_kwargs
        self.use_vgs = bool(vgs)
        self.vgs_kwargs = {**DEFAULT_VGS_KWARGS, **(vgs_kwargs or {})}
        self.vgs = None  # the VarianceGradientScaler, built in _setup_model
        self.diagnostics_every = int(diagnostics_every)
        self._n_train_calls = 0

        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ validation helpers
    def _check_memory(self) -> None:
        """Refuse (``ValueError``) sizes whose rollout buffer and networks would not fit in memory,
        before allocating them (see :mod:`lifelong.agent.memory`)."""
        spec = self.critic_spec
        outputs = spec.n_quantiles if spec.critic == "quantile" else spec.n_atoms
        check_fits(self.observation_space, self.action_space, self.n_envs, self.n_steps,
                   self.policy_kwargs.get("net_arch"), outputs, 2 if self.twin_critics else 1)

    @staticmethod
    def _resolve_optimizer(optimizer: Any) -> type[th.optim.Optimizer]:
        return resolve_optimizer(optimizer)

    @classmethod
    def _check_spaces(cls, policy: Any, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        check_spaces(policy, observation_space, action_space)

    def _check_batch_size(self, batch_size: int, normalize_advantage: bool) -> None:
        buffer_size = self.n_steps * self.n_envs
        if normalize_advantage and buffer_size < 2:
            raise ValueError(
                f"n_steps * n_envs = {buffer_size} is invalid: must be > 1 when normalize_advantage=True "
                f"(n_steps={self.n_steps}, n_envs={self.n_envs})"
            )
        if batch_size > buffer_size:
            raise ValueError(
                f"batch_size={batch_size} is invalid: expected at most n_steps * n_envs = {buffer_size} "
                f"(n_steps={self.n_steps}, n_envs={self.n_envs})"
            )
        if buffer_size % batch_size:
            warnings.warn(
                f"batch_size={batch_size} does not divide n_steps * n_envs = {buffer_size}: every epoch ends with a "
                f"truncated minibatch of {buffer_size % batch_size} samples",
                stacklevel=3,
            )

    # ------------------------------------------------------------------ setup
    def _setup_lr_schedule(self) -> None:
        self.lr_schedule = as_schedule(self.learning_rate, "learning_rate")

    def _policy_build_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.policy_kwargs)
        kwargs.update(
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=policy_optimizer_kwargs(self.optimizer_class, self.optimizer_kwargs),
            n_critics=2 if self.twin_critics else 1,
            **self.critic_spec.as_kwargs(),
        )
        return kwargs

    def _setup_model(self) -> None:
        self._check_memory()
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if self.rollout_buffer_class is None:
            self.rollout_buffer_class = (
                DictRolloutBuffer if isinstance(self.observation_space, spaces.Dict) else RolloutBuffer
            )
        self.rollout_buffer = self.rollout_buffer_class(
            self.n_steps,
            self.observation_space,  # type: ignore[arg-type]
            self.action_space,
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            **self.rollout_buffer_kwargs,
        )
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, use_sde=self.use_sde, **self._policy_build_kwargs()
        )
        self.policy = self.policy.to(self.device)
        self._maybe_recommend_cpu("DistributionalActorCriticPolicy")
        self.clip_range = as_schedule(self.clip_range, "clip_range")
        if self.clip_range_vf is not None:
            self.clip_range_vf = as_schedule(self.clip_range_vf, "clip_range_vf")
        if self.use_vgs:
            self.vgs = VarianceGradientScaler(**self.vgs_kwargs)
        else:
            self.vgs = None

    @property
    def return_normalizer(self) -> ReturnNormalizer:
        """The policy's return normaliser (``policy.return_normalizer``; part of its state_dict)."""
        return self.policy.return_normalizer

    # ------------------------------------------------------------------ rollout and training
    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """Stable-Baselines3's rollout semantics with less work per step; the policy's advantages
        bootstrap from the aggregate value, the critics' targets from the twins' mean
        (:func:`lifelong.agent.rollout.collect_rollouts`)."""
        return rollout.collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps)

    def _critic_losses(
        self,
        outputs: th.Tensor,
        targets: th.Tensor,
        target_probs: th.Tensor | None,
        old_outputs: th.Tensor | None,
        old_means: th.Tensor | None,
        clip_range_vf: float | None,
    ) -> th.Tensor:
        """Per-critic loss ``[n_critics]`` for outputs ``[n, B, K]`` and normalised targets ``[B]``."""
        policy = self.policy
        if self.critic == "quantile":
            if clip_range_vf is None:
                per_sample = C.quantile_huber_loss(outputs, targets, self.huber_kappa, policy.taus)
            else:
                assert old_outputs is not None
                clipped = old_outputs + (outputs - old_outputs).clamp(-clip_range_vf, clip_range_vf)
                per_sample = th.maximum(
                    C.quantile_huber_loss(outputs, targets, self.huber_kappa, policy.taus, reduce=False),
                    C.quantile_huber_loss(clipped, targets, self.huber_kappa, policy.taus, reduce=False),
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
        return per_sample.mean(-1)

    def train(self) -> None:
        """One PPO update on the rollout buffer (``n_epochs`` passes of minibatches)."""
        policy = self.policy
        optimizer = policy.optimizer
        normalizer = policy.return_normalizer
        self._update_learning_rate(optimizer)
        progress = self._current_progress_remaining
        clip_range = float(self.clip_range(progress))  # type: ignore[operator]
        clip_range_vf = None if self.clip_range_vf is None else float(self.clip_range_vf(progress))  # type: ignore[operator]

        # The whole rollout as tensors, once (minibatches are index_selects of these).
        data = next(self.rollout_buffer.get(batch_size=None))
        obs_all = data.observations
        returns = data.returns
        n_samples = returns.shape[0]
        actions_all = data.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions_all = actions_all.long().flatten()

        def take(x: Any, idx: th.Tensor | slice) -> Any:
            if isinstance(x, dict):
                return {k: v[idx] for k, v in x.items()}
            return x[idx]

        with th.no_grad():
            # The critics' rollout predictions: the parameters have not changed since the rollout
            # and the policy is still in evaluation mode, as it was there. Chunked for big obs.
            chunk = 8192
            old_outputs = th.cat(
                [policy.critic_outputs(take(obs_all, slice(i, i + chunk))) for i in range(0, n_samples, chunk)], dim=1
            )  # [n_critics, N, K]
            old_values = normalizer.denormalize(policy.expected_outputs(old_outputs))  # pre-update stats
            spread = normalizer.scale(policy.spread_outputs(old_outputs)).mean()
        normalizer.update(returns)
        with th.no_grad():
            targets_all = normalizer.normalize(returns)
            target_probs_all = None
            old_means_all = None
            if self.critic == "categorical":
                target_probs_all = C.project_categorical(
                    targets_all, self.v_min, self.v_max, self.n_atoms, self.categorical_projection
                )
                if clip_range_vf is not None:
                    old_means_all = policy.expected_outputs(old_outputs)
        need_old = clip_range_vf is not None and self.critic == "quantile"
        policy.set_training_mode(True)

        stats: list[th.Tensor] = []
        epoch_kls: list[th.Tensor] = []
        last_loss = th.zeros(())
        continue_training = True
        batch_size = self.batch_size
        for epoch in range(self.n_epochs):
            epoch_kls = []
            perm = th.from_numpy(np.random.permutation(n_samples)).to(returns.device)
            for start in range(0, n_samples, batch_size):
                idx = perm[start : start + batch_size]
                log_prob, entropy, outputs = policy.evaluate_actions_distributional(take(obs_all, idx), actions_all[idx])
                advantages = data.advantages[idx]
                if self.normalize_advantage and advantages.shape[0] > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                log_ratio = log_prob - data.old_log_prob[idx]
                ratio = th.exp(log_ratio)
                policy_loss = -th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
                critic_losses = self._critic_losses(
                    outputs,
                    targets_all[idx],
                    None if target_probs_all is None else target_probs_all[idx],
                    old_outputs[:, idx] if need_old else None,
                    None if old_means_all is None else old_means_all[:, idx],
                    clip_range_vf,
                )
                entropy_loss = th.mean(log_prob) if entropy is None else -th.mean(entropy)
                # Sum over critics: each critic gets the gradient a single critic would get.
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * critic_losses.sum()
                with th.no_grad():
                    approx_kl = th.mean((ratio - 1) - log_ratio)
                    clip_fraction = th.mean((th.abs(ratio - 1) > clip_range).float())
                epoch_kls.append(approx_kl)
                if self.target_kl is not None and approx_kl.item() > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl.item():.2f}")
                    break
                stats.append(
                    th.cat([th.stack([policy_loss.detach(), entropy_loss.detach(), clip_fraction]), critic_losses.detach()])
                )
                last_loss = loss.detach()

                zero_grad(optimizer)
                loss.backward()
                if self.vgs is not None:
                    self.vgs.step(optimizer, max_grad_norm=self.max_grad_norm)
                else:
                    clip_grad_norm(optimizer, self.max_grad_norm)
                    optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break
        self._n_train_calls += 1
        returns_np = returns.cpu().numpy()
        critic_ev = [explained_variance(v, returns_np) for v in old_values.cpu().numpy()]
        metrics.log_train(self, stats, epoch_kls, last_loss, clip_range, clip_range_vf, critic_ev, spread)

    @th.no_grad()
    def plasticity_diagnostics(self, n_obs: int = 256) -> dict[str, float]:
        """``plasticity/dormant_fraction`` (over the actor's and every critic's hidden units),
        ``plasticity/effective_rank`` (mean over the last hidden layer of the actor and of each
        critic) and ``plasticity/weight_norm`` (L2 norm of all policy parameters), on up to
        ``n_obs`` observations of the last rollout. Uses :mod:`lifelong.diagnostics`."""
        return metrics.plasticity_diagnostics(self, n_obs)


    def learn(
        self: SelfDistributionalPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "DistributionalPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDistributionalPPO:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    # ------------------------------------------------------------------ hyperparameters
    def get_hyperparameters(self) -> dict[str, Any]:
        """Current values of every name in :data:`lifelong.agent.hyperparameters.TUNABLE` (schedules are
        evaluated at the current progress; ``sigma`` is ``None`` for optimizers without noise,
        ``vgs_alpha`` is ``None`` without a scaler)."""
        return hyperparameters.get_hyperparameters(self)

    def set_hyperparameters(self, **values: Any) -> dict[str, Any]:
        """Validate all ``values`` first (unknown names or bad values: ``ValueError``, nothing
        changed), then apply each to every live component at once:

        * ``learning_rate``: every optimizer param group's ``lr``, ``self.learning_rate`` and
          ``self.lr_schedule = Constant(value)`` (so SB3's per-update schedule keeps it);
        * ``clip_range``: ``self.clip_range = Constant(value)``;
        * ``gamma``, ``gae_lambda``: the model and its rollout buffer (used by the next GAE);
        * ``sigma``: every param group's ``sigma`` (UPGD optimizers only);
        * ``vgs_alpha``: ``self.vgs.alpha`` (only with ``vgs=True``);
        * ``batch_size`` (2..n_steps*n_envs), ``n_epochs``, ``ent_coef``, ``vf_coef``,
          ``max_grad_norm``: plain attributes read by the next ``train()``.

        Returns :meth:`get_hyperparameters`.
        """
        return hyperparameters.set_hyperparameters(self, values)

    # ------------------------------------------------------------------ (de)construction
    def get_policy_name(self) -> str | dict[str, str]:
        """The ``policy`` argument that rebuilds this model: an alias ("MlpPolicy", ...) or an
        encoded class reference ``{"__class__": "module:Name"}`` (accepted by the constructor
        via :func:`decode_policy`)."""
        return arguments.policy_name(self)

    @staticmethod
    def decode_policy(policy: str | dict[str, str]) -> Any:
        """Inverse of :meth:`get_policy_name` (only classes in the checkpoint codec's registry)."""
        return from_json(policy)

    def get_constructor_kwargs(self) -> dict[str, Any]:
        """JSON-able keyword arguments that rebuild this model (without ``policy``, ``env``,
        ``device``, ``tensorboard_log``), with the *current* tunable values. Schedules are
        numbers (``Constant``) or their ``to_dict()``; classes (in ``policy_kwargs``, a custom
        optimizer or rollout buffer) are ``{"__class__": "module:Name"}``, which the constructor
        resolves only from :func:`lifelong.checkpoint.codec.registry` (or ``custom_objects``).
        ``ValueError`` when something cannot be saved (an arbitrary callable schedule)."""
        return arguments.constructor_kwargs(self)

    def save(self, path: Any, exclude: Any = None, include: Any = None) -> Any:
        """Full-state checkpoint via :func:`lifelong.checkpoint.save_model` (one zip file,
        ``.zip`` appended when ``path`` has no suffix). ``exclude``/``include`` are accepted for
        Stable-Baselines3 compatibility but must be ``None``: a checkpoint is always complete."""
        if exclude or include:
            raise ValueError("exclude/include are not supported: a lifelong checkpoint always holds the full state")
        self.get_constructor_kwargs()  # refuse an unsavable configuration before touching the file
        return save_model(self, path)

    @classmethod
    def load(  # type: ignore[override]
        cls,
        path: Any,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> DistributionalPPO:
        """Load a checkpoint written by :meth:`save` (delegates to :func:`lifelong.checkpoint.load_model`)."""
        return load_model(
            cls, path, env=env, device=device, custom_objects=custom_objects, force_reset=force_reset, **kwargs
        )


register_classes(DistributionalPPO, DistributionalActorCriticPolicy, DistributionalMultiInputPolicy, DistributionalCnnPolicy)
