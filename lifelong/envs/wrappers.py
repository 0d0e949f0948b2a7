"""Wrappers that make an environment non-stationary: permuted observations or actions, scaled
rewards, changing CartPole dynamics. See :mod:`lifelong.envs.base` for counting and seeding.

Which phase a step uses: the action relabelling, the reward factor and the dynamics of step
``t`` (0-based, counted across episodes) are those of phase ``t // every_steps``. An observation
is permuted with the permutation of the phase in which the agent will *act* on it, i.e. the
phase of the next step, so the policy never sees a stale permutation. ``info`` reports the phase
that the returned quantity belongs to.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import SupportsFloat

import gymnasium as gym
import numpy as np

from lifelong.envs.base import NonStationaryWrapper

__all__ = ["PermuteObservations", "PermuteActions", "ScaleRewards", "ChangingDynamics",
           "CARTPOLE_PARAMS"]


def _draw_permutation(n: int, previous: list[int] | None, rng: np.random.Generator) -> list[int]:
    """A random permutation of range(n) that differs from ``previous`` (when n > 1)."""
    while True:
        perm = [int(i) for i in rng.permutation(n)]
        if n < 2 or perm != previous:
            return perm


def _check_order(order: str) -> str:
    if order not in ("cycle", "random"):
        raise ValueError(f"order must be 'cycle' or 'random', got {order!r}")
    return order


class PermuteObservations(NonStationaryWrapper):
    """A new fixed random permutation of the (flattened) observation vector each phase.

    Args:
        env: an environment with a ``Box`` observation space.
        every_steps: phase length in steps, counted across episodes.
        seed: schedule seed (see :mod:`lifelong.envs.base`).
        identity_first: phase 0 leaves observations as they are (the original task); later
            phases are random permutations, each different from the one before.

    ``info["permute_observations"] = {"phase", "total_steps", "permutation"}`` where
    ``permuted_obs.flat[i] = obs.flat[permutation[i]]``. The space keeps its shape and dtype; when
    its bounds are not the same for every element they are widened to their element-wise union
    so that every permuted observation stays inside the space (for CartPole: all ``±inf``).
    """

    info_key = "permute_observations"
    _salt = 1

    def __init__(self, env: gym.Env, every_steps: int, seed: int | None = None,
                 identity_first: bool = True):
        super().__init__(env, every_steps, seed)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(
                f"env: PermuteObservations needs a Box observation space, got {space!r}")
        self._identity_first = bool(identity_first)
        self._size = int(np.prod(space.shape))
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        if not (np.all(low == low[0]) and np.all(high == high[0])):
            self.observation_space = gym.spaces.Box(
                low=np.full(space.shape, low.min(), dtype=space.dtype),
                high=np.full(space.shape, high.max(), dtype=space.dtype),
                shape=space.shape, dtype=space.dtype)
        self._perm_cache: dict[int, np.ndarray] = {}

    def _new_schedule(self):
        self._perm_cache = {}

    def _draw_phase(self, phase, previous, rng):
        if phase == 0 and self._identity_first:
            return {"permutation": list(range(self._size))}
        prev = None if previous is None else previous["permutation"]
        return {"permutation": _draw_permutation(self._size, prev, rng)}

    def permutation(self, phase: int | None = None) -> np.ndarray:
        """The index array of ``phase`` (default: the current one)."""
        phase = self.phase if phase is None else phase
        if phase not in self._perm_cache:
            self._perm_cache = {phase: np.asarray(self.phase_spec(phase)["permutation"])}
        return self._perm_cache[phase]

    def _observation(self, obs, phase):
        obs = np.asarray(obs)
        return obs.reshape(-1)[self.permutation(phase)].reshape(obs.shape)

    def _observation_phase(self, step_phase):
        return self.phase  # after the counter moved: the phase of the next action

    def _info_phase(self, step_phase, obs_phase):
        return obs_phase


class PermuteActions(NonStationaryWrapper):
    """Relabels the actions of a ``Discrete`` space with a new random permutation each phase.

    The agent's action ``a`` becomes ``start + permutation[a - start]`` for the wrapped env.
    Phase 0 is the identity when ``identity_first`` (default); each later phase differs from the
    one before (with two actions the phases alternate between the original and swapped labels).
    ``info["permute_actions"] = {"phase", "total_steps", "permutation"}``. Spaces unchanged.
    """

    info_key = "permute_actions"
    _salt = 2

    def __init__(self, env: gym.Env, every_steps: int, seed: int | None = None,
                 identity_first: bool = True):
        super().__init__(env, every_steps, seed)
        space = env.action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise ValueError(f"env: PermuteActions needs a Discrete action space, got {space!r}")
        self._n = int(space.n)
        self._start = int(space.start)
        self._identity_first = bool(identity_first)

    def _draw_phase(self, phase, previous, rng):
        if phase == 0 and self._identity_first:
            return {"permutation": list(range(self._n))}
        prev = None if previous is None else previous["permutation"]
        return {"permutation": _draw_permutation(self._n, prev, rng)}

    def _action(self, action, phase):
        perm = self.phase_spec(phase)["permutation"]
        a = int(np.asarray(action).item()) - self._start
        if not 0 <= a < self._n:
            raise ValueError(f"action {action!r} is outside {self.action_space}")
        return self._start + perm[a]


class ScaleRewards(NonStationaryWrapper):
    """Multiplies rewards by a factor that changes each phase.

    Args:
        factors: a non-empty sequence of finite floats.
        order: ``"cycle"`` (phase k uses ``factors[k % len(factors)]``, default) or ``"random"``
            (a seeded draw each phase, different from the previous factor when possible).

    ``info["scale_rewards"] = {"phase", "total_steps", "factor"}`` for the step's reward.
    """

    info_key = "scale_rewards"
    _salt = 3

    def __init__(self, env: gym.Env, every_steps: int, factors: Sequence[float] = (1.0, 10.0, 0.1),
                 seed: int | None = None, order: str = "cycle"):
        super().__init__(env, every_steps, seed)
        if isinstance(factors, (str, bytes)) or not isinstance(factors, Sequence) or not factors:
            raise ValueError(f"factors must be a non-empty sequence of floats, got {factors!r}")
        try:
            values = [float(f) for f in factors]
        except (TypeError, ValueError):
            raise ValueError(f"factors must be a sequence of floats, got {factors!r}") from None
        if not all(math.isfinite(f) for f in values):
            raise ValueError(f"factors must be finite, got {factors!r}")
        self._factors = values
        self._order = _check_order(order)

    def _draw_phase(self, phase, previous, rng):
        n = len(self._factors)
        if self._order == "cycle":
            return {"factor": self._factors[phase % n]}
        while True:
            idx = int(rng.integers(n))
            if previous is None or n < 2 or self._factors[idx] != previous["factor"]:
                return {"factor": self._factors[idx]}

    def _reward(self, reward: SupportsFloat, phase: int) -> SupportsFloat:
        return float(reward) * self.phase_spec(phase)["factor"]


#: the CartPole attributes ChangingDynamics may set
CARTPOLE_PARAMS = ("gravity", "masscart", "masspole", "length", "force_mag", "tau")


class ChangingDynamics(NonStationaryWrapper):
    """Changes CartPole's physical parameters each phase.

    Args:
        params: ``{name: [value per phase, ...]}`` for names in :data:`CARTPOLE_PARAMS`
            (``length`` is CartPole's *half* pole length, default 0.5; ``masscart`` 1.0,
            ``masspole`` 0.1, ``gravity`` 9.8, ``force_mag`` 10.0, ``tau`` 0.02). All lists have
            the same length ``n``; phase k uses entry ``k % n`` (``order="cycle"``) or a seeded
            random entry different from the previous one (``order="random"``). Parameters not
            named keep the environment's values. The derived ``total_mass`` and
            ``polemass_length`` are recomputed.

    ``info["changing_dynamics"] = {"phase", "total_steps", <each parameter: value>}``. Spaces
    unchanged (CartPole's observation bounds do not depend on these parameters).
    """

    info_key = "changing_dynamics"
    _salt = 4

    def __init__(self, env: gym.Env, every_steps: int,
                 params: Mapping[str, Sequence[float]] | None = None,
                 seed: int | None = None, order: str = "cycle"):
        super().__init__(env, every_steps, seed)
        base = env.unwrapped
        missing = [p for p in CARTPOLE_PARAMS if not hasattr(base, p)]
        if missing:
            raise ValueError(f"env: ChangingDynamics needs a CartPole-like environment with "
                             f"attributes {CARTPOLE_PARAMS}; {type(base).__name__} lacks {missing}")
        if params is None:
            params = {"length": [0.5, 1.0, 0.25], "masscart": [1.0, 2.0, 0.5]}
        if not isinstance(params, Mapping) or not params:
            raise ValueError(f"params must be a non-empty dict of lists, got {params!r}")
        lengths = set()
        clean: dict[str, list[float]] = {}
        for name, values in params.items():
            if name not in CARTPOLE_PARAMS:
                raise ValueError(f"params: unknown parameter {name!r}; expected {CARTPOLE_PARAMS}")
            if isinstance(values, (int, float)):
                values = [values]
            try:
                vals = [float(v) for v in values]
            except (TypeError, ValueError):
                raise ValueError(f"params[{name!r}] must be a list of floats, got {values!r}") from None
            if not vals or not all(math.isfinite(v) and v > 0 for v in vals):
                raise ValueError(f"params[{name!r}] must be a non-empty list of positive finite "
                                 f"floats, got {values!r}")
            clean[name] = vals
            lengths.add(len(vals))
        if len(lengths) != 1:
            raise ValueError(f"params: all lists must have the same length, got "
                             f"{ {k: len(v) for k, v in clean.items()} }")
        self._params = clean
        self._n = lengths.pop()
        self._order = _check_order(order)
        self._defaults = {p: float(getattr(base, p)) for p in CARTPOLE_PARAMS}

    @property
    def defaults(self) -> dict[str, float]:
        """The environment's parameters before the wrapper changed anything."""
        return dict(self._defaults)

    def _draw_phase(self, phase, previous, rng):
        if self._order == "cycle":
            idx = phase % self._n
        else:
            while True:
                idx = int(rng.integers(self._n))
                if previous is None or self._n < 2 or previous["_index"] != idx:
                    break
        return {"_index": idx, **{k: v[idx] for k, v in self._params.items()}}

    def schedule_info(self, phase=None):
        info = super().schedule_info(phase)
        info.pop("_index", None)
        return info

    def _apply_phase(self, phase):
        spec = self.phase_spec(phase)
        base = self.env.unwrapped
        for name in self._params:
            setattr(base, name, spec[name])
        base.total_mass = base.masspole + base.masscart
        base.polemass_length = base.masspole * base.length
