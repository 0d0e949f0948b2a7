"""Safe, atomic, verified, exactly resumable checkpoints (see docs/checkpoints.md).

- :func:`save_model` / :func:`load_model`: a model to / from one file (what ``model.save`` and
  ``DistributionalPPO.load`` call).
- :func:`save_state` / :func:`load_state`: the same state in memory (PBT exploit), same code path.
- :func:`verify`: check a file completely; returns its manifest.
- :class:`CheckpointManager`: numbered checkpoints in a directory, rotation, latest valid one.
- :func:`register_classes`: allow files to name more classes (the one registry of
  :mod:`~lifelong.checkpoint.codec`; a file never causes an import).
- :func:`remaining_timesteps`: how many steps a resumed run still has to go to its original total.
"""
from lifelong.checkpoint.archive import (
    FORMAT_NAME,
    FORMAT_VERSION,
    read_archive,
    write_archive,
)
from lifelong.checkpoint.callback import ResumableCheckpointCallback
from lifelong.checkpoint.capture import save_model, save_state
from lifelong.checkpoint.codec import register_classes
from lifelong.checkpoint.counters import remaining_timesteps
from lifelong.checkpoint.env_state import restore_env_streams, restore_vec_normalize
from lifelong.checkpoint.manager import CheckpointManager
from lifelong.checkpoint.members import verify
from lifelong.checkpoint.restore import load_model, load_state

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointManager",
    "ResumableCheckpointCallback",
    "load_model",
    "load_state",
    "read_archive",
    "register_classes",
    "remaining_timesteps",
    "restore_env_streams",
    "restore_vec_normalize",
    "save_model",
    "save_state",
    "verify",
    "write_archive",
]
