"""Batched networks and update rules for ``plasticity_digits.py``: many independent MLPs trained
at once, weights with a leading run dimension (``[R, fan_in, fan_out]``, ``torch.bmm``), and
re-implementations of SGD, Adam, UPGD, AdaptiveUPGD and Shrink & Perturb whose hyperparameters
are per run; each run keeps its own global UPGD utility maximum, exactly as if it ran alone.

:func:`verify_engine` checks every rule step by step against ``torch.optim.SGD``/``Adam`` and
``lifelong.UPGD``/``AdaptiveUPGD`` (noise off): a change to the library's arithmetic must be
mirrored here, or the benchmark refuses to run.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OPTIMIZERS = ("sgd", "adam", "upgd", "adaptive_upgd", "shrink_perturb")
BETA_UTILITY = 0.999
BETAS = (0.9, 0.999)
EPS = 1e-8


# ------------------------------------------------------------------------ batched networks
def init_params(seeds: list[int], sizes: list[int]) -> list[torch.Tensor]:
    """nn.Linear's default initialisation, one independent network per seed: weights
    ``[R, fan_in, fan_out]``, biases ``[R, 1, fan_out]``."""
    per_run = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        layers = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound
            b = (torch.rand(fan_out, generator=g) * 2 - 1) * bound
            layers += [w.t().contiguous(), b.reshape(1, -1)]
        per_run.append(layers)
    return [torch.stack([run[i] for run in per_run]).requires_grad_(True)
            for i in range(len(per_run[0]))]


def forward(params: list[torch.Tensor], x: torch.Tensor, return_hidden: bool = False):
    """x [R, B, in] -> logits [R, B, out] (ReLU between layers)."""
    h, hidden = x, []
    n = len(params) // 2
    for i in range(n):
        h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if i < n - 1:
            h = torch.relu(h)
            hidden.append(h)
    return (h, hidden) if return_hidden else h


# ------------------------------------------------------------------------ batched optimizers
def _shared(configs: list[dict], key: str, default: str, allowed: tuple[str, ...]) -> str:
    values = {c.get(key, default) for c in configs}
    if len(values) != 1 or not values <= set(allowed):
        raise ValueError(f"{key}: the runs of one batched optimizer share one value in {allowed}, "
                         f"got {sorted(values)}")
    return values.pop()


class BatchedOptimizer:
    """The five update rules, for parameters with a leading run dimension; hyperparameters are
    per run. Same arithmetic as torch.optim.SGD/Adam and lifelong.UPGD/AdaptiveUPGD."""

    def __init__(self, kind: str, params: list[torch.Tensor], configs: list[dict[str, float]],
                 noise_seed: int = 0):
        if kind not in OPTIMIZERS:
            raise ValueError(f"kind must be one of {OPTIMIZERS}, got {kind!r}")
        self.kind, self.params, self.t = kind, params, 0
        R = params[0].shape[0]
        if len(configs) != R:
            raise ValueError(f"configs: need one per run ({R}), got {len(configs)}")

        def hp(name: str, default: float = 0.0) -> torch.Tensor:
            return torch.tensor([float(c.get(name, default)) for c in configs]).reshape(R, 1, 1)

        self.lr, self.sigma, self.wd = hp("lr"), hp("sigma"), hp("weight_decay")
        # mechanisms of lifelong.optim (off values give the paper's rule): decay toward the
        # initial weights, gate temperature per run; gate and utility modes shared by all runs
        self.l2, self.temperature = hp("l2_init"), hp("gate_temperature", 1.0)
        self.gate = _shared(configs, "gate", "global", ("global", "layer", "none"))
        self.utility = _shared(configs, "utility", "weight", ("weight", "unit"))
        self.any_l2 = bool((self.l2 > 0).any())
        self.initial = [p.detach().clone() for p in params] if self.any_l2 else []
        self.any_noise = bool((self.sigma > 0).any())
        self.gen = torch.Generator().manual_seed(noise_seed)
        zeros = [torch.zeros_like(p) for p in params]
        self.u = [z.clone() for z in zeros]
        self.m = [z.clone() for z in zeros]
        self.v = [z.clone() for z in zeros]

    def _noise(self, p: torch.Tensor) -> torch.Tensor:
        return torch.randn(p.shape, generator=self.gen)

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        t, kind = self.t, self.kind
        grads = [p.grad for p in self.params]
        if kind == "sgd":
            for p, g in zip(self.params, grads):
                p.sub_(self.lr * g)
            return
        if kind == "shrink_perturb":
            for p, g in zip(self.params, grads):
                d = g + self.sigma * self._noise(p) if self.any_noise else g
                p.mul_(1.0 - self.lr * self.wd).sub_(self.lr * d)
            return
        b1, b2 = BETAS
        if kind in ("adam", "adaptive_upgd"):
            for g, m, v in zip(grads, self.m, self.v):
                m.lerp_(g, 1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        if kind == "adam":
            for p, m, v in zip(self.params, self.m, self.v):
                denom = (v.sqrt() / math.sqrt(c2)).add_(EPS)
                p.sub_((self.lr / c1) * m / denom)
            return
        # UPGD / AdaptiveUPGD (lifelong.optim.upgd arithmetic, eta per run). Weights are
        # [R, fan_in, fan_out]: a unit is an output column; a bias element is its own unit.
        bu = BETA_UTILITY
        corr = 1.0 - bu ** t
        unit = self.utility == "unit"
        tiny, big = torch.finfo(torch.float32).tiny, torch.finfo(torch.float32).max
        run_max, layer_max = None, []
        for p, g, u in zip(self.params, grads, self.u):
            x = torch.mul(g, p)
            if unit and p.shape[1] > 1:
                x = x.sum(dim=1, keepdim=True)
            u.mul_(bu).add_(x, alpha=-(1.0 - bu))
            mx = u.amax(dim=(1, 2))
            layer_max.append(mx)
            run_max = mx if run_max is None else torch.maximum(run_max, mx)
        adaptive = kind == "adaptive_upgd"
        sqrt_c2 = math.sqrt(c2)
        step_scale = sqrt_c2 / c1 if adaptive else 1.0
        for i, (p, g, u, m, v) in enumerate(zip(self.params, grads, self.u, self.m, self.v)):
            mx = layer_max[i] if self.gate == "layer" else run_max
            eta = (mx / corr).clamp(tiny, big).reshape(-1, 1, 1)
            scale = torch.div(-1.0 / corr, eta * self.temperature).clamp_min(-big)
            gate = torch.sigmoid(u * scale) if self.gate != "none" else torch.full_like(u, 0.5)  # 1 - s
            d = m / (v.sqrt() + EPS * sqrt_c2) if adaptive else g          # d / step_scale
            if self.any_noise:
                d = d + self._noise(p) * (self.sigma / step_scale)
            p.mul_(1.0 - self.lr * self.wd - self.lr * self.l2)
            if self.any_l2:
                p.add_(self.lr * self.l2 * self.initial[i])
            p.sub_((2.0 * self.lr * step_scale) * d * gate)            # factor-2 step convention


def verify_engine(steps: int = 25, hidden: int = 32, batch: int = 8) -> float:
    """Largest absolute difference between the batched rules (R=1) and the reference optimizers
    after ``steps`` updates on random data (noise off). Raises if above 1e-5."""
    from torch import nn

    from lifelong.optim import UPGD, AdaptiveUPGD
    refs = {
        "sgd": (lambda ps: torch.optim.SGD(ps, lr=0.05), {"lr": 0.05}),
        "adam": (lambda ps: torch.optim.Adam(ps, lr=1e-3), {"lr": 1e-3}),
        "upgd": (lambda ps: UPGD(ps, lr=0.05, sigma=0.0, weight_decay=1e-3),
                 {"lr": 0.05, "sigma": 0.0, "weight_decay": 1e-3}),
        "adaptive_upgd": (lambda ps: AdaptiveUPGD(ps, lr=1e-3, sigma=0.0, weight_decay=1e-3),
                          {"lr": 1e-3, "sigma": 0.0, "weight_decay": 1e-3}),
        "shrink_perturb": (lambda ps: torch.optim.SGD(ps, lr=0.05), {"lr": 0.05}),
    }
    mechanisms = {"l2_init": 0.5, "gate": "layer", "gate_temperature": 0.3, "utility": "unit"}
    try:
        AdaptiveUPGD([torch.zeros(1, requires_grad=True)], **mechanisms)
    except TypeError:                          # a lifelong.optim without these keywords
        mechanisms = {}
    if mechanisms:
        for name, kind, cls, lr in (("upgd+mech", "upgd", UPGD, 0.05),
                                    ("adaptive_upgd+mech", "adaptive_upgd", AdaptiveUPGD, 1e-3)):
            for gate, utility in (("layer", "unit"), ("global", "weight"), ("none", "weight")):
                mech = {**mechanisms, "gate": gate, "utility": utility}
                cfg = {"lr": lr, "sigma": 0.0, "weight_decay": 1e-3, **mech}
                refs[f"{name}/{gate}/{utility}"] = (
                    lambda ps, cls=cls, cfg=cfg: cls(ps, **cfg), cfg, kind)
    g = torch.Generator().manual_seed(7)
    xs = torch.rand(steps, batch, 64, generator=g)
    ys = torch.randint(0, 10, (steps, batch), generator=g)
    worst = 0.0
    for name, (make_ref, cfg, *kind) in refs.items():
        kind = kind[0] if kind else name
        params = init_params([3], [64, hidden, hidden, 10])
        net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                            nn.Linear(hidden, 10))
        with torch.no_grad():
            for i, lin in enumerate([net[0], net[2], net[4]]):
                lin.weight.copy_(params[2 * i][0].t())
                lin.bias.copy_(params[2 * i + 1][0, 0])
        opt = BatchedOptimizer(kind, params, [cfg])
        ref = make_ref(list(net.parameters()))
        for s in range(steps):
            loss = F.cross_entropy(forward(params, xs[s:s + 1])[0], ys[s])
            for p in params:
                p.grad = None
            loss.backward()
            opt.step()
            ref.zero_grad()
            F.cross_entropy(net(xs[s]), ys[s]).backward()
            ref.step()
        with torch.no_grad():
            for i, lin in enumerate([net[0], net[2], net[4]]):
                worst = max(worst, float((lin.weight - params[2 * i][0].t()).abs().max()),
                            float((lin.bias - params[2 * i + 1][0, 0]).abs().max()))
    if worst > 1e-5:
        raise AssertionError(f"batched optimizers differ from the references by {worst:.3g}")
    return worst
