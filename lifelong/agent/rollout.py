"""Rollout collection for :class:`~lifelong.agent.ppo.DistributionalPPO`: Stable-Baselines3's
``collect_rollouts`` semantics with less work per step, and critic targets free of the
aggregate's bias.

Two value estimates per state
-----------------------------
The critics are evaluated once per rollout, on all its observations at once, and give two
values per state (return units), see
:meth:`~lifelong.agent.policy.DistributionalActorCriticPolicy.bootstrap_values`:

* the *aggregate* ``V_agg`` (``min`` or ``mean`` of the twins' expected values, or the CVaR of
  their aggregated quantiles): the policy's advantages are GAE over ``V_agg``, exactly as in
  Stable-Baselines3 (``rollout_buffer.values`` and ``.advantages``);
* the *twins' mean* ``V_mean = (1/n) sum_k E[Z_k]``: the critics' regression targets
  (``rollout_buffer.returns``) are the TD(lambda) returns bootstrapped from it,
  ``G_t = A^mean_t + V_mean(s_t)`` with ``A^mean`` the GAE of the same rewards over ``V_mean``.

Why the mean, and why the twins' mean. A target bootstrapped from a pessimistic aggregate
feeds the pessimism back into the next targets: at the fixed point the critics' mean sits about
``gamma (1 - lambda) / (1 - gamma) * E[V_mean - V_agg]`` below the true value (5x the gap at
gamma 0.99, lambda 0.95), so the critics no longer learn the return distribution and a CVaR
read off them is not the return's CVaR. Bootstrapping from an unbiased estimate of ``E[G]``
removes the feedback. Each critic's expected value estimates ``E[G]``; their average is the
estimate with the smaller variance, and it gives both critics the *same* targets, which is the
twin contract (independent parameters, identical data): bootstrapping each critic from its own
value would make them two separate TD fixed points, doubling the GAE work, and a critic's own
errors would then compound into its own targets without the other's averaging them down.

The time-limit bootstrap follows the same split: on a truncation Stable-Baselines3 adds
``gamma * V(terminal_obs)`` to the reward; the advantages' rewards get ``gamma * V_agg``, the
critics' rewards ``gamma * V_mean``. When the aggregate *is* the mean (``value_aggregation=
"mean"`` or one critic, without CVaR) both are the same numbers and one GAE pass serves both:
training is then bit-identical to Stable-Baselines3's bookkeeping.

What one step does (and what it does not)
-----------------------------------------
Stable-Baselines3's loop, step for step: gSDE noise resampled every ``sde_sample_freq`` steps;
the actor on the observation (``obs_as_tensor``: zero-copy on CPU); the actions moved to the
host once, Box actions clipped to the space (or unscaled with ``squash_output``); ``env.step``;
``num_timesteps``; the callback's ``locals`` updated (SB3's names: ``new_obs``, ``rewards``,
``dones``, ``infos``, ``actions``, ``clipped_actions``, ``log_probs``, ``obs_tensor``,
``n_steps``, ``self``, ...) and ``on_step`` once per vectorised step (``False`` aborts);
``_update_info_buffer`` (``ep_info_buffer``/``ep_success_buffer``); the time-limit bootstrap
value of a truncated episode's terminal observation, evaluated at that step, one observation at
a time as in SB3; ``_last_obs``/``_last_episode_starts`` for exact resume.

What it does differently, for speed:

* the critics are *not* evaluated per step: after the last step one batched pass over the
  rollout's observations and the last observation (:func:`rollout_values`) gives the values. The
  parameters and return statistics are the same at every step of a rollout, so these are the
  per-step values, up to the rounding of a matmul whose kernel depends on the row count (none for
  the default 64x64 critics with two or more envs; the last bit, ~1e-7 relative, in some other
  shapes). Hence ``values`` is in ``locals`` only at ``on_rollout_end``, not at ``on_step``;
* no distribution objects (the policy's fast paths); the truncation loop visits only the
  finished environments; the host arrays of the buffer are written in place
  (:func:`write_step`, no ``np.array`` copies); log-probabilities stay on the policy's device,
  one tensor per step, stacked and moved to the host once at the rollout's end;
* a ``rollout_buffer_class`` that overrides ``add`` gets its ``add`` called with SB3's
  arguments, the per-step values included (evaluated per step for it).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from lifelong.agent import closed_form

__all__ = ["CriticSummary", "collect_rollouts", "gae", "observation_tensor", "rollout_values", "write_step"]


class CriticSummary(NamedTuple):
    """What the rollout's one critic pass tells ``train()``'s statistics, so that it need not run
    the critics over the rollout a second time: ``values``, each critic's expected value
    ``[n_critics, n_steps * n_envs]`` (return units, rows in ``rollout_buffer.values``' order
    flattened), and ``spread``, the mean standard deviation of the critics' return distributions
    (return units, 0-dim), both as the critics predicted them when the rollout was collected,
    as Stable-Baselines3's ``explained_variance`` reads ``rollout_buffer.values``."""

    values: th.Tensor
    spread: th.Tensor

