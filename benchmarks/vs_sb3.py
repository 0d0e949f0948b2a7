"""Stable-Baselines3 PPO vs lifelong.DistributionalPPO, side by side.

Same PPO settings (rl-zoo's tuned hyperparameters per environment, identical for every agent)
and the same seeds; within one process the agents run one after the other, alternating the
order from seed to seed, with ``torch.set_num_threads(1)``. Per environment it prints, as
medians over seeds: wall time of ``learn`` and steps/s, the wall-time ratio to SB3 PPO (median
of per-seed ratios), the final deterministic evaluation return (20 episodes) and the number of
steps until the mean of the last 20 training episodes reached the environment's threshold.
Ablation rows switch one part of the default agent off: ``twin off`` (one critic), ``VGS off``
and ``optimizer="adam"``.

    python benchmarks/vs_sb3.py                       # all environments, 3 seeds, full budgets
    python benchmarks/vs_sb3.py --quick               # reduced budgets, 2 seeds
    python benchmarks/vs_sb3.py --env CartPole-v1 --env Pendulum-v1 --seeds 5 --workers 4
    python benchmarks/vs_sb3.py --jsonl runs.jsonl ...; python benchmarks/vs_sb3.py --summarise runs.jsonl
    python benchmarks/vs_sb3.py --speed 8192 --variant ours --variant adam   # CPU-time ratios only

``--workers N`` runs (environment, seed) jobs in N processes (each still alternates the agents
itself, so the ratios stay like-for-like); use it only on a machine with N idle cores.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch

torch.set_num_threads(1)

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from lifelong import DistributionalPPO  # noqa: E402
from lifelong.agent.schedules import Linear  # noqa: E402


def box2d_available() -> bool:
    try:
        import Box2D  # noqa: F401
    except Exception:
        return False
    return True


# rl-baselines3-zoo hyperparameters (hyperparams/ppo.yml); budgets: full / --quick.
ENVS: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(
        threshold=475.0, timesteps=100_000, quick=40_000, n_envs=8, normalize=False,
        hp=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                learning_rate=Linear(1e-3, 0.0), clip_range=Linear(0.2, 0.0)),
    ),
    "Acrobot-v1": dict(
        threshold=-100.0, timesteps=200_000, quick=60_000, n_envs=16, normalize=True,
        hp=dict(n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0),
    ),
    "Pendulum-v1": dict(
        threshold=-200.0, timesteps=100_000, quick=50_000, n_envs=4, normalize=False,
        hp=dict(n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, learning_rate=1e-3,
                clip_range=0.2, use_sde=True, sde_sample_freq=4),
    ),
    "LunarLander-v3": dict(
        threshold=200.0, timesteps=1_000_000, quick=150_000, n_envs=16, normalize=False,
        hp=dict(n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999, n_epochs=4, ent_coef=0.01),
    ),
}

VARIANTS: dict[str, dict[str, Any] | None] = {
    "SB3 PPO": None,
    "DistributionalPPO": {},
    "  twin off": {"twin_critics": False},
    "  VGS off": {"vgs": False},
    '  optimizer="adam"': {"optimizer": "adam"},
}


SHORT = {"sb3": "SB3 PPO", "ours": "DistributionalPPO", "twin-off": "  twin off", "vgs-off": "  VGS off",
         "adam": '  optimizer="adam"'}


class ThresholdCallback(BaseCallback):
    """Records the first timestep at which the mean of the last 20 training episodes >= threshold."""

    def __init__(self, threshold: float, window: int = 20):
        super().__init__()
        self.threshold = threshold
        self.window = window
        self.hit: int | None = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buf = self.model.ep_info_buffer
        if self.hit is None and buf is not None and len(buf) >= self.window:
            if np.mean([ep["r"] for ep in list(buf)[-self.window:]]) >= self.threshold:
                self.hit = int(self.model.num_timesteps)


def run_one(env_id: str, variant: str, seed: int, timesteps: int) -> dict[str, Any]:
    spec = ENVS[env_id]
    env = make_vec_env(env_id, n_envs=spec["n_envs"], seed=seed)
    if spec["normalize"]:
        env = VecNormalize(env, gamma=spec["hp"].get("gamma", 0.99))
    extra = VARIANTS[variant]
    hp = dict(spec["hp"])
    if extra is None:
        model = PPO("MlpPolicy", env, seed=seed, device="cpu", **hp)
    else:
        model = DistributionalPPO("MlpPolicy", env, seed=seed, device="cpu", **hp, **extra)
    cb = ThresholdCallback(spec["threshold"])
    start, start_cpu = time.perf_counter(), time.process_time()
    model.learn(timesteps, callback=cb)
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000)
    if spec["normalize"]:
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        eval_env.obs_rms = env.obs_rms.copy()
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    return dict(env=env_id, variant=variant, seed=seed, timesteps=int(model.num_timesteps), wall=wall, cpu=cpu,
                sps=model.num_timesteps / wall, ret=float(mean), hit=cb.hit)


def run_job(args: tuple[str, int, int, list[str], str | None]) -> list[dict[str, Any]]:
    """One (environment, seed): SB3 PPO and DistributionalPPO back to back (order alternating
    with the seed), then the ablations. Each result is appended to ``jsonl`` as it finishes."""
    torch.set_num_threads(1)
    env_id, seed, timesteps, variants, jsonl = args
    pair = [v for v in variants if VARIANTS[v] is None or VARIANTS[v] == {}]
    order = (pair if seed % 2 == 0 else pair[::-1]) + [v for v in variants if v not in pair]
    out = []
    for variant in order:
        r = run_one(env_id, variant, seed, timesteps)
        print(f"  {env_id:15s} seed {seed} {variant.strip():22s} {r['wall']:7.1f}s (cpu {r['cpu']:6.1f}s) {r['sps']:7.0f} steps/s "
              f"return {r['ret']:8.1f} threshold at {r['hit']}", file=sys.stderr, flush=True)
        if jsonl:
            with open(jsonl, "a") as f:
                f.write(json.dumps(r) + "\n")
        out.append(r)
    return out


def speed_check(env_id: str, variant: str, steps: int, reps: int = 3) -> list[float]:
    """CPU-time ratio variant / SB3 PPO of ``learn(steps)`` after a one-rollout warm-up,
    ``reps`` alternating repetitions in this process."""
    spec = ENVS[env_id]
    hp = dict(spec["hp"])
    ratios = []
    for rep in range(reps):
        times = {}
        order = ["SB3 PPO", variant] if rep % 2 == 0 else [variant, "SB3 PPO"]
        for v in order:
            env = make_vec_env(env_id, n_envs=spec["n_envs"], seed=rep)
            if spec["normalize"]:
                env = VecNormalize(env, gamma=hp.get("gamma", 0.99))
            extra = VARIANTS[v]
            model = (PPO("MlpPolicy", env, seed=rep, device="cpu", **hp) if extra is None
                     else DistributionalPPO("MlpPolicy", env, seed=rep, device="cpu", **hp, **extra))
            model.learn(spec["n_envs"] * hp.get("n_steps", 2048))
            t = time.process_time()
            model.learn(steps, reset_num_timesteps=False)
            times[v] = time.process_time() - t
        ratios.append(times[variant] / times["SB3 PPO"])
    return ratios


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "—" if x is None else format(x, spec)


def summarise(results: list[dict[str, Any]], env_id: str, variants: list[str], threshold: float) -> str:
    rows = [r for r in results if r["env"] == env_id]
    if not rows:
        return ""
    seeds = sorted({r["seed"] for r in rows})
    base = {r["seed"]: r["wall"] for r in rows if r["variant"] == "SB3 PPO"}
    base_cpu = {r["seed"]: r["cpu"] for r in rows if r["variant"] == "SB3 PPO" and "cpu" in r}
    lines = [
        f"\n### {env_id}  (threshold {threshold:g}, {rows[0]['timesteps']} steps, seeds {seeds})\n",
        "| agent | wall s | steps/s | wall ratio vs SB3 | CPU-time ratio vs SB3 | final return (median) | returns per seed | steps to threshold (median, reached) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        rs = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["seed"])
        if not rs:
            continue
        ratios = [r["wall"] / base[r["seed"]] for r in rs if r["seed"] in base]
        cpu_ratios = [r["cpu"] / base_cpu[r["seed"]] for r in rs if r["seed"] in base_cpu and "cpu" in r]
        hits = [r["hit"] for r in rs if r["hit"] is not None]
        per_seed = ", ".join(format(r["ret"], ".0f") for r in rs)
        hit_s = f"{statistics.median(hits):.0f} ({len(hits)}/{len(rs)})" if hits else f"— (0/{len(rs)})"
        lines.append(
            f"| {v.strip()} | {statistics.median(r['wall'] for r in rs):.1f} | "
            f"{statistics.median(r['sps'] for r in rs):.0f} | "
            f"{fmt(statistics.median(ratios) if ratios else None, '.2f')}x | "
            f"{fmt(statistics.median(cpu_ratios) if cpu_ratios else None, '.2f')}x | "
            f"{statistics.median(r['ret'] for r in rs):.1f} | "
            f"{per_seed} | {hit_s} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", action="append", choices=list(ENVS), help="environment (repeatable); default: all")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3, --quick 2)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1")
    p.add_argument("--timesteps", type=int, default=None, help="override the per-environment budget")
    p.add_argument("--budget", action="append", default=[], metavar="ENV=STEPS",
                   help="per-environment budget override (repeatable), e.g. LunarLander-v3=300000")
    p.add_argument("--quick", action="store_true", help="reduced budgets and 2 seeds")
    p.add_argument("--no-ablations", action="store_true", help="only SB3 PPO and the default DistributionalPPO")
    p.add_argument("--variant", action="append", choices=list(SHORT), default=None,
                   help="run only these agents (repeatable; default: all)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes over (env, seed) jobs")
    p.add_argument("--ablation-env", action="append", default=None,
                   help="run the ablation rows only on these environments (repeatable; default: all)")
    p.add_argument("--jsonl", default=None, help="append every run's result to this JSON-lines file as it finishes")
    p.add_argument("--speed", type=int, default=None, metavar="STEPS",
                   help="only the speed check: CPU-time ratio to SB3 PPO over STEPS steps, 3 alternating "
                        "repetitions (default envs CartPole-v1 and Pendulum-v1; --variant selects agents)")
    p.add_argument("--summarise", default=None, metavar="JSONL", help="only print the tables of a --jsonl file")
    a = p.parse_args(argv)

    if a.speed:
        variants = [SHORT[x] for x in (a.variant or ["ours"]) if x != "sb3"]
        for env_id in a.env or ["CartPole-v1", "Pendulum-v1"]:
            for v in variants:
                r = speed_check(env_id, v, a.speed)
                print(f"{env_id:15s} {v.strip():22s} CPU-time ratio vs SB3 PPO: median {statistics.median(r):.2f} "
                      f"({', '.join(f'{x:.2f}' for x in r)})", flush=True)
        return 0
    if a.summarise:
        with open(a.summarise) as f:
            results = [json.loads(line) for line in f if line.strip()]
        for env_id in [e for e in ENVS if any(r["env"] == e for r in results)]:
            print(summarise(results, env_id, list(VARIANTS), ENVS[env_id]["threshold"]))
        return 0
    envs = a.env or list(ENVS)
    if "LunarLander-v3" in envs and not box2d_available():
        print("LunarLander-v3 skipped: Box2D does not import here (pip install 'gymnasium[box2d]')")
        envs = [e for e in envs if e != "LunarLander-v3"]
    budgets = {}
    for item in a.budget:
        name, _, value = item.partition("=")
        if name not in ENVS or not value.isdigit():
            p.error(f"--budget {item!r}: expected ENV=STEPS with ENV in {list(ENVS)}")
        budgets[name] = int(value)
    n_seeds = a.seeds or (2 if a.quick else 3)
    variants = list(VARIANTS) if not a.no_ablations else ["SB3 PPO", "DistributionalPPO"]
    if a.variant:
        variants = [v for v in variants if v in {SHORT[x] for x in a.variant}]
    jobs = []
    for env_id in envs:
        steps = a.timesteps or (ENVS[env_id]["quick"] if a.quick else ENVS[env_id]["timesteps"])
        steps = budgets.get(env_id, steps)
        env_variants = variants if (a.ablation_env is None or env_id in a.ablation_env) else [
            v for v in variants if VARIANTS[v] is None or VARIANTS[v] == {}]
        jobs += [(env_id, seed, steps, env_variants, a.jsonl) for seed in range(a.first_seed, a.first_seed + n_seeds)]
    jobs.sort(key=lambda j: -ENVS[j[0]]["n_envs"] * j[2])  # longest first
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} cpus, "
          f"{len(jobs)} jobs x {len(variants)} agents, workers={a.workers}", flush=True)
    t0 = time.perf_counter()
    if a.workers > 1:
        with mp.get_context("spawn").Pool(a.workers) as pool:
            results = [r for chunk in pool.imap_unordered(run_job, jobs) for r in chunk]
    else:
        results = [r for job in jobs for r in run_job(job)]
    for env_id in envs:
        print(summarise(results, env_id, variants, ENVS[env_id]["threshold"]))
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
