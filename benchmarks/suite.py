"""The benchmark suite: Stable-Baselines3 PPO, the default DistributionalPPO and one ablation per
part that is on by default, with real statistics.

Every agent gets rl-baselines3-zoo's tuned hyperparameters for Stable-Baselines3's PPO
(``hyperparams/ppo.yml`` of rl-zoo3 2.9.2), the same for every agent, including the policy
network arguments. Only the budget differs from the zoo's: ``timesteps`` below is what this
2-core machine allows (the zoo's own budget is in ``zoo_timesteps``).

Agents (``--agent``, repeatable; default: SB3, the default agent and one ablation per part that is
on by default, see :func:`default_agents`):

* ``sb3``       Stable-Baselines3 PPO;
* ``default``   ``DistributionalPPO`` with all its defaults;
* ``default-autograd``  the default with ``closed_form_gradients = False`` (autograd's backward,
  the reference path; the default's rows before the closed-form gradients of commit 809a435);
* ``twin-off``  ``twin_critics=False`` (one critic);
* ``dist-off``  the distributional critic off: one output (``n_quantiles=1``) regressed on the mean
  with Stable-Baselines3's squared error: with one quantile the default mean-anchored loss has
  no deviation to shape, and its gradient is exactly that of ``vf_coef * u^2`` (normalised units);
* ``quantile-huber-mean``  ``quantile_mean_loss="quantile_huber"``: the quantiles' mean learns
  through the quantile-Huber loss alone (QR-DQN's loss, the critic default until commit 7ef89ea);
* ``twin-mean``  ``value_aggregation="mean"``: the twins' mean, not their minimum, for the
  advantages;
* ``norm-off``  ``normalize_returns=False``: the critics regress raw returns, as
  Stable-Baselines3's value function does;
* ``adam``      ``optimizer="adam"`` (Stable-Baselines3's Adam, ``eps=1e-5``);
* ``adaptive-upgd``  ``optimizer="adaptive_upgd"`` (the UPGD family around Adam, paper defaults);
* ``l2-init``   Adam with L2-Init (Kumar et al. 2023) at ``l2_init=0.1``: ``AdaptiveUPGD`` with
  ``gate="none"``, no noise, no weight decay and Adam's ``eps=1e-5`` (the plasticity candidate);
* ``upgd-no-noise``, ``upgd-no-decay``, ``upgd-eps-1e-5``, ``upgd-layer-gate``: AdaptiveUPGD with
  ``sigma=0``, ``weight_decay=0``, Adam's ``eps=1e-5`` or ``gate="layer"``; ``upgd-gate-only``:
  all three, so the utility gate is its only difference from Adam; ``upgd-flat-gate``: that and
  ``gate_temperature=1e12`` (the gate flat at 1/2: Adam's arithmetic, to float rounding);
  ``l2-init-1``: ``l2-init`` at ``l2_init=1`` (the optimizer diagnosis in docs/agent.md);
  ``l2-init-0.3``: at 0.3; ``l2-init-input-0.3``: at 0.3 on the first layers only (the actor's
  and both critics', through ``optimizer_groups``); ``head-reset``: Adam-like with the action head
  back at its initial weights every 1,560 of its steps (``reset_every``; ``head-reset-3120``: every
  3,120); ``l2-input-head-reset``:
  both (the continual-RL candidates, docs/continual.md); ``collapse-head-reset``: Adam with
  the action head reset when the policy has collapsed (the prototype callback,
  ``benchmarks/collapse_reset.py``); ``collapse-off``: the default without its collapse reset
  (``collapse_reset=False``, :mod:`lifelong.agent.collapse`); the timesteps of either's resets
  are recorded in each row as ``resets``;
* ``kappa-1``: ``huber_kappa=1`` (the quantile-Huber threshold, normalised return units);
  ``single-mse-critic``: ``twin-off`` and ``dist-off`` together (one critic, squared error on
  the mean: Stable-Baselines3's value function on normalised returns);
* ``vgs-off`` / ``vgs-on``  the gradient scaler off / on (whichever is not the default);
* ``vgs-a1e-2``, ``vgs-a1e-1``, ``vgs-a1e-4``  the scaler on at another ``alpha``;
* ``NAME-qh-mean`` (for the optimizer and critic rows above): agent ``NAME`` with
  ``quantile_mean_loss="quantile_huber"``, the critic these rows were recorded with before the
  default changed (their rows keep their meaning under a rerun).

Protocol. One run = (environment, agent, seed): ``learn(timesteps)`` on ``n_envs`` training
environments seeded ``seed`` (``VecNormalize`` where the zoo normalises), then a final
deterministic evaluation over ``--eval-episodes`` (default 10) episodes on a fresh environment
seeded ``seed + 10000`` (observation statistics copied, rewards unnormalised). The score of a run
is that evaluation's mean return; the mean of the last 100 training episodes is recorded beside
it (``train_last100``). Each finished run is appended to the JSONL file at once (one writer, the
parent process); an interrupted suite resumes, skipping the (env, agent, seed, timesteps) rows
already there.

Statistics (``--summarise FILE``, also printed at the end of a run). Per environment: the median
score over seeds, with the per-seed range. Normalised score ``(score - random) / (reference -
random)`` with the random and reference scores of :data:`ENVS`; the interquartile mean (IQM)
over all runs and environments, with 95% stratified-bootstrap confidence intervals (rliable,
2000 resamples), for each agent and for the differences default - SB3 and default - ablation;
and a performance profile (rliable) written to ``--profile PNG`` when given (none by default:
docs/suite_profile.png is a tracked figure, regenerated on purpose with the command below).
Only seeds finished by every agent on an environment enter the aggregate, and every environment
enters with the same number of seeds (the smallest such count).

    python benchmarks/suite.py --quick                           # smoke run, seconds
    nice -n 10 python benchmarks/suite.py --workers 2 --seeds 5 --jsonl runs/suite.jsonl
    python benchmarks/suite.py --summarise runs/suite.jsonl --profile docs/suite_profile.png
"""
from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

