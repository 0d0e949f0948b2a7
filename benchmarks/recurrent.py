"""sb3-contrib RecurrentPPO vs lifelong.DistributionalRecurrentPPO on partially observed tasks.

Tasks: ``lifelong/CartPoleNoVel-v1`` and ``lifelong/PendulumNoVel-v1`` (velocities hidden, as
rl-zoo's ``NoVel`` environments). Every agent gets rl-baselines3-zoo's tuned hyperparameters for
sb3-contrib's RecurrentPPO (``hyperparams/ppo_lstm.yml`` of rl-zoo3 2.9.2, entries
``CartPoleNoVel-v1`` and ``PendulumNoVel-v1``), the same for every agent, policy network
arguments included (``lstm_hidden_size=64``, ``enable_critic_lstm=True``, ``net_arch`` pi/vf
[64], ReLU, no orthogonal init). The zoo normalises observations and rewards (``VecNormalize``).

Agents (``--agent``, repeatable; default ``recurrent_ppo`` and ``default``):

* ``recurrent_ppo``  sb3-contrib ``RecurrentPPO``;
* ``default``        ``DistributionalRecurrentPPO`` with all its distributional defaults;
* ``adam``           the same with ``optimizer="adam"``;
* ``twin-off``       the same with ``twin_critics=False``.

Protocol (as ``benchmarks/vs_sb3.py``'s stationary runs): one run = (environment, agent, seed):
``learn(timesteps)`` on the zoo's ``n_envs`` environments seeded ``seed``, then a deterministic
evaluation of ``--eval-episodes`` (default 10) episodes on a fresh environment seeded ``seed +
10000`` (observation statistics copied, rewards unnormalised), the LSTM state carried through
each episode. A run's score is that evaluation's mean return; ``train_last100`` (mean of the last
100 training episodes) is recorded beside it. Each finished run is appended to the JSONL file at
once (the parent process writes); an interrupted run resumes, skipping rows already there.

Statistics (``--summarise FILE``, also printed at the end): per environment the median score over
seeds with its range; normalised scores ``(score - random) / (reference - random)`` (random and
reference returns in :data:`ENVS`) aggregated by the interquartile mean (IQM) over all runs of
both environments, with 95% stratified-bootstrap confidence intervals (rliable, 2000 resamples),
for each agent and for the difference ``default - recurrent_ppo``. Only seeds finished by every
agent enter the aggregate. Wall time of ``learn`` per run is recorded too, but runs in parallel
workers share the machine: the speed claim is ``--speed``, which times the agents side by side
in ONE process with one torch thread, interleaved rounds of ``learn(STEPS)`` on the same
settings, and prints the median ratio.

    python benchmarks/recurrent.py --quick                                  # smoke run
    nice -n 10 python benchmarks/recurrent.py --workers 2 --seeds 5 --jsonl runs/recurrent.jsonl \
        --budget lifelong/CartPoleNoVel-v1=20000 --budget lifelong/PendulumNoVel-v1=16384
    python benchmarks/recurrent.py --summarise runs/recurrent.jsonl
    python benchmarks/recurrent.py --speed 4096 --rounds 3 --env lifelong/CartPoleNoVel-v1
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

torch.set_num_threads(1)

from sb3_contrib import RecurrentPPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402
from torch import nn  # noqa: E402

import lifelong  # noqa: E402, F401  (registers the lifelong/... ids)
from lifelong import DistributionalRecurrentPPO  # noqa: E402
from lifelong.agent.schedules import Linear  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import iqm_tables, latest_runs, read_rows, score_matrices  # noqa: E402

ZOO_POLICY_KWARGS = dict(ortho_init=False, activation_fn=nn.ReLU, lstm_hidden_size=64, enable_critic_lstm=True,
                         net_arch=dict(pi=[64], vf=[64]))

# rl-zoo3 2.9.2 hyperparams/ppo_lstm.yml; budgets: zoo / --quick. random and reference returns
# for the normalised score: a uniformly random policy's mean return (measured: CartPole 22,
# Pendulum about -1230) and the best return a solved task reaches (CartPole 500; Pendulum -150).
ENVS: dict[str, dict[str, Any]] = {
    "lifelong/CartPoleNoVel-v1": dict(
        timesteps=100_000, quick=4_000, n_envs=8, random=22.0, reference=500.0,
        hp=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                learning_rate=Linear(1e-3, 0.0), clip_range=Linear(0.2, 0.0)),
    ),
    "lifelong/PendulumNoVel-v1": dict(
        timesteps=100_000, quick=4_096, n_envs=4, random=-1230.0, reference=-150.0,
        hp=dict(n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, learning_rate=1e-3,
                clip_range=0.2, use_sde=True, sde_sample_freq=4),
    ),
}

AGENTS: dict[str, dict[str, Any] | None] = {
    "recurrent_ppo": None,
    "default": {},
    "adam": {"optimizer": "adam"},
    "twin-off": {"twin_critics": False},
    # ablations of the distributional parts, as in benchmarks/suite.py
    "twin-mean": {"value_aggregation": "mean"},
    "norm-off": {"normalize_returns": False},
    "single-mse-critic": {"twin_critics": False, "n_quantiles": 1},
}


def make_model(env_id: str, agent: str, seed: int, env: Any) -> Any:
    hp = dict(ENVS[env_id]["hp"])
    extra = AGENTS[agent]
    kwargs = dict(policy_kwargs=dict(ZOO_POLICY_KWARGS), seed=seed, device="cpu", **hp)
    if extra is None:
        return RecurrentPPO("MlpLstmPolicy", env, **kwargs)
    return DistributionalRecurrentPPO("MlpLstmPolicy", env, **kwargs, **extra)


def make_env(env_id: str, seed: int, n_envs: int | None = None) -> VecNormalize:
    spec = ENVS[env_id]
    env = make_vec_env(env_id, n_envs=n_envs or spec["n_envs"], seed=seed)
    return VecNormalize(env, gamma=spec["hp"]["gamma"])


def evaluate(model: Any, env_id: str, train_env: VecNormalize, seed: int, episodes: int) -> list[float]:
    """Deterministic returns of ``episodes`` episodes, the LSTM state carried within each."""
    env = VecNormalize(make_vec_env(env_id, n_envs=1, seed=seed + 10_000), training=False, norm_reward=False)
    env.obs_rms = train_env.obs_rms.copy()
    returns, total, state = [], 0.0, None
    obs = env.reset()
    start = np.ones((1,), dtype=bool)
    while len(returns) < episodes:
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, reward, done, _ = env.step(action)
        total += float(env.get_original_reward()[0])
        start = done
        if done[0]:
            returns.append(total)
            total = 0.0
    env.close()
    return returns


def run_one(job: tuple[str, str, int, int, int]) -> dict[str, Any]:
    torch.set_num_threads(1)
    env_id, agent, seed, timesteps, eval_episodes = job
    env = make_env(env_id, seed)
    model = make_model(env_id, agent, seed, env)
    start, start_cpu = time.perf_counter(), time.process_time()
    model.learn(timesteps)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    returns = evaluate(model, env_id, env, seed, eval_episodes)
    train = [ep["r"] for ep in model.ep_info_buffer] if model.ep_info_buffer else []
    env.close()
    return dict(env=env_id, agent=agent, seed=seed, timesteps=timesteps, steps_done=int(model.num_timesteps),
                score=float(np.mean(returns)), eval_std=float(np.std(returns)), eval_episodes=eval_episodes,
                train_last100=float(np.mean(train)) if train else None, wall=wall, cpu=cpu)


def speed(env_id: str, agents: list[str], steps: int, rounds: int, seed: int = 0) -> dict[str, Any]:
    """Interleaved ``learn(steps)`` rounds of every agent in this process (1 thread): medians and
    the median of the per-round ratios to ``recurrent_ppo``."""
    models = {a: make_model(env_id, a, seed, make_env(env_id, seed)) for a in agents}
    for m in models.values():  # warm-up: first rollout, allocations
        m.learn(ENVS[env_id]["hp"]["n_steps"] * ENVS[env_id]["n_envs"])
    times: dict[str, list[float]] = {a: [] for a in agents}
    for r in range(rounds):
        order = agents if r % 2 == 0 else list(reversed(agents))
        for a in order:
            t0 = time.perf_counter()
            models[a].learn(steps, reset_num_timesteps=False)
            times[a].append(time.perf_counter() - t0)
    out = {"env": env_id, "steps": steps, "rounds": rounds,
           "median_s": {a: statistics.median(t) for a, t in times.items()}}
    if "recurrent_ppo" in agents:
        base = times["recurrent_ppo"]
        out["ratio_to_recurrent_ppo"] = {
            a: statistics.median(t / b for t, b in zip(times[a], base)) for a in agents if a != "recurrent_ppo"
        }
    return out


# ----------------------------------------------------------------------------- statistics

def summarise(rows: list[dict[str, Any]], agents: list[str], reps: int = 2000, seed: int = 0) -> str:
    agents = [a for a in agents if any(r["agent"] == a for r in rows)]
    rows = latest_runs(rows)
    out = ["Final deterministic evaluation return: median over seeds [min, max] (seeds); median learn wall s", "",
           "| env (steps) | " + " | ".join(agents) + " |", "|" + "---|" * (len(agents) + 1)]
    for e in ENVS:
        cells = []
        for a in agents:
            rs = [r for r in rows if r["env"] == e and r["agent"] == a]
            s = sorted(r["score"] for r in rs)
            wall = statistics.median(r["wall"] for r in rs) if rs else 0.0
            cells.append(f"{np.median(s):.1f} [{s[0]:.0f}, {s[-1]:.0f}] ({len(s)}); {wall:.0f} s" if s else "—")
        steps = sorted({r["timesteps"] for r in rows if r["env"] == e})
        if steps:
            out.append(f"| {e} ({'/'.join(str(x) for x in steps)}) | " + " | ".join(cells) + " |")
    mats, envs, n = score_matrices(rows, agents, ENVS)
    if not mats:
        return "\n".join(out)
    differences = [(a, "recurrent_ppo") for a in agents if a != "recurrent_ppo"] if "recurrent_ppo" in mats else []
    out += ["", f"IQM of normalised scores over {n} seeds x {len(envs)} environments, 95% stratified-bootstrap CI:",
            ""]
    out += iqm_tables(mats, differences, reps, seed)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", action="append", choices=list(ENVS), help="repeatable; default: both")
    p.add_argument("--agent", action="append", choices=list(AGENTS), help="repeatable; default: recurrent_ppo, default")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--timesteps", type=int, default=None, help="override every environment's budget")
    p.add_argument("--budget", action="append", default=[], metavar="ENV=STEPS", help="override one environment's budget")
    p.add_argument("--quick", action="store_true", help="tiny budgets, 2 seeds (smoke run)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--jsonl", default=None, help="append finished runs here; resume from it")
    p.add_argument("--summarise", metavar="FILE", help="only print the statistics of FILE")
    p.add_argument("--speed", type=int, metavar="STEPS", help="only time learn(STEPS) side by side")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    envs = args.env or list(ENVS)
    agents = args.agent or ["recurrent_ppo", "default"]
    if args.summarise:
        print(summarise(read_rows(args.summarise), list(AGENTS)))
        return 0
    if args.speed:
        for e in envs:
            print(json.dumps(speed(e, agents, args.speed, args.rounds)), flush=True)
        return 0
    budgets = {}
    for item in args.budget:
        name, _, steps = item.partition("=")
        if name not in ENVS or not steps.isdigit():
            p.error(f"--budget {item!r}: expected ENV=STEPS with ENV in {list(ENVS)}")
        budgets[name] = int(steps)
    seeds = 2 if args.quick else args.seeds
    done = {(r["env"], r["agent"], r["seed"], r["timesteps"]) for r in read_rows(args.jsonl)} if args.jsonl else set()
    jobs = []
    for seed in range(seeds):
        for e in envs:
            steps = budgets.get(e) or args.timesteps or (ENVS[e]["quick"] if args.quick else ENVS[e]["timesteps"])
            for a in agents:
                if (e, a, seed, steps) not in done:
                    jobs.append((e, a, seed, steps, 2 if args.quick else args.eval_episodes))
    rows = read_rows(args.jsonl) if args.jsonl else []

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(row) + "\n")

    if args.workers > 1:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            for row in pool.imap_unordered(run_one, jobs):
                record(row)
    else:
        for job in jobs:
            record(run_one(job))
    print(summarise(rows, agents))
    return 0


if __name__ == "__main__":
    sys.exit(main())
