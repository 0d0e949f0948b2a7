"""Return normalisation under a changing reward scale: count-weighted statistics vs an
exponential moving average (``normalize_returns_horizon``).

``lifelong/ScaledRewardsCartPole-v0``: CartPole whose reward is multiplied by 1, 10, 0.1, 1, ...
per phase of ``--every`` steps of each environment copy (all copies change together), beside
plain ``CartPole-v1`` (stationary). The default ``DistributionalPPO`` with rl-zoo's CartPole-v1
hyperparameters (8 environments, n_steps 32, batch 256, 20 epochs, lr and clip range linear to
0); only ``normalize_returns_horizon`` differs. The score is scale-free: the mean *length* of
the training episodes (CartPole's return at factor 1) that end in each phase, and over the
whole run. Statistics: mean over seeds with a 95% percentile-bootstrap CI (10 000 resamples of
seeds), and the paired difference horizon - count-weighted per seed.

    python benchmarks/return_norm.py --seeds 5 --jsonl runs/return_norm.jsonl     # resumable
    python benchmarks/return_norm.py --quick
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

torch.set_num_threads(1)

from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

import lifelong  # noqa: E402,F401  (registers lifelong/... environments)
from lifelong import DistributionalPPO  # noqa: E402
from lifelong.agent.schedules import Linear  # noqa: E402

HP = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
          learning_rate=Linear(1e-3, 0.0), clip_range=Linear(0.2, 0.0))
N_ENVS = 8


class EpisodeLengths(BaseCallback):
    """(total timestep, length) of every finished training episode."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[tuple[int, int]] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.episodes.append((int(self.num_timesteps), int(info["episode"]["l"])))
        return True


def run(env_id: str, horizon: float | None, seed: int, timesteps: int, every: int) -> dict[str, Any]:
    kwargs = {"every_steps": every} if env_id.startswith("lifelong/") else {}
    env = make_vec_env(env_id, n_envs=N_ENVS, seed=seed, env_kwargs=kwargs)
    model = DistributionalPPO("MlpPolicy", env, seed=seed, device="cpu", normalize_returns_horizon=horizon, **HP)
    cb = EpisodeLengths()
    model.learn(timesteps, callback=cb)
    phase_steps = every * N_ENVS
    n_phases = -(-timesteps // phase_steps)
    per_phase = []
    for k in range(n_phases):
        lengths = [ln for t, ln in cb.episodes if k * phase_steps < t <= (k + 1) * phase_steps]
        per_phase.append(float(np.mean(lengths)) if lengths else None)
    return dict(env=env_id, horizon=horizon, seed=seed, timesteps=timesteps, every=every,
                mean_length=float(np.mean([ln for _, ln in cb.episodes])), per_phase=per_phase,
                std=float(model.return_normalizer.std.item()))


def boot_ci(x: np.ndarray, reps: int = 10_000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = rng.choice(x, size=(reps, x.size), replace=True).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(rows: list[dict[str, Any]]) -> str:
    out = []
    for env_id in sorted({r["env"] for r in rows}):
        rs = [r for r in rows if r["env"] == env_id]
        horizons = sorted({r["horizon"] for r in rs}, key=lambda h: -1 if h is None else h)
        base = {r["seed"]: r for r in rs if r["horizon"] is None}
        out += [f"\n{env_id} ({rs[0]['timesteps']} steps, phases of {rs[0]['every'] * N_ENVS} steps)\n",
                "| horizon | seeds | mean episode length [95% CI] | per phase (mean over seeds) | paired diff vs count-weighted [95% CI] |",
                "|---|---|---|---|---|"]
        for h in horizons:
            hs = sorted((r for r in rs if r["horizon"] == h), key=lambda r: r["seed"])
            x = np.array([r["mean_length"] for r in hs])
            lo, hi = boot_ci(x)
            phases = np.array([[np.nan if v is None else v for v in r["per_phase"]] for r in hs])
            ph = ", ".join(f"{v:.0f}" for v in np.nanmean(phases, 0))
            diff = "—"
            paired = [r["mean_length"] - base[r["seed"]]["mean_length"] for r in hs if r["seed"] in base]
            if h is not None and paired:
                d = np.array(paired)
                dlo, dhi = boot_ci(d)
                diff = f"{d.mean():+.1f} [{dlo:+.1f}, {dhi:+.1f}] ({d.size})"
            name = "None (count-weighted)" if h is None else f"{h:g}"
            out.append(f"| {name} | {len(hs)} | {x.mean():.1f} [{lo:.1f}, {hi:.1f}] | {ph} | {diff} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--timesteps", type=int, default=60_000)
    p.add_argument("--every", type=int, default=2_500, help="steps per phase of each of the 8 env copies")
    p.add_argument("--horizon", type=float, action="append", default=None,
                   help="EMA horizons in updates besides count-weighted (repeatable; default 30)")
    p.add_argument("--env", action="append", default=None,
                   help="default: lifelong/ScaledRewardsCartPole-v0 and CartPole-v1")
    p.add_argument("--jsonl", default=None, help="append results; skip finished (env, horizon, seed)")
    p.add_argument("--quick", action="store_true", help="1 seed, 2048 steps, phases of 512 steps")
    a = p.parse_args(argv)
    if a.quick:
        a.seeds, a.timesteps, a.every = 1, 2048, 64
    envs = a.env or ["lifelong/ScaledRewardsCartPole-v0", "CartPole-v1"]
    horizons: list[float | None] = [None] + list(a.horizon or [30.0])
    rows = []
    if a.jsonl and Path(a.jsonl).exists():
        rows = [json.loads(line) for line in Path(a.jsonl).read_text().splitlines() if line.strip()]
    done = {(r["env"], r["horizon"], r["seed"], r["timesteps"], r["every"]) for r in rows}
    for seed in range(a.seeds):
        for env_id in envs:
            for h in horizons:
                if (env_id, h, seed, a.timesteps, a.every) in done:
                    continue
                r = run(env_id, h, seed, a.timesteps, a.every)
                print(f"  {env_id} horizon={h} seed {seed}: mean length {r['mean_length']:.1f} per phase "
                      f"{r['per_phase']}", flush=True)
                rows.append(r)
                if a.jsonl:
                    with open(a.jsonl, "a") as f:
                        f.write(json.dumps(r) + "\n")
    rows = [r for r in rows if r["env"] in envs and r["horizon"] in horizons and r["timesteps"] == a.timesteps
            and r["every"] == a.every and r["seed"] < a.seeds]
    text = summarise(rows)
    print(text)
    return text


if __name__ == "__main__":
    main()
    sys.exit(0)