_PLAIN_ADD = (RolloutBuffer.add, DictRolloutBuffer.add)
_BUFFER_GAE = RolloutBuffer.compute_returns_and_advantage  # DictRolloutBuffer's too


def observation_tensor(obs: np.ndarray | dict[str, np.ndarray], device: th.device) -> th.Tensor | dict[str, th.Tensor]:
    """``obs_as_tensor`` with one memory layout whatever the array's strides: row-major, strides
    recomputed from the shape (a view; a copy only where the array is not contiguous).

    Why: ``VecTransposeImage`` hands a channel-last image to the policy as a transposed view. With
    one channel it is contiguous, but its strides ``(HW, 1, W, 1)`` also read as channels-last,
    and torch's convolution then sums in another order than for the strides ``(HW, HW, W, 1)`` of
    the same values restored from a checkpoint. The features differ in the last bits; a
    recurrent agent's LSTM state carries that into training, and exact resume is no longer
    bit-identical (``tests/checkpoint/test_checkpoint_recurrent.py``, the CNN case).
    """
    if isinstance(obs, np.ndarray) and device.type == "cpu" and obs.flags.c_contiguous and 1 not in obs.shape:
        # the common case, cheaply: a C-contiguous array without size-1 dimensions already has
        # the row-major strides, and on the CPU as_tensor shares its memory as from_numpy does
        return th.from_numpy(obs)
    tensors = obs_as_tensor(obs, device)
    if isinstance(tensors, dict):
        return {k: v.contiguous().view(v.shape) for k, v in tensors.items()}
    return tensors.contiguous().view(tensors.shape)


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    last_dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """The GAE ``A_t = delta_t + gamma lambda (1 - d_{t+1}) A_{t+1}``,
    ``delta_t = r_t + gamma (1 - d_{t+1}) V_{t+1} - V_t``, of rewards and values
    ``[..., n_steps, n_envs]`` (float32), where ``d_{t+1}`` is the next step's episode start
    (``episode_starts [n_steps, n_envs]``; ``last_dones [n_envs]`` after the last step) and
    ``V_n`` is ``last_values [..., n_envs]``. Leading dimensions stack several value estimates
    of the same rollout (the advantages' and the critics' targets): one loop over the steps
    for all of them. The operations and their order are those of Stable-Baselines3's
    ``RolloutBuffer.compute_returns_and_advantage``, element by element, so equal inputs give
    equal bits, stacked or not. The TD(lambda) returns are ``gae(...) + values``."""
    advantages = np.zeros_like(values)
    last_gae_lam: Any = 0
    n_steps = values.shape[-2]
    for step in reversed(range(n_steps)):
        if step == n_steps - 1:
            next_non_terminal = 1.0 - last_dones.astype(np.float32)
            next_values = last_values
        else:
            next_non_terminal = 1.0 - episode_starts[step + 1]
            next_values = values[..., step + 1, :]
        delta = rewards[..., step, :] + gamma * next_values * next_non_terminal - values[..., step, :]
        last_gae_lam = delta + gamma * gae_lambda * next_non_terminal * last_gae_lam
        advantages[..., step, :] = last_gae_lam
    return advantages


def _clip_actions(model: Any, actions: np.ndarray) -> np.ndarray:
    if isinstance(model.action_space, spaces.Box):
        if model.policy.squash_output:
            return model.policy.unscale_action(actions)
        return np.clip(actions, model.action_space.low, model.action_space.high)
    return actions


def write_step(buffer: RolloutBuffer, obs: Any, actions: np.ndarray, rewards: np.ndarray, episode_starts: np.ndarray) -> None:
    """The host part of ``RolloutBuffer.add``, written in place at ``buffer.pos`` (no ``np.array``
    copies; observations reshaped for Discrete spaces, actions to ``[n_envs, action_dim]``)."""
    pos = buffer.pos
    if isinstance(obs, dict):
        for key, store in buffer.observations.items():  # type: ignore[union-attr]
            store[pos] = np.reshape(obs[key], store.shape[1:])
    else:
        store = buffer.observations
        store[pos] = np.reshape(obs, store.shape[1:])  # type: ignore[call-overload]
    buffer.actions[pos] = actions.reshape(buffer.actions.shape[1:])
    buffer.rewards[pos] = rewards
    buffer.episode_starts[pos] = episode_starts
    buffer.pos = pos + 1
    buffer.full = buffer.pos == buffer.buffer_size