torch.set_num_threads(1)

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402
from torch import nn  # noqa: E402

from lifelong import DistributionalPPO  # noqa: E402
from lifelong.agent.schedules import Linear  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collapse_reset import CollapseReset  # noqa: E402
from results import git_commit, iqm_tables, latest_runs, read_rows, score_matrices  # noqa: E402

_MUJOCO_NET = dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256, 256], vf=[256, 256]))

#: rl-zoo3 2.9.2 hyperparams/ppo.yml per environment (Hopper-v5 uses the zoo's Hopper-v4 entry);
#: ``random``: mean return of uniformly random actions (100 episodes, 20 for HalfCheetah, seeds 0..);
#: ``reference``: the environment's reward threshold where Gymnasium defines one (CartPole: its
#: maximum 500), Pendulum-v1: -150 (a solved swing-up).
ENVS: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(
        n_envs=8, normalize=False, zoo_timesteps=100_000, timesteps=100_000, quick=2_048,
        random=23.7, reference=500.0,
        hp=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                learning_rate=Linear(1e-3, 0.0), clip_range=Linear(0.2, 0.0)),
    ),
    "Acrobot-v1": dict(
        n_envs=16, normalize=True, zoo_timesteps=1_000_000, timesteps=50_000, quick=4_096,
        random=-497.1, reference=-100.0,
        hp=dict(n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0),
    ),
    "LunarLander-v3": dict(
        n_envs=16, normalize=False, zoo_timesteps=1_000_000, timesteps=200_000, quick=16_384,
        random=-192.0, reference=200.0,
        hp=dict(n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999, n_epochs=4, ent_coef=0.01),
    ),
    "Pendulum-v1": dict(
        n_envs=4, normalize=False, zoo_timesteps=100_000, timesteps=60_000, quick=4_096,
        random=-1207.6, reference=-150.0,
        hp=dict(n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, learning_rate=1e-3,
                clip_range=0.2, use_sde=True, sde_sample_freq=4),
    ),
    "MountainCarContinuous-v0": dict(
        n_envs=1, normalize=True, zoo_timesteps=20_000, timesteps=20_000, quick=512,
        random=-33.3, reference=90.0,
        # the zoo's batch_size is 256, larger than its rollout (n_steps 8 x 1 env): Stable-
        # Baselines3 then trains on one truncated minibatch of the 8 samples, which is exactly
        # what batch_size=8 does (same permutation, same samples), and DistributionalPPO refuses
        # a minibatch larger than the rollout (docs/agent.md), so every agent gets 8
        hp=dict(batch_size=8, n_steps=8, gamma=0.9999, learning_rate=7.77e-05, ent_coef=0.00429, clip_range=0.1,
                n_epochs=10, gae_lambda=0.9, max_grad_norm=5.0, vf_coef=0.19, use_sde=True,
                policy_kwargs=dict(log_std_init=-3.29, ortho_init=False)),
    ),
    "Hopper-v5": dict(
        n_envs=1, normalize=True, zoo_timesteps=1_000_000, timesteps=30_000, quick=1_024,
        random=16.7, reference=3800.0,
        hp=dict(batch_size=32, n_steps=512, gamma=0.999, learning_rate=9.80828e-05, ent_coef=0.00229519,
                clip_range=0.2, n_epochs=5, gae_lambda=0.99, max_grad_norm=0.7, vf_coef=0.835671,
                policy_kwargs=_MUJOCO_NET),
    ),
}

