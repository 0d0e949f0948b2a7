"""DistributionalRecurrentPPO: the distributional agent with LSTM policies, on sb3-contrib's
recurrent machinery.

Swap ``from sb3_contrib import RecurrentPPO`` for ``from lifelong import
DistributionalRecurrentPPO``: the constructor takes ``RecurrentPPO``'s arguments with its
defaults (``n_steps=128``, ``batch_size=128``, ...), the policies are ``"MlpLstmPolicy"``,
``"CnnLstmPolicy"`` and ``"MultiInputLstmPolicy"`` (``policy_kwargs`` take ``lstm_hidden_size``,
``n_lstm_layers``, ``shared_lstm``, ``enable_critic_lstm``, ``lstm_kwargs``), and
``model.predict(obs, state, episode_start, deterministic)`` returns ``(actions, state)`` as
sb3-contrib's. The distributional arguments, their defaults and meaning are
:class:`~lifelong.agent.ppo.DistributionalPPO`'s, and so is everything they drive: the critics
and their losses, return normalisation, optimizer and scaler, ``set_hyperparameters``, logging
and checkpoints (:mod:`lifelong.agent.algorithm`, :mod:`lifelong.agent.update`).

What is recurrent: the rollout carries the LSTM states of every env (``_last_lstm_states``, an
``RNNStates`` of ``pi`` and ``vf`` ``(hidden, cell)`` pairs ``[n_lstm_layers, n_envs,
lstm_hidden_size]``) from step to step and from rollout to rollout, resetting an env's states
where its episode starts; the update runs on sequences padded to a common length
(:mod:`lifelong.agent.sequences`), every mean taken over the valid samples only. The LSTM states
are part of the checkpoint (exact resume is bit-identical) and travel with a PBT exploit.
"""
from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv

from lifelong.agent import critics as C
from lifelong.agent import metrics, update
from lifelong.agent.algorithm import DistributionalOnPolicyAlgorithm
from lifelong.agent.lstm_policy import (
    DistributionalCnnLstmPolicy,
    DistributionalLstmPolicy,
    DistributionalMultiInputLstmPolicy,
)
from lifelong.agent.optimizer import DEFAULT_LEARNING_RATE
from lifelong.agent.sequences import sequence_buffer_class
from lifelong.agent.rollout import gae, observation_tensor
from lifelong.checkpoint import register_classes

__all__ = ["DistributionalRecurrentPPO"]

SelfDistributionalRecurrentPPO = TypeVar("SelfDistributionalRecurrentPPO", bound="DistributionalRecurrentPPO")


