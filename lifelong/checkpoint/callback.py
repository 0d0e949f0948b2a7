"""Saving at rollout boundaries during training (:class:`ResumableCheckpointCallback`)."""
from __future__ import annotations

import os
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from lifelong.checkpoint.manager import CheckpointManager

__all__ = ["ResumableCheckpointCallback"]


class ResumableCheckpointCallback(BaseCallback):
    """Save through a :class:`~lifelong.checkpoint.CheckpointManager` at rollout boundaries.

    Stable-Baselines3's ``CheckpointCallback`` works with lifelong (it calls ``model.save``) but
    saves in the middle of a rollout, from which no exact resume is possible (the partial rollout
    is not in any checkpoint). This callback saves at the start of a rollout, right after the
    previous update, once at least ``save_freq`` steps have passed since its last save, and at the
    end of training: each of its checkpoints resumes exactly (except with gSDE, whose exploration
    noise is drawn just before) via ``learn(remaining_timesteps(model), reset_num_timesteps=False)``.
    """

    def __init__(self, save_freq: int, manager: Any, verbose: int = 0) -> None:
        super().__init__(verbose)
        if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1:
            raise ValueError(f"save_freq must be an integer >= 1, got {save_freq!r}")
        if isinstance(manager, (str, os.PathLike)):
            manager = CheckpointManager(manager)
        if not isinstance(manager, CheckpointManager):
            raise ValueError(f"manager must be a CheckpointManager or a directory, got {manager!r}")
        self.save_freq = save_freq
        self.manager = manager
        self.last_saved_step: int | None = None

    def _save(self) -> None:
        step = int(self.model.num_timesteps)
        if step == self.last_saved_step:
            return
        path = self.manager.save(self.model, step)
        self.last_saved_step = step
        if self.verbose >= 1:
            print(f"Saving checkpoint to {path}")

    def _on_training_start(self) -> None:
        if self.last_saved_step is None:
            self.last_saved_step = int(self.model.num_timesteps)

    def _on_rollout_start(self) -> None:
        if int(self.model.num_timesteps) - int(self.last_saved_step or 0) >= self.save_freq:
            self._save()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._save()
