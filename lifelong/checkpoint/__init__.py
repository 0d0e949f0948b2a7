"""Safe, atomic, verified, exactly resumable checkpoints (see docs/checkpoints.md).

- :func:`save_model` / :func:`load_model`: a model to / from one file (what ``model.save`` and
  ``DistributionalPPO.load`` call).
- :func:`save_state` / :func:`load_state`: the same state in memory (PBT exploit), same code path.
- :func:`verify`: check a file completely; returns its manifest.
- :class:`CheckpointManager`: numbered checkpoints in a directory, rotation, latest valid one.
- :func:`remaining_timesteps`: how many steps a resumed run still has to go to its original total.
"""
from lifelong.checkpoint.archive import FORMAT_NAME, FORMAT_VERSION, read_archive, write_archive
from lifelong.checkpoint.manager import CheckpointManager
from lifelong.checkpoint.state import (
    ResumableCheckpointCallback,
    load_model,
    load_state,
    remaining_timesteps,
    restore_vec_normalize,
    save_model,
    save_state,
    verify,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointManager",
    "ResumableCheckpointCallback",
    "load_model",
    "load_state",
    "read_archive",
    "remaining_timesteps",
    "restore_vec_normalize",
    "save_model",
    "save_state",
    "verify",
    "write_archive",
]
