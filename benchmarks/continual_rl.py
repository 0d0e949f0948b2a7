"""Continual RL: does PPO keep learning on a stream of tasks, and which optimizer keeps it?

A stream of tasks built with the :mod:`lifelong.envs` wrappers (default
``lifelong/PermutedCartPole-v0``: the 4 observation entries are permuted anew every phase; phase 0
is the original task). Every agent is DistributionalPPO with the same settings and seeds; only
the optimizer configuration differs (``--agents``), the agent's collapse reset
(``collapse_reset``, :mod:`lifelong.agent.collapse`, on in ``default``), or, for the
``collapse_*`` agents, the prototype callback that resets part of the network when the policy
has collapsed (an agent's ``"collapse_callback": {...}`` entry: the keywords of
``collapse_reset.CollapseReset``). For each
seed the task sequence is the same for every agent (schedule seed = run seed).

**What counts as loss of plasticity.** Phase 0 is a freshly initialised agent learning its first
task for one phase. The network's initialisation is invariant in distribution under a permutation
of its inputs (orthogonal init, Haar-distributed), so every permuted task is exactly as hard for
a fresh agent as phase 0 is: phase 0's return is the fresh-agent baseline of every phase. An
agent *loses plasticity* when its return on the late phases falls below that baseline with
non-overlapping 95% confidence intervals (IQM over seeds and phases, stratified bootstrap with
``rliable``).

Settings (``Settings``): in the direction of Dohare et al. (Nature 2024) and Lyle et al. (2023,
2024): ReLU networks, a constant learning rate, many epochs per rollout (rl-zoo's CartPole PPO:
8 envs x 32 steps, batch 256, 20 epochs, gamma 0.98, lambda 0.8), no gradient scaler, so that
each agent is its optimizer and nothing else. 24 phases of 20,000 agent steps, the last 6 of
them "late", 10 seeds: with 12 phases (or 5 seeds) Adam's late phases were below phase 0 by a
third, but the confidence intervals still overlapped; with these they do not (docs/continual.md).
About 2 minutes per run on one core: 10 seeds of one agent take about 10 minutes with
``--workers 2``.

Results: one JSON line per (agent, seed) in ``--out/continual_rl.jsonl``, appended as each run
finishes; a rerun with the same settings skips what is there (an interrupted run resumes).
Per phase: the mean return of the episodes that end in it, and at the end of each phase the
plasticity diagnostics of :mod:`lifelong.diagnostics` (dormant-unit fraction, effective rank,
weight norm) and, for UPGD-family optimizers, the histogram of the gate ``1 - s``.

Usage::

    python benchmarks/continual_rl.py --workers 2    # the default agent (Adam) vs Adam + L2-Init
    python benchmarks/continual_rl.py --agents default,adam_equal_betas,upgd --workers 2
    python benchmarks/continual_rl.py --agent 'l2init={"optimizer": "adaptive_upgd",
                                       "optimizer_kwargs": {"l2_init": 0.01}}' --agents default,l2init
    python benchmarks/continual_rl.py --quick                       # seconds, for tests

Writes ``continual_rl.jsonl``, ``continual_rl.json`` (summary) and ``continual_rl.png`` to
``--out`` (default ``runs/benchmarks/continual_rl``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import interval_estimates  # noqa: E402


def adam_like(**extra) -> dict:
    """Adam as ``AdaptiveUPGD``: its gate, noise and weight decay off, SB3's ``eps=1e-5``; plus
    ``extra`` (``l2_init=...``, or ``optimizer_groups=...`` for per-layer mechanisms)."""
    groups = extra.pop("optimizer_groups", None)
    agent = {"optimizer": "adaptive_upgd", "optimizer_kwargs": {
        "gate": "none", "sigma": 0.0, "weight_decay": 0.0, "eps": 1e-5, **extra}, "collapse_reset": False}
    return {**agent, "optimizer_groups": groups} if groups is not None else agent


#: the first layers (the actor's and both critics'), which permuted observations make stale
FIRST_LAYERS = ("mlp_extractor.policy_net.0.*", "critics.*.0")

#: agent name -> DistributionalPPO arguments that differ between agents (all else is Settings.ppo)
AGENTS: dict[str, dict] = {
    # PPO with Adam and nothing else: the reference (the agent's default until the collapse reset
    # became the default: the "default" rows of docs/continual_runs/ measured before it are this
    # agent's)
    "adam": {"optimizer": "adam", "collapse_reset": False},
    # Dohare et al. (2024): Adam with beta1 = beta2 avoids the large steps that follow a change
    # in the gradient's statistics
    "adam_equal_betas": {"optimizer": "adam", "optimizer_kwargs": {"betas": [0.99, 0.99]}, "collapse_reset": False},
    "adaptive_upgd": {"optimizer": "adaptive_upgd", "collapse_reset": False},
    "upgd": {"optimizer": "upgd", "collapse_reset": False},
    "default": {},  # whatever DistributionalPPO builds when given nothing: Adam, the collapse reset
    # Adam with L2-Init (Kumar et al. 2023) at the strength that kept plasticity here
    # (docs/continual.md)
    "l2_init": adam_like(l2_init=0.3),
    # the same decay on the first layers only: the layers this stream's permuted observations
    # make stale (optimizer_groups, docs/agent.md)
    "l2_input": adam_like(optimizer_groups={layer: {"l2_init": 0.3} for layer in FIRST_LAYERS}),
    # the action head back at its initial weights (and its Adam state at zero) every 1,560 of its
    # steps, about one phase of this benchmark (Nikishin et al. 2022's resets): the layer the
    # permuted-actions stream makes stale
    "head_reset": adam_like(optimizer_groups={"action_net.*": {"reset_every": 1560}}),
    # the same every 3,120 steps (about two phases): fewer resets, for what a stationary task pays
    "head_reset_3120": adam_like(optimizer_groups={"action_net.*": {"reset_every": 3120}}),
    # both: L2-Init on the first layers, resets of the action head
    "l2_input_head_reset": adam_like(optimizer_groups={
        **{layer: {"l2_init": 0.3} for layer in FIRST_LAYERS}, "action_net.*": {"reset_every": 1560}}),
    # L2-Init 0.3 on every layer (weight norms stay put) and resets of the action head
    "l2_init_head_reset": adam_like(l2_init=0.3, optimizer_groups={"action_net.*": {"reset_every": 1560}}),
    # Adam with the action head reset when the policy has collapsed (the prototype callback,
    # benchmarks/collapse_reset.py: the head back at its initial weights): a reset the agent
    # triggers itself instead of a period; the library's collapse_reset (the default) draws a
    # fresh head instead
    "collapse_head_reset": {"collapse_reset": False, "collapse_callback": {"modules": ["action_net"]}},
    # the same trigger resetting the whole network (a fresh agent's weights, the optimizer state
    # of every parameter cleared): the restart baseline
    "collapse_full_reset": {"collapse_reset": False, "collapse_callback": {"modules": [""]}},
    # ... and the return normaliser's statistics too: everything a fresh agent starts from
    "collapse_fresh_agent": {"collapse_reset": False, "collapse_callback": {"modules": [""], "buffers": True}},
}
DEFAULT_AGENTS = ("default", "l2_init")


@dataclass
class Settings:
    env: str = "lifelong/PermutedCartPole-v0"
    phases: int = 24                  # 12 did not separate Adam's late phases from phase 0 (10 seeds)
    every_steps: int = 2_500          # per environment copy
    n_envs: int = 8
    activation: str = "ReLU"
    net_arch: tuple[int, ...] = (64, 64)
    late: int = 6                     # the late phases: the last `late` ones
    ppo: dict = field(default_factory=lambda: {
        "learning_rate": 3e-3, "n_steps": 32, "batch_size": 256, "n_epochs": 20,
        "gamma": 0.98, "gae_lambda": 0.8, "ent_coef": 0.0, "clip_range": 0.2,
        "vgs": False,
    })

    @property
    def total_steps(self) -> int:
        return self.phases * self.every_steps * self.n_envs

    def key(self, agent: dict) -> str:
        """Identifies a run's settings (for resuming): everything but the seed."""
        blob = json.dumps({"settings": asdict(self), "agent": agent}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_one(name: str, agent: dict, seed: int, s: Settings) -> dict:
    """Train one agent on the stream; per-phase returns and end-of-phase diagnostics."""
    import torch
    torch.set_num_threads(1)
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    import lifelong  # noqa: F401  (registers the environments)
    from collapse_reset import CollapseReset
    from lifelong import diagnostics as D
    from lifelong.agent.ppo import DistributionalPPO

    env = make_vec_env(s.env, n_envs=s.n_envs, seed=seed,
                       env_kwargs={"every_steps": s.every_steps, "seed": seed})

    class Tracker(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns: list[list[float]] = [[] for _ in range(s.phases)]
            # episodes that end in the second half of their phase: what the agent has learnt by
            # then, whatever it cost to get there
            self.second_half: list[list[float]] = [[] for _ in range(s.phases)]
            self.diag: list[dict] = [{} for _ in range(s.phases)]
            self.last_phase = 0

        def _on_step(self) -> bool:
            for info, done in zip(self.locals["infos"], self.locals["dones"]):
                if done and "episode" in info:
                    ph = min(int(info.get("phase", 0)), s.phases - 1)
                    self.returns[ph].append(float(info["episode"]["r"]))
                    if (self.num_timesteps // s.n_envs) % s.every_steps >= s.every_steps // 2:
                        self.second_half[ph].append(float(info["episode"]["r"]))
            return True

        def _measure(self, phase: int) -> None:
            d = dict(self.model.plasticity_diagnostics())
            optimizer = self.model.policy.optimizer
            d.update({f"upgd/{k}": v for k, v in D.upgd_gate_stats(optimizer).items()})
            hist = D.upgd_gate_histogram(optimizer)
            if hist:
                d["upgd/gate_histogram"] = hist
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
    kwargs = {**s.ppo, **agent}
    collapse = kwargs.pop("collapse_callback", None)
    kwargs["policy_kwargs"] = {"net_arch": list(s.net_arch),
                               "activation_fn": getattr(torch.nn, s.activation)}
    model = DistributionalPPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
                              diagnostics_every=0, **kwargs)
    optimizer = model.policy.optimizer
    tracker = Tracker()
    resetter = None if collapse is None else CollapseReset(**collapse)
    model.learn(s.total_steps, callback=tracker if resetter is None else [resetter, tracker])
    env.close()
    rets = [float(np.mean(r)) if r else float("nan") for r in tracker.returns]
    second_half = [float(np.mean(r)) if r else float("nan") for r in tracker.second_half]
    return {"key": s.key(agent), "agent": name, "config": agent, "seed": seed,
            "optimizer": f"{type(optimizer).__name__}({json.dumps(optimizer.defaults, default=str)})",
            "phase_returns": rets, "episodes": [len(r) for r in tracker.returns],
            "phase_returns_second_half": second_half,
            "diagnostics": tracker.diag, "seconds": time.perf_counter() - t0,
            **({} if resetter is None else {"resets": resetter.resets}),
            **({} if model.collapse_reset is None else {"resets": list(model.collapse_reset.resets)})}


def _run_star(args):
    return run_one(*args)


# ------------------------------------------------------------------------------- statistics
def iqm_ci(scores: np.ndarray, reps: int = 5_000, seed: int = 0) -> tuple[float, float, float]:
    """IQM and its 95% stratified-bootstrap CI (rliable) of a ``[runs, tasks]`` score matrix."""
    from rliable import metrics
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        scores = scores[:, None]
    point, interval = interval_estimates({"x": scores}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps, seed)
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


#: ``--metric``: the row field each phase's score is read from
METRICS = {"phase": "phase_returns", "second-half": "phase_returns_second_half"}


def summarise(runs: list[dict], s: Settings, agents: list[str], reps: int = 5_000, metric: str = "phase") -> dict:
    """Per agent: the fresh-agent baseline (phase 0), the late phases, the last phase, each as
    IQM [95% CI]; ``loses_plasticity`` when the late CI lies entirely below the fresh one
    (``None`` with fewer than two seeds).

    The late phases' CI treats each (seed, phase) as a run of a task (rliable's stratified
    bootstrap resamples seeds independently per phase). A seed whose network is damaged stays
    damaged across phases, so that interval is optimistic; ``late_seed_means`` is the IQM of
    each seed's mean late return with a bootstrap over seeds (one score per seed, the
    conservative one), and ``loses_plasticity_by_seed`` the same verdict on it.

    ``metric``: a phase's score is the mean return of the episodes that end in it (``"phase"``)
    or of those that end in its second half (``"second-half"``: what the agent has learnt by
    mid-phase, without the short episodes a change of task causes before an agent can react
    to it; rows recorded before this field existed lack it and are refused)."""
    field_name = METRICS[metric]
    out: dict = {"late": s.late, "metric": metric, "agents": {}}
    for name in agents:
        rs = sorted((r for r in runs if r["agent"] == name), key=lambda r: r["seed"])
        if not rs:
            continue
        missing = [r["seed"] for r in rs if field_name not in r]
        if missing:
            raise SystemExit(f"--metric {metric}: the rows of {name!r} for seeds {missing} have no "
                             f"{field_name!r} (recorded before it existed); rerun them in another --out")
        R = np.array([r[field_name] for r in rs], dtype=float)      # [seeds, phases]
        R = np.nan_to_num(R, nan=0.0)   # a phase without a finished episode: no return earned
        fresh, late, last = R[:, :1], R[:, -s.late:], R[:, -1:]
        entry = {"seeds": [r["seed"] for r in rs], "returns": R.tolist(),
                 "fresh": iqm_ci(fresh, reps), "late": iqm_ci(late, reps),
                 "last": iqm_ci(last, reps), "all": iqm_ci(R, reps)}
        # a bootstrap over one seed has no spread: no verdict from it
        entry["loses_plasticity"] = (bool(entry["late"][2] < entry["fresh"][1])
                                     if len(rs) >= 2 else None)
        entry["late_seed_means"] = iqm_ci(late.mean(axis=1, keepdims=True), reps)
        entry["loses_plasticity_by_seed"] = (bool(entry["late_seed_means"][2] < entry["fresh"][1])
                                             if len(rs) >= 2 else None)
        entry["last_over_fresh"] = entry["last"][0] / entry["fresh"][0] if entry["fresh"][0] else None
        keys = sorted({k for r in rs for d in r["diagnostics"] for k, v in d.items()
                       if isinstance(v, (int, float))})
        entry["diagnostics"] = {
            k: [[d.get(k, float("nan")) for d in r["diagnostics"]] for r in rs] for k in keys}
        hists = [[d.get("upgd/gate_histogram") for d in r["diagnostics"]] for r in rs]
        if any(h for row in hists for h in row):
            entry["gate_histograms"] = hists
        out["agents"][name] = entry
    return out


def _ci(t) -> str:
    return f"{t[0]:6.1f} [{t[1]:6.1f}, {t[2]:6.1f}]"


def print_tables(summary: dict, s: Settings) -> None:
    agents = list(summary["agents"])
    print("Mean episode return per phase" + (" (episodes ending in its second half)"
                                             if summary["metric"] == "second-half" else "")
          + ": median over seeds [min, max]")
    print(f"{'phase':>5} " + " ".join(f"{a:>24}" for a in agents))
    for ph in range(s.phases):
        cells = []
        for a in agents:
            v = np.array(summary["agents"][a]["returns"])[:, ph]
            cells.append(f"{np.median(v):6.1f} [{v.min():6.1f},{v.max():6.1f}]")
        print(f"{ph:>5} " + " ".join(f"{c:>24}" for c in cells))
    print()
    print(f"IQM [95% stratified-bootstrap CI] over seeds (x phases); fresh = phase 0 (a freshly "
          f"initialised agent on its first task), late = last {s.late} phases")
    print(f"{'agent':<22} {'seeds':>5} {'fresh':>24} {'late':>24} {'last':>24} {'last/fresh':>10}  "
          f"loses plasticity  {'late (seed means)':>24}  by seed")
    verdict = {True: "YES", False: "no", None: "n/a (one seed)"}
    for a in agents:
        e = summary["agents"][a]
        ratio = "n/a" if e["last_over_fresh"] is None else f"{e['last_over_fresh']:.2f}"
        print(f"{a:<22} {len(e['seeds']):>5} {_ci(e['fresh']):>24} {_ci(e['late']):>24} "
              f"{_ci(e['last']):>24} {ratio:>10}  {verdict[e['loses_plasticity']]:<16}  "
              f"{_ci(e['late_seed_means']):>24}  {verdict[e['loses_plasticity_by_seed']]}")
    print()
    print("Diagnostics at the end of the first -> last phase (median over seeds)")
    keys = [("plasticity/dormant_fraction", "dormant"), ("plasticity/effective_rank", "eff. rank"),
            ("plasticity/weight_norm", "|w|"), ("upgd/gate_mean", "gate mean")]
    print(f"{'agent':<22} " + " ".join(f"{label:>17}" for _, label in keys))
    for a in agents:
        d = summary["agents"][a]["diagnostics"]
        cells = []
        for key, _ in keys:
            if key not in d:
                cells.append("-")
                continue
            v = np.array(d[key], dtype=float)
            cells.append(f"{np.nanmedian(v[:, 0]):.3g} -> {np.nanmedian(v[:, -1]):.3g}")
        print(f"{a:<22} " + " ".join(f"{c:>17}" for c in cells))
    for a in agents:
        h = summary["agents"][a].get("gate_histograms")
        if h:
            last = np.array([row[-1] for row in h if row[-1]], dtype=float).mean(0)
            print(f"{a}: gate histogram at the end (10 bins over [0, 1], mean over seeds): "
                  + " ".join(f"{x:.3f}" for x in last))


def plot(summary: dict, s: Settings, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2), gridspec_kw={"width_ratios": [2, 1, 1, 1]})
    phases = np.arange(s.phases)
    for i, (a, e) in enumerate(summary["agents"].items()):
        R = np.array(e["returns"], dtype=float)
        color = f"C{i}"
        axes[0].plot(phases, np.median(R, 0), marker="o", color=color, label=a)
        axes[0].fill_between(phases, R.min(0), R.max(0), color=color, alpha=0.12)
        axes[0].axhspan(e["fresh"][1], e["fresh"][2], color=color, alpha=0.08)
        for ax, key in ((axes[1], "plasticity/dormant_fraction"),
                        (axes[2], "plasticity/effective_rank"),
                        (axes[3], "plasticity/weight_norm")):
            if key in e["diagnostics"]:
                v = np.array(e["diagnostics"][key], dtype=float)
                ax.plot(phases, np.nanmedian(v, 0), marker="o", ms=3, color=color, label=a)
    axes[0].set_title(f"{s.env}: phase = {s.every_steps} steps x {s.n_envs} envs\n"
                      "(median, range over seeds; band = fresh-agent IQM 95% CI)", fontsize=9)
    axes[0].set_xlabel("phase")
    axes[0].set_ylabel("mean episode return")
    for ax, t in zip(axes[1:], ("dormant fraction", "effective rank", "weight norm")):
        ax.set_title(f"{t} (end of phase)", fontsize=9)
        ax.set_xlabel("phase")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------- main
def read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    runs = []
    for line in path.read_text().splitlines():
        if line.strip():
            runs.append(json.loads(line))
    return runs


def parse_agent(text: str) -> tuple[str, dict]:
    name, sep, blob = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--agent must be NAME=JSON, got {text!r}")
    try:
        cfg = json.loads(blob)
    except ValueError as e:
        raise ValueError(f"--agent {name}: the JSON does not parse ({e})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"--agent {name}: expected a JSON object of DistributionalPPO "
                         f"arguments, got {blob!r}")
    return name, cfg


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny settings (seconds), for tests")
    ap.add_argument("--agents", default=",".join(DEFAULT_AGENTS),
                    help=f"comma-separated agent names (built in: {', '.join(AGENTS)})")
    ap.add_argument("--agent", action="append", default=[], metavar="NAME=JSON",
                    help="define an agent: DistributionalPPO arguments as JSON (repeatable)")
    ap.add_argument("--env", help="a registered lifelong/... id (taking every_steps and seed)")
    ap.add_argument("--phases", type=int)
    ap.add_argument("--every-steps", type=int, help="phase length per environment copy")
    ap.add_argument("--late", type=int, help="number of late phases compared with phase 0")
    ap.add_argument("--seeds", type=int, default=10, help="number of seeds (1..N; default 10: 5 did not "
                    "separate Adam's late phases from phase 0)")
    ap.add_argument("--lr", type=float, help="learning rate of every agent")
    ap.add_argument("--activation", help="torch.nn activation of the hidden layers (ReLU, Tanh)")
    ap.add_argument("--workers", type=int, default=None,
                    help="parallel processes (default: min(CPU count, runs))")
    ap.add_argument("--out", default="runs/benchmarks/continual_rl")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--metric", choices=list(METRICS), default="phase",
                    help="a phase's score: the mean return of the episodes ending in it (default) or in its "
                         "second half")
    args = ap.parse_args(argv)

    agents = dict(AGENTS)
    try:
        for text in args.agent:
            name, cfg = parse_agent(text)
            agents[name] = cfg
    except ValueError as e:
        ap.error(str(e))
    chosen = [a for a in args.agents.split(",") if a]
    unknown = [a for a in chosen if a not in agents]
    if unknown or not chosen:
        ap.error(f"--agents: unknown {unknown or chosen}; known: {sorted(agents)}")

    s = Settings()
    if args.quick:
        s = replace(s, phases=2, every_steps=64, n_envs=2, late=1,
                    ppo={**s.ppo, "n_steps": 32, "batch_size": 64, "n_epochs": 1})
    if args.env:
        s.env = args.env
    for name in ("phases", "every_steps", "late"):
        v = getattr(args, name)
        if v is not None:
            if v < 1:
                ap.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
            setattr(s, name, v)
    if s.late > s.phases - 1 and s.phases > 1:
        ap.error(f"--late must be < --phases ({s.phases}), got {s.late}")
    if args.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    seeds = list(range(1, (2 if args.quick else args.seeds) + 1))
    if args.lr is not None:
        if not args.lr > 0:
            ap.error(f"--lr must be > 0, got {args.lr}")
        s.ppo["learning_rate"] = args.lr
    if args.activation:
        import torch
        if not isinstance(getattr(torch.nn, args.activation, None), type):
            ap.error(f"--activation: torch.nn has no activation {args.activation!r}")
        s.activation = args.activation

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "continual_rl.jsonl"
    done = {(r["key"], r["agent"], r["seed"]): r for r in read_results(results)}
    runs = []
    jobs = []
    for sd in seeds:
        for a in chosen:
            found = done.get((s.key(agents[a]), a, sd))
            if found is not None:
                runs.append(found)
            else:
                jobs.append((a, agents[a], sd, s))
    workers = args.workers or (1 if args.quick else min(os.cpu_count() or 1, max(1, len(jobs))))
    print(f"{s.env}: {s.phases} phases x {s.every_steps} steps x {s.n_envs} envs = "
          f"{s.total_steps} steps per run; agents {chosen}, seeds {seeds}; {len(runs)} runs "
          f"found in {results}, {len(jobs)} to run on {workers} process(es); "
          f"{s.activation} {list(s.net_arch)}, PPO {s.ppo}", flush=True)
    t0 = time.perf_counter()

    def record(r: dict) -> None:
        runs.append(r)
        with open(results, "a") as f:
            f.write(json.dumps(r, default=float) + "\n")
        rets = " ".join(f"{v:5.0f}" for v in r["phase_returns"])
        print(f"  {r['agent']:<20} seed {r['seed']}: {r['seconds']:5.0f} s, return per phase: "
              f"{rets}", flush=True)

    if workers == 1:
        for j in jobs:
            record(run_one(*j))
    elif jobs:
        import multiprocessing as mp
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            futures = [ex.submit(_run_star, j) for j in jobs]
            for fut in as_completed(futures):
                record(fut.result())
    print()
    summary = summarise(runs, s, chosen, reps=200 if args.quick else 5_000, metric=args.metric)
    print_tables(summary, s)
    payload = {"settings": asdict(s), "agents": {a: agents[a] for a in chosen},
               "summary": summary, "seconds": time.perf_counter() - t0}
    (out_dir / "continual_rl.json").write_text(json.dumps(payload, indent=1, default=float))
    if not args.no_plot:
        plot(summary, s, out_dir / "continual_rl.png")
        print(f"wrote {out_dir / 'continual_rl.png'}, {out_dir / 'continual_rl.json'}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
