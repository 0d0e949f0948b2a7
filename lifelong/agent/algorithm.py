"""What :class:`~lifelong.agent.ppo.DistributionalPPO` and
:class:`~lifelong.agent.recurrent.DistributionalRecurrentPPO` share, as their base class: the
constructor's distributional arguments (critics, return normalisation, optimizer, scaler) and
their checks, the scaler and schedules, hyperparameters (``get/set_hyperparameters``), plasticity
diagnostics, and the checkpoint methods (``save``, ``load``, ``get_constructor_kwargs``).

A subclass supplies ``policy_aliases``, ``policy_base`` (the class every policy must subclass),
its own constructor signature and defaults (forwarded to :meth:`__init__` here), its rollout
buffer in ``_setup_model``, and ``train``. Files never name this base class: a checkpoint names
the concrete algorithm, so one algorithm cannot load the other's checkpoint.
"""
from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import obs_as_tensor

from lifelong.agent import arguments, hyperparameters, metrics
from lifelong.agent.arguments import _POLICY_OWNED_KWARGS, check_ppo_args, check_spaces
from lifelong.agent.collapse import make_collapse_reset
from lifelong.agent.critics import CriticSpec, critic_spec_attributes
from lifelong.agent.memory import check_fits
from lifelong.agent.normalization import ReturnNormalizer
from lifelong.agent.optimizer import (
    DEFAULT_VGS_KWARGS,
    check_optimizer_groups,
    policy_optimizer_kwargs,
    resolve_learning_rate,
    resolve_optimizer,
)
from lifelong.agent.schedules import as_schedule
from lifelong.checkpoint import load_model, save_model
from lifelong.checkpoint.codec import from_json
from lifelong.diagnostics import observations_from_buffer
from lifelong.vgs import VarianceGradientScaler

__all__ = ["DistributionalOnPolicyAlgorithm"]


