"""Continual RL: DistributionalPPO with Adam vs AdaptiveUPGD on a non-stationary CartPole.

The environment (default ``lifelong/PermutedCartPole-v0``: the 4 observation entries are
permuted anew every phase; phase 0 is the original task) changes every ``--every-steps`` steps
of each environment copy. Both agents use exactly the same DistributionalPPO settings and seeds;
only ``optimizer`` differs (``"adam"`` vs ``"adaptive_upgd"``, each at the same learning rate).
For each seed the task sequence is the same for both optimizers (schedule seed = run seed).

Measured per phase: the mean return of the episodes that end in that phase (per seed; the table
shows the median over seeds and [min, max]), and at the end of each phase the plasticity
diagnostics of :mod:`lifelong.diagnostics` (dormant-unit fraction, effective rank of the last
hidden layers, weight norm) and UPGD's mean gate.

Usage::

    python benchmarks/continual_rl.py            # full settings (about 10 minutes on 2 cores)
    python benchmarks/continual_rl.py --quick    # seconds, for tests
    python benchmarks/continual_rl.py --env lifelong/PermutedActionsCartPole-v0 --phases 12

Writes ``continual_rl.png`` and ``continual_rl.json`` to ``--out`` (default ``runs/benchmarks``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

OPTIMIZERS = ("adam", "adaptive_upgd")
LABELS = {"adam": "Adam", "adaptive_upgd": "AdaptiveUPGD"}


@dataclass
class Settings:
    env: str = "lifelong/PermutedCartPole-v0"
    phases: int = 10
    every_steps: int = 2_000          # per environment copy
    n_envs: int = 4
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    optimizers: tuple[str, ...] = OPTIMIZERS
    ppo: dict = field(default_factory=lambda: {
        "learning_rate": 1e-3, "n_steps": 128, "batch_size": 256, "n_epochs": 4,
        "gamma": 0.98, "gae_lambda": 0.8, "ent_coef": 0.0, "clip_range": 0.2,
        "vgs": True, "diagnostics_every": 0,
        "policy_kwargs": {"net_arch": [64, 64]},
    })

    @property
    def total_steps(self) -> int:
        return self.phases * self.every_steps * self.n_envs


def run_one(optimizer: str, seed: int, s: Settings) -> dict:
    """Train one agent; returns per-phase returns and end-of-phase diagnostics."""
    import torch
    torch.set_num_threads(1)
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    import lifelong  # noqa: F401  (registers the environments)
    from lifelong.diagnostics import upgd_gate_stats
    from lifelong.agent.ppo import DistributionalPPO

    env = make_vec_env(s.env, n_envs=s.n_envs, seed=seed,
                       env_kwargs={"every_steps": s.every_steps, "seed": seed})

    class Tracker(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns: list[list[float]] = [[] for _ in range(s.phases)]
            self.diag: list[dict] = [{} for _ in range(s.phases)]
            self.last_phase = 0

        def _on_step(self) -> bool:
            for info, done in zip(self.locals["infos"], self.locals["dones"]):
                if done and "episode" in info:
                    ph = min(int(info.get("phase", 0)), s.phases - 1)
                    self.returns[ph].append(float(info["episode"]["r"]))
            return True

        def _measure(self, phase: int) -> None:
            d = dict(self.model.plasticity_diagnostics())
            d.update({f"upgd_{k}": v for k, v in upgd_gate_stats(self.model.policy.optimizer).items()})
            self.diag[phase] = d

        def _on_rollout_end(self) -> None:
            phase = (self.num_timesteps // s.n_envs) // s.every_steps
            if phase != self.last_phase and self.last_phase < s.phases:
                self._measure(self.last_phase)   # last rollout of the phase that just ended
            self.last_phase = phase

        def _on_training_end(self) -> None:
            if self.last_phase < s.phases and not self.diag[self.last_phase]:
                self._measure(self.last_phase)

    t0 = time.perf_counter()
    model = DistributionalPPO("MlpPolicy", env, optimizer=optimizer, seed=seed, device="cpu",
                              verbose=0, **s.ppo)
    tracker = Tracker()
    model.learn(s.total_steps, callback=tracker)
    env.close()
    rets = [float(np.mean(r)) if r else float("nan") for r in tracker.returns]
    return {"optimizer": optimizer, "seed": seed, "phase_returns": rets,
            "episodes": [len(r) for r in tracker.returns], "diagnostics": tracker.diag,
            "seconds": time.perf_counter() - t0}


def _run_star(args):
    return run_one(*args)


def _mr(vals) -> str:
    v = np.asarray(vals, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return "n/a"
    return f"{np.median(v):6.1f} [{v.min():5.1f},{v.max():5.1f}]"


def summarise(runs: list[dict], s: Settings) -> dict:
    out = {}
    k = max(1, math.ceil(s.phases / 4))
    for opt in s.optimizers:
        rs = [r for r in runs if r["optimizer"] == opt]
        R = np.array([r["phase_returns"] for r in rs])                   # [seeds, phases]
        diag_keys = sorted({key for r in rs for d in r["diagnostics"] for key in d})
        diag = {key: np.array([[d.get(key, np.nan) for d in r["diagnostics"]] for r in rs])
                for key in diag_keys}
        out[opt] = {
            "returns": R.tolist(),
            "first_phase": R[:, 0].tolist(),
            "last_phases": np.nanmean(R[:, -k:], axis=1).tolist(),
            "all_phases": np.nanmean(R, axis=1).tolist(),
            "diagnostics": {key: v.tolist() for key, v in diag.items()},
        }
    out["last_k"] = k
    return out


def print_tables(summary: dict, s: Settings) -> None:
    opts = list(s.optimizers)
    print(f"Mean episode return per phase: median over {len(s.seeds)} seeds [min, max]")
    head = f"{'phase':>5} " + " ".join(f"{LABELS[o]:>24}" for o in opts)
    print(head)
    print("-" * len(head))
    for ph in range(s.phases):
        print(f"{ph:>5} " + " ".join(
            f"{_mr(np.array(summary[o]['returns'])[:, ph]):>24}" for o in opts))
    k = summary["last_k"]
    print("-" * len(head))
    for name, key in ((f"last {k}", "last_phases"), ("all", "all_phases")):
        print(f"{name:>5} " + " ".join(f"{_mr(summary[o][key]):>24}" for o in opts))
    print()
    print("Diagnostics at the end of the first and last phase (median over seeds): dormant = "
          "tau-dormant unit fraction (tau=0.025), eff. rank = effective rank of the last hidden "
          "layers (mean of actor and critics), |w| = L2 norm of all weights, gate = UPGD mean (1-s)")
    print(f"{'optimizer':<14} {'dormant':>15} {'eff. rank':>15} {'|w|':>15} {'gate':>15}")
    for o in opts:
        d = summary[o]["diagnostics"]

        def pair(key):
            if key not in d:
                return "-"
            v = np.array(d[key], dtype=float)
            return f"{np.nanmedian(v[:, 0]):.3g} -> {np.nanmedian(v[:, -1]):.3g}"
        print(f"{LABELS[o]:<14} {pair('plasticity/dormant_fraction'):>15} "
              f"{pair('plasticity/effective_rank'):>15} {pair('plasticity/weight_norm'):>15} "
              f"{pair('upgd_gate_mean'):>15}")


def plot(summary: dict, s: Settings, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [2, 1, 1]})
    phases = np.arange(s.phases)
    for o in s.optimizers:
        R = np.array(summary[o]["returns"], dtype=float)
        axes[0].plot(phases, np.nanmedian(R, 0), marker="o", label=LABELS[o])
        axes[0].fill_between(phases, np.nanmin(R, 0), np.nanmax(R, 0), alpha=0.15)
        for ax, key in ((axes[1], "plasticity/dormant_fraction"),
                        (axes[2], "plasticity/effective_rank")):
            if key in summary[o]["diagnostics"]:
                v = np.array(summary[o]["diagnostics"][key], dtype=float)
                ax.plot(phases, np.nanmedian(v, 0), marker="o", ms=3, label=LABELS[o])
    axes[0].set_title(f"{s.env}: phase = {s.every_steps} steps x {s.n_envs} envs")
    axes[0].set_xlabel("phase")
    axes[0].set_ylabel(f"mean episode return (median, range of {len(s.seeds)} seeds)")
    axes[1].set_title("dormant fraction (end of phase)")
    axes[2].set_title("effective rank (end of phase)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_xlabel("phase")
    axes[2].set_xlabel("phase")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny settings (seconds), for tests")
    ap.add_argument("--env", help="a registered lifelong/... id (or any id taking every_steps "
                                  "and seed keyword arguments)")
    ap.add_argument("--phases", type=int)
    ap.add_argument("--every-steps", type=int, help="phase length per environment copy")
    ap.add_argument("--seeds", type=int, help="number of seeds (1..N)")
    ap.add_argument("--lr", type=float, help="learning rate of both optimizers")
    ap.add_argument("--no-vgs", action="store_true", help="turn the variance gradient scaler off")
    ap.add_argument("--workers", type=int, default=None,
                    help="parallel processes (default: min(CPU count, runs))")
    ap.add_argument("--out", default="runs/benchmarks")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)

    s = Settings()
    if args.quick:
        s.phases, s.every_steps, s.n_envs, s.seeds = 2, 64, 2, (1, 2)
        s.ppo.update(n_steps=32, batch_size=64, n_epochs=1)
    if args.env:
        s.env = args.env
    for name in ("phases", "every_steps"):
        v = getattr(args, name)
        if v is not None:
            if v < 1:
                ap.error(f"--{name.replace('_', '-')} must be >= 1")
            setattr(s, name, v)
    if args.seeds is not None:
        if args.seeds < 1:
            ap.error("--seeds must be >= 1")
        s.seeds = tuple(range(1, args.seeds + 1))
    if args.lr is not None:
        s.ppo["learning_rate"] = args.lr
    if args.no_vgs:
        s.ppo["vgs"] = False

    jobs = [(o, sd, s) for sd in s.seeds for o in s.optimizers]
    workers = args.workers or (1 if args.quick else min(os.cpu_count() or 1, len(jobs)))
    print(f"{s.env}: {s.phases} phases x {s.every_steps} steps x {s.n_envs} envs "
          f"= {s.total_steps} steps per run; {len(jobs)} runs ({', '.join(s.optimizers)} x seeds "
          f"{list(s.seeds)}) on {workers} process(es); PPO {s.ppo}", flush=True)
    t0 = time.perf_counter()
    runs = []

    def report(r: dict) -> None:
        runs.append(r)
        rets = " ".join(f"{v:5.1f}" for v in r["phase_returns"])
        print(f"  {LABELS[r['optimizer']]:<13} seed {r['seed']}: {r['seconds']:4.0f} s, "
              f"return per phase: {rets}", flush=True)

    if workers == 1:
        for j in jobs:
            report(run_one(*j))
    else:
        import multiprocessing as mp
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            for r in ex.map(_run_star, jobs):
                report(r)
    print()
    summary = summarise(runs, s)
    print_tables(summary, s)
    payload = {"settings": asdict(s), "summary": summary, "runs": runs,
               "seconds": time.perf_counter() - t0}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "continual_rl.json").write_text(json.dumps(payload, indent=1, default=float))
    if not args.no_plot:
        plot(summary, s, out_dir / "continual_rl.png")
        print(f"wrote {out_dir / 'continual_rl.png'} and {out_dir / 'continual_rl.json'}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
