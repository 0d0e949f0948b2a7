"""A reset the agent triggers itself: the prototype the continual-RL benchmark and the suite run.

:class:`CollapseReset` is a Stable-Baselines3 callback (pass it to ``learn``). At the end of each
rollout it resets part of the network when the policy has *collapsed*, i.e. when both hold:

* the mean return ``R`` of the last ``window`` episodes has fallen back to within ``rho`` of the
  way from ``R0``, the first ``window`` episodes' mean (the initial policy's level), to ``B``,
  the best such mean since the last reset: ``B > R0`` and ``R <= R0 + rho (B - R0)``;
* the policy is nearly deterministic: the rollout's mean ``-log pi(a|s)`` (an estimate of its
  entropy) is below ``eta log n``, a fraction of the uniform policy's entropy (``Discrete``
  actions with ``n`` choices; other action spaces never trigger it).

A stationary task whose return keeps its level never meets the first condition, a policy that
still explores never meets the second; a changed task that leaves the policy confidently wrong
(the permuted-actions stream's collapsed phases, return 9-10 with one action pushed) meets both
within a rollout or two. The reset puts the parameters whose names start with one of
``modules`` (``"action_net"``: the action head; ``""``: every parameter) back at their values
when training started and clears their optimizer state (Adam's moments and step count start
afresh); ``buffers=True`` resets the matching buffers too (the return normaliser's statistics
with ``modules=[""]``: everything a fresh agent starts from). ``B`` then restarts from ``R``.
``resets`` lists the timesteps at which it fired.

The prototype of the library's ``collapse_reset`` (:mod:`lifelong.agent.collapse`, which draws a
fresh head instead of restoring the initial one and saves its state), kept to reproduce the
rows measured with it (docs/continual.md). Its state (``R0``,
``B``, the initial weights) is not saved with a checkpoint.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback


class CollapseReset(BaseCallback):
    """See the module docstring."""

    def __init__(self, modules: Sequence[str] = ("action_net",), rho: float = 0.25, eta: float = 0.2,
                 window: int = 20, buffers: bool = False):
        super().__init__()
        if not 0 <= rho < 1 or not 0 < eta <= 1 or window < 1:
            raise ValueError(f"CollapseReset: need 0 <= rho < 1, 0 < eta <= 1 and window >= 1, got rho={rho!r}, "
                             f"eta={eta!r}, window={window!r}")
        self.modules, self.rho, self.eta, self.window = tuple(modules), rho, eta, window
        self.buffers = buffers
        self.resets: list[int] = []

    def _on_training_start(self) -> None:
        policy = self.model.policy
        tensors = [*policy.named_parameters(), *(policy.named_buffers() if self.buffers else [])]
        self.initial = {name: t.detach().clone() for name, t in tensors if name.startswith(self.modules)}
        self.baseline: float | None = None
        self.best: float | None = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if not isinstance(self.model.action_space, spaces.Discrete):
            return
        episodes = self.model.ep_info_buffer
        if len(episodes) < self.window:
            return
        recent = float(np.mean([e["r"] for e in list(episodes)[-self.window:]]))
        if self.baseline is None or self.best is None:
            self.baseline = self.best = recent
            return
        self.best = max(self.best, recent)
        entropy = -float(np.mean(self.model.rollout_buffer.log_probs))
        collapsed = (self.best > self.baseline
                     and recent <= self.baseline + self.rho * (self.best - self.baseline)
                     and entropy < self.eta * math.log(self.model.action_space.n))
        if not collapsed:
            return
        policy, optimizer = self.model.policy, self.model.policy.optimizer
        with torch.no_grad():
            for name, t in [*policy.named_parameters(), *policy.named_buffers()]:
                if name in self.initial:
                    t.copy_(self.initial[name])
                    optimizer.state.pop(t, None)
        self.best = recent
        self.resets.append(int(self.num_timesteps))
