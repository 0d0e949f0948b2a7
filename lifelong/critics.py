"""Distributional value heads as pure tensor functions: quantile and categorical critics,
their losses, twin aggregation and CVaR.

Conventions: a *quantile* critic outputs ``[..., N]`` quantile estimates at the midpoints
``tau_i = (2i - 1) / 2N``; a *categorical* critic outputs ``[..., n_atoms]`` logits over the
evenly spaced support ``z_j = v_min + j (v_max - v_min) / (n_atoms - 1)``. Twin critics are
stacked on a leading dimension: ``[n_critics, batch, ...]``. All functions are differentiable
where that makes sense and have no Python loops over quantiles, atoms or critics.

Categorical projection: ``two_hot`` (default) or ``hl_gauss``
----------------------------------------------------------------
A scalar target ``G`` (a normalised GAE return) is turned into a distribution on the support:

* ``two_hot``: all mass on the two atoms around ``G`` (the C51 projection of a Dirac),
  ``p_l = (z_u - G) / dz``, ``p_u = (G - z_l) / dz``. Its mean is exactly ``G`` inside the
  support, so the minimiser of the expected cross-entropy, ``E[two_hot(G)]``, has mean exactly
  ``E[G]``: the categorical critic's expected value is an unbiased value estimate, which is what
  PPO's advantages need. It is also the cheapest and is hand-checkable.
* ``hl_gauss`` (Imani & White 2018; Farebrother et al. 2024): a Gaussian of std
  ``sigma_ratio * dz`` (0.75 by default) around ``G``, integrated over the atoms' bins and
  renormalised on the support. It spreads the gradient over neighbouring atoms (better
  generalisation in large value networks), but truncation at the edges biases the mean there.

Two-hot is the default because GAE consumes the critic's *mean*; HL-Gauss is available via
``categorical_projection="hl_gauss"``. Targets outside ``[v_min, v_max]`` are clamped to it;
the return normaliser keeps them well inside the default [-10, 10] on any reward scale.
"""
from __future__ import annotations

import math

import torch as th
import torch.nn.functional as F

__all__ = [
    "quantile_taus",
    "quantile_huber_loss",
    "categorical_support",
    "two_hot",
    "hl_gauss",
    "project_categorical",
    "categorical_cross_entropy",
    "categorical_expectation",
    "categorical_std",
    "aggregate",
    "aggregate_quantiles",
    "cvar_from_quantiles",
    "CRITICS",
    "AGGREGATIONS",
    "PROJECTIONS",
]

CRITICS = ("quantile", "categorical")
AGGREGATIONS = ("min", "mean")
PROJECTIONS = ("two_hot", "hl_gauss")


def quantile_taus(n_quantiles: int, device: th.device | str | None = None, dtype: th.dtype = th.float32) -> th.Tensor:
    """Quantile midpoints ``tau_i = (2i - 1) / 2N``, i = 1..N, shape ``[N]``."""
    if n_quantiles < 1:
        raise ValueError(f"n_quantiles must be >= 1, got {n_quantiles}")
    return (2 * th.arange(n_quantiles, device=device, dtype=dtype) + 1) / (2 * n_quantiles)


def quantile_huber_loss(
    quantiles: th.Tensor,
    target: th.Tensor,
    kappa: float = 1.0,
    taus: th.Tensor | None = None,
    reduce: bool = True,
) -> th.Tensor:
    """Quantile-Huber loss of quantile estimates ``[..., N]`` against scalar targets ``[...]``.

    ``u = target - q_i``; ``h(u) = u^2/2`` if ``|u| <= kappa`` else ``kappa (|u| - kappa/2)``;
    ``loss_i = |tau_i - 1{u < 0}| * h(u) / kappa``. With ``reduce`` the mean over the N
    quantiles is returned (shape ``[...]``), else the element-wise loss ``[..., N]``.
    """
    if kappa <= 0:
        raise ValueError(f"huber_kappa must be > 0, got {kappa}")
    if taus is None:
        taus = quantile_taus(quantiles.shape[-1], quantiles.device, quantiles.dtype)
    quantiles, target = th.broadcast_tensors(quantiles, target.unsqueeze(-1))
    # F.huber_loss is one fused autograd node (fewer nodes -> a cheaper backward on small nets)
    huber = F.huber_loss(quantiles, target, reduction="none", delta=kappa)
    with th.no_grad():
        weight = (taus - (target < quantiles).to(quantiles.dtype)).abs() / kappa
    loss = weight * huber
    return loss.mean(-1) if reduce else loss


def categorical_support(v_min: float, v_max: float, n_atoms: int, device=None, dtype=th.float32) -> th.Tensor:
    """The ``n_atoms`` evenly spaced atoms on ``[v_min, v_max]``."""
    if n_atoms < 2:
        raise ValueError(f"n_atoms must be >= 2, got {n_atoms}")
    if not v_min < v_max:
        raise ValueError(f"v_min must be < v_max, got v_min={v_min}, v_max={v_max}")
    return th.linspace(v_min, v_max, n_atoms, device=device, dtype=dtype)


