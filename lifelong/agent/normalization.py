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
  the optimizer's state (UPGD utilities, Adam moments).
* Two ways to weigh the past (``horizon``):

  - ``horizon=None`` (count-weighted, like ``VecNormalize``): every return of the run weighs
    the same, so the shift shrinks as ``1 / count``; right for a stationary reward scale, but
    after the reward scale changes the statistics need about as many new returns as they have
    seen to follow (a run that has trained 1M steps on rewards ~1 and then sees rewards ~100
    keeps a standard deviation far below 100 for another ~1M steps, and its critics' targets
    are then far outside the unit range they were initialised for).
  - ``horizon=H`` (exponential moving average over about ``H`` updates): a batch of ``n``
    returns merges with the weight ``r = max(n / (count + n), 1 / H)``: count-weighted (exactly
    the mean of everything seen) for the first ``H`` equal-sized updates, then an exponential
    moving average with rate ``1 / H``, whose statistics follow a changed reward scale within
    a few ``H`` updates. The cost: the statistics keep moving by ~``1/H`` of their noise per
    update, so the critics' de-normalised outputs keep shifting a little even when nothing
    changes.

  Either way the merge is that of two distributions with weights ``1 - r`` and ``r``
  (batch mean ``b``, variance ``c``, ``delta = b - mean``)::

      mean <- mean + r * delta
      var  <- (1 - r) * var + r * c + r * (1 - r) * delta^2
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

__all__ = ["ReturnNormalizer", "check_horizon"]


class ReturnNormalizer(nn.Module):
    """Running mean and variance of returns: count-weighted (parallel merge) or, with
    ``horizon``, an exponential moving average over about ``horizon`` updates.

    :param enabled: when False, never updates: normalisation is the identity.
    :param min_std: floor of the standard deviation used to (de-)normalise.
    :param horizon: ``None`` (count-weighted over the whole run) or a number >= 1: the
        statistics' memory in updates (calls of :meth:`update`), see the module docstring.
    """

    def __init__(self, enabled: bool = True, min_std: float = 1e-4, horizon: float | None = None) -> None:
        super().__init__()
        if not (isinstance(min_std, (int, float)) and min_std > 0):
            raise ValueError(f"min_std must be a positive number, got {min_std!r}")
        self.enabled = bool(enabled)
        self.min_std = float(min_std)
        self.horizon = check_horizon(horizon)
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
        elif self.horizon is not None:
            rate = max(n / (count + n), 1.0 / self.horizon)
            delta = b_mean - float(self.mean.item())
            mean = float(self.mean.item()) + rate * delta
            var = (1.0 - rate) * float(self.var.item()) + rate * b_var + rate * (1.0 - rate) * delta * delta
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
        return f"enabled={self.enabled}, min_std={self.min_std}, horizon={self.horizon}"


def check_horizon(horizon: object, name: str = "horizon") -> float | None:
    """``None`` or a finite number >= 1 (as float), else ``ValueError`` naming ``name``."""
    if horizon is None:
        return None
    if isinstance(horizon, bool) or not isinstance(horizon, (int, float, np.integer, np.floating)) or not (
        math.isfinite(float(horizon)) and horizon >= 1
    ):
        raise ValueError(
            f"{name}={horizon!r} is invalid: expected None (count-weighted statistics) or a number >= 1 "
            "(an exponential moving average over about that many updates)"
        )
    return float(horizon)