def adam_l2_init(strength: float) -> dict[str, Any]:
    """Adam with L2-Init (Kumar et al. 2023): ``AdaptiveUPGD`` with its gate, noise and weight
    decay off is Adam (SB3's ``eps=1e-5``), plus the decay toward the initial weights."""
    return {"optimizer": "adaptive_upgd", "optimizer_kwargs": {
        "gate": "none", "sigma": 0.0, "weight_decay": 0.0, "eps": 1e-5, "l2_init": strength}}


#: agent name -> DistributionalPPO keyword overrides (``None``: Stable-Baselines3 PPO); a callable
#: takes the environment's hyperparameters.
AGENTS: dict[str, Any] = {
    "sb3": None,
    "default": {},
    # the default with autograd's backward instead of the closed-form gradients (the reference
    # path; the same equations, rounded differently): the default's rows before commit 809a435
    "default-autograd": {"closed_form_gradients": False},
    "twin-off": {"twin_critics": False},
    # one quantile: its deviation from the mean is 0, so the default mean-anchored loss's gradient
    # is exactly Stable-Baselines3's squared error (tests/agent/test_critics.py)
    "dist-off": {"n_quantiles": 1},
    "quantile-huber-mean": {"quantile_mean_loss": "quantile_huber"},
    "twin-mean": {"value_aggregation": "mean"},
    "norm-off": {"normalize_returns": False},
    "adam": {"optimizer": "adam"},
    # Adam's per-tensor Python loop on the CPU (torch's default there): the agent's default until
    # it built Adam fused; the same update, rounded differently (the rows of the default before)
    "adam-loop": {"optimizer_kwargs": {"fused": False}},
    "adaptive-upgd": {"optimizer": "adaptive_upgd"},
    "l2-init": adam_l2_init(0.1),
    # the optimizer diagnosis of docs/agent.md: AdaptiveUPGD with one part removed at a time
    "upgd-no-noise": {"optimizer": "adaptive_upgd", "optimizer_kwargs": {"sigma": 0.0}},
    "upgd-no-decay": {"optimizer": "adaptive_upgd", "optimizer_kwargs": {"weight_decay": 0.0}},
    "upgd-eps-1e-5": {"optimizer": "adaptive_upgd", "optimizer_kwargs": {"eps": 1e-5}},
    "upgd-layer-gate": {"optimizer": "adaptive_upgd", "optimizer_kwargs": {"gate": "layer"}},
    "upgd-gate-only": {"optimizer": "adaptive_upgd", "optimizer_kwargs": {
        "sigma": 0.0, "weight_decay": 0.0, "eps": 1e-5}},
    "upgd-flat-gate": {"optimizer": "adaptive_upgd", "optimizer_kwargs": {
        "sigma": 0.0, "weight_decay": 0.0, "eps": 1e-5, "gate_temperature": 1e12}},
    "l2-init-1": adam_l2_init(1.0),
    # the strength that kept plasticity on benchmarks/continual_rl.py (docs/continual.md)
    "l2-init-0.3": adam_l2_init(0.3),
    # the same on the first layers only (the actor's and both critics'), the layers a permuted
    # observation makes stale (optimizer_groups; docs/continual.md)
    "l2-init-input-0.3": {**adam_l2_init(0.0), "optimizer_groups": {
        "mlp_extractor.policy_net.0.*": {"l2_init": 0.3}, "critics.*.0": {"l2_init": 0.3}}},
    # the continual-RL candidates that reset the action head every 1,560 of its steps (one phase
    # of benchmarks/continual_rl.py): what a stationary task pays for relearning the head
    "head-reset": {**adam_l2_init(0.0), "optimizer_groups": {"action_net.*": {"reset_every": 1560}}},
    "head-reset-3120": {**adam_l2_init(0.0), "optimizer_groups": {"action_net.*": {"reset_every": 3120}}},
    "l2-input-head-reset": {**adam_l2_init(0.0), "optimizer_groups": {
        "mlp_extractor.policy_net.0.*": {"l2_init": 0.3}, "critics.*.0": {"l2_init": 0.3},
        "action_net.*": {"reset_every": 1560}}},
    # the default agent with the action head reset when the policy has collapsed (a callback,
    # benchmarks/collapse_reset.py; Discrete actions only, inert on the others): what a
    # stationary task pays for the trigger (nothing, unless it fires)
    "collapse-head-reset": {"collapse_reset": False, "collapse_callback": {"modules": ["action_net"]}},
    # the default without its collapse reset (lifelong.agent.collapse): its ablation
    "collapse-off": {"collapse_reset": False},
    # the critic's loss and number: the quantile-Huber threshold at 1 (normalised units), and
    # both critic ablations at once (one critic regressed on the mean with SB3's squared error)
    "kappa-1": {"huber_kappa": 1.0},
    "single-mse-critic": {"twin_critics": False, "n_quantiles": 1},
    "vgs-off": {"vgs": False},
    "vgs-on": {"vgs": True},
    "vgs-a1e-4": {"vgs": True, "vgs_kwargs": {"alpha": 1e-4}},
    "vgs-a1e-2": {"vgs": True, "vgs_kwargs": {"alpha": 1e-2}},
    "vgs-a1e-1": {"vgs": True, "vgs_kwargs": {"alpha": 1e-1}},
}

