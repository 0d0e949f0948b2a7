"""Wall-time ratio of DistributionalPPO to Stable-Baselines3 PPO, side by side in one process.

For each configuration the agents are built side by side in one process (same seed), run one
untimed warm-up update each, then take turns: in every round each agent runs ``updates`` more
updates (SB3 PPO first in even rounds, last in odd ones), timed with ``time.perf_counter``
(wall) and ``time.process_time`` (CPU: the robust one on a shared machine). A round's ratio is
an agent's time over SB3 PPO's in that round; the report is the median over rounds with the
interquartile range. Short turns keep a drifting machine load common to all agents. One torch
thread. Each round is appended to ``--jsonl`` as it finishes, with the commit and the host it ran
on (``results.host``: CPU model, torch's version and CPU kernels, load average): ratios from
different hosts differ. The warm-up update's time is printed
too: for ``ours-compiled`` it includes the compilation (``torch.compile``: once per process and
minibatch shape; faster on a warm TorchInductor cache).

Configurations (SB3 PPO's defaults unless given; the same settings for every agent):
  cartpole-8x256  CartPole-v1, 8 envs, n_steps 256, batch 256, 10 epochs
  cartpole-zoo    CartPole-v1, rl-zoo: 8 envs, n_steps 32, batch 256, 20 epochs, gamma 0.98,
                  gae_lambda 0.8, lr and clip range linear from 1e-3 and 0.2 to 0
  pendulum-zoo    Pendulum-v1, rl-zoo: 4 envs, n_steps 1024, batch 64, 10 epochs, gamma 0.9,
                  gae_lambda 0.95, lr 1e-3, gSDE with sde_sample_freq 4

    python benchmarks/speed.py                                   # all, default agent and Adam
    python benchmarks/speed.py --config cartpole-zoo --rounds 40 --jsonl runs/speed.jsonl
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

torch.set_num_threads(1)

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

from lifelong import DistributionalPPO  # noqa: E402
from lifelong.agent.schedules import Linear  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import git_commit, host  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "cartpole-8x256": dict(env="CartPole-v1", n_envs=8, updates=1, rounds=24,
                           hp=dict(n_steps=256, batch_size=256, n_epochs=10)),
    "cartpole-zoo": dict(env="CartPole-v1", n_envs=8, updates=8, rounds=24,
                         hp=dict(n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
                                 learning_rate=Linear(1e-3, 0.0), clip_range=Linear(0.2, 0.0))),
    "pendulum-zoo": dict(env="Pendulum-v1", n_envs=4, updates=1, rounds=8,
                         hp=dict(n_steps=1024, batch_size=64, n_epochs=10, gamma=0.9, gae_lambda=0.95, ent_coef=0.0,
                                 learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4)),
}

VARIANTS: dict[str, dict[str, Any] | None] = {
    "sb3": None,                                        # stable_baselines3.PPO
    "ours": {},                                         # the default DistributionalPPO (Adam, no scaler)
    "ours-upgd": {"optimizer": "adaptive_upgd"},        # with AdaptiveUPGD, the previous default
    "ours-one-critic": {"twin_critics": False},         # what the twin critics cost
    "ours-autograd": {"closed_form_gradients": False},   # the default with autograd's backward (the reference)
    "ours-compiled": {"compile_step": True},            # the default with its minibatch step compiled (torch.compile)
    # Adam with L2-Init on the first layers only (benchmarks/continual_rl.py's l2_input: the
    # plasticity candidate), eager and compiled
    "ours-l2-input": {"optimizer": "adaptive_upgd",
                      "optimizer_kwargs": {"gate": "none", "sigma": 0.0, "weight_decay": 0.0, "eps": 1e-5},
                      "optimizer_groups": {"mlp_extractor.policy_net.0.*": {"l2_init": 0.3},
                                           "critics.*.0": {"l2_init": 0.3}}},
    "ours-l2-input-compiled": {"optimizer": "adaptive_upgd",
                               "optimizer_kwargs": {"gate": "none", "sigma": 0.0, "weight_decay": 0.0, "eps": 1e-5},
                               "optimizer_groups": {"mlp_extractor.policy_net.0.*": {"l2_init": 0.3},
                                                    "critics.*.0": {"l2_init": 0.3}},
                               "compile_step": True},
}
MODEL_ATTRIBUTES = ("closed_form_gradients", "compile_step")  # speed switches set on the model, not arguments


def make_model(config: str, variant: str, seed: int) -> Any:
    c = CONFIGS[config]
    env = make_vec_env(c["env"], n_envs=c["n_envs"], seed=seed)
    extra = VARIANTS[variant]
    if extra is None:
        return PPO("MlpPolicy", env, seed=seed, device="cpu", **c["hp"])
    extra = dict(extra)
    switches = {name: extra.pop(name) for name in MODEL_ATTRIBUTES if name in extra}
    model = DistributionalPPO("MlpPolicy", env, seed=seed, device="cpu", **c["hp"], **extra)
    for name, value in switches.items():
        setattr(model, name, value)
    return model


def timed_update(model: Any, updates: int) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of ``updates`` more updates of ``model``."""
    per_update = model.n_steps * model.n_envs
    start, start_cpu = time.perf_counter(), time.process_time()
    model.learn(updates * per_update, reset_num_timesteps=False)
    return time.perf_counter() - start, time.process_time() - start_cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", choices=list(CONFIGS), help="default: all")
    p.add_argument("--variant", action="append", choices=[v for v in VARIANTS if v != "sb3"],
                   help="agents compared with SB3 PPO (default: ours, ours-upgd)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default: per configuration)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jsonl", default=None, help="append each round's times here")
    a = p.parse_args(argv)
    variants = ["sb3", *(a.variant or ["ours", "ours-upgd"])]
    commit, machine = git_commit(), host()
    load = machine["load_average_1min"]
    print(f"commit {commit}; {machine['cpu']} ({machine['cpus']} CPUs), torch {machine['torch']} "
          f"({machine['torch_cpu_capability']}, {machine['torch_threads']} thread); load average "
          f"{'unknown' if load is None else f'{load:.2f}'}", flush=True)
    for config in a.config or list(CONFIGS):
        c = CONFIGS[config]
        models = {v: make_model(config, v, a.seed) for v in variants}
        for v, m in models.items():  # warm-up update (ours-compiled: includes the compilation)
            wall, cpu = timed_update(m, 1)
            print(f"{config:15s} {v:10s} first update (untimed below): {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
        rounds = []
        for rnd in range(a.rounds or c["rounds"]):
            order = variants if rnd % 2 == 0 else variants[::-1]
            measured = {v: timed_update(models[v], c["updates"]) for v in order}
            row = {"config": config, "round": rnd, "updates": c["updates"], "seed": a.seed,
                   "times": {v: t[0] for v, t in measured.items()}, "cpu_times": {v: t[1] for v, t in measured.items()},
                   "commit": commit, "host": host()}  # the load average as of this round
            rounds.append(row)
            if a.jsonl:
                Path(a.jsonl).parent.mkdir(parents=True, exist_ok=True)
                with open(a.jsonl, "a") as f:
                    f.write(json.dumps(row) + "\n")
        for line in summary(config, rounds, variants[1:]):
            print(line, flush=True)
    return 0


def summary(config: str, rounds: list[dict[str, Any]], variants: list[str]) -> list[str]:
    """Per agent and clock: the median over rounds of the round's time ratio to SB3 PPO, with the
    interquartile range of the ratios, and the median seconds per update of both."""
    lines = []
    for v in variants:
        for clock, name in (("times", "wall-time"), ("cpu_times", "CPU-time")):
            ratios = sorted(r[clock][v] / r[clock]["sb3"] for r in rounds)
            q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
            per = rounds[0]["updates"]
            mine = statistics.median(r[clock][v] / per for r in rounds)
            sb3 = statistics.median(r[clock]["sb3"] / per for r in rounds)
            lines.append(f"{config:15s} {v:10s} {name:9s} ratio vs SB3 PPO: median {statistics.median(ratios):.2f} "
                         f"(IQR {q1:.2f}-{q3:.2f}, {len(ratios)} rounds); s/update {mine:.3f} vs {sb3:.3f}")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
