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

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv

from lifelong.agent import critics as C
from lifelong.agent import closed_form, gradients, metrics, rollout, update
from lifelong.agent.algorithm import DistributionalOnPolicyAlgorithm
from lifelong.agent.optimizer import DEFAULT_LEARNING_RATE
from lifelong.agent.policy import (
    DistributionalActorCriticPolicy,
    DistributionalCnnPolicy,
    DistributionalMultiInputPolicy,
)
from lifelong.checkpoint import register_classes

__all__ = ["DistributionalPPO"]

SelfDistributionalPPO = TypeVar("SelfDistributionalPPO", bound="DistributionalPPO")


class DistributionalPPO(DistributionalOnPolicyAlgorithm):
    """PPO (clip) with one or two distributional critics, by default twin quantile critics,
    trained with Adam (Stable-Baselines3's, ``eps=1e-5``); the UPGD family and the variance
    gradient scaler are one argument away.

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
    :param quantile_mean_loss: how a quantile critic's *mean* (the value of the advantages)
        learns. ``"squared_error"`` (default): the mean of the quantiles regresses on the return
        by squared error, Stable-Baselines3's value loss, and the quantile-Huber loss shapes only
        the quantiles' deviations from their mean
        (:func:`~lifelong.agent.critics.mean_anchored_quantile_loss`). ``"quantile_huber"``: the
        quantile-Huber loss alone moves every quantile (QR-DQN's loss), whose gradient is
        bounded whatever the error, so the mean tracks the value slower; on the benchmark suite
        it cost the agent its return (docs/agent.md). With ``critic="categorical"`` (whose
        cross-entropy on two-hot targets already learns an unbiased mean) only the default is
        accepted.
    :param n_atoms, v_min, v_max: categorical support, in *normalised* return units.
    :param categorical_projection: ``"two_hot"`` (default, mean-preserving) or ``"hl_gauss"``.
    :param twin_critics: two critics with independent parameters trained on the same targets.
    :param value_aggregation: ``"min"`` or ``"mean"`` of the critics' values: the value of the
        policy's advantages. The critics' own targets always bootstrap from the twins' mean
        value (:mod:`lifelong.agent.rollout`), so the aggregate's bias does not compound.
    :param optimizer: ``"adam"`` (default), ``"upgd"``, ``"adaptive_upgd"``, ``"upgdw"`` or an
        optimizer class; built once over all policy parameters. Adam is the default because
        it measured better: on rl-zoo's CartPole-v1 AdaptiveUPGD's gate cost return (10 seeds,
        docs/agent.md); the UPGD family is for non-stationary streams (docs/continual.md).
    :param optimizer_kwargs: extra optimizer arguments. An ``"lr"`` here is the learning rate;
        giving ``learning_rate`` as well is a ``ValueError``. ``"adam"`` defaults to ``eps=1e-5``
        (as Stable-Baselines3).
    :param optimizer_groups: param groups with their own optimizer arguments: a dict from a
        parameter-name pattern (an ``fnmatch`` glob over ``policy.named_parameters()``, e.g.
        ``"action_net.*"``) to arguments over ``optimizer_kwargs`` for the parameters it matches,
        for example a periodic reset of the output layers only
        (``{"action_net.*": {"reset_every": 1000}}``). Unmatched parameters form the first group.
        No ``"lr"`` (the learning rate is the agent's); a pattern matching nothing, a parameter
        matched twice or an argument the optimizer does not take is a ``ValueError``. Saved
        in checkpoints; ``None`` (default): one group, as Stable-Baselines3.
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
    :param collapse_reset: give the policy a fresh action head when it has collapsed
        (:mod:`lifelong.agent.collapse`): after a rollout, when the mean return of the last
        ``window`` episodes, having risen above the model's first such level, has fallen back to
        within ``rho`` of the way from it to its best since the last reset, and the rollout's
        mean ``-log pi(a|s)`` is below ``eta log n``; that rollout's update is then skipped.
        ``Discrete`` actions only (inert on the others). On by default: on
        the continual-RL streams it keeps the agent learning where PPO with Adam stops, and on the
        stationary suite it never fired (docs/continual.md). ``model.collapse_reset`` is the
        :class:`~lifelong.agent.collapse.CollapseReset` (``resets``: the timesteps at which it
        fired) or ``None``; logged as ``train/collapse_resets``; its state is saved in checkpoints.
    :param collapse_reset_kwargs: ``rho`` (0.25), ``eta`` (0.2), ``window`` (20 episodes, at most
        ``stats_window_size``).
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
    policy_base = DistributionalActorCriticPolicy
    policy: DistributionalActorCriticPolicy
    #: Compute each minibatch's gradients in closed form (:mod:`lifelong.agent.closed_form`)
    #: where the policy allows it; ``False`` (on the class or on a model) takes the autograd path,
    #: the reference. Equal to float rounding; not saved with the model (a speed switch, like
    #: torch's ``foreach``).
    closed_form_gradients: bool = True
    #: Run the closed-form minibatch step compiled by ``torch.compile``
    #: (:func:`lifelong.agent.closed_form.compiled_minibatch_step`): about half the eager step's
    #: time on the CPU, after a one-off compilation per process and minibatch shape (needs a C++
    #: compiler). Rounded differently from the eager step; resuming with the same setting is
    #: bit-identical. Off by default; not saved with the model (a speed switch). No effect where
    #: the closed form does not apply.
    compile_step: bool = False

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
        quantile_mean_loss: str = "squared_error",
        n_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        categorical_projection: str = "two_hot",
        twin_critics: bool = True,
        value_aggregation: str = "min",
        optimizer: str | type[th.optim.Optimizer] = "adam",
        optimizer_kwargs: dict[str, Any] | None = None,
        optimizer_groups: dict[str, dict[str, Any]] | None = None,
        vgs: bool = False,
        vgs_kwargs: dict[str, Any] | None = None,
        normalize_returns: bool = True,
        normalize_returns_horizon: float | None = None,
        cvar_alpha: float | None = None,
        collapse_reset: bool = True,
        collapse_reset_kwargs: dict[str, Any] | None = None,
        diagnostics_every: int = 10,
        _init_setup_model: bool = True,
    ):
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            critic=critic,
            n_quantiles=n_quantiles,
            huber_kappa=huber_kappa,
            quantile_mean_loss=quantile_mean_loss,
            n_atoms=n_atoms,
            v_min=v_min,
            v_max=v_max,
            categorical_projection=categorical_projection,
            twin_critics=twin_critics,
            value_aggregation=value_aggregation,
            optimizer=optimizer,
            optimizer_kwargs=optimizer_kwargs,
            optimizer_groups=optimizer_groups,
            vgs=vgs,
            vgs_kwargs=vgs_kwargs,
            normalize_returns=normalize_returns,
            normalize_returns_horizon=normalize_returns_horizon,
            cvar_alpha=cvar_alpha,
            collapse_reset=collapse_reset,
            collapse_reset_kwargs=collapse_reset_kwargs,
            diagnostics_every=diagnostics_every,
            _init_setup_model=_init_setup_model,
        )

    # ------------------------------------------------------------------ setup
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
        self._setup_schedules_and_scaler()
        # the critics' predictions on the rollout in the buffer, set by each rollout (train()'s
        # statistics read them instead of running the critics over the rollout again)
        self.rollout_critic_summary: rollout.CriticSummary | None = None

    # ------------------------------------------------------------------ rollout and training
    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """Stable-Baselines3's rollout semantics with less work per step; the policy's advantages
        bootstrap from the aggregate value, the critics' targets from the twins' mean
        (:func:`lifelong.agent.rollout.collect_rollouts`)."""
        return rollout.collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps)

    def train(self) -> None:
        """One PPO update on the rollout buffer (``n_epochs`` passes of minibatches), after the
        collapse test (:mod:`lifelong.agent.collapse`; no update when it resets the action head)."""
        if self._reset_if_collapsed():
            return  # a fresh action head: the next rollout's data, not the collapsed policy's
        policy = self.policy
        normalizer = policy.return_normalizer
        self._update_learning_rate(policy.optimizer)
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

        def rows(x: Any, order: th.Tensor) -> Any:
            # x[order] for a 1-D index, by index_select: the same rows at about half the cost
            if isinstance(x, dict):
                return {k: v.index_select(0, order) for k, v in x.items()}
            return x.index_select(0, order)

        # The critics' rollout predictions (pre-update): the rollout's own pass when it filled this
        # buffer (taken once: a second train() on the same buffer recomputes), else a pass now.
        summary, self.rollout_critic_summary = self.rollout_critic_summary, None
        if summary is not None and summary.values.shape[1] != n_samples:
            summary = None
        old_outputs = None
        if clip_range_vf is not None or summary is None:
            with th.no_grad():
                # the parameters have not changed since the rollout and the policy is still in
                # evaluation mode, as it was there; chunked for big observations
                chunk = 8192
                old_outputs = th.cat(
                    [policy.critic_outputs(take(obs_all, slice(i, i + chunk))) for i in range(0, n_samples, chunk)], dim=1
                )  # [n_critics, N, K]
        if summary is not None:
            # rows to the order of the buffer's own arrays after get() (env-major, Stable-Baselines3's
            # swap_and_flatten; get() yields them permuted), paired with its returns
            n_critics = summary.values.shape[0]
            old_values = summary.values.reshape(n_critics, -1, self.n_envs).transpose(1, 2).reshape(n_critics, -1)
            spread = summary.spread
            value_returns = self.rollout_buffer.returns.reshape(-1)
        else:
            assert old_outputs is not None
            with th.no_grad():
                old_values = normalizer.denormalize(policy.expected_outputs(old_outputs))
                spread = normalizer.scale(policy.spread_outputs(old_outputs)).mean()
            value_returns = returns.cpu().numpy()
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
        fast = closed_form.plan(self) if self.closed_form_gradients else None
        # the eager step writes its gradients into the parameters' .grad tensors; compiled, it
        # returns new ones (apply_gradients sets them)
        gradient_out = closed_form.gradient_buffers(fast) if fast is not None and not self.compile_step else None
        # With the gradients in the same tensors at every step and nothing else touching the
        # optimizer during train(), the fused-Adam step's checks run once, after the first step
        # (which creates the optimizer state on a new model): gradients.fused_adam_calls
        fused_adam: list[Any] | None = None
        fused_adam_checked = gradient_out is None
        policy.set_training_mode(True)

        stats: list[th.Tensor] = []
        epoch_kls: list[th.Tensor] = []
        last_loss = th.zeros(())
        continue_training = True
        batch_size = self.batch_size
        for epoch in range(self.n_epochs):
            epoch_kls = []
            perm = th.from_numpy(np.random.permutation(n_samples)).to(returns.device)
            # The epoch's samples in minibatch order, gathered once: a minibatch is then a slice
            # (a view), not five index operations per minibatch. The same values in the same order.
            obs_e, actions_e = rows(obs_all, perm), rows(actions_all, perm)
            old_log_prob_e, advantages_e, targets_e = rows(data.old_log_prob, perm), rows(data.advantages, perm), rows(targets_all, perm)
            target_probs_e = None if target_probs_all is None else rows(target_probs_all, perm)
            old_outputs_e = old_outputs[:, perm] if need_old else None
            old_means_e = None if old_means_all is None else old_means_all[:, perm]
            for start in range(0, n_samples, batch_size):
                mb = slice(start, start + batch_size)
                if fast is not None:
                    if batch_size >= n_samples:  # one minibatch per epoch (rl-zoo's CartPole): the epoch's tensors
                        batch = (obs_e, actions_e, old_log_prob_e, advantages_e, targets_e)
                    else:
                        batch = (take(obs_e, mb), actions_e[mb], old_log_prob_e[mb], advantages_e[mb], targets_e[mb])
                    if self.compile_step:
                        fast_step = closed_form.compiled_minibatch_step(self, fast, *batch, clip_range)
                    else:
                        fast_step = closed_form.minibatch_step(self, fast, *batch, clip_range, out=gradient_out)
                    step = fast_step.loss
                else:
                    log_prob, entropy, outputs = policy.evaluate_actions_distributional(take(obs_e, mb), actions_e[mb])
                    step = update.minibatch_loss(
                        self,
                        log_prob,
                        entropy,
                        outputs,
                        old_log_prob_e[mb],
                        advantages_e[mb],
                        targets_e[mb],
                        None if target_probs_e is None else target_probs_e[mb],
                        None if old_outputs_e is None else old_outputs_e[:, mb],
                        None if old_means_e is None else old_means_e[:, mb],
                        clip_range,
                        clip_range_vf,
                    )
                epoch_kls.append(step.approx_kl)
                if update.stop_early(self, step.approx_kl, epoch):
                    continue_training = False
                    break
                stats.append(step.stats)
                last_loss = None if step.loss is None else step.loss.detach()
                if gradient_out is not None:  # the gradients are in .grad already (out=)
                    update.optimizer_step(self, fused_adam)
                    if not fused_adam_checked:
                        fused_adam, fused_adam_checked = gradients.fused_adam_calls(policy.optimizer), True
                elif fast is not None:
                    closed_form.apply_gradients(self, fast_step)
                else:
                    update.gradient_step(self, step.loss)
            self._n_updates += 1
            if not continue_training:
                break
        self._n_train_calls += 1
        if last_loss is None:  # the eager closed-form step leaves the total to its statistics
            last_loss = update.loss_from_stats(self, stats[-1])
        critic_ev = [explained_variance(v, value_returns) for v in old_values.cpu().numpy()]
        metrics.log_train(self, stats, epoch_kls, last_loss, clip_range, clip_range_vf, critic_ev, spread)


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



register_classes(DistributionalPPO, DistributionalActorCriticPolicy, DistributionalMultiInputPolicy, DistributionalCnnPolicy)
