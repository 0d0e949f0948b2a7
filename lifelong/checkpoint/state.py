"""Capture and restore the full training state of a model (files and memory share this code).

The code lives in modules by concept; this module keeps their names importable from here:

- :mod:`~lifelong.checkpoint.members`: the members of a checkpoint (what each holds), their
  checks, :func:`verify`
- :mod:`~lifelong.checkpoint.capture`: model -> members (:func:`save_state`, :func:`save_model`)
- :mod:`~lifelong.checkpoint.restore`: members -> model (:func:`load_state`, :func:`load_model`)
- :mod:`~lifelong.checkpoint.rng`: the random states
- :mod:`~lifelong.checkpoint.env_state`: last observations, episode starts, ``VecNormalize``
  statistics (:func:`restore_vec_normalize`)
- :mod:`~lifelong.checkpoint.counters`: counters and hyperparameters (:func:`remaining_timesteps`)
- :mod:`~lifelong.checkpoint.callback`: :class:`ResumableCheckpointCallback`
"""
from __future__ import annotations

from lifelong.checkpoint.callback import ResumableCheckpointCallback
from lifelong.checkpoint.capture import save_model, save_state
from lifelong.checkpoint.counters import COUNTERS, remaining_timesteps  # noqa: F401  (COUNTERS: as before)
from lifelong.checkpoint.env_state import restore_vec_normalize
# the member names stay importable from here (lifelong.evaluate reads VEC_NORMALIZE)
from lifelong.checkpoint.members import (  # noqa: F401
    ENV_STATE,
    META,
    OPTIMIZER,
    POLICY,
    REQUIRED,
    RNG,
    VEC_NORMALIZE,
    VGS,
    verify,
)
from lifelong.checkpoint.restore import load_model, load_state

__all__ = [
    "save_state",
    "load_state",
    "save_model",
    "load_model",
    "remaining_timesteps",
    "restore_vec_normalize",
    "ResumableCheckpointCallback",
    "verify",
]
