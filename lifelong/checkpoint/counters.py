"""Counters and hyperparameters: what a checkpoint stores of a model's progress and tunables."""
from __future__ import annotations

from typing import Any

from lifelong.agent.hyperparameters import TUNABLE
from lifelong.agent.schedules import as_schedule
from lifelong.checkpoint.codec import from_json

__all__ = ["COUNTERS", "remaining_timesteps"]

COUNTERS = (
    "num_timesteps",
    "_n_updates",
    "_episode_num",
    "_num_timesteps_at_start",
    "_total_timesteps",
    "_current_progress_remaining",
    "_n_train_calls",
)


def _apply_hyperparameters(model: Any, meta: dict) -> None:
    """Make the live model's tunables and schedules equal the saved ones (before the optimizer and
    scaler states, which then restore ``lr``, ``sigma`` and ``alpha`` exactly)."""
    saved = from_json(meta.get("constructor_kwargs") or {})
    numbers = {
        name: saved[name]
        for name in TUNABLE
        if isinstance(saved.get(name), (int, float)) and not isinstance(saved.get(name), bool)
    }
    if numbers:
        model.set_hyperparameters(**numbers)
    # schedules that are not constants (a Linear learning rate or clip range) stay schedules
    if isinstance(saved.get("learning_rate"), dict):
        model.learning_rate = saved["learning_rate"]
        model.lr_schedule = as_schedule(saved["learning_rate"], "learning_rate")
    for name in ("clip_range", "clip_range_vf"):
        if isinstance(saved.get(name), dict):
            setattr(model, name, as_schedule(saved[name], name))


def remaining_timesteps(model: Any) -> int:
    """Steps left to the total of the ``learn`` call the checkpoint was taken in.

    ``model.learn(remaining_timesteps(model), reset_num_timesteps=False)`` continues an
    interrupted ``learn(total)`` towards the same total, so schedules (progress measured as
    ``1 - num_timesteps / total``) continue where they were instead of restarting.
    """
    return max(0, int(model._total_timesteps) - int(model.num_timesteps))
