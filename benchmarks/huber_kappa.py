"""How ``huber_kappa`` trades the bias of the learned quantiles against learning speed.

Quantile regression with the agent's own loss (``lifelong.agent.critics.quantile_huber_loss``,
N=32 midpoint quantiles) directly on samples of a skewed, unit-variance target, in the units the
critics use (returns normalised to mean 0, std 1). The 32 quantile values are free parameters
starting at 0 (a fresh critic head on normalised targets), trained by Adam (``lr``, minibatches
of ``batch`` samples, as a PPO minibatch of returns); ``seeds`` independent runs.

Targets: the standardised exponential ``E - 1`` (skewness 2), the standardised log-normal with
sigma 0.5 (skewness 1.75) and a standard normal as a symmetric control. Measured for each kappa:

* ``mean bias``: mean of the learned quantiles minus the mean of the true midpoint quantiles
  (the error of the critic's value, ``V = mean_i q_i``), in target standard deviations;
* ``spread``: standard deviation of the learned quantiles over that of the true ones (1 = the
  distribution's width is right);
* ``max err``: the largest ``|q_i - q_i*|``;
* ``steps to 0.1``: the first step at which the mean ``|q_i - q_i*|`` is below 0.1 (learning
  speed from a cold start), and ``steps to track``: after the target jumps by +1 standard
  deviation at mid-run, the steps until the mean error is below 0.1 again.

Final values are averaged over the last 10% of the steps and reported as mean [min, max] over
the seeds. Smaller kappa is closer to pure quantile regression (unbiased quantiles); kappa=0
below means 1e-6 (the loss is then ``|tau - 1{u<0}| * |u|`` up to 5e-7).

    python benchmarks/huber_kappa.py                     # the docs' table; ~7 CPU-minutes
    python benchmarks/huber_kappa.py --quick             # smoke, seconds
"""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

torch.set_num_threads(1)

from lifelong.agent.critics import quantile_huber_loss, quantile_taus  # noqa: E402

KAPPAS = (1.0, 0.3, 0.1, 0.03, 0.01, 0.0)
TINY = 1e-6


def _lognormal_params(sigma: float) -> tuple[float, float]:
    mean = math.exp(sigma**2 / 2)
    std = math.sqrt((math.exp(sigma**2) - 1) * math.exp(sigma**2))
    return mean, std


def sample(kind: str, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` samples of the named unit-variance, zero-mean target."""
    if kind == "exponential":
        return -torch.log1p(-torch.rand(n, generator=gen, dtype=torch.float64)).float() - 1.0
    if kind == "lognormal":
        m, s = _lognormal_params(0.5)
        return ((torch.randn(n, generator=gen) * 0.5).exp() - m) / s
    if kind == "normal":
        return torch.randn(n, generator=gen)
    raise ValueError(f"unknown target {kind!r}")


def true_quantiles(kind: str, taus: torch.Tensor) -> torch.Tensor:
    t = taus.double()
    if kind == "exponential":
        return (-torch.log1p(-t) - 1.0).float()
    normal = torch.distributions.Normal(0.0, 1.0).icdf(t)
    if kind == "lognormal":
        m, s = _lognormal_params(0.5)
        return (((normal * 0.5).exp() - m) / s).float()
    return normal.float()


def run(kind: str, kappa: float, seeds: int, steps: int, batch: int, lr: float, n_quantiles: int = 32,
        shift: float = 1.0) -> dict[str, np.ndarray]:
    """Train ``seeds`` independent quantile sets; per-seed final metrics and the two speeds."""
    gen = torch.Generator().manual_seed(1234)
    taus = quantile_taus(n_quantiles)
    q_true = true_quantiles(kind, taus)
    q = torch.zeros(seeds, n_quantiles, requires_grad=True)
    opt = torch.optim.Adam([q], lr=lr)
    half, tail = steps // 2, max(1, steps // 10)
    errs = np.zeros((steps, seeds))
    finals = []
    for t in range(steps):
        offset = shift if t >= half else 0.0
        target = sample(kind, seeds * batch, gen).view(seeds, batch) + offset
        loss = quantile_huber_loss(q.unsqueeze(1), target, max(kappa, TINY), taus).mean(-1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            ref = q_true + offset
            errs[t] = (q - ref).abs().mean(-1).numpy()
            if half - tail <= t < half:
                finals.append(q.detach().clone())
    qf = torch.stack(finals).mean(0)  # [seeds, N], averaged over the last 10% before the shift
    bias = (qf.mean(-1) - q_true.mean()).numpy()
    spread = (qf.std(-1) / q_true.std()).numpy()
    max_err = (qf - q_true).abs().max(-1).values.numpy()

    def first_below(lo: int, hi: int) -> np.ndarray:
        out = np.full(seeds, np.nan)
        for s in range(seeds):
            idx = np.nonzero(errs[lo:hi, s] < 0.1)[0]
            if idx.size:
                out[s] = idx[0]
        return out

    return dict(bias=bias, spread=spread, max_err=max_err, cold=first_below(0, half), track=first_below(half, steps))


def fmt(x: np.ndarray, spec: str) -> str:
    if np.isnan(x).any():
        return f"not reached ({int(np.isnan(x).sum())}/{x.size})"
    return f"{format(x.mean(), spec)} [{format(x.min(), spec)}, {format(x.max(), spec)}]"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20_000, help="Adam steps (the target jumps at half)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--quick", action="store_true", help="2 seeds, 2000 steps, lr 3e-3")
    a = p.parse_args(argv)
    if a.quick:
        a.seeds, a.steps, a.lr = 2, 2000, 3e-3
    print(f"N=32 quantiles, Adam lr={a.lr}, batch={a.batch}, {a.steps} steps (target +1 sd at {a.steps // 2}), "
          f"{a.seeds} seeds; mean [min, max] over seeds\n")
    results = {}
    for kind in ("exponential", "lognormal", "normal"):
        print(f"target: {kind}\n\n| kappa | mean bias (sd) | spread / true | max err | steps to 0.1 | steps to track |\n"
              "|---|---|---|---|---|---|")
        for kappa in KAPPAS:
            r = run(kind, kappa, a.seeds, a.steps, a.batch, a.lr)
            results[(kind, kappa)] = r
            print(f"| {kappa if kappa else '0 (1e-6)'} | {fmt(r['bias'], '+.3f')} | {fmt(r['spread'], '.3f')} | "
                  f"{fmt(r['max_err'], '.3f')} | {fmt(r['cold'], '.0f')} | {fmt(r['track'], '.0f')} |", flush=True)
        print()
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