def two_hot(target: th.Tensor, v_min: float, v_max: float, n_atoms: int) -> th.Tensor:
    """Mean-preserving projection of scalar targets ``[...]`` onto the support: ``[..., n_atoms]``."""
    dz = (v_max - v_min) / (n_atoms - 1)
    b = (target.clamp(v_min, v_max) - v_min) / dz
    lower = b.floor().clamp(0, n_atoms - 2)
    upper_w = (b - lower).unsqueeze(-1)
    lower_idx = lower.long().unsqueeze(-1)
    out = th.zeros(*target.shape, n_atoms, device=target.device, dtype=target.dtype)
    out.scatter_(-1, lower_idx, 1.0 - upper_w)
    out.scatter_add_(-1, lower_idx + 1, upper_w)
    return out


def hl_gauss(target: th.Tensor, v_min: float, v_max: float, n_atoms: int, sigma_ratio: float = 0.75) -> th.Tensor:
    """Histogram-loss Gaussian projection: N(target, (sigma_ratio*dz)^2) integrated over each
    atom's bin ``[z_j - dz/2, z_j + dz/2]``, renormalised to sum to 1: ``[..., n_atoms]``."""
    dz = (v_max - v_min) / (n_atoms - 1)
    sigma = sigma_ratio * dz
    edges = th.linspace(v_min - dz / 2, v_max + dz / 2, n_atoms + 1, device=target.device, dtype=target.dtype)
    t = target.clamp(v_min, v_max).unsqueeze(-1)
    cdf = 0.5 * (1.0 + th.erf((edges - t) / (sigma * math.sqrt(2.0))))
    mass = cdf[..., 1:] - cdf[..., :-1]
    return mass / (cdf[..., -1:] - cdf[..., :1]).clamp_min(1e-12)


def project_categorical(
    target: th.Tensor, v_min: float, v_max: float, n_atoms: int, projection: str = "two_hot"
) -> th.Tensor:
    """Dispatch to :func:`two_hot` or :func:`hl_gauss`."""
    if projection == "two_hot":
        return two_hot(target, v_min, v_max, n_atoms)
    if projection == "hl_gauss":
        return hl_gauss(target, v_min, v_max, n_atoms)
    raise ValueError(f"categorical_projection must be one of {PROJECTIONS}, got {projection!r}")


def categorical_cross_entropy(logits: th.Tensor, target_probs: th.Tensor) -> th.Tensor:
    """``-sum_j p_j log softmax(logits)_j`` over the last dimension."""
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(-1)


def categorical_expectation(logits: th.Tensor, support: th.Tensor) -> th.Tensor:
    """Expected value ``sum_j softmax(logits)_j z_j``."""
    return th.softmax(logits, dim=-1) @ support


def categorical_std(logits: th.Tensor, support: th.Tensor) -> th.Tensor:
    """Standard deviation of the categorical distribution."""
    p = th.softmax(logits, dim=-1)
    mean = p @ support
    return ((p @ (support * support)) - mean * mean).clamp_min(0.0).sqrt()


def aggregate(values: th.Tensor, how: str = "min") -> th.Tensor:
    """Aggregate critics stacked on dim 0 (``[n_critics, ...] -> [...]``) by ``min`` or ``mean``."""
    if how == "min":
        return values.amin(dim=0) if values.shape[0] > 1 else values[0]
    if how == "mean":
        return values.mean(dim=0)
    raise ValueError(f"value_aggregation must be one of {AGGREGATIONS}, got {how!r}")


def aggregate_quantiles(quantiles: th.Tensor, how: str = "min") -> th.Tensor:
    """One quantile function from the critics' ``[n_critics, ..., N]``: each critic's quantiles
    are sorted, then combined element-wise (``min``: the pointwise lower quantile function,
    pessimistic; ``mean``: quantile averaging, the Wasserstein-2 barycentre)."""
    return aggregate(quantiles.sort(dim=-1).values, how)


def cvar_from_quantiles(quantiles: th.Tensor, alpha: float) -> th.Tensor:
    """CVaR (mean of the lower ``alpha`` tail) of the distribution whose quantile function is
    piecewise constant at the sorted quantiles, quantile ``i`` covering ``[(i-1)/N, i/N]``:

    ``CVaR_alpha = (1/alpha) * sum_i q_(i) * |[(i-1)/N, i/N] ∩ [0, alpha]|``.
    ``alpha = 1`` gives the mean. ``[..., N] -> [...]``.
    """
    if not (0.0 < alpha <= 1.0):
        raise ValueError(f"cvar_alpha must be in (0, 1], got {alpha!r}")
    n = quantiles.shape[-1]
    q = quantiles.sort(dim=-1).values
    lo = th.arange(n, device=q.device, dtype=q.dtype) / n
    w = (th.clamp(lo + 1.0 / n, max=alpha) - lo).clamp_min(0.0) / alpha
    return q @ w
