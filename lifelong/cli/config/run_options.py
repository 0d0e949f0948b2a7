"""The run options: the top-level keys of a configuration besides its sections."""
from __future__ import annotations

from typing import Any

from lifelong.cli.config.validators import (
    Bool,
    Choice,
    Float,
    FreeDict,
    Int,
    Optional,
    Str,
    V,
)

__all__ = ["RUN_KEYS", "SECTION_KEYS"]

#: key -> (default, validator, description).
RUN_KEYS: dict[str, tuple[Any, V, str]] = {
    "algo": ("ppo", Choice("ppo", "recurrent_ppo"),
             "the agent: ppo (DistributionalPPO) or recurrent_ppo (DistributionalRecurrentPPO, LSTM policies)"),
    "env": (None, Optional(Str()), "Gymnasium environment id"),
    "env_kwargs": ({}, FreeDict(), "extra gymnasium.make arguments"),
    "n_envs": (1, Int(min=1, max=4096), "number of vectorised environments"),
    "vec_env": ("dummy", Choice("dummy", "subproc"), "DummyVecEnv or SubprocVecEnv"),
    "normalize_obs": (False, Bool(), "normalise observations with VecNormalize"),
    "normalize_reward": (False, Bool(), "scale rewards with VecNormalize (discounting with "
                                        "agent.gamma), as rl-zoo's normalize: true does"),
    "seed": (0, Optional(Int(min=0)), "random seed"),
    "timesteps": (100_000, Int(min=1, max=10**12), "total environment steps"),
    "eval_every": (10_000, Int(min=0), "evaluate every N steps (0: only at the end)"),
    "eval_episodes": (10, Int(min=1), "episodes per evaluation"),
    "eval_deterministic": (True, Bool(), "greedy actions during evaluation"),
    "n_eval_envs": (None, Optional(Int(min=1)), "evaluation env copies (null: "
                                                 "min(eval_episodes, 8))"),
    "eval_phases": ("current", Choice("current", "all"),
                    "non-stationary envs: evaluate the training env's current phase, or every "
                    "phase seen so far too (phase_returns in evals.csv)"),
    "stop_at_reward": (None, Optional(Float()), "stop once an evaluation's mean return reaches this"),
    "checkpoint_every": (25_000, Int(min=0), "checkpoint every N steps (0: only at the end)"),
    "keep_checkpoints": (3, Int(min=1), "checkpoints kept in checkpoints/"),
    "compile_step": (False, Bool(), "algo ppo: compile the minibatch step with torch.compile (about "
                                    "15-20% less time per update on long runs; a one-off compilation of "
                                    "seconds per process; needs a C++ compiler)"),
}
SECTION_KEYS = ("agent", "pbt", "space")