class DistributionalRecurrentPPO(DistributionalOnPolicyAlgorithm):
    """Recurrent PPO (clip) with one or two distributional critics (see the module docstring).

    ``RecurrentPPO``'s arguments and defaults: ``learning_rate=3e-4``, ``n_steps=128``,
    ``batch_size=128``, ``n_epochs=10``, ``gamma=0.99``, ``gae_lambda=0.95``, ``clip_range=0.2``,
    ``clip_range_vf=None``, ``normalize_advantage=True``, ``ent_coef=0.0``, ``vf_coef=0.5``,
    ``max_grad_norm=0.5``, ``use_sde=False``, ``sde_sample_freq=-1``, ``target_kl=None``,
    ``stats_window_size=100``, ``tensorboard_log``, ``policy_kwargs``, ``verbose``, ``seed``,
    ``device``. The distributional arguments (``critic``, ``n_quantiles``, ``huber_kappa``,
    ``quantile_mean_loss``, ``n_atoms``, ``v_min``, ``v_max``, ``categorical_projection``, ``twin_critics``,
    ``value_aggregation``, ``optimizer``, ``optimizer_kwargs``,
    ``optimizer_groups``, ``vgs``, ``vgs_kwargs``,
    ``normalize_returns``, ``cvar_alpha``, ``collapse_reset_kwargs``, ``diagnostics_every``) are
    :class:`~lifelong.agent.ppo.DistributionalPPO`'s, with its defaults, except ``collapse_reset``
    (:mod:`lifelong.agent.collapse`), off here: its benefit was measured on the feed-forward agent
    only (docs/continual.md).

    Unknown policy aliases, a policy class that is not a
    :class:`~lifelong.agent.lstm_policy.DistributionalLstmPolicy`, ``lstm_hidden_size`` or
    ``n_lstm_layers`` below 1, and ``shared_lstm=True`` with ``enable_critic_lstm=True`` are a
    ``ValueError`` naming the value.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpLstmPolicy": DistributionalLstmPolicy,
        "CnnLstmPolicy": DistributionalCnnLstmPolicy,
        "MultiInputLstmPolicy": DistributionalMultiInputLstmPolicy,
    }
    policy_base = DistributionalLstmPolicy
    policy: DistributionalLstmPolicy

    def __init__(
        self,
        policy: str | type[DistributionalLstmPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = DEFAULT_LEARNING_RATE,
        n_steps: int = 128,
        batch_size: int = 128,
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
        collapse_reset: bool = False,
        collapse_reset_kwargs: dict[str, Any] | None = None,
        diagnostics_every: int = 10,
        _init_setup_model: bool = True,
    ):
        self._last_lstm_states: RNNStates | None = None  # built in _setup_model
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
            rollout_buffer_class=None,
            rollout_buffer_kwargs=None,
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
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, use_sde=self.use_sde, **self._policy_build_kwargs()
        )
        self.policy = self.policy.to(self.device)
        self._maybe_recommend_cpu("DistributionalLstmPolicy")
        policy = self.policy
        self._last_lstm_states = policy.initial_state(self.n_envs)
        self.rollout_buffer = sequence_buffer_class(isinstance(self.observation_space, spaces.Dict))(
            self.n_steps,
            self.observation_space,
            self.action_space,
            (self.n_steps, policy.n_lstm_layers, self.n_envs, policy.lstm_output_dim),
            self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            critic_output_shape=(policy.n_critics, policy.n_outputs),
        )
        self._setup_schedules_and_scaler()

    # ------------------------------------------------------------------ rollout
    def collect_rollouts(  # type: ignore[override]
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: Any, n_rollout_steps: int
    ) -> bool:
        """Fill the buffer with ``n_rollout_steps`` steps of every env, carrying the LSTM states.

        As sb3-contrib's ``RecurrentPPO.collect_rollouts`` (same env, RNG and callback calls),
        except for the values, which follow the feed-forward agent's rule
        (:mod:`lifelong.agent.rollout`, ``policy.bootstrap_values``): the policy's advantages are
        GAE over the aggregate value (``min``/``mean``/CVaR), the critics' targets TD(lambda)
        returns over the twins' mean value, the time-limit bootstrap split the same way. The
        rollout also keeps each critic's raw outputs (the old predictions for value clipping)."""
        assert self._last_obs is not None, "No previous observation was provided"
        policy = self.policy
        policy.set_training_mode(False)
        n_envs = env.num_envs
        rollout_buffer.reset()
        mean_values = np.zeros((n_rollout_steps, n_envs), dtype=np.float32)
        bootstrap_mean = np.zeros((n_rollout_steps, n_envs), dtype=np.float32)
        bootstrap_aggregate = np.zeros((n_rollout_steps, n_envs), dtype=np.float32)
        if self.use_sde:
            policy.reset_noise(n_envs)
        callback.on_rollout_start()
        lstm_states = self._last_lstm_states
        is_box = isinstance(self.action_space, spaces.Box)
        is_discrete = isinstance(self.action_space, spaces.Discrete)
        n_steps = 0
        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                policy.reset_noise(n_envs)
            with th.no_grad():
                obs_tensor = observation_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                episode_starts = th.tensor(self._last_episode_starts, dtype=th.float32, device=self.device)
                actions, log_probs, outputs, lstm_states = policy.rollout_step(obs_tensor, lstm_states, episode_starts)
                values, means = policy.bootstrap_values(outputs)
            actions = actions.cpu().numpy()
            clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high) if is_box else actions
            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += n_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            if is_discrete:
                actions = actions.reshape(-1, 1)
            # An episode cut by a time limit is bootstrapped from the value of its last observation.
            for idx, done in enumerate(dones):
                if done and infos[idx].get("terminal_observation") is not None and infos[idx].get("TimeLimit.truncated", False):
                    terminal_obs = policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    vf_state = (
                        lstm_states.vf[0][:, idx : idx + 1, :].contiguous(),
                        lstm_states.vf[1][:, idx : idx + 1, :].contiguous(),
                    )
                    with th.no_grad():
                        terminal = policy.critic_outputs(terminal_obs, vf_state, th.zeros(1, device=self.device))
                        terminal_value, terminal_target = policy.bootstrap_values(terminal)
                    bootstrap_aggregate[n_steps, idx] = self.gamma * float(terminal_value[0])
                    bootstrap_mean[n_steps, idx] = self.gamma * float(terminal_target[0])
            mean_values[n_steps] = means.cpu().numpy()
            rollout_buffer.add(
                self._last_obs,
                actions,
                rewards,
                self._last_episode_starts,
                values.unsqueeze(-1),
                log_probs,
                lstm_states=self._last_lstm_states,
                critic_outputs=outputs,
            )
            n_steps += 1
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones
            self._last_lstm_states = lstm_states

        with th.no_grad():
            episode_starts = th.tensor(dones, dtype=th.float32, device=self.device)
            last = policy.critic_outputs(observation_tensor(new_obs, self.device), lstm_states.vf, episode_starts)  # type: ignore[arg-type]
            last_aggregate, last_mean = policy.bootstrap_values(last)
        # advantages: GAE over the aggregate (Stable-Baselines3's own computation); the critics'
        # targets: TD(lambda) returns over the twins' mean (lifelong.agent.rollout.gae, plus the values)
        rewards = rollout_buffer.rewards
        rollout_buffer.rewards = rewards + bootstrap_aggregate
        rollout_buffer.compute_returns_and_advantage(last_values=last_aggregate, dones=dones)
        rollout_buffer.rewards = rewards
        if not policy.targets_use_aggregate:
            rollout_buffer.returns = gae(
                rewards + bootstrap_mean, mean_values, rollout_buffer.episode_starts, last_mean.cpu().numpy(), dones,
                self.gamma, self.gae_lambda,
            ) + mean_values
        callback.on_rollout_end()
        return True

    # ------------------------------------------------------------------ training
    def train(self) -> None:
        """One PPO update on the rollout buffer: ``n_epochs`` passes over padded sequences, after
        the collapse test (:mod:`lifelong.agent.collapse`) when it is on (no update when it resets)."""
        if self._reset_if_collapsed():
            return  # a fresh action head: the next rollout's data, not the collapsed policy's
        policy = self.policy
        normalizer = policy.return_normalizer
        self._update_learning_rate(policy.optimizer)
        progress = self._current_progress_remaining
        clip_range = float(self.clip_range(progress))  # type: ignore[operator]
        clip_range_vf = None if self.clip_range_vf is None else float(self.clip_range_vf(progress))  # type: ignore[operator]
        buffer = self.rollout_buffer
        returns_np = buffer.returns.flatten()
        with th.no_grad():
            # The critics' rollout predictions, in the rollout's (pre-update) normaliser units.
            old_outputs_all = buffer.rollout_critic_outputs()  # type: ignore[attr-defined]
            old_values = normalizer.denormalize(policy.expected_outputs(old_outputs_all))
            spread = normalizer.scale(policy.spread_outputs(old_outputs_all)).mean()
            returns_flat = th.as_tensor(returns_np, device=self.device)
        normalizer.update(returns_flat)
        categorical = self.critic == "categorical"
        policy.set_training_mode(True)

        stats: list[th.Tensor] = []
        epoch_kls: list[th.Tensor] = []
        last_loss = th.zeros(())
        continue_training = True
        for epoch in range(self.n_epochs):
            epoch_kls = []
            for data, old_outputs in buffer.get(self.batch_size):
                actions = data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = actions.long().flatten()
                mask = data.mask > 1e-8
                log_prob, entropy, outputs = policy.evaluate_actions_distributional(
                    data.observations, actions, data.lstm_states, data.episode_starts
                )
                with th.no_grad():
                    targets = normalizer.normalize(data.returns)
                    target_probs = (
                        C.project_categorical(targets, self.v_min, self.v_max, self.n_atoms, self.categorical_projection)
                        if categorical
                        else None
                    )
                    old_means = policy.expected_outputs(old_outputs) if categorical and clip_range_vf is not None else None
                step = update.minibatch_loss(
                    self,
                    log_prob,
                    entropy,
                    outputs,
                    data.old_log_prob,
                    data.advantages,
                    targets,
                    target_probs,
                    old_outputs if clip_range_vf is not None and not categorical else None,
                    old_means,
                    clip_range,
                    clip_range_vf,
                    mask,
                )
                epoch_kls.append(step.approx_kl)
                if update.stop_early(self, step.approx_kl, epoch):
                    continue_training = False
                    break
                stats.append(step.stats)
                last_loss = step.loss.detach()
                update.gradient_step(self, step.loss)
            self._n_updates += 1
            if not continue_training:
                break
        self._n_train_calls += 1
        critic_ev = [explained_variance(v, returns_np) for v in old_values.cpu().numpy()]
        metrics.log_train(self, stats, epoch_kls, last_loss, clip_range, clip_range_vf, critic_ev, spread)

    def learn(
        self: SelfDistributionalRecurrentPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "DistributionalRecurrentPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDistributionalRecurrentPPO:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    # ------------------------------------------------------------------ diagnostics
    def _diagnostic_inputs(self, n_obs: int) -> tuple[Any, th.Tensor]:
        """Up to ``n_obs`` evenly spaced samples of the last rollout, each from its stored LSTM
        states: ``(actor pass, critics' input)`` for :func:`lifelong.agent.metrics.plasticity_diagnostics`."""
        buffer = self.rollout_buffer
        policy = self.policy
        flat = bool(buffer.generator_ready)

        def rows(a: np.ndarray) -> np.ndarray:
            return a if flat else buffer.swap_and_flatten(a)

        n = buffer.buffer_size * buffer.n_envs
        idx = np.unique(np.linspace(0, n - 1, num=min(n_obs, n)).round().astype(np.int64))
        obs_np = {k: rows(v)[idx] for k, v in buffer.observations.items()} if isinstance(buffer.observations, dict) else rows(buffer.observations)[idx]
        obs, _ = policy.obs_to_tensor(obs_np)
        # stored states are [n_steps, n_layers, n_envs, H] before get(), [n, n_layers, H] after
        def states(a: np.ndarray) -> th.Tensor:
            per_sample = a if flat else buffer.swap_and_flatten(a.swapaxes(1, 2))
            return th.as_tensor(per_sample[idx].swapaxes(0, 1), device=self.device).contiguous()

        starts = th.as_tensor(rows(buffer.episode_starts)[idx], dtype=th.float32, device=self.device)
        pi_states = (states(buffer.hidden_states_pi), states(buffer.cell_states_pi))
        vf_states = (states(buffer.hidden_states_vf), states(buffer.cell_states_vf))
        return (lambda: policy.get_distribution(obs, pi_states, starts)), policy._critic_latent(obs, vf_states, starts)

    # ------------------------------------------------------------------ checkpoint
    def rollout_state(self) -> dict[str, Any]:
        """What the rollout carries besides the last observation: the LSTM states."""
        states = self._last_lstm_states
        assert states is not None
        return {"lstm_states": {"pi": list(states.pi), "vf": list(states.vf)}}

    def set_rollout_state(self, tree: dict[str, Any], check_only: bool = False) -> None:
        """Restore :meth:`rollout_state` (``ValueError`` naming the problem, nothing changed,
        when ``tree`` does not fit this model's LSTMs and ``n_envs``)."""
        live = self.rollout_state()["lstm_states"]
        saved = tree.get("lstm_states") if isinstance(tree, dict) else None
        ok = isinstance(saved, dict) and set(saved) == {"pi", "vf"} and all(
            isinstance(saved[k], (list, tuple))
            and len(saved[k]) == 2
            and all(isinstance(t, th.Tensor) and t.shape == ref.shape for t, ref in zip(saved[k], live[k]))
            for k in ("pi", "vf")
        )
        if not ok:
            shape = tuple(live["pi"][0].shape)
            raise ValueError(
                f"the checkpoint's LSTM states do not fit this model: expected 'pi' and 'vf' (hidden, cell) pairs of "
                f"shape {shape} (n_lstm_layers, n_envs, lstm_hidden_size)"
            )
        if check_only:
            return
        self._last_lstm_states = RNNStates(
            tuple(t.to(self.device).clone() for t in saved["pi"]), tuple(t.to(self.device).clone() for t in saved["vf"])
        )


register_classes(
    DistributionalRecurrentPPO, DistributionalLstmPolicy, DistributionalCnnLstmPolicy, DistributionalMultiInputLstmPolicy
)
