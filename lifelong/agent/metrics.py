"""Per-update statistics of :class:`~lifelong.agent.ppo.DistributionalPPO`: ``log_train`` records
what ``train()`` measured in the logger at the end of each update, ``plasticity_diagnostics``
(which the model's method of that name delegates to) measures plasticity on the last rollout,
and :class:`PhaseTracker` follows the phase of a non-stationary environment (``info["phase"]``,
see :mod:`lifelong.envs`) and the returns of the episodes that end in it.

Logged for a non-stationary environment, every update: ``rollout/phase`` (the latest phase seen
in the rollout), ``rollout/phase_episodes`` and ``rollout/phase_ep_rew_mean`` (the episodes that
ended during the rollout *in that phase*, and their mean return; an update without such an
episode logs no mean). With a UPGD-family optimizer, every ``diagnostics_every`` updates beside
the plasticity diagnostics: the gate's histogram ``plasticity/gate_hist/<k>`` (fraction of
weights with ``k/10 <= 1 - s < (k+1)/10``, :func:`lifelong.diagnostics.upgd_gate_histogram`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.utils import explained_variance

from lifelong import diagnostics as D
from lifelong.optim import UPGD, AdaptiveUPGD

__all__ = ["log_train", "plasticity_diagnostics", "PhaseTracker", "GATE_HIST_PREFIX"]

#: logger keys of the gate histogram: f"{GATE_HIST_PREFIX}{k}" for bin k of D.GATE_BINS
GATE_HIST_PREFIX = "plasticity/gate_hist/"


class PhaseTracker:
    """The phase of a non-stationary environment and the returns of the episodes that ended in
    it since the last :meth:`log` (logging only: not training state, not in checkpoints).

    Fed by ``DistributionalPPO._update_info_buffer`` with each step's ``infos`` and ``dones``;
    an environment without ``info["phase"]`` leaves it empty and nothing is logged.
    """

    def __init__(self) -> None:
        self.phase: int | None = None
        self.returns: dict[int, list[float]] = {}

    def update(self, infos: list[dict[str, Any]], dones: Any = None) -> None:
        for i, info in enumerate(infos):
            if "phase" not in info:
                continue
            phase = int(info["phase"])
            self.phase = phase if self.phase is None else max(self.phase, phase)
            done = True if dones is None else bool(dones[i])
            if done and "episode" in info:
                self.returns.setdefault(phase, []).append(float(info["episode"]["r"]))

    def log(self, record: Any) -> None:
        """Record ``rollout/phase`` (+ the episodes of that phase) and start a new window."""
        if self.phase is None:
            return
        record("rollout/phase", self.phase)
        returns = self.returns.get(self.phase, [])
        record("rollout/phase_episodes", len(returns))
        if returns:
            record("rollout/phase_ep_rew_mean", float(np.mean(returns)))
        self.returns = {}


def log_train(
    model: Any,
    stats: list[th.Tensor],
    epoch_kls: list[th.Tensor],
    last_loss: th.Tensor,
    clip_range: float,
    clip_range_vf: float | None,
    critic_ev: list[float],
    spread: th.Tensor,
) -> None:
    """Record one update's statistics (``train/...``, and ``plasticity/...`` every
    ``diagnostics_every`` ``train()`` calls) in ``model.logger``."""
    n_critics = len(critic_ev)
    # One host transfer for all the minibatch statistics.
    summary = th.stack(stats).mean(0) if stats else th.full((3 + n_critics,), float("nan"))
    kl = th.stack(epoch_kls).mean() if epoch_kls else th.tensor(float("nan"))
    values = th.cat([summary, kl.reshape(1), last_loss.reshape(1), spread.reshape(1)]).tolist()
    pg, ent, clip_frac = values[:3]
    critic_losses = values[3 : 3 + n_critics]
    kl_v, loss_v, spread_v = values[3 + n_critics :]
    record = model.logger.record
    record("train/entropy_loss", ent)
    record("train/policy_gradient_loss", pg)
    record("train/value_loss", float(np.mean(critic_losses)))
    for c, v in enumerate(critic_losses):
        record(f"train/critic{c}_loss", v)
    record("train/approx_kl", kl_v)
    record("train/clip_fraction", clip_frac)
    record("train/loss", loss_v)
    buffer = model.rollout_buffer
    returns_np = buffer.returns.flatten()
    record("train/explained_variance", explained_variance(buffer.values.flatten(), returns_np))
    for c, v in enumerate(critic_ev):
        record(f"train/critic{c}_explained_variance", v)
    record("train/quantile_spread", spread_v)
    if hasattr(model.policy, "log_std"):
        record("train/std", th.exp(model.policy.log_std).mean().item())
    record("train/n_updates", model._n_updates, exclude="tensorboard")
    record("train/clip_range", clip_range)
    if clip_range_vf is not None:
        record("train/clip_range_vf", clip_range_vf)
    if model.vgs is not None:
        last = model.vgs.last_stats or {}
        record("train/vgs_factor", float(model.vgs.factor))
        if "ratio" in last:
            record("train/vgs_ratio", float(last["ratio"]))
    if isinstance(model.policy.optimizer, (UPGD, AdaptiveUPGD)):
        for key, value in model.policy.optimizer.gating_stats().items():
            if key in ("gate_mean", "utility_mean", "utility_max", "utility_min"):
                record(f"train/upgd_{key}", value)
    model.phase_tracker.log(record)
    if model.diagnostics_every and model._n_train_calls % model.diagnostics_every == 0:
        for key, value in model.plasticity_diagnostics().items():
            record(key, value)
        for k, value in enumerate(D.upgd_gate_histogram(model.policy.optimizer)):
            record(f"{GATE_HIST_PREFIX}{k}", value)


@th.no_grad()
def plasticity_diagnostics(model: Any, n_obs: int = 256) -> dict[str, float]:
    """See :meth:`lifelong.agent.ppo.DistributionalPPO.plasticity_diagnostics`."""
    policy = model.policy
    actor_pass, critic_input = model._diagnostic_inputs(n_obs)
    actor_layers = [
        name for name, m in policy.named_modules()
        if isinstance(m, D.ACTIVATION_TYPES) and not name.startswith("critics")
    ]
    with D.capture_activations(policy, actor_layers, repeat="first") as acts:
        actor_pass()
    actor_acts = list(dict(acts).values())
    _, hidden = policy.critics.forward_hidden(critic_input)
    dead = total = 0
    for act in actor_acts:
        mask = D.dormant_units(act)
        dead += int(mask.sum())
        total += mask.numel()
    for h in hidden:
        for k in range(h.shape[0]):
            mask = D.dormant_units(h[k])
            dead += int(mask.sum())
            total += mask.numel()
    last_layers = ([actor_acts[-1]] if actor_acts else []) + ([h for h in hidden[-1]] if hidden else [])
    ranks = [float(D.effective_rank(a.reshape(a.shape[0], -1))) for a in last_layers]
    norm = float(th.sqrt(sum((p.detach().double() ** 2).sum() for p in policy.parameters())))
    return {
        "plasticity/dormant_fraction": dead / total if total else 0.0,
        "plasticity/effective_rank": float(np.mean(ranks)) if ranks else 0.0,
        "plasticity/weight_norm": norm,
    }
