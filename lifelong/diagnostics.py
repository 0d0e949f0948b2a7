"""Plasticity diagnostics for any torch model and for Stable-Baselines3 policies.

What is measured (all on one forward pass of a batch of inputs, under ``torch.no_grad``):

- **Dormant units** (Sokar et al., ICML 2023, "The dormant neuron phenomenon in deep RL"): for a
  layer with ``H`` units and activations ``h_i`` over the batch, unit ``i``'s score is
  ``s_i = mean|h_i| / ((1/H) * sum_k mean|h_k|)``; it is *tau-dormant* when ``s_i <= tau``.
  A layer whose activations are all zero has every unit dormant. Units are the last dimension of
  a 2-D output ``[batch, units]`` and dimension 1 (channels, averaged over the rest) otherwise.
- **Effective rank** of a feature matrix ``Phi [batch, units]``: by default Roy & Vetterli (2007),
  ``exp(H(p))`` with ``p_i = sigma_i / sum_j sigma_j`` the normalised singular values, a real
  number in ``[1, min(batch, units)]`` (0 for an all-zero matrix); ``method="srank"`` gives
  Kumar et al. (ICLR 2021)'s integer ``srank_delta``: the smallest ``k`` whose top-``k``
  singular values hold ``1 - delta`` of their sum (``delta=0.01``).
- **Weight norm**: the Frobenius norm of each layer's ``weight`` (every module that has a
  ``weight`` parameter: Linear, Conv, ...), and the L2 norm of all parameters together.
- **UPGD gating**: ``optimizer.gating_stats()`` (mean gate ``1 - s``, utility statistics) when the
  optimizer offers it.

Which layers: forward hooks on activation modules (``nn.ReLU``, ``nn.Tanh``, ... see
:data:`ACTIVATION_TYPES`), which is where units live in an MLP or CNN built from modules; if the
model has none, on the outputs of its ``nn.Linear`` / ``nn.Conv*`` modules instead. Pass
``layers=[names]`` to choose.

For a Stable-Baselines3 policy, :func:`policy_diagnostics` returns a flat ``dict[str, float]``:
``plasticity/dormant_fraction`` (dormant units / all hooked units), ``plasticity/effective_rank``
(mean over the *last* hidden layer of each sub-network, e.g. the actor's and each critic's),
``plasticity/weight_norm`` (L2 norm of all parameters), and the per-layer
``plasticity/dormant_fraction/<layer>``, ``plasticity/effective_rank/<layer>``,
``plasticity/weight_norm/<layer>``, plus ``plasticity/upgd_*`` when given a UPGD optimizer.
Cost: one actor and one critic forward of the batch plus an SVD per layer; on 256 CartPole
observations with a 64-64 MLP it is a few milliseconds.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from torch import nn

__all__ = [
    "ACTIVATION_TYPES",
    "capture_activations",
    "dormant_units",
    "dormant_fraction",
    "effective_rank",
    "weight_norms",
    "upgd_gate_stats",
    "GATE_BINS",
    "gate_histogram",
    "upgd_gates",
    "upgd_gate_histogram",
    "model_diagnostics",
    "policy_diagnostics",
    "observations_from_buffer",
    "PlasticityCallback",
]

#: module types whose outputs are treated as a layer's units
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
    nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid,
)
_WEIGHTED_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


# --------------------------------------------------------------------------------- validation
def _check_tau(tau: Any) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) \
            or tau < 0:
        raise ValueError(f"tau must be a finite float >= 0, got {tau!r}")
    return float(tau)


def _as_units(act: torch.Tensor) -> torch.Tensor:
    """``[N, units]`` view of a 1-D or 2-D layer output."""
    return act.reshape(-1, 1) if act.dim() == 1 else act


def _unit_means(act: torch.Tensor) -> torch.Tensor:
    """Mean |activation| per unit, averaged over batch (and spatial positions)."""
    a = act.detach().abs().float()
    if a.dim() <= 2:
        return _as_units(a).mean(dim=0)
    dims = [d for d in range(a.dim()) if d != 1]
    return a.mean(dim=dims)


# ------------------------------------------------------------------------------- activations
def _default_layers(model: nn.Module) -> list[str]:
    names = [n for n, m in model.named_modules() if isinstance(m, ACTIVATION_TYPES)]
    if not names:
        names = [n for n, m in model.named_modules() if isinstance(m, _WEIGHTED_TYPES)]
    return names


@contextmanager
def capture_activations(model: nn.Module, layers: Sequence[str] | None = None,
                        repeat: str = "all"):
    """Context manager: records the outputs of ``layers`` (module names; default: activation
    modules, else Linear/Conv modules) during forwards inside the block.

    Yields a dict ``{layer name: tensor}`` filled in forward order. A module called several
    times is recorded as ``name``, ``name#1``, ... (``repeat="all"``) or only the first time
    (``repeat="first"``). Hooks are removed on exit, also after an exception.
    """
    if repeat not in ("all", "first"):
        raise ValueError(f"repeat must be 'all' or 'first', got {repeat!r}")
    modules = dict(model.named_modules())
    names = _default_layers(model) if layers is None else list(layers)
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"layers: no module named {unknown} in {type(model).__name__}")
    store: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def make_hook(name: str):
        def hook(_module, _inputs, output):
            if not isinstance(output, torch.Tensor):
                return
            k = counts.get(name, 0)
            counts[name] = k + 1
            if k and repeat == "first":
                return
            store[name if k == 0 else f"{name}#{k}"] = output.detach()
        return hook

    handles = [modules[n].register_forward_hook(make_hook(n)) for n in names]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


# ----------------------------------------------------------------------------------- dormant
def dormant_units(activations: torch.Tensor, tau: float = 0.025) -> torch.Tensor:
    """Boolean mask of tau-dormant units of one layer's activations ``[batch, units]`` (or
    ``[batch, channels, ...]``). A layer that is zero everywhere is entirely dormant."""
    tau = _check_tau(tau)
    means = _unit_means(activations)
    layer_mean = means.mean()
    if not torch.isfinite(layer_mean) or layer_mean <= 0:
        return torch.ones_like(means, dtype=torch.bool)
    return (means / layer_mean) <= tau


def dormant_fraction(model_or_activations, inputs: Any = None, tau: float = 0.025,
                     layers: Sequence[str] | None = None) -> dict[str, float] | float:
    """Fraction of tau-dormant units.

    ``dormant_fraction(tensor, tau=...)`` -> float, for one layer's activations.
    ``dormant_fraction(model, inputs, tau=..., layers=None)`` -> ``{layer: fraction}`` for the
    hooked layers of ``model`` on ``inputs`` (a tensor, a tuple of positional arguments, or a
    dict of keyword arguments) plus ``"all"``: dormant units over all units.
    """
    if isinstance(model_or_activations, torch.Tensor):
        return float(dormant_units(model_or_activations, tau).float().mean())
    acts = _run(model_or_activations, inputs, layers)
    out: dict[str, float] = {}
    dead = total = 0
    for name, act in acts.items():
        mask = dormant_units(act, tau)
        out[name] = float(mask.float().mean())
        dead += int(mask.sum())
        total += mask.numel()
    out["all"] = dead / total if total else 0.0
    return out


# ------------------------------------------------------------------------------ effective rank
def effective_rank(features: torch.Tensor | np.ndarray, method: str = "roy",
                   delta: float = 0.01) -> float:
    """Effective rank of a feature matrix ``[batch, units]`` (higher-dimensional inputs are
    flattened to ``[batch, -1]``).

    ``method="roy"`` (default): Roy & Vetterli's ``exp(entropy(sigma / sum(sigma)))``, a float in
    ``[1, min(batch, units)]``. ``method="srank"``: Kumar et al.'s smallest ``k`` with
    ``sum(sigma[:k]) >= (1 - delta) * sum(sigma)``. An all-zero (or empty) matrix has rank 0.
    """
    if method not in ("roy", "srank"):
        raise ValueError(f"method must be 'roy' or 'srank', got {method!r}")
    if not (isinstance(delta, (int, float)) and 0 <= delta < 1):
        raise ValueError(f"delta must be a float in [0, 1), got {delta!r}")
    x = torch.as_tensor(features).detach()
    eps = torch.finfo(x.dtype if x.is_floating_point() else torch.float64).eps
    x = x.double()
    if x.dim() == 1:
        x = x.reshape(-1, 1)
    x = x.reshape(x.shape[0], -1)
    if x.numel() == 0 or not torch.isfinite(x).all():
        return 0.0 if x.numel() == 0 else float("nan")
    sigma = torch.linalg.svdvals(x)
    total = sigma.sum()
    if total <= 0:
        return 0.0
    # singular values below the input's numerical precision are zero (as matrix_rank does):
    # keeps a rank-r input at r
    tol = sigma.max() * max(x.shape) * eps
    sigma = torch.where(sigma > tol, sigma, torch.zeros_like(sigma))
    total = sigma.sum()
    p = sigma / total
    if method == "roy":
        nz = p[p > 0]
        return float(torch.exp(-(nz * nz.log()).sum()))
    cum = torch.cumsum(sigma, 0)
    k = int(torch.searchsorted(cum, (1 - delta) * total).item()) + 1
    return float(min(k, int((sigma > 0).sum())))


# --------------------------------------------------------------------------------- weight norm
def weight_norms(model: nn.Module) -> dict[str, float]:
    """``{layer: Frobenius norm}`` for every weight matrix or kernel of ``model`` (parameters
    with two or more dimensions, biases excepted, named after their module: ``"0"`` for ``model[0].weight``,
    ``"critics.weights.1"`` for a parameter list entry), plus ``"all"``: the L2 norm of all of the
    model's parameters (biases and 1-D parameters included)."""
    names, norms, sq = [], [], []
    with torch.no_grad():
        for name, p in model.named_parameters():
            x = p.detach().float()
            sq.append(x.pow(2).sum())
            if p.dim() >= 2 and not any(part.startswith("bias") for part in name.split(".")):
                names.append(name[:-len(".weight")] if name.endswith(".weight") else name)
                norms.append(x.norm())
        total = torch.stack(sq).sum().sqrt() if sq else torch.zeros(())
        values = torch.stack([*norms, total]).tolist()
    return dict(zip([*names, "all"], (float(v) for v in values)))


