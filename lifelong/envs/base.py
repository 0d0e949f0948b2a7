"""Common machinery of the non-stationary wrappers: a step counter and a seeded phase schedule.

Every wrapper in :mod:`lifelong.envs` splits time into *phases* of ``every_steps`` environment
steps. The counter counts calls to ``step`` across episodes (``reset`` does not touch it), so a
phase may change in the middle of an episode. Phase ``k`` covers the steps with 0-based index
``k * every_steps <= t < (k + 1) * every_steps``.

Seeding (the schedule, not the inner environment):

- ``seed=<int>`` in the constructor fixes the schedule; ``reset(seed=...)`` then only seeds the
  wrapped environment. Use this when several copies of an environment (a vectorised env) must
  see the same task sequence: Stable-Baselines3 seeds copy ``i`` with ``seed + i``.
- ``seed=None`` (the default): the schedule seed is taken from the first ``reset(seed=...)``
  that carries a seed (later seeds only re-seed the wrapped environment); if the first reset
  has no seed, fresh OS entropy is used and the schedule is not reproducible.

The schedule itself is a deterministic function of the schedule seed: phase ``k``'s parameters
are drawn from one ``numpy`` generator in phase order and memoised, so they do not depend on
when or how often ``reset`` is called.
"""
from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

__all__ = ["NonStationaryWrapper"]


def _check_every_steps(every_steps: Any) -> int:
    if isinstance(every_steps, bool) or not isinstance(every_steps, (int, np.integer)):
        raise ValueError(f"every_steps must be a positive int, got {every_steps!r}")
    if every_steps < 1:
        raise ValueError(f"every_steps must be a positive int (>= 1), got {every_steps!r}")
    return int(every_steps)


def _check_seed(seed: Any, name: str = "seed") -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be None or a non-negative int, got {seed!r}")
    return int(seed)


