"""Wall-time ratio of DistributionalPPO to Stable-Baselines3 PPO, side by side in one process.

For each configuration, ``--rounds`` rounds; in each round every agent (SB3 PPO first in even
rounds, last in odd ones) is built, runs one untimed warm-up update, then ``learn`` for
``--updates`` more updates, timed with ``time.perf_counter`` (wall) and ``time.process_time``
(CPU: the robust one on a shared machine). The ratio of a round is the
agent's time over SB3 PPO's time of the same round; the report is the median over rounds (and
the range). One torch thread; the same seed for every agent of a round. Each finished round is
appended to ``--jsonl`` (a rerun with the same file skips the rounds already there).

Configurations (SB3 PPO's defaults unless given; the same settings for every agent):
  cartpole-8x256  CartPole-v1, 8 envs, n_steps 256, batch 256, 10 epochs
  cartpole-zoo    CartPole-v1, rl-zoo: 8 envs, n_steps 32, batch 256, 20 epochs, gamma 0.98,
                  gae_lambda 0.8, lr and clip range linear from 1e-3 and 0.2 to 0
  pendulum-zoo    Pendulum-v1, rl-zoo: 4 envs, n_steps 1024, batch 64, 10 epochs, gamma 0.9,
                  gae_lambda 0.95, lr 1e-3, gSDE with sde_sample_freq 4

    python benchmarks/speed.py                                   # all, default agent and Adam
    python benchmarks/speed.py --config cartpole-zoo --rounds 9 --jsonl runs/speed.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import torch

torch.set_num_threads(1)

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

from lifelong import DistributionalPPO  # noqa: E402
from lifelong.agent.schedules import Linear  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "cartpole-8x256": dict(env="CartPole-v1", n_envs=8, updates=6,
                           hp=dict(n_steps=256, batch_size=256, n_epochs=10)),
    "cartpole-zoo": dict(env="CartPole-v1", n_envs=8, updates=40,
                         hp=dict(n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
                                 learning_rate=Linear(1e-3, 0.0), clip_range=Linear(0.2, 0.0))),
    "pendulum-zoo": dict(env="Pendulum-v1", n_envs=4, updates=2,
                         hp=dict(n_steps=1024, batch_size=64, n_epochs=10, gamma=0.9, gae_lambda=0.95, ent_coef=0.0,
                                 learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4)),
}

VARIANTS: dict[str, dict[str, Any] | None] = {
    "sb3": None,                                        # stable_baselines3.PPO
    "ours": {},                                         # the default DistributionalPPO
    "ours-adam": {"optimizer": "adam", "vgs": False},   # its optimizer and scaler swapped for Adam
}


def make_model(config: str, variant: str, seed: int) -> Any:
    c = CONFIGS[config]
    env = make_vec_env(c["env"], n_envs=c["n_envs"], seed=seed)
    extra = VARIANTS[variant]
    if extra is None:
        return PPO("MlpPolicy", env, seed=seed, device="cpu", **c["hp"])
    return DistributionalPPO("MlpPolicy", env, seed=seed, device="cpu", **c["hp"], **extra)


def timed_learn(config: str, variant: str, seed: int, updates: int) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of ``updates`` updates after a warm-up update."""
    model = make_model(config, variant, seed)
    per_update = model.n_steps * model.n_envs
    model.learn(per_update)  # warm-up
    start, start_cpu = time.perf_counter(), time.process_time()
    model.learn(updates * per_update, reset_num_timesteps=False)
    return time.perf_counter() - start, time.process_time() - start_cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", choices=list(CONFIGS), help="default: all")
    p.add_argument("--variant", action="append", choices=[v for v in VARIANTS if v != "sb3"],
                   help="agents compared with SB3 PPO (default: ours, ours-adam)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--updates", type=int, default=None, help="timed updates per agent (default: per configuration)")
    p.add_argument("--jsonl", default=None, help="append each round's times here; rounds already there are skipped")
    a = p.parse_args(argv)
    variants = ["sb3", *(a.variant or ["ours", "ours-adam"])]
    done: list[dict[str, Any]] = []
    if a.jsonl and os.path.exists(a.jsonl):
        with open(a.jsonl) as f:
            done = [json.loads(line) for line in f if line.strip()]
    for config in a.config or list(CONFIGS):
        updates = a.updates or CONFIGS[config]["updates"]
        rounds = [r for r in done if r["config"] == config and r["updates"] == updates and set(variants) <= set(r["times"])]
        for rnd in range(len(rounds), a.rounds):
            order = variants if rnd % 2 == 0 else variants[::-1]
            measured = {v: timed_learn(config, v, rnd, updates) for v in order}
            row = {"config": config, "round": rnd, "updates": updates, "times": {v: t[0] for v, t in measured.items()},
                   "cpu_times": {v: t[1] for v, t in measured.items()}}
            rounds.append(row)
            if a.jsonl:
                with open(a.jsonl, "a") as f:
                    f.write(json.dumps(row) + "\n")
        for v in variants[1:]:
            for clock in ("times", "cpu_times"):
                ratios = [r[clock][v] / r[clock]["sb3"] for r in rounds]
                sb3 = statistics.median(r[clock]["sb3"] / updates for r in rounds)
                mine = statistics.median(r[clock][v] / updates for r in rounds)
                name = "wall-time" if clock == "times" else "CPU-time"
                print(f"{config:15s} {v:10s} {name:9s} ratio vs SB3 PPO: median {statistics.median(ratios):.2f} "
                      f"(range {min(ratios):.2f}-{max(ratios):.2f}, {len(ratios)} rounds); s/update {mine:.3f} vs "
                      f"{sb3:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
