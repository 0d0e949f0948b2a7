"""Recurrent (LSTM) actor-critic policy with one or two distributional critics.

sb3-contrib's ``RecurrentActorCriticPolicy`` with its value head replaced by the distributional
critics of :class:`~lifelong.agent.policy.DistributionalActorCriticPolicy` (which this class
extends: critic heads, return normaliser, aggregation, CVaR, the one optimizer are the same code).

Data flow, for observations ``o`` and LSTM states ``(h, c)`` (reset to zero where an episode
starts)::

    features = extractor(o)
    latent_pi, (h_pi, c_pi) = lstm_actor(features, (h_pi, c_pi))      -> mlp_extractor.pi -> action
    latent_vf = lstm_critic(features)             (enable_critic_lstm=True, the default)
              = latent_pi.detach()                (shared_lstm=True: the critics read the actor's
                                                   LSTM but do not train it)
              = critic_projection(features)       (neither: a linear layer, no memory)
    critic outputs [n_critics, B, K] = critics(latent_vf)

``lstm_hidden_size``, ``n_lstm_layers``, ``shared_lstm``, ``enable_critic_lstm`` and
``lstm_kwargs`` mean what they mean in sb3-contrib, and so do the LSTM states
(:class:`sb3_contrib.common.recurrent.type_aliases.RNNStates`, ``pi`` and ``vf`` pairs of
``[n_lstm_layers, n_seq, lstm_hidden_size]`` tensors), ``get_distribution`` and
``predict(obs, state, episode_start, deterministic)``, which are sb3-contrib's own functions.
``_process_sequence`` (sequences in a padded minibatch) is sb3-contrib's with one more fast path,
:func:`process_sequence`.
"""
from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    CombinedExtractor,
    MlpExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from lifelong.agent.policy import DistributionalActorCriticPolicy

__all__ = [
    "DistributionalLstmPolicy", "DistributionalCnnLstmPolicy", "DistributionalMultiInputLstmPolicy", "process_sequence",
]


def process_sequence(
    features: th.Tensor, lstm_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor, lstm: nn.LSTM
) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
    """The LSTM over ``n_seq`` sequences stored one after the other in ``features`` (``[n_seq * T,
    input]``), the state reset to zero where an episode starts: sb3-contrib's
    ``RecurrentActorCriticPolicy._process_sequence``, computing the same
    ``h_t, c_t = LSTM(x_t, (1 - start_t) * (h_{t-1}, c_{t-1}))`` with one LSTM call per sequence
    batch instead of one per time step whenever no episode starts after a sequence's first step.

    That is every training minibatch: sb3-contrib's ``RecurrentRolloutBuffer`` cuts sequences at
    episode starts, so a start is only ever a sequence's first step (padding has none). sb3-contrib
    only takes its one-call path when no sequence starts an episode at all, and otherwise loops
    over the time steps (measured: 20 086 LSTM calls and 1.6 s of a 7.2 s ``learn(4096)`` on
    CartPoleNoVel-v1, plus their backward). With one step (the rollout) the computation is the
    loop's single iteration, op for op. Over whole sequences the LSTM computes the same gates, but
    torch may batch the input projection over the time steps, so results can differ from the loop
    in the last bits; the run is as deterministic as before (exact resume stays bit-identical).
    """
    n_seq = lstm_states[0].shape[1]
    starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)  # [T, n_seq]
    if starts.shape[0] > 1 and bool(th.any(starts[1:] != 0.0)):
        return RecurrentActorCriticPolicy._process_sequence(features, lstm_states, episode_starts, lstm)
    sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)  # [T, n_seq, input]
    keep = (1.0 - starts[0]).view(1, n_seq, 1)
    output, states = lstm(sequence, (keep * lstm_states[0], keep * lstm_states[1]))
    return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states


