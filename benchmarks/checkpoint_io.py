"""Checkpoint size and save/load time of a default CartPole DistributionalPPO, next to SB3's PPO.

    .venv/bin/python benchmarks/checkpoint_io.py [--repeats 20] [--train-steps 2048]

Both agents use their defaults (lifelong: twin quantile critics, AdaptiveUPGD, scaler; SB3: PPO
with Adam) and are trained for one rollout first, so the optimizer state is populated. Times are
medians over ``--repeats`` runs on one torch thread; ``load`` includes verification (checksums,
file digest, safe decoding) and rebuilding the model.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

import torch

torch.set_num_threads(1)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=2048)
    args = parser.parse_args()

    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from lifelong import DistributionalPPO
    from lifelong.checkpoint import load_state, save_state, verify

    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls in (("lifelong DistributionalPPO", DistributionalPPO), ("SB3 PPO", PPO)):
            env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
            model = cls("MlpPolicy", env, seed=0, device="cpu")
            path = os.path.join(tmp, name.split()[0] + ".zip")
            model.save(path)
            fresh_kb = os.path.getsize(path) / 1024
            model.learn(args.train_steps)
            model.save(path)
            size_kb = os.path.getsize(path) / 1024
            save_ms = _median_ms(lambda: model.save(path), args.repeats)
            load_ms = _median_ms(lambda: cls.load(path, env=env, device="cpu"), args.repeats)
            row = {"agent": name, "fresh_kb": fresh_kb, "size_kb": size_kb, "save_ms": save_ms, "load_ms": load_ms}
            if cls is DistributionalPPO:
                row["verify_ms"] = _median_ms(lambda: verify(path), args.repeats)
                row["save_state_ms"] = _median_ms(lambda: save_state(model), args.repeats)
                state = save_state(model)
                row["load_state_ms"] = _median_ms(lambda: load_state(model, state), args.repeats)
                row["params"] = sum(p.numel() for p in model.policy.parameters())
            else:
                row["params"] = sum(p.numel() for p in model.policy.parameters())
            rows.append(row)

    ours, sb3 = rows
    print(f"torch {torch.__version__}, 1 thread, median of {args.repeats}, after {args.train_steps} training steps")
    print(f"{'':28s}{'params':>9s}{'fresh KiB':>11s}{'KiB':>9s}{'save ms':>9s}{'load ms':>9s}")
    for r in rows:
        print(f"{r['agent']:28s}{r['params']:9d}{r['fresh_kb']:11.1f}{r['size_kb']:9.1f}{r['save_ms']:9.1f}{r['load_ms']:9.1f}")
    print(f"{'ratio lifelong / SB3':28s}{ours['params'] / sb3['params']:9.2f}{ours['fresh_kb'] / sb3['fresh_kb']:11.2f}"
          f"{ours['size_kb'] / sb3['size_kb']:9.2f}{ours['save_ms'] / sb3['save_ms']:9.2f}{ours['load_ms'] / sb3['load_ms']:9.2f}")
    print(f"lifelong verify(path): {ours['verify_ms']:.1f} ms; in memory: save_state {ours['save_state_ms']:.1f} ms, "
          f"load_state {ours['load_state_ms']:.1f} ms")


if __name__ == "__main__":
    main()