#: Rows measured before the critics' mean learnt by squared error (``quantile_mean_loss=
#: "quantile_huber"`` was the default until commit 7ef89ea): ``NAME-qh-mean`` is agent ``NAME`` on
#: that critic, so that the recorded rows keep their meaning (docs/agent.md).
QH_MEAN_SUFFIX = "-qh-mean"
for _name in ("twin-off", "kappa-1", "adam", "adaptive-upgd", "l2-init", "l2-init-1", "upgd-no-noise",
              "upgd-no-decay", "upgd-eps-1e-5", "upgd-layer-gate", "upgd-gate-only", "upgd-flat-gate"):
    AGENTS[_name + QH_MEAN_SUFFIX] = {**AGENTS[_name], "quantile_mean_loss": "quantile_huber"}


#: Agents whose rows are in a results file but that no option rebuilds: ``--summarise`` reads
#: them, running them is refused.
RECORDED: dict[str, str] = {
    "default-torch-tanh": "the default agent before commit db11603, whose closed-form step computed tanh with "
    "torch.tanh (the same algorithm, rounded differently): its rows of commit 3432831 (2026-12-01, the AMD "
    "machine of docs/suite_runs_amd.jsonl, beside the rows after it)",
    "default-autograd-losses": "the default agent before commit 434e7fb, whose critics' loss and clipped "
    "surrogate were autograd formulas (the same equations, rounded differently)",
}


def default_agents() -> list[str]:
    """SB3, the default agent and one ablation per part on by default; the optimizer's and the
    scaler's rows flip whichever choice is the default."""
    parameters = inspect.signature(DistributionalPPO.__init__).parameters
    optimizer_row = "adaptive-upgd" if parameters["optimizer"].default == "adam" else "adam"
    return ["sb3", "default", "twin-off", "dist-off", "quantile-huber-mean", optimizer_row,
            "vgs-off" if parameters["vgs"].default else "vgs-on"]


def agent_kwargs(agent: str, hp: dict[str, Any]) -> dict[str, Any] | None:
    extra = AGENTS[agent]
    return extra(hp) if callable(extra) else extra