class NonStationaryWrapper(gym.Wrapper):
    """Base class: counts steps across episodes and holds a seeded, memoised phase schedule.

    Subclasses set ``info_key`` and implement :meth:`_draw_phase` (the schedule entry of the next
    phase, drawn from ``rng``; JSON-able values) and the transformation itself.
    """

    info_key: str = "nonstationary"
    #: distinct per wrapper class so that two wrappers stacked with the same seed differ
    _salt: int = 0

    def __init__(self, env: gym.Env, every_steps: int, seed: int | None = None):
        super().__init__(env)
        self._every_steps = _check_every_steps(every_steps)
        self._schedule_seed: int | None = _check_seed(seed)
        self._seed_from_constructor = self._schedule_seed is not None
        self._rng: np.random.Generator | None = None
        self._specs: list[dict[str, Any]] = []
        self._total_steps = 0
        self._pinned_phase: int | None = None

    # ----------------------------------------------------------------------------- schedule
    @property
    def every_steps(self) -> int:
        """Length of a phase in environment steps (per environment copy)."""
        return self._every_steps

    @property
    def total_steps(self) -> int:
        """Number of ``step`` calls so far, across episodes."""
        return self._total_steps

    @property
    def phase(self) -> int:
        """Index of the phase that the next ``step`` belongs to: ``total_steps // every_steps``,
        or the phase given to :meth:`pin_phase`."""
        if self._pinned_phase is not None:
            return self._pinned_phase
        return self._total_steps // self._every_steps

    def pin_phase(self, phase: int | None, schedule_seed: int | None = None) -> None:
        """Hold the env in ``phase`` (every step and reset use it; ``total_steps`` still counts)
        or, with ``None``, let it follow its own step counter again. ``schedule_seed`` adopts
        another copy's schedule, so that phase ``k`` here is phase ``k`` there: how an
        evaluation env follows the task a training env is on
        (``eval_env.env_method("pin_phase", train_phase, train_schedule_seed)``)."""
        if phase is not None:
            if isinstance(phase, bool) or not isinstance(phase, (int, np.integer)) or phase < 0:
                raise ValueError(f"phase must be None or a non-negative int, got {phase!r}")
            phase = int(phase)
        schedule_seed = _check_seed(schedule_seed, "schedule_seed")
        if schedule_seed is not None:
            self._adopt_schedule(schedule_seed)
        self._pinned_phase = phase

    def _adopt_schedule(self, schedule_seed: int) -> None:
        if schedule_seed != self._schedule_seed:
            self._schedule_seed = schedule_seed
            self._rng = None
            self._specs = []
            self._new_schedule()

    # ------------------------------------------------------------------------ stream position
    def _stack(self) -> list[NonStationaryWrapper]:
        """This wrapper and every non-stationary wrapper below it, outermost first."""
        stack, env = [], self
        while isinstance(env, gym.Wrapper):
            if isinstance(env, NonStationaryWrapper):
                stack.append(env)
            env = env.env
        return stack

    def stream_state(self) -> list[dict[str, Any]]:
        """Where this wrapper and every non-stationary wrapper below it are in their task
        streams, outermost first: ``[{"wrapper": class name, "total_steps": int,
        "schedule_seed": int | None}]`` (JSON-able). A checkpoint saves it (per env copy), so
        that a resumed run continues its task sequence instead of restarting it at phase 0."""
        return [{"wrapper": type(w).__name__, "total_steps": w._total_steps, "schedule_seed": w._schedule_seed}
                for w in self._stack()]

    def set_stream_state(self, states: Any, pin: bool = False) -> None:
        """Put this wrapper and those below it where :meth:`stream_state` of the same stack of
        wrappers says: each one's step counter and schedule (a saved ``schedule_seed`` of
        ``None`` leaves the schedule to the next seeded reset). With ``pin=True`` each is also
        held in that position's phase (:meth:`pin_phase`): how an evaluation env shows the
        task a checkpoint was trained on. ``ValueError`` naming the entry, with nothing
        changed, when the states are not a stream state of this stack (other wrapper classes
        or number, a step count that is not an int in [0, 2**62], a bad seed)."""
        stack = self._stack()
        if not isinstance(states, list) or len(states) != len(stack):
            raise ValueError(f"expected a stream state of {len(stack)} wrapper(s) "
                             f"{[type(w).__name__ for w in stack]}, got {states!r:.200}")
        checked = []
        for i, (w, state) in enumerate(zip(stack, states)):
            if not isinstance(state, dict) or set(state) != {"wrapper", "total_steps", "schedule_seed"}:
                raise ValueError(f"stream state [{i}]: expected a dict with wrapper, total_steps and "
                                 f"schedule_seed, got {state!r:.200}")
            if state["wrapper"] != type(w).__name__:
                raise ValueError(f"stream state [{i}] is of a {state['wrapper']!r:.80} wrapper, this one is "
                                 f"{type(w).__name__}")
            steps = state["total_steps"]
            if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps <= 2**62:
                raise ValueError(f"stream state [{i}]: total_steps must be an int in [0, 2**62], got {steps!r:.80}")
            checked.append((w, int(steps), _check_seed(state["schedule_seed"], "schedule_seed")))
        for w, steps, seed in checked:
            if seed is not None:
                w._adopt_schedule(seed)
            w._total_steps = steps
            w._pinned_phase = steps // w._every_steps if pin else None

    @property
    def schedule_seed(self) -> int | None:
        """The seed the schedule was drawn from (``None`` until fixed)."""
        return self._schedule_seed

    def _ensure_seed(self, seed: int | None = None) -> None:
        if self._schedule_seed is None:
            if seed is None:
                seed = int(np.random.SeedSequence().entropy % (2**63))
            self._schedule_seed = _check_seed(seed)
        if self._rng is None:
            self._rng = np.random.default_rng([self._schedule_seed, self._salt])

    def phase_spec(self, phase: int) -> dict[str, Any]:
        """The schedule entry of ``phase`` (a dict of JSON-able values), drawing it if needed."""
        if phase < 0:
            raise ValueError(f"phase must be >= 0, got {phase}")
        self._ensure_seed()
        assert self._rng is not None
        while len(self._specs) <= phase:
            previous = self._specs[-1] if self._specs else None
            self._specs.append(self._draw_phase(len(self._specs), previous, self._rng))
        return self._specs[phase]

    def _draw_phase(self, phase: int, previous: dict[str, Any] | None,
                    rng: np.random.Generator) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def schedule_info(self, phase: int | None = None) -> dict[str, Any]:
        """What goes into ``info[self.info_key]``: ``phase``, ``total_steps`` and the phase's entry."""
        phase = self.phase if phase is None else phase
        return {"phase": phase, "total_steps": self._total_steps, **self.phase_spec(phase)}

    def _add_info(self, info: dict[str, Any], phase: int) -> dict[str, Any]:
        info = dict(info)
        info[self.info_key] = self.schedule_info(phase)
        info["phase"] = phase
        return info

    # ------------------------------------------------------------------- hooks for subclasses
    def _new_schedule(self) -> None:
        """Called when :meth:`pin_phase` adopts another schedule (drop what was derived from it)."""

    def _apply_phase(self, phase: int) -> None:
        """Called before every step and reset with the phase in force (dynamics wrappers)."""

    # ------------------------------------------------------------------------- gym interface
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._ensure_seed(seed)
        phase = self.phase
        self._apply_phase(phase)
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observation(obs, phase), self._add_info(info, phase)

    def step(self, action):
        self._ensure_seed()
        phase = self.phase
        self._apply_phase(phase)
        obs, reward, terminated, truncated, info = self.env.step(self._action(action, phase))
        self._total_steps += 1
        obs_phase = self._observation_phase(phase)
        return (self._observation(obs, obs_phase), self._reward(reward, phase), terminated,
                truncated, self._add_info(info, self._info_phase(phase, obs_phase)))

    # identity transformations; subclasses override what they change
    def _action(self, action, phase: int):
        return action

    def _observation(self, obs, phase: int):
        return obs

    def _reward(self, reward: SupportsFloat, phase: int) -> SupportsFloat:
        return reward

    def _observation_phase(self, step_phase: int) -> int:
        return step_phase

    def _info_phase(self, step_phase: int, obs_phase: int) -> int:
        return step_phase
