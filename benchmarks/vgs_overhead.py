"""Cost of ``vgs.step(opt, max_grad_norm=0.5)`` relative to ``clip_grad_norm_ + opt.step()``.

Two models: the PPO-sized network the agent steps (actor 64x64 + twin 64x64 critics with
32-quantile heads, ~15k parameters in 18 tensors) and a ~1M-parameter MLP. Optimizers:
``torch.optim.Adam`` (foreach) and, when ``lifelong.optim`` is importable, ``AdaptiveUPGD``.
Both arms get the same gradients (a pool of random gradients copied in before each step,
outside the timed region), run interleaved in short blocks, and the median per-step time of
each arm is reported; the scaler runs past warm-up so the learning-rate scaling is exercised.

    .venv/bin/python benchmarks/vgs_overhead.py            # ~1 minute
    .venv/bin/python benchmarks/vgs_overhead.py --quick    # a few seconds (smoke)
    python benchmarks/vgs_overhead.py --device cuda        # on a GPU machine
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from lifelong.vgs import VarianceGradientScaler


def ppo_net() -> nn.Module:
    obs, act, quantiles = 8, 4, 32

    def mlp(out: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(obs, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out))

    return nn.ModuleList([mlp(act), mlp(quantiles), mlp(quantiles)])


def mlp_1m() -> nn.Module:
    return nn.Sequential(nn.Linear(512, 1024), nn.Tanh(), nn.Linear(1024, 512), nn.Tanh(), nn.Linear(512, 16))


def optimizers() -> dict[str, type]:
    out: dict[str, type] = {"Adam": torch.optim.Adam}
    try:
        from lifelong.optim import AdaptiveUPGD  # written in parallel; optional here
    except ImportError:
        pass
    else:
        out["AdaptiveUPGD"] = AdaptiveUPGD
    return out


def bench(model_fn, opt_cls, rounds: int, block: int, device: torch.device, pool: int = 8) -> tuple[float, float]:
    torch.manual_seed(0)
    base_model = model_fn().to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    vgs_model = copy.deepcopy(base_model)
    base_params = list(base_model.parameters())
    vgs_params = list(vgs_model.parameters())
    # Small lr so many steps stay in a sane regime for either optimizer.
    base_opt = opt_cls(base_params, lr=1e-6)
    vgs_opt = opt_cls(vgs_params, lr=1e-6)
    vgs = VarianceGradientScaler(alpha=0.1, warmup_steps=0)
    grads = [[torch.randn_like(p) * 0.1 + 0.05 for p in base_params] for _ in range(pool)]

    def load(params, k):
        for p, g in zip(params, grads[k % pool]):
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)

    def run_base(k):
        load(base_params, k)
        sync()
        t = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(base_params, 0.5)
        base_opt.step()
        sync()  # the scaler syncs twice per step anyway; time both arms to completion
        return time.perf_counter() - t

    def run_vgs(k):
        load(vgs_params, k)
        sync()
        t = time.perf_counter()
        vgs.step(vgs_opt, max_grad_norm=0.5)
        sync()
        return time.perf_counter() - t

    for k in range(3 * pool):  # warm both arms (lazy state, allocator)
        run_base(k)
        run_vgs(k)
    tb: list[float] = []
    tv: list[float] = []
    k = 0
    for r in range(rounds):
        arms = (run_base, run_vgs) if r % 2 == 0 else (run_vgs, run_base)
        for arm in arms:
            out = tb if arm is run_base else tv
            for _ in range(block):
                out.append(arm(k))
                k += 1
    assert 0.0 < vgs.factor <= 1.0
    return statistics.median(tb), statistics.median(tv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)
    models = {"ppo_64x64": ppo_net, "mlp_1M": mlp_1m}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device={where}, threads={torch.get_num_threads()}, "
          "median per step, interleaved blocks")
    print(f"{'model':<10} {'params':>9} {'optimizer':<13} {'clip+step':>11} {'vgs.step':>11} {'ratio':>6}")
    for mname, fn in models.items():
        n = sum(p.numel() for p in fn().parameters())
        for oname, ocls in optimizers().items():
            small = n < 100_000
            if args.quick:
                rounds, block = 2, (20 if small else 3)
            else:
                rounds, block = (30, 40) if small else (20, 6)
            tb, tv = bench(fn, ocls, rounds, block, device)
            print(f"{mname:<10} {n:>9,} {oname:<13} {tb * 1e6:>9.0f}us {tv * 1e6:>9.0f}us {tv / tb:>5.2f}x")


if __name__ == "__main__":
    main()