def run_one(job: tuple[str, str, int, int, int, str]) -> dict[str, Any]:
    """Train one (env, agent, seed) for ``timesteps`` and evaluate it (see the module docstring)."""
    torch.set_num_threads(1)
    env_id, agent, seed, timesteps, eval_episodes, commit = job
    spec = ENVS[env_id]
    hp = dict(spec["hp"])
    env = make_vec_env(env_id, n_envs=spec["n_envs"], seed=seed)
    if spec["normalize"]:
        env = VecNormalize(env, gamma=hp["gamma"])
    extra = agent_kwargs(agent, hp)
    callback = None
    if extra is None:
        model = PPO("MlpPolicy", env, seed=seed, device="cpu", **hp)
    else:
        extra = dict(extra)
        closed_form = extra.pop("closed_form_gradients", True)  # a model attribute, not an argument
        collapse = extra.pop("collapse_callback", None)  # a callback's keywords, not an argument
        callback = None if collapse is None else CollapseReset(**collapse)
        model = DistributionalPPO("MlpPolicy", env, seed=seed, device="cpu", **{**hp, **extra})
        model.closed_form_gradients = closed_form
    start, start_cpu = time.perf_counter(), time.process_time()
    model.learn(timesteps, callback=callback)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000)
    if spec["normalize"]:
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        eval_env.obs_rms = env.obs_rms.copy()
    returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True,
                                 return_episode_rewards=True)
    train = [ep["r"] for ep in model.ep_info_buffer] if model.ep_info_buffer else []
    env.close()
    eval_env.close()
    return dict(env=env_id, agent=agent, seed=seed, timesteps=timesteps, steps_done=int(model.num_timesteps),
                score=float(np.mean(returns)), eval_std=float(np.std(returns)), eval_episodes=eval_episodes,
                train_last100=float(np.mean(train)) if train else None, wall=wall, cpu=cpu, commit=commit,
                **({} if callback is None else {"resets": callback.resets}),
                **({"resets": list(model.collapse_reset.resets)}
                   if isinstance(model, DistributionalPPO) and model.collapse_reset is not None else {}))


def key(row: dict[str, Any]) -> tuple[str, str, int, int]:
    return (row["env"], row["agent"], int(row["seed"]), int(row["timesteps"]))


def summarise(rows: list[dict[str, Any]], agents: list[str], profile: str | None = None, reps: int = 2000,
              seed: int = 0) -> str:
    """The markdown tables (per-environment medians; IQM with CIs; differences) and the profile."""
    out = []
    agents = [a for a in agents if any(r["agent"] == a for r in rows)]
    rows = latest_runs(rows)
    env_list = [e for e in ENVS if any(r["env"] == e for r in rows)]
    header = "| env (steps) | " + " | ".join(agents) + " |"
    out += ["Final deterministic evaluation return: median over seeds [min, max] (seeds)", "",
            header, "|" + "---|" * (len(agents) + 1)]
    for e in env_list:
        cells = []
        for a in agents:
            s = sorted(r["score"] for r in rows if r["env"] == e and r["agent"] == a)
            cells.append(f"{np.median(s):.1f} [{s[0]:.0f}, {s[-1]:.0f}] ({len(s)})" if s else "—")
        steps = sorted({r["timesteps"] for r in rows if r["env"] == e})
        out.append(f"| {e} ({'/'.join(str(x) for x in steps)}) | " + " | ".join(cells) + " |")
    if "sb3" in agents and "default" in agents:
        out += ["", "Default vs SB3 per environment: the medians' gap against SB3's own seed spread (max - min)",
                "", "| env | median default - median sb3 | sb3 spread | gap within the spread |", "|---|---|---|---|"]
        for e in env_list:
            d = [r["score"] for r in rows if r["env"] == e and r["agent"] == "default"]
            b = [r["score"] for r in rows if r["env"] == e and r["agent"] == "sb3"]
            if d and b:
                gap, spread = float(np.median(d) - np.median(b)), float(max(b) - min(b))
                out.append(f"| {e} | {gap:+.1f} | {spread:.1f} | {'yes' if gap >= -spread else 'NO'} |")
    mats, envs, n = score_matrices(rows, agents, ENVS)
    if not mats:
        return "\n".join(out)
    differences = [("default", a) for a in agents if a != "default"] if "default" in mats else []
    out += ["", f"IQM of normalised scores over {n} seeds x {len(envs)} environments ({', '.join(envs)}), "
            "95% stratified-bootstrap CI:", ""]
    out += iqm_tables(mats, differences, reps, seed)
    if profile:
        write_profile(mats, profile, reps)
        out += ["", f"performance profile: {profile}"]
    return "\n".join(out)