def rollout_values(
    policy: Any, buffer: RolloutBuffer, last_obs: Any, chunk: int = 8192
) -> tuple[th.Tensor, th.Tensor, CriticSummary]:
    """The critics on every observation of a full rollout and on ``last_obs``, batched:
    ``(aggregate [n_steps + 1, n_envs], twins' mean [n_steps + 1, n_envs], summary)`` in return
    units, row ``n_steps`` for ``last_obs`` (the summary covers the rollout's rows only). One
    host-to-device transfer of the observations."""
    stored = buffer.observations
    n_envs = buffer.n_envs

    def rows(x: np.ndarray, last: np.ndarray) -> np.ndarray:
        return np.concatenate([x.reshape(-1, *x.shape[2:]), np.reshape(last, (n_envs, *x.shape[2:]))])

    if isinstance(stored, dict):
        obs = {k: th.as_tensor(rows(v, last_obs[k]), device=policy.device) for k, v in stored.items()}
        n = next(iter(obs.values())).shape[0]
    else:
        obs = th.as_tensor(rows(stored, last_obs), device=policy.device)
        n = obs.shape[0]
    values, targets, critic_values, spreads = [], [], [], []
    normalizer = policy.return_normalizer
    for i in range(0, n, chunk):
        part = {k: v[i : i + chunk] for k, v in obs.items()} if isinstance(obs, dict) else obs[i : i + chunk]
        outputs = policy.critic_outputs(part)
        v, t = policy.bootstrap_values(outputs)
        values.append(v)
        targets.append(t)
        critic_values.append(normalizer.denormalize(policy.expected_outputs(outputs)))
        spreads.append(normalizer.scale(policy.spread_outputs(outputs)))
    shape = (-1, n_envs)
    rollout_rows = n - n_envs
    summary = CriticSummary(th.cat(critic_values, dim=1)[:, :rollout_rows], th.cat(spreads, dim=1)[:, :rollout_rows].mean())
    return th.cat(values).reshape(shape), th.cat(targets).reshape(shape), summary


