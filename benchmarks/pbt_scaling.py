"""PBT throughput, synchronous vs asynchronous, with 1 and 2 local workers; and final scores.

    .venv/bin/python benchmarks/pbt_scaling.py --out runs/pbt_scaling.jsonl            # idle machine
    .venv/bin/python benchmarks/pbt_scaling.py --quick --out runs/pbt_scaling.jsonl    # smaller
    .venv/bin/python benchmarks/pbt_scaling.py --learning --seeds 5 --out runs/pbt_learning.jsonl

Every finished run is appended to ``--out`` as one JSON line; a rerun skips the runs already
there (so an interrupted benchmark resumes) and prints the summary of all of them.

Scaling (``--rounds`` interleaved rounds; ratios are medians over rounds):

- *uniform*: 4 CartPole members (``n_envs=1``); sync and async, 1 and 2 workers. Figure:
  end-to-end env steps / wall time of ``PBT.run()`` (the fork server is started before timing).
  Goal: async with 2 workers >= 1.8x async with 1.
- *uneven*: 2 members with ``n_envs=[1, 16]`` on 2 workers, set up so that collecting the rollout
  dominates an interval (``n_steps=64``, ``n_epochs=1``, ``batch_size=64``, 1 eval episode):
  the ``n_envs=1`` member runs 16 times as many policy forward passes per interval as the other.
  With one worker per member, the barrier makes the fast one wait at every boundary. Figures: throughput while every member trains (env steps of all members until the
  first one finishes / that time: what a time-budgeted run gets) and end to end (to a fixed
  ``total_steps`` per member, bounded by the slowest member in both modes). Goal: async >= 1.5x
  sync.
- For every run, the CPU time per env step (summed over intervals in the workers) and the
  workers' idle fraction: ``1 - sum(interval wall times) / (workers * wall)``. On a shared
  machine the wall-clock ratios measure the load as much as the code; CPU time per step and the
  idle fraction show the barrier's cost independently of it.

Learning (``--learning``): the best member's final score (``eval_mean_reward`` at the last
boundary, ``--eval-episodes`` episodes) of sync and async PBT, same population and budget, over
``--seeds`` seeds; mean and 95% stratified-bootstrap CI (rliable) of each mode and of the
paired difference async - sync.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # results.py

from lifelong.pbt import PBT, IntUniform, LogUniform, Uniform  # noqa: E402

SPACE = {"learning_rate": LogUniform(1e-4, 3e-3), "ent_coef": Uniform(0.0, 0.02)}


def agent(args, n_envs) -> dict:
    if isinstance(n_envs, list):  # the uneven population: rollouts dominate
        return {"env": "CartPole-v1", "n_envs": n_envs, "n_steps": 64, "batch_size": 64, "n_epochs": 1,
                "device": "cpu"}
    return {"env": "CartPole-v1", "n_envs": n_envs, "n_steps": args.n_steps, "batch_size": 64,
            "n_epochs": 4, "device": "cpu"}


def run_population(key: dict, args, root: Path) -> dict:
    """Train one population and time it; ``key``: kind, mode, workers, seed, round."""
    workdir = root / "_".join(f"{k}{v}" for k, v in key.items())
    shutil.rmtree(workdir, ignore_errors=True)
    uneven = key["kind"] == "uneven"
    n_envs = [1, 16] if uneven else 1
    space = dict(SPACE)
    if key["kind"] == "learning":
        space["n_epochs"] = IntUniform(2, 8)
    pbt = PBT(
        agent=agent(args, n_envs),
        space=space,
        population_size=2 if uneven else args.population,
        interval_steps=args.interval,
        total_steps=args.interval * (args.uneven_intervals if uneven else args.intervals),
        truncation=0.5 if uneven else 0.25,
        eval_episodes=1 if uneven else args.eval_episodes,
        workdir=workdir,
        workers=key["workers"],
        seed=key["seed"],
        synchronous=key["mode"] == "sync",
        keep_checkpoints=1,
    )
    t0 = time.perf_counter()
    done: list[tuple[float, int]] = []  # (time, env steps of all members) after each interval
    finished_first = {}
    total = {"steps": 0}

    started: set[str] = set()  # members with at least one finished interval
    all_started = {}

    def on_event(event):
        if event["event"] == "interval":
            total["steps"] += int(event["env_steps"])
            now = time.perf_counter() - t0
            done.append((now, total["steps"]))
            started.add(event["member"])
            if len(started) == pbt.settings.population_size and not all_started:
                all_started.update(t=now, steps=total["steps"])
            if event["step"] >= pbt.total_steps and not finished_first:
                finished_first.update(t=now, steps=total["steps"])

    result = pbt.run(callback=on_event)
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (workdir / "intervals.jsonl").read_text().splitlines()]
    busy = sum(r["seconds"]["total"] for r in rows)
    cpu = sum(r["seconds"]["cpu"] for r in rows)
    # a member's interval time in steady state: its median over intervals after its first (the
    # first one builds the model and env in a fresh worker)
    later = {}
    for r in rows:
        if r["step"] > pbt.settings.interval_steps:
            later.setdefault(r["member"], []).append(r["seconds"]["total"])
    member_s = {m: statistics.median(v) for m, v in sorted(later.items())}
    window = finished_first["t"] - all_started["t"]
    out = {
        **key,
        "env_steps": total["steps"],
        "wall_s": wall,
        "steps_per_s": total["steps"] / wall,
        "all_training_steps_per_s": finished_first["steps"] / finished_first["t"],
        # the same once every member has finished its first interval (start-up excluded)
        "steady_all_training_steps_per_s": (
            (finished_first["steps"] - all_started["steps"]) / window if window > 0 else float("nan")),
        "member_interval_s": member_s,
        "cpu_ms_per_step": 1e3 * cpu / total["steps"],
        "idle_fraction": 1.0 - busy / (key["workers"] * wall),
        "exploits": len(result.exploits),
        "best_score": result.best_score,
        "loadavg": os.getloadavg()[0],
    }
    shutil.rmtree(workdir, ignore_errors=True)
    return out


def _done(path: Path | None) -> list[dict]:
    if path is None or not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _key(row: dict) -> tuple:
    return tuple(row[k] for k in ("kind", "mode", "workers", "seed", "round"))


def _median_ratio(rows, num: dict, den: dict, field: str) -> tuple[float, list[float]]:
    ratios = []
    for r in sorted({x["round"] for x in rows}):
        a = [x[field] for x in rows if x["round"] == r and all(x[k] == v for k, v in num.items())]
        b = [x[field] for x in rows if x["round"] == r and all(x[k] == v for k, v in den.items())]
        if a and b:
            ratios.append(a[0] / b[0])
    return (statistics.median(ratios) if ratios else float("nan")), ratios


def summarize_scaling(rows: list[dict]) -> None:
    print(f"{'kind':>8} {'mode':>6} {'workers':>7} {'round':>5} {'wall s':>7} {'steps/s':>8} "
          f"{'all-train steps/s':>17} {'cpu ms/step':>11} {'idle':>6} {'load':>5}")
    for x in sorted(rows, key=lambda x: (x["kind"], x["round"], x["mode"], x["workers"])):
        print(f"{x['kind']:>8} {x['mode']:>6} {x['workers']:>7} {x['round']:>5} {x['wall_s']:>7.1f} "
              f"{x['steps_per_s']:>8.0f} {x['all_training_steps_per_s']:>17.0f} {x['cpu_ms_per_step']:>11.2f} "
              f"{x['idle_fraction']:>6.2f} {x['loadavg']:>5.1f}")
    uni = [x for x in rows if x["kind"] == "uniform"]
    for mode in ("async", "sync") if uni else ():
        med, all_ = _median_ratio(uni, {"mode": mode, "workers": 2}, {"mode": mode, "workers": 1}, "steps_per_s")
        print(f"uniform, {mode}: 2 workers / 1 worker end to end: median {med:.2f}x over rounds {[round(r, 2) for r in all_]}"
              + (" (goal >= 1.8x)" if mode == "async" else ""))
    une = [x for x in rows if x["kind"] == "uneven"]
    fields = (("all_training_steps_per_s", "while every member trains"),
              ("steady_all_training_steps_per_s", "while every member trains, start-up excluded"),
              ("steps_per_s", "end to end"))
    for field, what in fields if une else ():
        if not all(field in x for x in une):
            continue  # rows of an older version of this script
        med, all_ = _median_ratio(une, {"mode": "async"}, {"mode": "sync"}, field)
        print(f"uneven (n_envs=[1, 16], 2 workers): async / sync throughput {what}: median {med:.2f}x "
              f"over rounds {[round(r, 2) for r in all_]}" + (" (goal >= 1.5x)" if field != "steps_per_s" else ""))
    speeds = [max(t.values()) / min(t.values()) for x in une if x["mode"] == "sync" and len(t := x.get("member_interval_s", {})) == 2]
    if speeds:
        ratio = statistics.median(speeds)
        print(f"uneven: the slow member's interval takes {ratio:.2f}x the fast one's (median over sync rounds); "
              f"with 2 members on 2 workers the barrier's cost bounds async / sync at (1 + {ratio:.2f}) / 2 "
              f"= {(1 + ratio) / 2:.2f}x while both train")


def summarize_learning(rows: list[dict]) -> None:
    from results import interval_estimates

    by = {m: {x["seed"]: x["best_score"] for x in rows if x["kind"] == "learning" and x["mode"] == m}
          for m in ("sync", "async")}
    seeds = sorted(set(by["sync"]) & set(by["async"]))
    if not seeds:
        return
    mean = lambda s: np.array([np.mean(s)])  # noqa: E731
    scores = {m: np.array([[by[m][s]] for s in seeds]) for m in ("sync", "async")}
    scores["async - sync"] = scores["async"] - scores["sync"]
    point, ci = interval_estimates(scores, mean, reps=5000, seed=0)
    print(f"learning: best member's final eval_mean_reward over seeds {seeds}:")
    for m in ("sync", "async", "async - sync"):
        print(f"  {m:>12}: mean {point[m][0]:7.1f}, 95% CI [{ci[m][0][0]:7.1f}, {ci[m][1][0]:7.1f}]"
              + (f"  per seed {[round(by[m][s], 1) for s in seeds]}" if m in by else ""))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--population", type=int, default=4)
    p.add_argument("--interval", type=int, default=2048)
    p.add_argument("--intervals", type=int, default=4)
    p.add_argument("--uneven-intervals", type=int, default=12,
                   help="intervals of the uneven population (long enough for the fast member to lap the slow one)")
    p.add_argument("--n-steps", type=int, default=256)
    p.add_argument("--eval-episodes", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="3 intervals of 1024 steps (uneven: 4), 2 rounds")
    p.add_argument("--learning", action="store_true", help="final scores, sync vs async, over --seeds")
    p.add_argument("--only", choices=["uniform", "uneven"], default=None, help="scaling: one population kind")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help="JSONL of finished runs (resumed if it exists)")
    args = p.parse_args(argv)
    if args.quick:
        args.interval, args.intervals, args.uneven_intervals, args.rounds = 1024, 3, 4, 2
    if args.learning:
        args.eval_episodes = max(args.eval_episodes, 5)
        plan = [{"kind": "learning", "mode": m, "workers": 2, "seed": s, "round": 0}
                for s in range(args.seeds) for m in ("sync", "async")]
    else:
        plan = []
        for r in range(args.rounds):  # interleaved: every configuration once per round
            if args.only != "uneven":
                plan += [{"kind": "uniform", "mode": m, "workers": w, "seed": 0, "round": r}
                         for m in ("async", "sync") for w in (1, 2)]
            if args.only != "uniform":
                plan += [{"kind": "uneven", "mode": m, "workers": 2, "seed": 0, "round": r}
                         for m in ("async", "sync")]
    print(f"# pbt_scaling: interval_steps={args.interval} intervals={args.intervals} n_steps={args.n_steps} "
          f"cpus={os.cpu_count()} torch threads={torch.get_num_threads()} load average {os.getloadavg()}")
    from lifelong.pbt.local import WorkerPool, default_start_method

    method = default_start_method()
    if method == "forkserver":  # start the fork server (imports torch once) before timing
        with WorkerPool(abs, 1, start_method=method) as warm:
            warm.submit(0, -1)
            list(warm.outcomes())
    rows = _done(args.out)
    seen = {_key(r) for r in rows}
    root = Path(tempfile.mkdtemp(prefix="pbt_scaling_"))
    try:
        for key in plan:
            if tuple(key.values()) in seen:
                continue
            row = run_population(key, args, root)
            rows.append(row)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.learning:
        summarize_learning(rows)
    else:
        summarize_scaling([r for r in rows if r["kind"] != "learning"])


if __name__ == "__main__":
    main()