def write_profile(mats: dict[str, np.ndarray], path: str, reps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly
    from rliable import plot_utils

    taus = np.linspace(-0.1, 1.1, 61)
    profiles, cis = rly.create_performance_profile(mats, taus, reps=reps)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    colors = dict(zip(mats, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax, colors=colors,
                                         xlabel="normalised score τ", ylabel="fraction of runs > τ",
                                         labelsize="medium", ticklabelsize="small")
    ax.legend(handles=[plt.Line2D([], [], color=colors[a], label=a) for a in mats], fontsize="small",
              loc="upper right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ----------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", action="append", choices=list(ENVS), help="environment (repeatable); default: all")
    p.add_argument("--agent", action="append", choices=[*AGENTS, *RECORDED], help="agent (repeatable); default: "
                   "sb3, default and one ablation per part on by default")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    p.add_argument("--budget", action="append", default=[], metavar="ENV=STEPS", help="budget override (repeatable)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--workers", type=int, default=1, help="processes, one torch thread each")
    p.add_argument("--jsonl", default="runs/suite.jsonl", help="results, one JSON line per finished run (resumable)")
    p.add_argument("--profile", default=None, help="write the performance profile (rliable) to this PNG")
    p.add_argument("--quick", action="store_true", help="smoke run: CartPole-v1 and Pendulum-v1, tiny budgets, "
                   "2 seeds, 2 evaluation episodes")
    p.add_argument("--summarise", metavar="JSONL", help="only print the statistics of a results file")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    a = p.parse_args(argv)
    if min(a.seeds, a.workers, a.eval_episodes, a.reps) < 1:
        p.error("--seeds, --workers, --eval-episodes and --reps must be >= 1")
    agents = a.agent or default_agents()
    if a.summarise:
        print(summarise(read_rows(a.summarise), agents, a.profile, reps=a.reps))
        return 0
    recorded = [name for name in agents if name in RECORDED]
    if recorded:
        p.error(f"--agent {recorded[0]!r} cannot be run, only summarised: {RECORDED[recorded[0]]}")
    envs = a.env or (["CartPole-v1", "Pendulum-v1"] if a.quick else list(ENVS))
    seeds = 2 if a.quick and a.seeds == 5 else a.seeds
    episodes = 2 if a.quick else a.eval_episodes
    budgets = {e: ENVS[e]["quick"] if a.quick else ENVS[e]["timesteps"] for e in envs}
    for item in a.budget:
        name, _, value = item.partition("=")
        if name not in ENVS or not value.isdigit() or int(value) < 1:
            p.error(f"--budget {item!r}: expected ENV=STEPS with ENV in {list(ENVS)} and STEPS >= 1")
        budgets[name] = int(value)
    Path(a.jsonl).parent.mkdir(parents=True, exist_ok=True)
    done = {key(r) for r in read_rows(a.jsonl)}
    commit = git_commit()
    # seed-major order, so that an interrupted suite has whole seeds of every (env, agent)
    jobs = [(e, ag, s, budgets[e], episodes, commit) for s in range(seeds) for e in envs for ag in agents
            if (e, ag, s, budgets[e]) not in done]
    print(f"commit {commit}, torch {torch.__version__} ({torch.get_num_threads()} thread), {len(jobs)} runs to do "
          f"({len(done)} already in {a.jsonl}), workers={a.workers}; budgets {budgets}", flush=True)
    t0 = time.perf_counter()

    def record(row: dict[str, Any]) -> None:
        with open(a.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"  {row['env']:25s} {row['agent']:10s} seed {row['seed']} score {row['score']:9.1f} "
              f"({row['wall']:.0f}s)", flush=True)

    if a.workers > 1:
        with mp.get_context("spawn").Pool(a.workers) as pool:
            for row in pool.imap_unordered(run_one, jobs):
                record(row)
    else:
        for job in jobs:
            record(run_one(job))
    print(f"\n{len(jobs)} runs in {time.perf_counter() - t0:.0f}s\n")
    rows = [r for r in read_rows(a.jsonl) if r["env"] in envs and r["timesteps"] == budgets[r["env"]]]
    print(summarise(rows, agents, a.profile, reps=a.reps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