# ---------------------------------------------------------------------------------------- UPGD
def upgd_gate_stats(optimizer: Any) -> dict[str, float]:
    """``optimizer.gating_stats()`` as plain floats (``gate_mean``, ``utility_mean``,
    ``utility_max``, ``utility_min``); ``{}`` for an optimizer without it or before its first
    step."""
    fn = getattr(optimizer, "gating_stats", None)
    if fn is None or not callable(fn):
        return {}
    stats = fn() or {}
    return {str(k): float(v) for k, v in stats.items()}


#: default number of equal-width bins of the gate histogram over [0, 1]
GATE_BINS = 10


def gate_histogram(gates: torch.Tensor | Sequence[torch.Tensor], bins: int = GATE_BINS) -> list[float]:
    """Fractions of gate values in ``bins`` equal-width bins over ``[0, 1]`` (they sum to 1).

    Bin ``k`` holds ``k / bins <= g < (k + 1) / bins``; a gate of exactly 1 goes to the last bin.
    Non-finite values are not counted. ``[]`` when there is no finite value. The mean alone hides
    what the gate does: a gate at 0.5 everywhere (no protection at all) and half the weights
    frozen at 0 with half free at 1 have the same mean.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    parts = [gates] if isinstance(gates, torch.Tensor) else list(gates)
    if not parts:
        return []
    flat = torch.cat([g.detach().reshape(-1).double().cpu() for g in parts])
    flat = flat[torch.isfinite(flat)]
    if flat.numel() == 0:
        return []
    if bool(((flat < 0) | (flat > 1)).any()):
        raise ValueError(f"gate values must lie in [0, 1], got [{float(flat.min())}, {float(flat.max())}]")
    idx = (flat * bins).floor().clamp_(max=bins - 1).long()
    counts = torch.bincount(idx, minlength=bins).double()
    return (counts / counts.sum()).tolist()


def upgd_gates(optimizer: Any) -> list[torch.Tensor]:
    """The gate ``1 - s`` of every weight of a UPGD-family optimizer, one float64 tensor shaped
    like its parameter per parameter with state (in the optimizer's order); ``[]`` for another
    optimizer or before the first step: the optimizer's own :meth:`~lifelong.optim.AdaptiveUPGD.gates`
    (``1 - s = sigmoid(-û / (eta * gate_temperature))`` recomputed from its state, the same
    computation as its ``gating_stats``)."""
    fn = getattr(optimizer, "gates", None)
    return fn() if callable(fn) else []


def upgd_gate_histogram(optimizer: Any, bins: int = GATE_BINS) -> list[float]:
    """:func:`gate_histogram` of :func:`upgd_gates` (``[]`` without gates)."""
    gates = upgd_gates(optimizer)
    return gate_histogram(gates, bins) if gates else []


# -------------------------------------------------------------------------------- aggregation
def _run(model: nn.Module, inputs: Any, layers: Sequence[str] | None,
         repeat: str = "all") -> dict[str, torch.Tensor]:
    with torch.no_grad(), capture_activations(model, layers, repeat=repeat) as acts:
        if isinstance(inputs, Mapping):
            model(**inputs)
        elif isinstance(inputs, tuple):
            model(*inputs)
        else:
            model(inputs)
    return dict(acts)


def _last_per_parent(names: Iterable[str]) -> list[str]:
    """The last layer (in forward order) of each parent module: the last hidden layers."""
    last: dict[str, str] = {}
    for name in names:
        base = name.split("#")[0]
        parent = base.rsplit(".", 1)[0] if "." in base else ""
        last[parent] = name
    return list(last.values())


def _summarise(acts: Mapping[str, torch.Tensor], model: nn.Module, tau: float,
               rank_method: str, prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    dead = total = 0
    for name, act in acts.items():
        mask = dormant_units(act, tau)
        out[f"{prefix}/dormant_fraction/{name}"] = float(mask.float().mean())
        dead += int(mask.sum())
        total += mask.numel()
    ranks = {}
    for name, act in acts.items():
        ranks[name] = effective_rank(act.reshape(act.shape[0], -1) if act.dim() > 1 else act,
                                     method=rank_method)
        out[f"{prefix}/effective_rank/{name}"] = ranks[name]
    last = _last_per_parent(acts.keys())
    norms = weight_norms(model)
    for name, v in norms.items():
        if name != "all":
            out[f"{prefix}/weight_norm/{name}"] = v
    out[f"{prefix}/dormant_fraction"] = dead / total if total else 0.0
    out[f"{prefix}/effective_rank"] = float(np.mean([ranks[n] for n in last])) if last else 0.0
    out[f"{prefix}/weight_norm"] = norms["all"]
    return out


def model_diagnostics(model: nn.Module, inputs: Any, tau: float = 0.025,
                      layers: Sequence[str] | None = None, rank_method: str = "roy",
                      optimizer: Any = None, prefix: str = "plasticity") -> dict[str, float]:
    """All diagnostics of any torch model on ``inputs`` (tensor, tuple of args or dict of
    kwargs), as the flat dict described in the module docstring."""
    tau = _check_tau(tau)
    acts = _run(model, inputs, layers)
    out = _summarise(acts, model, tau, rank_method, prefix)
    out.update({f"{prefix}/upgd_{k}": v for k, v in upgd_gate_stats(optimizer).items()})
    return out


def policy_diagnostics(policy: nn.Module, observations: Any, optimizer: Any = None,
                       tau: float = 0.025, layers: Sequence[str] | None = None,
                       rank_method: str = "roy", prefix: str = "plasticity") -> dict[str, float]:
    """Diagnostics of a Stable-Baselines3 policy on a batch of observations.

    ``observations``: a numpy array (or dict of arrays) in the env's observation format, or a
    tensor already on the policy's device. Runs ``policy.get_distribution(obs)`` and
    ``policy.predict_values(obs)`` once each under ``torch.no_grad`` (no sampling, so the global
    random-number streams are untouched; the training mode is left as it is); a module reached
    by both (a shared feature extractor) is counted once. ``optimizer`` defaults to
    ``policy.optimizer``.
    """
    tau = _check_tau(tau)
    if isinstance(observations, torch.Tensor):
        obs = observations
    elif isinstance(observations, Mapping) and all(isinstance(v, torch.Tensor)
                                                   for v in observations.values()):
        obs = observations
    else:
        obs, _ = policy.obs_to_tensor(observations)
    # batched ensembles (modules with ``forward_hidden``, e.g. DistributionalPPO's twin critics)
    # compute [members, batch, units] activations: measured per member, not through hooks
    ensembles = {n: m for n, m in policy.named_modules()
                 if n and callable(getattr(m, "forward_hidden", None))}
    if layers is None:
        layers = [n for n in _default_layers(policy)
                  if not any(n.startswith(e + ".") for e in ensembles)]
    inputs: dict[str, torch.Tensor] = {}

    def grab(name: str):
        def hook(_module, args, _output):
            if name not in inputs and args and isinstance(args[0], torch.Tensor):
                inputs[name] = args[0].detach()
        return hook

    handles = [m.register_forward_hook(grab(n)) for n, m in ensembles.items()]
    try:
        with torch.no_grad(), capture_activations(policy, layers, repeat="first") as acts:
            policy.get_distribution(obs)
            policy.predict_values(obs)
        acts = dict(acts)
        with torch.no_grad():
            for name, x in inputs.items():
                _, hidden = ensembles[name].forward_hidden(x)
                for i, h in enumerate(hidden):
                    for k in range(h.shape[0]):
                        member = f"member{k}" if h.shape[0] > 1 else "shared"
                        acts[f"{name}.{member}.hidden{i}"] = h[k]
    finally:
        for h in handles:
            h.remove()
    out = _summarise(dict(acts), policy, tau, rank_method, prefix)
    if optimizer is None:
        optimizer = getattr(policy, "optimizer", None)
    out.update({f"{prefix}/upgd_{k}": v for k, v in upgd_gate_stats(optimizer).items()})
    return out


def observations_from_buffer(buffer: Any, n: int = 256) -> np.ndarray | dict[str, np.ndarray]:
    """Up to ``n`` evenly spaced observations from a Stable-Baselines3 rollout (or replay)
    buffer, without touching any random-number generator."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    size = buffer.buffer_size if getattr(buffer, "full", False) else buffer.pos
    obs = buffer.observations
    flattened = bool(getattr(buffer, "generator_ready", False))  # after RolloutBuffer.get()
    shapes = buffer.obs_shape

    def take(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        flat = a.reshape(-1, *shape) if flattened else a[:max(size, 1)].reshape(-1, *shape)
        idx = np.linspace(0, len(flat) - 1, num=min(n, len(flat))).round().astype(np.int64)
        return flat[np.unique(idx)]

    if isinstance(obs, Mapping):
        return {k: take(v, tuple(shapes[k])) for k, v in obs.items()}
    return take(obs, tuple(shapes))


# ------------------------------------------------------------------------------ SB3 callback
class PlasticityCallback(BaseCallback):
    """Logs :func:`policy_diagnostics` every ``every_rollouts`` rollouts of any on-policy
    Stable-Baselines3 algorithm (PPO, A2C, DistributionalPPO), on ``n_obs`` observations of the
    rollout just collected, through the algorithm's logger (so to TensorBoard/CSV)."""

    def __init__(self, every_rollouts: int = 10, n_obs: int = 256, tau: float = 0.025,
                 verbose: int = 0):
        super().__init__(verbose)
        if not isinstance(every_rollouts, int) or every_rollouts < 1:
            raise ValueError(f"every_rollouts must be a positive int, got {every_rollouts!r}")
        if not isinstance(n_obs, int) or n_obs < 2:
            raise ValueError(f"n_obs must be an int >= 2, got {n_obs!r}")
        self.every_rollouts = every_rollouts
        self.n_obs = n_obs
        self.tau = _check_tau(tau)
        self.rollouts = 0
        self.last: dict[str, float] = {}

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.rollouts += 1
        if (self.rollouts - 1) % self.every_rollouts:
            return
        buffer = getattr(self.model, "rollout_buffer", None)
        if buffer is None:
            return
        # buffer layout (a Discrete observation is stored as shape (1,)), as the policy's
        # training forward takes it: not the env format that ``obs_to_tensor`` checks
        obs = obs_as_tensor(observations_from_buffer(buffer, self.n_obs), self.model.device)
        self.last = policy_diagnostics(self.model.policy, obs, tau=self.tau)
        for k, v in self.last.items():
            self.logger.record(k, v)
