"""The distributional critics: their settings (:class:`CriticSpec`), their network
(:class:`CriticEnsemble`) and their mathematics as pure tensor functions (quantile and
categorical heads, their losses, twin aggregation and CVaR).

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

The network
-----------
:class:`CriticEnsemble` holds ``n_members`` MLPs with independent parameters stored stacked
(``[n_members, in, out]`` per layer) and evaluated as one batched computation
(``torch.baddbmm``), so two critics cost about one wider matmul per layer instead of two
sequential networks (optionally one shared trunk with ``n_members`` heads).

The settings
------------
Both :class:`~lifelong.agent.ppo.DistributionalPPO` and
:class:`~lifelong.agent.policy.DistributionalActorCriticPolicy` hold a ``critic_spec`` and
expose its fields as read-only attributes (``critic``, ``n_quantiles``, ``huber_kappa``,
``n_atoms``, ``v_min``, ``v_max``, ``categorical_projection``, ``value_aggregation``,
``cvar_alpha``, ``normalize_returns``, ``normalize_returns_horizon``, ``quantile_mean_loss``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch as th
import torch.nn.functional as F
from torch import nn

from lifelong.agent.normalization import check_horizon

__all__ = ["quantile_taus", "quantile_huber_loss", "categorical_support", "two_hot", "hl_gauss", "project_categorical", "categorical_cross_entropy", "categorical_expectation", "categorical_std", "aggregate", "aggregate_quantiles", "cvar_from_quantiles", "mean_anchored_quantile_loss", "batch_mean_anchored_quantile_loss", "mean_anchored_quantile_terms", "sample_weights", "CRITICS", "QUANTILE_MEAN_LOSSES", "AGGREGATIONS", "PROJECTIONS", "CriticEnsemble", "CriticSpec", "CRITIC_SPEC_FIELDS", "validate_distributional_args", "critic_spec_attributes"]

CRITICS = ("quantile", "categorical")
QUANTILE_MEAN_LOSSES = ("squared_error", "quantile_huber")
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


def mean_anchored_quantile_loss(
    quantiles: th.Tensor,
    target: th.Tensor,
    kappa: float,
    taus: th.Tensor | None = None,
    old_quantiles: th.Tensor | None = None,
    clip_range: float | None = None,
) -> th.Tensor:
    """The quantile critic's loss with its mean learnt by squared error, per sample ``[...]``.

    With ``m = mean_i(q_i)`` and the deviations ``d_i = q_i - m``::

        L = (G - m)^2 + mean_i rho_kappa_tau_i(G - (sg(m) + d_i))

    (``sg``: stop-gradient; ``rho``: :func:`quantile_huber_loss`). The mean, the value PPO's
    advantages consume, regresses on the target exactly as Stable-Baselines3's value function
    does (squared error: a gradient proportional to the error); the quantile-Huber loss only
    shapes the deviations (its gradient is projected onto ``sum_i d_i = 0``). Why: the
    quantile-Huber gradient on a quantile is bounded by ``tau`` whatever the error (an L1-type
    loss), so a critic whose mean learns through it alone tracks the value slower, and PPO's
    advantages are noisier (docs/agent.md measures the cost). Fixed point: ``m = E[G]``, and the
    ``q_i`` are the return's quantiles shifted by a common offset that is zero when the midpoint
    quantiles average to the mean (to within their discretisation error).

    With ``n_quantiles = 1`` the deviation is 0: the gradient is exactly the squared error's
    (the quantile-Huber term is then logged but carries no gradient).
    ``old_quantiles`` and ``clip_range``: PPO's value clipping, applied to the mean as
    Stable-Baselines3 does (``max`` of the clipped and unclipped squared errors) and to every
    quantile of the deviation term (element-wise ``max``), against the rollout's prediction.
    """
    mean = quantiles.mean(-1)
    anchored = mean.detach().unsqueeze(-1) + (quantiles - mean.unsqueeze(-1))
    mean_loss = (target - mean).square()
    if clip_range is None:
        return mean_loss + quantile_huber_loss(anchored, target, kappa, taus)
    if old_quantiles is None:
        raise ValueError("value clipping needs the rollout's quantiles (old_quantiles)")
    old_mean = old_quantiles.mean(-1)
    clipped_mean = old_mean + (mean - old_mean).clamp(-clip_range, clip_range)
    clipped = old_quantiles + (anchored - old_quantiles).clamp(-clip_range, clip_range)
    shape_loss = th.maximum(
        quantile_huber_loss(anchored, target, kappa, taus, reduce=False),
        quantile_huber_loss(clipped, target, kappa, taus, reduce=False),
    ).mean(-1)
    return th.maximum(mean_loss, (target - clipped_mean).square()) + shape_loss


def mean_anchored_quantile_terms(
    quantiles: th.Tensor, target: th.Tensor, kappa: float, taus: th.Tensor, weights: th.Tensor
) -> tuple[th.Tensor, th.Tensor]:
    """:func:`batch_mean_anchored_quantile_loss`'s value and gradient, no autograd: ``(losses [n],
    d sum(losses) / d quantiles [n, B, N])`` for quantiles ``[n, B, N]``, targets ``[B]`` and
    per-sample ``weights [B]`` (summing to 1) of the mean over the batch."""
    n = quantiles.shape[-1]
    err = target - quantiles.mean(-1)  # G - m, [n, B]
    u = quantiles - target.unsqueeze(-1)  # q_i - G (the anchored quantiles' value is q_i)
    c = u.clamp(-kappa, kappa)  # Huber's derivative at u
    # rho's weight |tau_i - 1{u_i > 0}| / kappa times c: c and u share their sign, so
    # w_i c_i = (c_i / 2 + (1/2 - tau_i) |c_i|) / kappa (no comparison, no select)
    wc = th.addcmul(c * (0.5 / kappa), c.abs(), (0.5 - taus) / kappa)
    # Huber h(u) = c (u - c/2), so w h = w c (u - c/2)
    per_sample = th.addcmul((wc * th.add(u, c, alpha=-0.5)).mean(-1), err, err)
    losses = per_sample @ weights
    # dL/dq_j = -2 (G - m) / N + (w_j c_j - mean_i w_i c_i) / N, per sample, times its weight
    grad = (wc - wc.mean(-1, keepdim=True)).add_(err.unsqueeze(-1), alpha=-2.0)
    return losses, grad.mul_((weights / n).unsqueeze(-1))


class _BatchMeanAnchoredQuantileLoss(th.autograd.Function):
    """:func:`batch_mean_anchored_quantile_loss` as one autograd node: the forward pass computes
    the loss and its gradient in closed form, the backward pass scales that gradient."""

    @staticmethod
    def forward(ctx: Any, quantiles: th.Tensor, target: th.Tensor, kappa: float, taus: th.Tensor, weights: th.Tensor) -> th.Tensor:  # type: ignore[override]
        losses, grad = mean_anchored_quantile_terms(quantiles, target, kappa, taus, weights)
        ctx.save_for_backward(grad)
        return losses

    @staticmethod
    @th.autograd.function.once_differentiable
    def backward(ctx: Any, grad_losses: th.Tensor) -> tuple[th.Tensor | None, ...]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_losses.view(-1, 1, 1), None, None, None, None


def batch_mean_anchored_quantile_loss(
    quantiles: th.Tensor, target: th.Tensor, kappa: float, taus: th.Tensor, mask: th.Tensor | None = None
) -> th.Tensor:
    """Each critic's mean over the batch of :func:`mean_anchored_quantile_loss` (no value
    clipping): quantiles ``[n, B, N]``, targets ``[B]`` -> ``[n]``; with a boolean ``mask [B]``,
    the mean over the valid samples only.

    The same loss and gradient as the reference, computed in closed form as one autograd node
    (the reference records about thirty, and on PPO-sized critics their dispatch, broadcasts and
    type conversions cost more than the arithmetic). With ``u_i = q_i - G``, ``c_i =
    clamp(u_i, -kappa, kappa)`` (Huber's derivative), ``w_i = |tau_i - 1{u_i > 0}| / kappa`` and
    ``m = mean_i q_i``, per sample::

        L = (G - m)^2 + mean_i w_i c_i (u_i - c_i / 2)
        dL/dq_j = -2 (G - m) / N + (w_j c_j - mean_i w_i c_i) / N

    (the second term is the quantile-Huber gradient projected onto ``sum_j d_j = 0``, as the
    stop-gradient on the mean makes it). Equal to the reference to float rounding (tested).
    """
    if kappa <= 0:
        raise ValueError(f"huber_kappa must be > 0, got {kappa}")
    if quantiles.dim() != 3 or target.shape != quantiles.shape[1:2]:
        raise ValueError(f"expected quantiles [n, B, N] and targets [B], got {tuple(quantiles.shape)} and {tuple(target.shape)}")
    return _BatchMeanAnchoredQuantileLoss.apply(quantiles, target, float(kappa), taus, sample_weights(target, mask))


def sample_weights(like: th.Tensor, mask: th.Tensor | None) -> th.Tensor:
    """Weights ``[B]`` (``like``'s size and dtype) whose dot product with a per-sample ``x`` is
    its mean, over the samples where ``mask`` is true when one is given."""
    if mask is None:
        return th.full_like(like, 1.0 / like.shape[0])
    weights = mask.to(like.dtype)
    return weights / weights.sum()


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


class CriticEnsemble(nn.Module):
    """``n_members`` independent MLPs ``in_dim -> hidden... -> out_dim``, evaluated batched.

    Layer ``i`` holds ``weight_i [m, d_in, d_out]`` and ``bias_i [m, 1, d_out]`` where ``m`` is
    ``n_members`` (or 1 for the trunk layers when ``share_trunk``). ``forward(x [B, in_dim])``
    returns ``[n_members, B, out_dim]``. Member ``k``'s computation uses only slice ``k`` of every
    tensor, so the members' parameters and gradients are independent.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: list[int],
        n_members: int,
        out_dim: int,
        activation_fn: type[nn.Module] = nn.Tanh,
        share_trunk: bool = False,
    ) -> None:
        super().__init__()
        self.n_members = int(n_members)
        self.share_trunk = bool(share_trunk)
        dims = [int(in_dim), *[int(h) for h in hidden], int(out_dim)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            is_head = i == len(dims) - 2
            m = self.n_members if (is_head or not self.share_trunk) else 1
            self.weights.append(nn.Parameter(th.empty(m, d_in, d_out)))
            self.biases.append(nn.Parameter(th.zeros(m, 1, d_out)))
        self.activation = activation_fn()
        self.reset_parameters()

    @th.no_grad()
    def reset_parameters(self, ortho: bool = False, hidden_gain: float = math.sqrt(2), head_gain: float = 1.0) -> None:
        """Per member: orthogonal init (SB3's gains) when ``ortho``, else ``nn.Linear``'s default."""
        n_layers = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            d_in, d_out = w.shape[1], w.shape[2]
            for k in range(w.shape[0]):
                if ortho:
                    tmp = th.empty(d_out, d_in)
                    nn.init.orthogonal_(tmp, gain=head_gain if i == n_layers - 1 else hidden_gain)
                    w[k].copy_(tmp.t())
                    b[k].zero_()
                else:
                    bound = 1.0 / math.sqrt(d_in) if d_in > 0 else 0.0
                    w[k].uniform_(-bound, bound)
                    b[k].uniform_(-bound, bound)

    def forward_hidden(self, x: th.Tensor) -> tuple[th.Tensor, list[th.Tensor]]:
        """``(outputs [n, B, out], [post-activation hidden [n or 1, B, h] per hidden layer])``."""
        hidden: list[th.Tensor] = []
        h = x.unsqueeze(0)
        n_layers = len(self.weights)
        for i in range(n_layers):
            w, b = self.weights[i], self.biases[i]
            m = w.shape[0]
            if h.shape[0] != m:
                h = h.expand(m, -1, -1)
            h = th.baddbmm(b, h, w)
            if i < n_layers - 1:
                h = self.activation(h)
                hidden.append(h)
        return h, hidden

    def forward(self, x: th.Tensor) -> th.Tensor:
        h = x.unsqueeze(0)
        n_layers = len(self.weights)
        for i in range(n_layers):
            w, b = self.weights[i], self.biases[i]
            if h.shape[0] != w.shape[0]:
                h = h.expand(w.shape[0], -1, -1)
            h = th.baddbmm(b, h, w)
            if i < n_layers - 1:
                h = self.activation(h)
        return h

    def member_parameters(self, k: int) -> list[th.Tensor]:
        """Views of member ``k``'s slices of every layer (trunk slices shared when share_trunk)."""
        out = []
        for w, b in zip(self.weights, self.biases):
            j = k if w.shape[0] > 1 else 0
            out += [w[j], b[j]]
        return out


@dataclasses.dataclass(frozen=True)
class CriticSpec:
    """The critics' settings, as the algorithm and its policy store them (build with :meth:`build`)."""

    critic: str
    n_quantiles: int
    huber_kappa: float
    n_atoms: int
    v_min: float
    v_max: float
    categorical_projection: str
    value_aggregation: str
    cvar_alpha: float | None
    normalize_returns: bool
    normalize_returns_horizon: float | None = None
    quantile_mean_loss: str = "squared_error"

    @classmethod
    def build(
        cls,
        *,
        critic: Any,
        n_quantiles: Any,
        huber_kappa: Any,
        n_atoms: Any,
        v_min: Any,
        v_max: Any,
        categorical_projection: Any,
        value_aggregation: Any,
        cvar_alpha: Any,
        normalize_returns: Any,
        normalize_returns_horizon: Any = None,
        quantile_mean_loss: Any,
    ) -> CriticSpec:
        """Validate (:func:`validate_distributional_args`), then convert to plain Python types."""
        validate_distributional_args(
            critic=critic, n_quantiles=n_quantiles, huber_kappa=huber_kappa, n_atoms=n_atoms, v_min=v_min,
            v_max=v_max, categorical_projection=categorical_projection, value_aggregation=value_aggregation,
            cvar_alpha=cvar_alpha, quantile_mean_loss=quantile_mean_loss,
        )
        return cls(
            critic=critic,
            n_quantiles=int(n_quantiles),
            huber_kappa=float(huber_kappa),
            n_atoms=int(n_atoms),
            v_min=float(v_min),
            v_max=float(v_max),
            categorical_projection=categorical_projection,
            value_aggregation=value_aggregation,
            cvar_alpha=None if cvar_alpha is None else float(cvar_alpha),
            normalize_returns=bool(normalize_returns),
            normalize_returns_horizon=check_horizon(normalize_returns_horizon, "normalize_returns_horizon"),
            quantile_mean_loss=quantile_mean_loss,
        )

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments (of the policy's or the algorithm's constructor)."""
        return {f: getattr(self, f) for f in CRITIC_SPEC_FIELDS}


CRITIC_SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CriticSpec))


def critic_spec_attributes(cls: type) -> type:
    """Class decorator: one read-only property per :class:`CriticSpec` field, reading
    ``self.critic_spec`` (so the settings have a single source of truth)."""
    for name in CRITIC_SPEC_FIELDS:
        setattr(cls, name, property(lambda self, _n=name: getattr(self.critic_spec, _n), doc=f"``critic_spec.{name}``"))
    return cls


def validate_distributional_args(
    *,
    critic: Any,
    n_quantiles: Any,
    huber_kappa: Any,
    n_atoms: Any,
    v_min: Any,
    v_max: Any,
    categorical_projection: Any,
    value_aggregation: Any,
    cvar_alpha: Any,
    quantile_mean_loss: Any,
) -> None:
    """``ValueError`` naming the argument, the bad value and what is accepted."""

    def is_int(x: Any) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    def is_num(x: Any) -> bool:
        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)

    if critic not in CRITICS:
        raise ValueError(f"critic={critic!r} is not supported: accepted values are {list(CRITICS)}")
    if value_aggregation not in AGGREGATIONS:
        raise ValueError(f"value_aggregation={value_aggregation!r} is not supported: accepted values are {list(AGGREGATIONS)}")
    if quantile_mean_loss not in QUANTILE_MEAN_LOSSES:
        raise ValueError(
            f"quantile_mean_loss={quantile_mean_loss!r} is not supported: accepted values are {list(QUANTILE_MEAN_LOSSES)}"
        )
    if critic == "categorical" and quantile_mean_loss != "squared_error":
        raise ValueError(
            f"quantile_mean_loss={quantile_mean_loss!r} applies to critic='quantile' only (got critic='categorical', "
            "whose cross-entropy sets its mean): leave it at 'squared_error'"
        )
    if categorical_projection not in PROJECTIONS:
        raise ValueError(
            f"categorical_projection={categorical_projection!r} is not supported: accepted values are {list(PROJECTIONS)}"
        )
    if not is_int(n_quantiles) or n_quantiles < 1:
        raise ValueError(f"n_quantiles={n_quantiles!r} is invalid: expected an integer >= 1")
    if not is_num(huber_kappa) or huber_kappa <= 0:
        raise ValueError(f"huber_kappa={huber_kappa!r} is invalid: expected a finite number > 0")
    if not is_int(n_atoms) or n_atoms < 2:
        raise ValueError(f"n_atoms={n_atoms!r} is invalid: expected an integer >= 2")
    if not is_num(v_min) or not is_num(v_max) or not v_min < v_max:
        raise ValueError(f"v_min={v_min!r}, v_max={v_max!r} are invalid: expected finite numbers with v_min < v_max")
    if cvar_alpha is not None:
        if not is_num(cvar_alpha) or not (0.0 < cvar_alpha <= 1.0):
            raise ValueError(f"cvar_alpha={cvar_alpha!r} is invalid: expected None or a number in (0, 1]")
        if critic != "quantile":
            raise ValueError(
                f"cvar_alpha={cvar_alpha!r} requires critic='quantile' (got critic={critic!r}): "
                "CVaR is computed from the quantile distribution"
            )
