"""Time ``optimizer.step()`` of torch's optimizers and the UPGD family, side by side.

Two models: a PPO-sized actor-critic MLP (Stable-Baselines3's default ``MlpPolicy`` shape for an
8-dimensional observation and 4 actions: separate 64x64 policy and value networks, ~10k
parameters in 14 tensors) and a ~1M-parameter MLP. For each model, every optimizer gets its own
copy of the model with fixed random gradients; the optimizers are then timed in interleaved
rounds (so that load from other processes hits all of them alike) and the median time per
``step()`` is reported, with its ratio to Adam (foreach). One torch thread, one process.

On the CPU the clock is the stepping thread's CPU time (``time.thread_time``) by default: on a
machine shared with other jobs, wall time also counts the time the thread waits for a core,
which lands on whichever optimizer happens to be running. ``--clock wall`` uses wall time (the
default on CUDA, where the host waits for the device).

    python benchmarks/optim_step.py            # ~1 minute
    python benchmarks/optim_step.py --quick    # a few seconds
    python benchmarks/optim_step.py --out results.jsonl   # also append one JSON line per model
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time

import torch
from torch import nn

from lifelong import UPGD, UPGDW, AdaptiveUPGD


def ppo_mlp() -> nn.Module:
    """SB3 MlpPolicy layout for obs dim 8, 4 discrete actions: pi 8-64-64-4, vf 8-64-64-1."""
    def trunk() -> nn.Sequential:
        return nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh())
    return nn.ModuleDict({"pi": trunk(), "vf": trunk(),
                          "action": nn.Linear(64, 4), "value": nn.Linear(64, 1)})


def large_mlp() -> nn.Module:
    """~1M parameters: 256 -> 1024 -> 512 -> 256 -> 16 (plus a value head)."""
    return nn.Sequential(nn.Linear(256, 1024), nn.Tanh(), nn.Linear(1024, 512), nn.Tanh(),
                         nn.Linear(512, 256), nn.Tanh(), nn.Linear(256, 16))


OPTIMIZERS = {
    "Adam": lambda p: torch.optim.Adam(p, lr=3e-4, foreach=True),
    "AdamW": lambda p: torch.optim.AdamW(p, lr=1e-3, foreach=True),
    "SGD": lambda p: torch.optim.SGD(p, lr=1e-3, foreach=True),
    "UPGD": lambda p: UPGD(p),
    "AdaptiveUPGD": lambda p: AdaptiveUPGD(p),
    "UPGDW": lambda p: UPGDW(p),
    "AdaUPGD s=0": lambda p: AdaptiveUPGD(p, sigma=0.0),
    "AdaUPGD ref": lambda p: AdaptiveUPGD(p, foreach=False),
    "Adam fused": lambda p: torch.optim.Adam(p, lr=3e-4, fused=True),    # the agent's default
    "Adam-like": lambda p: AdaptiveUPGD(p, gate="none", sigma=0.0, weight_decay=0.0),
    "Adam-like reset": lambda p: AdaptiveUPGD(p, gate="none", sigma=0.0, weight_decay=0.0, reset_after=200),
    # L2-Init on the first layer only (its weight and bias in a group of their own), as the
    # continual-RL benchmark's l2_input agent: two groups, one fused Adam kernel call
    "Adam-like L2 1st": lambda p: AdaptiveUPGD([{"params": p[:2], "l2_init": 0.3}, {"params": p[2:]}],
                                               gate="none", sigma=0.0, weight_decay=0.0),
}


def bench_model(model: nn.Module, rounds: int, steps: int, names: list[str],
                device: str = "cpu", clock=time.perf_counter) -> dict[str, float]:
    torch.manual_seed(0)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    setups = {}
    for name in names:
        replica = copy.deepcopy(model).to(device)
        for p in replica.parameters():
            p.grad = torch.randn_like(p) * 1e-2
        setups[name] = OPTIMIZERS[name](list(replica.parameters()))
        for _ in range(3):  # warm up: state allocation, allocator caches
            setups[name].step()
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            opt = setups[name]
            sync()
            start = clock()
            for _ in range(steps):
                opt.step()
            sync()
            times[name].append((clock() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, noisier")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--clock", choices=("thread", "wall"), default=None,
                        help="thread CPU time (CPU default) or wall time (CUDA default)")
    parser.add_argument("--out", default=None, help="append one JSON line per model to this file")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    clock_name = args.clock or ("wall" if cuda else "thread")
    clock = time.thread_time if clock_name == "thread" else time.perf_counter
    torch.set_num_threads(1)
    names = list(OPTIMIZERS)
    models = [("ppo-mlp", ppo_mlp(), 50), ("mlp-1M", large_mlp(), 3)]
    if args.device.startswith("cuda"):
        models = [(label, m, 50) for label, m, _ in models]
        models.append(("mlp-67M", nn.Sequential(nn.Linear(4096, 8192), nn.Tanh(),
                                                nn.Linear(8192, 4096)), 20))
    rounds = args.rounds or (7 if args.quick else 41)
    if args.quick:
        models = [(label, m, max(1, steps // 5)) for label, m, steps in models]
    where = (torch.cuda.get_device_name() if args.device.startswith("cuda")
             else f"cpu, {torch.get_num_threads()} thread")
    print(f"torch {torch.__version__}, {where}, median of {rounds} "
          f"interleaved rounds, {clock_name} time per optimizer.step()")
    header = f"{'model':<9} {'params':>9} " + " ".join(f"{n:>13}" for n in names)
    print(header)
    print("-" * len(header))
    for label, model, steps in models:
        n_params = sum(p.numel() for p in model.parameters())
        med = bench_model(model, rounds, steps, names, args.device, clock)
        base = med["Adam"]
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps({"model": label, "params": n_params, "device": where,
                                    "clock": clock_name, "rounds": rounds, "torch": torch.__version__,
                                    "seconds": med, "vs_adam": {n: med[n] / base for n in names}})
                        + "\n")
        print(f"{label:<9} {n_params:>9,} " + " ".join(f"{med[n] * 1e6:>10.0f} us" for n in names))
        print(f"{'':<9} {'vs Adam':>9} " + " ".join(f"{med[n] / base:>12.2f}x" for n in names))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