def _check_lstm_args(
    lstm_hidden_size: Any, n_lstm_layers: Any, shared_lstm: Any, enable_critic_lstm: Any, share_features_extractor: Any
) -> None:
    for name, value in (("lstm_hidden_size", lstm_hidden_size), ("n_lstm_layers", n_lstm_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: expected an integer >= 1")
    if shared_lstm and enable_critic_lstm:
        raise ValueError(
            f"shared_lstm={shared_lstm!r} together with enable_critic_lstm={enable_critic_lstm!r} is invalid: the "
            "critics either share the actor's LSTM (shared_lstm=True, enable_critic_lstm=False), have their own "
            "(enable_critic_lstm=True, the default) or have none (both False)"
        )
    if shared_lstm and not share_features_extractor:
        raise ValueError("shared_lstm=True needs share_features_extractor=True: an LSTM cannot be shared otherwise")


class DistributionalLstmPolicy(DistributionalActorCriticPolicy):
    """LSTM actor, distributional critics (see the module docstring). Takes the arguments of
    :class:`~lifelong.agent.policy.DistributionalActorCriticPolicy` plus sb3-contrib's
    ``lstm_hidden_size=256``, ``n_lstm_layers=1``, ``shared_lstm=False``,
    ``enable_critic_lstm=True`` and ``lstm_kwargs=None``; ``net_arch`` describes the layers
    after the LSTM (the actor's ``pi`` and each critic's ``vf`` trunk)."""

    # sb3-contrib's own functions: action distribution and predict with states; its sequence
    # processing with one more fast path
    _process_sequence = staticmethod(process_sequence)
    get_distribution = RecurrentActorCriticPolicy.get_distribution
    _predict = RecurrentActorCriticPolicy._predict
    predict = RecurrentActorCriticPolicy.predict

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        lstm_hidden_size: int = 256,
        n_lstm_layers: int = 1,
        shared_lstm: bool = False,
        enable_critic_lstm: bool = True,
        lstm_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        _check_lstm_args(
            lstm_hidden_size, n_lstm_layers, shared_lstm, enable_critic_lstm, kwargs.get("share_features_extractor", True)
        )
        # needed by _build, which runs inside super().__init__
        self.lstm_output_dim = int(lstm_hidden_size)
        self.n_lstm_layers = int(n_lstm_layers)
        self.shared_lstm = bool(shared_lstm)
        self.enable_critic_lstm = bool(enable_critic_lstm)
        self.lstm_kwargs = dict(lstm_kwargs or {})
        # (n_lstm_layers, batch, hidden): predict() initialises missing states with zeros of this shape
        self.lstm_hidden_state_shape = (self.n_lstm_layers, 1, self.lstm_output_dim)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    # ------------------------------------------------------------------ construction
    @property
    def critic_input_dim(self) -> int:
        return self.lstm_output_dim

    def _build_mlp_extractor(self) -> None:
        # Actor layers after the LSTM; the critics' trunks live in the CriticEnsemble.
        self.mlp_extractor = MlpExtractor(
            self.lstm_output_dim, net_arch=dict(pi=self._pi_arch, vf=[]), activation_fn=self.activation_fn, device=self.device
        )

    def _build(self, lr_schedule: Schedule) -> None:
        # The LSTMs first, so that the one optimizer (built at the end of the parent's _build)
        # covers them. They keep PyTorch's initialisation, as in sb3-contrib.
        self.lstm_actor = nn.LSTM(self.features_dim, self.lstm_output_dim, num_layers=self.n_lstm_layers, **self.lstm_kwargs)
        self.lstm_critic = (
            nn.LSTM(self.features_dim, self.lstm_output_dim, num_layers=self.n_lstm_layers, **self.lstm_kwargs)
            if self.enable_critic_lstm
            else None
        )
        self.critic_projection = (
            nn.Linear(self.features_dim, self.lstm_output_dim) if not (self.shared_lstm or self.enable_critic_lstm) else None
        )
        super()._build(lr_schedule)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            lstm_hidden_size=self.lstm_output_dim,
            n_lstm_layers=self.n_lstm_layers,
            shared_lstm=self.shared_lstm,
            enable_critic_lstm=self.enable_critic_lstm,
            lstm_kwargs=self.lstm_kwargs,
        )
        return data

    def initial_state(self, n_envs: int) -> RNNStates:
        """Zero LSTM states for ``n_envs`` sequences (actor and critic)."""
        shape = (self.n_lstm_layers, n_envs, self.lstm_output_dim)
        device = self.device
        return RNNStates(
            (th.zeros(shape, device=device), th.zeros(shape, device=device)),
            (th.zeros(shape, device=device), th.zeros(shape, device=device)),
        )

    # ------------------------------------------------------------------ latents
    def _latents(
        self, obs: PyTorchObs, lstm_states: RNNStates, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, RNNStates]:
        """``(actor latent after the pi layers, critics' input, new LSTM states)``."""
        features = self.extract_features(obs)
        pi_features, vf_features = (features, features) if self.share_features_extractor else features
        latent_pi, states_pi = self._process_sequence(pi_features, lstm_states.pi, episode_starts, self.lstm_actor)
        if self.lstm_critic is not None:
            latent_vf, states_vf = self._process_sequence(vf_features, lstm_states.vf, episode_starts, self.lstm_critic)
        elif self.shared_lstm:
            # the critics read the actor's LSTM without training it
            latent_vf = latent_pi.detach()
            states_vf = (states_pi[0].detach(), states_pi[1].detach())
        else:
            latent_vf = self.critic_projection(vf_features)
            states_vf = states_pi
        return self.mlp_extractor.forward_actor(latent_pi), latent_vf, RNNStates(states_pi, states_vf)

    def _critic_latent(
        self, obs: PyTorchObs, vf_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor
    ) -> th.Tensor:
        """The critics' input from the critic's LSTM states alone (as sb3-contrib's predict_values)."""
        features = super(ActorCriticPolicy, self).extract_features(obs, self.vf_features_extractor)
        if self.lstm_critic is not None:
            return self._process_sequence(features, vf_states, episode_starts, self.lstm_critic)[0]
        if self.shared_lstm:
            return self._process_sequence(features, vf_states, episode_starts, self.lstm_actor)[0].detach()
        return self.critic_projection(features)

    # ------------------------------------------------------------------ values
    def critic_outputs(  # type: ignore[override]
        self, obs: PyTorchObs, vf_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor
    ) -> th.Tensor:
        """Raw critic head outputs ``[n_critics, batch, K]`` (normalised units)."""
        return self.critics(self._critic_latent(obs, vf_states, episode_starts))

    def critic_values(  # type: ignore[override]
        self, obs: PyTorchObs, vf_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor
    ) -> th.Tensor:
        """Each critic's expected value ``[n_critics, batch]`` in return units."""
        outputs = self.critic_outputs(obs, vf_states, episode_starts)
        return self.return_normalizer.denormalize(self.expected_outputs(outputs))

    def predict_values(  # type: ignore[override]
        self, obs: PyTorchObs, lstm_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor
    ) -> th.Tensor:
        """Aggregated value ``[batch, 1]`` in return units (sb3-contrib's signature: the critic's states)."""
        outputs = self.critic_outputs(obs, lstm_states, episode_starts)
        return self.return_normalizer.denormalize(self.aggregate_outputs(outputs)).unsqueeze(-1)

    # ------------------------------------------------------------------ rollout and loss
    def rollout_step(
        self, obs: PyTorchObs, lstm_states: RNNStates, episode_starts: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """One step of every env: ``(actions, log_prob, critic outputs [n_critics, B, K], new states)``."""
        latent_pi, latent_vf, states = self._latents(obs, lstm_states, episode_starts)
        actions, log_prob = self._sample(latent_pi, deterministic)
        actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        return actions, log_prob, self.critics(latent_vf), states

    def forward(  # type: ignore[override]
        self, obs: PyTorchObs, lstm_states: RNNStates, episode_starts: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """sb3-contrib's contract: ``(actions, aggregated values [B, 1] in return units, log_prob, states)``."""
        actions, log_prob, outputs, states = self.rollout_step(obs, lstm_states, episode_starts, deterministic)
        values = self.return_normalizer.denormalize(self.aggregate_outputs(outputs)).unsqueeze(-1)
        return actions, values, log_prob, states

    def evaluate_actions_distributional(  # type: ignore[override]
        self, obs: PyTorchObs, actions: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor | None, th.Tensor]:
        """One forward pass over padded sequences for the loss: ``(log_prob [B], entropy [B] or
        None, critic outputs [n_critics, B, K])``."""
        latent_pi, latent_vf, _ = self._latents(obs, lstm_states, episode_starts)
        log_prob, entropy = self._log_prob_entropy(latent_pi, actions)
        return log_prob, entropy, self.critics(latent_vf)

    def evaluate_actions(  # type: ignore[override]
        self, obs: PyTorchObs, actions: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """sb3-contrib's contract: ``(aggregated values [B, 1] in return units, log_prob, entropy)``."""
        log_prob, entropy, outputs = self.evaluate_actions_distributional(obs, actions, lstm_states, episode_starts)
        values = self.return_normalizer.denormalize(self.aggregate_outputs(outputs)).unsqueeze(-1)
        return values, log_prob, entropy


class DistributionalMultiInputLstmPolicy(DistributionalLstmPolicy):
    """For ``Dict`` observation spaces (SB3's ``CombinedExtractor`` by default)."""

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class DistributionalCnnLstmPolicy(DistributionalLstmPolicy):
    """For image observations (SB3's ``NatureCNN`` by default)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
