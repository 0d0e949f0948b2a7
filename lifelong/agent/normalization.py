"""Running return statistics, so that a fixed categorical support fits any reward scale.

Semantics (what the critics predict and how a change of statistics shows up)
---------------------------------------------------------------------------
* The critics are trained on *normalised* returns ``(G - mean) / std``; every critic output
  (quantiles, or the atoms' support ``[v_min, v_max]``) is in these normalised units.
* Values in return units, as used by GAE, the time-limit bootstrap, ``critic_values`` and
  ``predict_values``, are de-normalised with the statistics *current at the time of the call*:
  ``V = mean + std * v``.
* The statistics are updated once per rollout, at the start of ``train()``, from that
  rollout's GAE returns (raw units), before the gradient epochs; the targets of those epochs are
  normalised with the updated statistics.
* Consequence: when the statistics change from ``(m, s)`` to ``(m', s')``, an unchanged network
  output ``v`` now means ``m' + s' v`` instead of ``m + s v``: every de-normalised value (and
  quantile) shifts by ``(m' - m) + (s' - s) v`` until the networks re-fit the new targets during
  that update's epochs. No output-preserving correction (PopArt) is made: a categorical head
  cannot be rescaled affinely, and editing weights outside the optimizer would desynchronise
  the optimizer's state (UPGD utilities, Adam moments). The statistics accumulate over the
  whole run (count-weighted, like ``VecNormalize``), so the shift shrinks as ``1 / count``.
* Value clipping (``clip_range_vf``) is applied to network outputs, i.e. in normalised units,
  so it is independent of the reward scale and of the statistics.

With ``enabled=False`` the statistics stay at mean 0, std 1 and every transform is the identity.

State: buffers ``mean``, ``var`` (float32) and ``count`` (float64). The normaliser is a
submodule of the policy (``policy.return_normalizer``), so its state is also part of
``policy.state_dict()`` (keys ``return_normalizer.mean/var/count``) and travels with
``get_parameters``/``set_parameters``; ``model.return_normalizer`` is the same object.
"""
from __future__ import annotations

import math

import numpy as np
import torch as th
from torch import nn

__all__ = ["ReturnNormalizer"]


class ReturnNormalizer(nn.Module):
    """Count-weighted running mean and variance of returns (parallel-merge update).

    :param enabled: when False, never updates: normalisation is the identity.
    :param min_std: floor of the standard deviation used to (de-)normalise.
    """

    def __init__(self, enabled: bool = True, min_std: float = 1e-4) -> None:
        super().__init__()
        if not (isinstance(min_std, (int, float)) and min_std > 0):
            raise ValueError(f"min_std must be a positive number, got {min_std!r}")
        self.enabled = bool(enabled)
        self.min_std = float(min_std)
        self.register_buffer("mean", th.zeros((), dtype=th.float32))
        self.register_buffer("var", th.ones((), dtype=th.float32))
        self.register_buffer("count", th.zeros((), dtype=th.float64))

    @property
    def std(self) -> th.Tensor:
        return self.var.clamp_min(0.0).sqrt().clamp_min(self.min_std)

    @th.no_grad()
    def update(self, returns: np.ndarray | th.Tensor) -> None:
        """Merge a batch of raw returns into the statistics (no-op when disabled or empty)."""
        if not self.enabled:
            return
        if isinstance(returns, th.Tensor):
            returns = returns.detach().cpu().numpy()
        x = np.asarray(returns, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        n = x.size
        if n == 0:
            return
        b_mean, b_var = float(x.mean()), float(x.var())
        count = float(self.count.item())
        if count == 0:
            mean, var = b_mean, b_var
        else:
            total = count + n
            delta = b_mean - float(self.mean.item())
            mean = float(self.mean.item()) + delta * n / total
            m2 = float(self.var.item()) * count + b_var * n + delta * delta * count * n / total
            var = m2 / total
        if math.isfinite(mean) and math.isfinite(var):
            self.mean.fill_(mean)
            self.var.fill_(var)
            self.count.fill_(count + n)

    def normalize(self, returns: th.Tensor) -> th.Tensor:
        """Raw returns -> normalised units (what the critics are trained on)."""
        return (returns - self.mean.to(returns.dtype)) / self.std.to(returns.dtype)

    def denormalize(self, values: th.Tensor) -> th.Tensor:
        """Normalised critic outputs -> return units, with the current statistics."""
        return th.addcmul(self.mean.to(values.dtype), values, self.std.to(values.dtype))

    def scale(self, values: th.Tensor) -> th.Tensor:
        """Normalised spreads (differences) -> return units: multiply by std only."""
        return values * self.std.to(values.dtype)

    def extra_repr(self) -> str:
        return f"enabled={self.enabled}, min_std={self.min_std}"
