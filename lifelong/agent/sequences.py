"""sb3-contrib's recurrent rollout buffers, also holding the critics' raw rollout predictions.

The recurrent agent's minibatches are sequences padded to a common length (sb3-contrib's
``RecurrentRolloutBuffer.get``). Value clipping needs each critic's own *old* prediction for
every sample of a minibatch, padded the same way; recomputing it would need the LSTM's
sequences again, so the rollout stores what it computed anyway: ``critic_outputs[t, env] =
[n_critics, K]`` (quantiles or logits, normalised units). The buffers here add that array and
yield ``(samples, old critic outputs [n_critics, padded batch, K])`` pairs.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch as th
from sb3_contrib.common.recurrent.buffers import (
    RecurrentDictRolloutBuffer,
    RecurrentRolloutBuffer,
)

__all__ = ["SequenceRolloutBuffer", "DictSequenceRolloutBuffer", "sequence_buffer_class"]


class _CriticOutputs:
    """The critic-output array added to an sb3-contrib recurrent buffer (see the module docstring)."""

    critic_output_shape: tuple[int, int]

    def __init__(self, *args: Any, critic_output_shape: tuple[int, int], **kwargs: Any) -> None:
        self.critic_output_shape = (int(critic_output_shape[0]), int(critic_output_shape[1]))
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.critic_outputs = np.zeros((self.buffer_size, self.n_envs, *self.critic_output_shape), dtype=np.float32)

    def add(self, *args: Any, critic_outputs: th.Tensor, **kwargs: Any) -> None:
        """sb3-contrib's ``add`` plus ``critic_outputs [n_critics, n_envs, K]``."""
        self.critic_outputs[self.pos] = critic_outputs.transpose(0, 1).cpu().numpy()
        super().add(*args, **kwargs)  # type: ignore[misc]

    def rollout_critic_outputs(self) -> th.Tensor:
        """All stored critic outputs as ``[n_critics, buffer_size * n_envs, K]`` (any order)."""
        return th.as_tensor(self.critic_outputs.reshape(-1, *self.critic_output_shape), device=self.device).transpose(0, 1)

    def get(self, batch_size: int | None = None) -> Generator[tuple[Any, th.Tensor], None, None]:  # type: ignore[override]
        if not self.generator_ready:
            self.critic_outputs = self.swap_and_flatten(self.critic_outputs)
        yield from super().get(batch_size)  # type: ignore[misc]

    def _get_samples(self, batch_inds: np.ndarray, env_change: np.ndarray, env: Any = None) -> tuple[Any, th.Tensor]:  # type: ignore[override]
        samples = super()._get_samples(batch_inds, env_change, env)  # type: ignore[misc]
        padded = self.pad(self.critic_outputs[batch_inds])  # [n_seq, max_length, n_critics, K]
        return samples, padded.reshape(-1, *self.critic_output_shape).transpose(0, 1)


class SequenceRolloutBuffer(_CriticOutputs, RecurrentRolloutBuffer):
    """``RecurrentRolloutBuffer`` with the critics' rollout outputs."""


class DictSequenceRolloutBuffer(_CriticOutputs, RecurrentDictRolloutBuffer):
    """``RecurrentDictRolloutBuffer`` with the critics' rollout outputs."""


def sequence_buffer_class(dict_observations: bool) -> type:
    return DictSequenceRolloutBuffer if dict_observations else SequenceRolloutBuffer