@critic_spec_attributes
class DistributionalOnPolicyAlgorithm(OnPolicyAlgorithm):
    """Base class of the distributional PPO agents (see the module docstring). Its constructor
    takes every argument explicitly; the subclasses' constructors set the defaults."""

    #: every policy (alias target or class given) must subclass this
    policy_base: ClassVar[type]

    def __init__(
        self,
        policy: Any,
        env: GymEnv | str | None,
        *,
        learning_rate: float | Schedule,
        n_steps: int,
        batch_size: int,
        n_epochs: int,
        gamma: float,
        gae_lambda: float,
        clip_range: float | Schedule,
        clip_range_vf: float | Schedule | None,
        normalize_advantage: bool,
        ent_coef: float,
        vf_coef: float,
        max_grad_norm: float,
        use_sde: bool,
        sde_sample_freq: int,
        rollout_buffer_class: type[RolloutBuffer] | None,
        rollout_buffer_kwargs: dict[str, Any] | None,
        target_kl: float | None,
        stats_window_size: int,
        tensorboard_log: str | None,
        policy_kwargs: dict[str, Any] | None,
        verbose: int,
        seed: int | None,
        device: th.device | str,
        critic: str,
        n_quantiles: int,
        huber_kappa: float,
        quantile_mean_loss: str,
        n_atoms: int,
        v_min: float,
        v_max: float,
        categorical_projection: str,
        twin_critics: bool,
        value_aggregation: str,
        optimizer: str | type[th.optim.Optimizer],
        optimizer_kwargs: dict[str, Any] | None,
        optimizer_groups: dict[str, dict[str, Any]] | None,
        vgs: bool,
        vgs_kwargs: dict[str, Any] | None,
        normalize_returns: bool,
        normalize_returns_horizon: float | None,
        cvar_alpha: float | None,
        collapse_reset: bool,
        collapse_reset_kwargs: dict[str, Any] | None,
        diagnostics_every: int,
        _init_setup_model: bool,
    ):
        critic_spec = CriticSpec.build(
            critic=critic, n_quantiles=n_quantiles, huber_kappa=huber_kappa, n_atoms=n_atoms, v_min=v_min,
            v_max=v_max, categorical_projection=categorical_projection, value_aggregation=value_aggregation,
            cvar_alpha=cvar_alpha, normalize_returns=normalize_returns,
            normalize_returns_horizon=normalize_returns_horizon, quantile_mean_loss=quantile_mean_loss,
        )
        # ---- optimizer and learning rate
        optimizer_class = self._resolve_optimizer(optimizer)
        optimizer_kwargs, learning_rate = resolve_learning_rate(learning_rate, optimizer_kwargs)
        optimizer_groups = check_optimizer_groups(optimizer_groups)
        collapse = make_collapse_reset(collapse_reset, collapse_reset_kwargs)
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
                f"policy_kwargs must not contain {clash}: pass them as {type(self).__name__} arguments "
                "(optimizer=, optimizer_kwargs=, critic=, ...)"
            )
        if isinstance(policy, str):
            if policy not in self.policy_aliases:
                raise ValueError(f"policy={policy!r} is not supported: accepted values are {list(self.policy_aliases)} or a policy class")
        elif not (isinstance(policy, type) and issubclass(policy, self.policy_base)):
            raise ValueError(f"policy={policy!r} is invalid: expected {list(self.policy_aliases)} or a subclass of {self.policy_base.__name__}")
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
        if collapse is not None and collapse.window > self._stats_window_size:
            raise ValueError(
                f"collapse_reset_kwargs: window={collapse.window} is invalid: expected at most stats_window_size="
                f"{self._stats_window_size} (the episode buffer it reads)"
            )
        self.batch_size = int(batch_size)
        self.n_epochs = int(n_epochs)
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = bool(normalize_advantage)
        self.target_kl = None if target_kl is None else float(target_kl)

        # critic, n_quantiles, huber_kappa, n_atoms, v_min, v_max, categorical_projection,
        # value_aggregation, cvar_alpha, normalize_returns: read-only views of critic_spec.
        self.critic_spec = critic_spec
        self.twin_critics = bool(twin_critics)
        self.optimizer_class = optimizer_class
        self.optimizer_kwargs = optimizer_kwargs
        self.optimizer_groups = optimizer_groups
        self.use_vgs = bool(vgs)
        self.vgs_kwargs = {**DEFAULT_VGS_KWARGS, **(vgs_kwargs or {})}
        self.vgs = None  # the VarianceGradientScaler, built in _setup_model
        self.collapse_reset = collapse  # CollapseReset (its thresholds, its state) or None (collapse_reset=False)
        self.diagnostics_every = int(diagnostics_every)
        self._n_train_calls = 0
        self.phase_tracker = metrics.PhaseTracker()  # logging of non-stationary envs' phases

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
            optimizer_groups=self.optimizer_groups,
            n_critics=2 if self.twin_critics else 1,
            **self.critic_spec.as_kwargs(),
        )
        return kwargs

    def _setup_schedules_and_scaler(self) -> None:
        """The clip-range schedules and the scaler (the end of every subclass's ``_setup_model``)."""
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

    # ------------------------------------------------------------------ diagnostics
    @th.no_grad()
    def plasticity_diagnostics(self, n_obs: int = 256) -> dict[str, float]:
        """``plasticity/dormant_fraction`` (over the actor's and every critic's hidden units),
        ``plasticity/effective_rank`` (mean over the last hidden layer of the actor and of each
        critic) and ``plasticity/weight_norm`` (L2 norm of all policy parameters), on up to
        ``n_obs`` observations of the last rollout. Uses :mod:`lifelong.diagnostics`."""
        return metrics.plasticity_diagnostics(self, n_obs)

    # ------------------------------------------------------------------ the collapse reset
    def _reset_if_collapsed(self) -> bool:
        """The collapse test after a rollout, before its update (:mod:`lifelong.agent.collapse`):
        a fresh action head when the policy has collapsed; True when it reset (``train()`` then
        skips the update). Logs ``train/collapse_resets``."""
        if self.collapse_reset is None:
            return False
        reset = self.collapse_reset.after_rollout(self)
        self.logger.record("train/collapse_resets", len(self.collapse_reset.resets))
        if reset:  # no update, so no log_train: the phase's episode returns are logged here
            self.phase_tracker.log(self.logger.record)
        return reset

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: Any = None) -> None:
        super()._update_info_buffer(infos, dones)
        self.phase_tracker.update(infos, dones)

    def _diagnostic_inputs(self, n_obs: int) -> tuple[Any, th.Tensor]:
        """``(actor pass, critics' input)`` on up to ``n_obs`` evenly spaced observations of the
        last rollout: the actor pass is a call that runs the actor (its activations are
        measured), the critics' input what :class:`~lifelong.agent.critics.CriticEnsemble` reads."""
        policy = self.policy
        # the buffer's own layout, as train() feeds it (obs_to_tensor would refuse a Discrete
        # observation space's [n, 1] buffer entries)
        obs = obs_as_tensor(observations_from_buffer(self.rollout_buffer, n_obs), policy.device)
        return (lambda: policy.get_distribution(obs)), policy._vf_features(obs)

    # ------------------------------------------------------------------ rollout state (checkpoints)
    def rollout_state(self) -> dict[str, Any]:
        """What the rollout carries from step to step besides the last observation and episode
        starts (a recurrent agent: its LSTM states); part of the checkpoint. Nothing here."""
        return {}

    def set_rollout_state(self, tree: dict[str, Any], check_only: bool = False) -> None:
        """Restore :meth:`rollout_state` (``check_only``: only check that ``tree`` fits). Nothing here."""

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
    ) -> Any:
        """Load a checkpoint written by :meth:`save` (delegates to :func:`lifelong.checkpoint.load_model`)."""
        return load_model(
            cls, path, env=env, device=device, custom_objects=custom_objects, force_reset=force_reset, **kwargs
        )
