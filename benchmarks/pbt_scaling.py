"""PBT population throughput with 1 and 2 local workers, and the cost of one exploit.

    .venv/bin/python benchmarks/pbt_scaling.py            # ~2-4 minutes on an idle 2-core machine
    .venv/bin/python benchmarks/pbt_scaling.py --quick    # smaller population and intervals

For each worker count, a CartPole population is trained with the local backend and timed:

- end-to-end: total env steps / wall time of ``PBT.run()`` (includes starting the workers; the
  fork server, which imports torch and Stable-Baselines3 once, is started before timing);
- steady state: env steps / wall time from the first interval boundary to the end (the figure
  that matters for long runs, where the spawn is amortised).

An exploit is measured in two parts: the coordinator's copy of the donor's checkpoint into the
recipient's folder (from ``lineage.jsonl``), and the recipient's extra work, which is loading a
checkpoint and applying its config (``prepare_model``; every interval does this anyway, so an
exploit adds only the copy). Goal: 2 workers >= 1.8x one. Numbers depend on the machine's load:
the script prints the load average next to them.
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

import torch

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifelong.pbt import PBT, LogUniform, Uniform  # noqa: E402
from lifelong.pbt.member import AgentSpec, make_env, prepare_model  # noqa: E402


def run_population(workers: int, args, root: Path) -> dict:
    workdir = root / f"workers_{workers}"
    shutil.rmtree(workdir, ignore_errors=True)
    agent = {"env": "CartPole-v1", "n_steps": args.n_steps, "batch_size": 64, "n_epochs": 4, "device": "cpu"}
    pbt = PBT(
        agent=agent,
        space={"learning_rate": LogUniform(1e-4, 3e-3), "ent_coef": Uniform(0.0, 0.02)},
        population_size=args.population,
        interval_steps=args.interval,
        total_steps=args.interval * args.intervals,
        eval_episodes=args.eval_episodes,
        workdir=workdir,
        workers=workers,
        seed=0,
    )
    marks: dict[int, float] = {}
    steps = {"total": 0}

    def on_event(event):
        if event["event"] == "interval":
            steps["total"] += int(event["env_steps"])
        if event["event"] == "boundary":
            marks[event["step"]] = time.perf_counter()
            steps[event["step"]] = steps["total"]

    t0 = time.perf_counter()
    result = pbt.run(callback=on_event)
    t1 = time.perf_counter()
    first = min(marks)
    out = {
        "workers": workers,
        "env_steps": steps["total"],
        "wall_s": t1 - t0,
        "steps_per_s": steps["total"] / (t1 - t0),
        "steady_steps_per_s": (steps["total"] - steps[first]) / (t1 - marks[first]),
        "exploits": len(result.exploits),
        "copy_s": [e["seconds"] for e in result.exploits],
        "workdir": str(workdir),
        "checkpoint": str(result.best_checkpoint),
        "checkpoint_bytes": result.best_checkpoint.stat().st_size,
    }
    return out


def time_exploit_load(checkpoint: str, repeats: int = 5) -> float:
    spec = AgentSpec.from_agent({"env": "CartPole-v1", "device": "cpu"})
    env = make_env(spec, seed=0)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        prepare_model(spec, {"learning_rate": 1e-3, "ent_coef": 0.01}, checkpoint=checkpoint, env=env, seed=0)
        times.append(time.perf_counter() - t)
    env.close()
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--population", type=int, default=4)
    p.add_argument("--interval", type=int, default=2048)
    p.add_argument("--intervals", type=int, default=4)
    p.add_argument("--n-steps", type=int, default=256)
    p.add_argument("--eval-episodes", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="population 4, 3 intervals of 512 steps")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    if args.quick:
        args.interval, args.intervals, args.n_steps = 512, 3, 128
    root = args.workdir or Path(tempfile.mkdtemp(prefix="pbt_scaling_"))
    print(f"# pbt_scaling: population={args.population} interval_steps={args.interval} "
          f"intervals={args.intervals} n_steps={args.n_steps} cpus={os.cpu_count()} "
          f"torch threads={torch.get_num_threads()}")
    print(f"# load average before: {os.getloadavg()}")
    from lifelong.pbt.local import WorkerPool, default_start_method

    method = default_start_method()
    if method == "forkserver":  # start the fork server (imports torch once) before timing
        with WorkerPool(abs, 1, start_method=method) as warm:
            warm.submit(0, -1)
            list(warm.outcomes())
    print(f"# worker start method: {method}")
    rows = [run_population(w, args, root) for w in (1, 2)]
    load_after = os.getloadavg()
    one, two = rows
    load_s = time_exploit_load(two["checkpoint"])
    copy_s = statistics.median(one["copy_s"] + two["copy_s"]) if (one["copy_s"] + two["copy_s"]) else float("nan")
    print(f"{'workers':>8} {'env steps':>10} {'wall s':>8} {'steps/s':>9} {'steady steps/s':>15} {'exploits':>9}")
    for r in rows:
        print(f"{r['workers']:>8} {r['env_steps']:>10} {r['wall_s']:>8.1f} {r['steps_per_s']:>9.0f} "
              f"{r['steady_steps_per_s']:>15.0f} {r['exploits']:>9}")
    speed = two["steps_per_s"] / one["steps_per_s"]
    steady = two["steady_steps_per_s"] / one["steady_steps_per_s"]
    print(f"speed-up 2 vs 1 worker: end-to-end {speed:.2f}x, steady state {steady:.2f}x (goal >= 1.8x)")
    print(f"one exploit: checkpoint copy {copy_s * 1e3:.1f} ms (median), "
          f"recipient load + apply config {load_s * 1e3:.1f} ms (median; every interval pays this anyway), "
          f"checkpoint size {two['checkpoint_bytes'] / 1024:.0f} KiB")
    print(f"# load average after: {load_after}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "speedup": speed, "steady_speedup": steady,
                                         "exploit_copy_s": copy_s, "exploit_load_s": load_s,
                                         "loadavg_after": load_after}, indent=2))
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