def collect_rollouts(
    model: Any,
    env: VecEnv,
    callback: BaseCallback,
    rollout_buffer: RolloutBuffer,
    n_rollout_steps: int,
) -> bool:
    """Fill ``rollout_buffer`` with ``n_rollout_steps`` vectorised steps of ``model``'s policy
    (see the module docstring). ``False`` when a callback stopped the rollout."""
    assert model._last_obs is not None, "No previous observation was provided"
    self = model  # noqa: F841  (SB3's callbacks may read locals["self"])
    policy = model.policy
    device = model.device
    n_envs = env.num_envs
    policy.set_training_mode(False)
    rollout_buffer.reset()
    if model.use_sde:
        policy.reset_noise(n_envs)
    callback.on_rollout_start()

    plain_buffer = type(rollout_buffer).add in _PLAIN_ADD
    separate_targets = not policy.targets_use_aggregate
    step_log_probs: list[th.Tensor] = []  # stacked once after the last step (cheaper than a row write per step)
    # Truncation bootstraps gamma * V(terminal_obs): the advantages' and the critics'.
    bootstraps: list[tuple[int, int, th.Tensor, th.Tensor]] = []
    discrete_actions = isinstance(model.action_space, spaces.Discrete)
    resample_sde = model.use_sde and model.sde_sample_freq > 0
    gamma = model.gamma
    # the actor's trunk as functional calls where the closed-form training path applies
    plan = closed_form.plan(model) if model.closed_form_gradients else None

    n_steps = 0
    while n_steps < n_rollout_steps:
        if resample_sde and n_steps % model.sde_sample_freq == 0:
            policy.reset_noise(n_envs)
        with th.no_grad():
            obs_tensor = observation_tensor(model._last_obs, device)
            actions, log_probs = policy.act(obs_tensor) if plan is None else closed_form.act(policy, plan, obs_tensor)
        actions = actions.cpu().numpy()
        clipped_actions = _clip_actions(model, actions)
        new_obs, rewards, dones, infos = env.step(clipped_actions)
        model.num_timesteps += n_envs

        callback.update_locals(locals())
        if not callback.on_step():
            return False
        model._update_info_buffer(infos, dones)
        step = n_steps
        n_steps += 1
        if discrete_actions:
            actions = actions.reshape(-1, 1)

        if dones.any():
            # Time-limit truncation: bootstrap the cut-off return (SB3 issue #633). Evaluated here,
            # one observation at a time as in SB3 (a one-row matmul rounds differently), and folded
            # into the rewards after the rollout.
            for idx in np.flatnonzero(dones):
                info = infos[idx]
                if info.get("terminal_observation") is None or not info.get("TimeLimit.truncated", False):
                    continue
                terminal_obs = policy.obs_to_tensor(info["terminal_observation"])[0]
                with th.no_grad():
                    terminal_value, terminal_target = policy.bootstrap_values(policy.critic_outputs(terminal_obs))
                bootstraps.append((step, int(idx), terminal_value, terminal_target))

        step_log_probs.append(log_probs)
        if plain_buffer:
            write_step(rollout_buffer, model._last_obs, actions, rewards, model._last_episode_starts)
        else:  # a buffer with its own add() gets SB3's arguments, the values included
            with th.no_grad():
                step_values = policy.bootstrap_values(policy.critic_outputs(obs_tensor))[0].unsqueeze(-1)
            rollout_buffer.add(model._last_obs, actions, rewards, model._last_episode_starts, step_values, log_probs)
        model._last_obs = new_obs
        model._last_episode_starts = dones

    # The critics, once for the whole rollout (the parameters and return statistics are those of
    # every step), then GAE on the host as in SB3.
    with th.no_grad():
        all_values, all_targets, model.rollout_critic_summary = rollout_values(policy, rollout_buffer, new_obs)
    if plain_buffer:
        rollout_buffer.values[:] = all_values[:-1].cpu().numpy()
        rollout_buffer.log_probs[:] = th.stack(step_log_probs).cpu().numpy()
    nan_steps = np.flatnonzero(np.isnan(rollout_buffer.log_probs[:n_rollout_steps]).any(axis=1))
    if nan_steps.size:
        step = int(nan_steps[0])
        raise ValueError(
            f"the policy's action log-probabilities are NaN, first at rollout step {step} of {n_rollout_steps}: "
            "its parameters or the observations hold NaN or Inf"
        )
    target_rewards = rollout_buffer.rewards.copy() if separate_targets else None
    if bootstraps:
        # gamma * V on the policy's device, then one transfer; float32 additions as in SB3
        steps, envs = [b[0] for b in bootstraps], [b[1] for b in bootstraps]
        to_rewards = (gamma * th.cat([b[2] for b in bootstraps])).cpu().numpy()
        to_targets = (gamma * th.cat([b[3] for b in bootstraps])).cpu().numpy()
        for k, (step, idx) in enumerate(zip(steps, envs)):
            rollout_buffer.rewards[step, idx] += to_rewards[k]
            if target_rewards is not None:
                target_rewards[step, idx] += to_targets[k]
    if target_rewards is not None and type(rollout_buffer).compute_returns_and_advantage is _BUFFER_GAE:
        # both GAE passes (the advantages' over the aggregate, the critics' targets' over the
        # twins' mean) in one loop over the steps: the buffer's own method's bits, stacked
        targets_np = all_targets.cpu().numpy()
        buffer_values = rollout_buffer.values
        advantages = gae(
            np.stack([rollout_buffer.rewards, target_rewards]), np.stack([buffer_values, targets_np[:-1]]),
            rollout_buffer.episode_starts, np.stack([all_values[-1].cpu().numpy().flatten(), targets_np[-1]]), dones,
            rollout_buffer.gamma, rollout_buffer.gae_lambda,
        )
        rollout_buffer.advantages[:] = advantages[0]
        rollout_buffer.returns = advantages[1] + targets_np[:-1]
    else:
        rollout_buffer.compute_returns_and_advantage(last_values=all_values[-1], dones=dones)
        if target_rewards is not None:
            targets_np = all_targets.cpu().numpy()
            rollout_buffer.returns = targets_np[:-1] + gae(
                target_rewards, targets_np[:-1], rollout_buffer.episode_starts, targets_np[-1], dones,
                rollout_buffer.gamma, rollout_buffer.gae_lambda,
            )
    values = all_values[:-1]  # noqa: F841  (for callbacks reading locals at on_rollout_end)

    callback.update_locals(locals())
    callback.on_rollout_end()
    return True
