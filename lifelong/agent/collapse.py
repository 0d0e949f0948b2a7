"""A fresh action head when the policy has collapsed: the agent's own reaction to a task change
that leaves its policy confidently wrong (``collapse_reset=True``, the default).

Why: on a stream of tasks whose action meanings change (``lifelong.envs.PermutedActions``), PPO
with Adam ends up in phases it cannot learn: the policy is nearly deterministic on the wrong
action, its return stays at the level of the initial policy or below, and the gradients that
would move it are tiny (``pi(a|s) -> 0`` for the right action). A fresh action head, nearly
uniform again (Stable-Baselines3's orthogonal initialisation with gain 0.01), restores the
exploration the first phase had, while the trunk keeps its features. A periodic reset does
the same only when its period matches the stream's; this one needs no period: it watches for
the collapse (docs/continual.md measures both).

The test, at the end of every rollout, before the update (``Discrete`` action spaces; other
action spaces never trigger it):

* ``R``, the mean return of the last ``window`` episodes (``ep_info_buffer``), is at most
  ``rho`` of the way from ``R0``, the first such mean of the model's training (the initial
  policy's level), to ``B``, the best such mean since the last reset (never below ``R0``):
  ``R <= R0 + rho (B - R0)``, once the return has risen above ``R0`` (``B > R0``) or a
  reset has happened (after which ``B`` restarts at ``max(R, R0)``, see below);
* the policy is nearly deterministic: ``-mean(log pi(a_t|s_t))`` over the rollout (an estimate
  of its entropy) is below ``eta log n``, a fraction of the uniform policy's entropy, ``n``
  actions.

A task whose return keeps its level never meets the first condition (nor does a policy that
never improved on its first level: a converged policy's return capped at its first measured
level, say); a policy that still explores never meets the second. When both hold, ``policy.action_net`` is initialised afresh
(orthogonal, gain 0.01, zero bias, as Stable-Baselines3 builds it; ``reset_parameters()`` with
``ortho_init=False``), its optimizer state is cleared (Adam's moments and step count, a UPGD
optimizer's utility trace and initial weights start again from the new values), ``B`` restarts
from ``max(R, R0)``, and **that rollout's update is skipped**: its data came from the collapsed
policy (nearly one action everywhere), and an update on it pushes a fresh head straight back
into a deterministic policy (on the permuted-actions stream, from a logit gap of about 1 to
about 22 in one update of 20 epochs, whose trunk features had grown to 4x their norm); the next
rollout is the fresh head's, exploratory data. A policy still collapsed after a reset, below
the initial level and deterministic, meets the test again at the next rollout, so the reset is
repeated until the head learns from its own exploration and the return rises above ``R0``
(with ``B`` restarting from ``R`` instead, a seed of that stream stayed collapsed for its last
12 phases: docs/continual.md). A rollout that ends in a reset logs no ``train/`` statistics but
``train/collapse_resets`` (and the phase's episode returns of a non-stationary env); a
``learn()`` whose last rollout resets returns a model with a fresh, untrained head.

Optimizer state: the head's entries leave ``optimizer.state``, torch's way of giving a parameter
fresh state (Adam's moments and step count start again). The UPGD family starts them again too
(utility, moments, ``initial`` from the new weights), but a param group whose parameters no
longer share one step count leaves the optimizer's flat fast path for its per-tensor reference
path for good: correct, slower (docs/optimizers.md); put the head in a param group of its own
(``optimizer_groups={"action_net.*": {}}``) to keep the rest on the fast path.

The fresh weights are drawn from torch's global generator, which a checkpoint saves: exact
resume stays bit-identical.

What it costs when it does not fire: two means per rollout and nothing else; it draws no
random numbers, so a run in which it never fires is bit for bit the run without it.

State: ``R0``, ``B`` and the timesteps of the resets (``resets``), saved in
checkpoints (:meth:`CollapseReset.state_dict`) and restored with the episode buffers they are
computed from (exact resume). A PBT exploit moves neither: the recipient keeps its own episode
history and its own levels. A later ``learn()`` call keeps them, with or without
``reset_num_timesteps`` (they describe the model's training: a new ``R0`` measured on a trained
policy would make its normal variation look like a collapse); :meth:`CollapseReset.restart`
forgets them. A checkpoint written before this feature loads with ``collapse_reset=False``
(its model was trained without it, and its initial level is unknown).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

__all__ = ["CollapseReset", "DEFAULT_COLLAPSE_RESET_KWARGS", "make_collapse_reset", "reset_action_head"]

#: the defaults of ``collapse_reset_kwargs``: the thresholds measured on the continual-RL
#: benchmark's two streams (docs/continual.md)
DEFAULT_COLLAPSE_RESET_KWARGS: dict[str, Any] = {"rho": 0.25, "eta": 0.2, "window": 20}


def _number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


class CollapseReset:
    """The collapse test and the reset of the action head (see the module docstring).

    :param rho: in ``[0, 1)``: how far back towards the initial level ``R0`` the return must fall,
        as a fraction of the way from ``R0`` to the best level ``B``.
    :param eta: in ``(0, 1]``: the policy counts as collapsed below ``eta log n`` nats of entropy.
    :param window: episodes (>= 1) whose mean return is the level ``R``; at most
        ``stats_window_size`` (the episode buffer's length).

    State: ``initial_level`` (``R0``), ``best_level`` (``B``, never below ``R0``) and ``resets``
    (the timesteps of the resets).
    """

    def __init__(self, rho: float = 0.25, eta: float = 0.2, window: int = 20):
        if not _number(rho) or not 0 <= rho < 1:
            raise ValueError(f"collapse_reset_kwargs: rho={rho!r} is invalid: expected a number in [0, 1)")
        if not _number(eta) or not 0 < eta <= 1:
            raise ValueError(f"collapse_reset_kwargs: eta={eta!r} is invalid: expected a number in (0, 1]")
        if not isinstance(window, (int, np.integer)) or isinstance(window, (bool, np.bool_)) or window < 1:
            raise ValueError(f"collapse_reset_kwargs: window={window!r} is invalid: expected an integer >= 1")
        self.rho, self.eta, self.window = float(rho), float(eta), int(window)
        self.initial_level: float | None = None  # R0
        self.best_level: float | None = None  # B
        self.resets: list[int] = []

    def kwargs(self) -> dict[str, Any]:
        """The thresholds as ``collapse_reset_kwargs`` (what rebuilds this reset)."""
        return {"rho": self.rho, "eta": self.eta, "window": self.window}

    def restart(self) -> None:
        """Forget ``R0``, ``B`` and the resets. ``R0`` is then measured again, from the next
        ``window`` episodes: restart only where the policy is at an untrained level (a new task
        for a fresh policy), otherwise a trained level becomes ``R0`` and the test loses its
        meaning. A later ``learn()`` call does not restart (the levels describe the model's
        training, not one call)."""
        self.initial_level = self.best_level = None
        self.resets = []

    # ------------------------------------------------------------------ the test and the reset
    def after_rollout(self, model: Any) -> bool:
        """Test ``model``'s last rollout and episodes; reset its action head when the policy has
        collapsed. True when it reset."""
        if not isinstance(model.action_space, spaces.Discrete) or model.ep_info_buffer is None:
            return False
        episodes = model.ep_info_buffer
        if len(episodes) < self.window:
            return False
        level = float(np.mean([episodes[i]["r"] for i in range(len(episodes) - self.window, len(episodes))]))
        if self.initial_level is None or self.best_level is None:
            self.initial_level = self.best_level = level
            return False
        r0 = self.initial_level
        self.best_level = best = max(self.best_level, level)
        # a fall counts once the return has risen above R0 or after a reset (B then restarts at
        # max(R, R0), so a policy still collapsed below R0 is tested again): a policy that never
        # learnt, or a run whose first measured level is its best, is never reset
        if not (best > r0 or self.resets) or not level <= r0 + self.rho * (best - r0):
            return False
        entropy = -float(np.mean(model.rollout_buffer.log_probs))
        if not entropy < self.eta * math.log(int(model.action_space.n)):
            return False
        reset_action_head(model.policy)
        self.best_level = max(level, r0)
        self.resets.append(int(model.num_timesteps))
        return True

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """``{"initial_level", "best_level", "resets"}``: JSON data."""
        return {"initial_level": self.initial_level, "best_level": self.best_level, "resets": list(self.resets)}

    def load_state_dict(self, state: Any) -> None:
        """Restore :meth:`state_dict`; ``ValueError`` naming what is malformed (nothing changed)."""
        keys = {"initial_level", "best_level", "resets"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"the collapse reset's state must be a dict with {sorted(keys)}, got {str(state)[:200]}")
        levels = [_finite_or_none(state["initial_level"]), _finite_or_none(state["best_level"])]
        if any(v is False for v in levels) or (levels[0] is None) != (levels[1] is None):
            raise ValueError(f"the collapse reset's levels must both be finite numbers or both None, "
                             f"got {str([state['initial_level'], state['best_level']])[:200]}")
        if levels[0] is not None and levels[1] < levels[0]:
            raise ValueError(f"the collapse reset's best level {levels[1]} is below its initial level {levels[0]}")
        resets = state["resets"]
        if not isinstance(resets, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 2**63
                                                   for t in resets):
            raise ValueError(f"the collapse reset's resets must be a list of timesteps >= 0, got {str(resets)[:200]}")
        self.initial_level, self.best_level = levels  # type: ignore[assignment]
        self.resets = list(resets)


def _finite_or_none(value: Any) -> float | None | bool:
    """``float(value)`` for a finite number, None for None, False for anything else (a huge JSON
    integer included: its float conversion overflows)."""
    if value is None:
        return None
    if not _number(value):
        return False
    try:
        out = float(value)
    except OverflowError:
        return False
    return out if math.isfinite(out) else False


def make_collapse_reset(enabled: Any, kwargs: Any) -> CollapseReset | None:
    """The agent's :class:`CollapseReset` from its ``collapse_reset`` and ``collapse_reset_kwargs``
    arguments (over :data:`DEFAULT_COLLAPSE_RESET_KWARGS`), or None when it is off; ``ValueError``
    naming a bad value or an unknown keyword (checked also when off)."""
    if not isinstance(enabled, (bool, np.bool_)):
        raise ValueError(f"collapse_reset must be True or False, got {enabled!r}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ValueError(f"collapse_reset_kwargs must be a dict or None, got {kwargs!r}")
    unknown = sorted(set(kwargs or {}) - set(DEFAULT_COLLAPSE_RESET_KWARGS), key=str)
    if unknown:
        raise ValueError(f"collapse_reset_kwargs: unknown keyword(s) {unknown}: expected some of "
                         f"{sorted(DEFAULT_COLLAPSE_RESET_KWARGS)}")
    reset = CollapseReset(**{**DEFAULT_COLLAPSE_RESET_KWARGS, **(kwargs or {})})
    return reset if enabled else None


def reset_action_head(policy: Any) -> None:
    """Initialise ``policy.action_net`` afresh, as Stable-Baselines3 builds it (orthogonal with
    gain 0.01 and zero bias under ``ortho_init``, else the layer's ``reset_parameters()``), in
    place, and clear its parameters' optimizer state."""
    head = policy.action_net
    with th.no_grad():
        if policy.ortho_init:
            head.apply(functools.partial(ActorCriticPolicy.init_weights, gain=0.01))
        else:
            for module in head.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    for p in head.parameters():
        policy.optimizer.state.pop(p, None)
