"""What the closed-form minibatch step costs with three ways of computing its Tanh activations.

``lifelong.agent.closed_form.tanh`` computes ``tanh(x)`` as ``2 sigmoid(2x) - 1`` because torch's
CPU ``tanh`` kernel is slow. This script is the evidence: one process, one torch thread, the
default agent of a ``benchmarks/speed.py`` configuration trained for one rollout, its first
minibatch captured, then ``rounds`` rounds in which each form runs ``steps`` minibatch steps on
those same inputs (the forms' order rotating between rounds). Prints the median and minimum CPU
time per step of each form:

* ``torch.tanh``: the kernel itself (the autograd path's and the rollout's);
* ``2 sigmoid(2x) - 1``: the form the step uses (absolute error < 2e-7 in float32);
* ``expm1(2x) / (expm1(2x) + 2)``: within 2 ulps everywhere, five operations.

    python benchmarks/tanh_forms.py                              # CartPole-v1 8x256
    python benchmarks/tanh_forms.py --config pendulum-zoo --rounds 30
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402

from lifelong.agent import closed_form  # noqa: E402


def _expm1_tanh(x: torch.Tensor) -> torch.Tensor:
    bound = 18.3 if x.dtype == torch.float32 else 38.4  # log(4 / eps) + 1: tanh rounds to +-1 beyond
    e = torch.mul(x, 2.0).clamp_(-bound, bound).expm1_()
    return e.div_(e + 2.0)


FORMS = {"torch.tanh": torch.tanh, "2 sigmoid(2x) - 1": closed_form.tanh, "expm1 form": _expm1_tanh}


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=list(speed.CONFIGS), default="cartpole-8x256")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--steps", type=int, default=100, help="minibatch steps per form and round")
    a = p.parse_args(argv)
    model = speed.make_model(a.config, "ours", 0)
    captured = []
    step = closed_form.minibatch_step

    def capture(*args, **kwargs):
        captured.append((args, kwargs))
        return step(*args, **kwargs)

    closed_form.minibatch_step = capture
    try:
        model.learn(model.n_steps * model.n_envs)
    finally:
        closed_form.minibatch_step = step
    args, kwargs = captured[0]
    chosen = closed_form.tanh
    times: dict[str, list[float]] = {name: [] for name in FORMS}
    names = list(FORMS)
    try:
        for r in range(a.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                closed_form.tanh = FORMS[name]  # _forward_activation looks it up at each call
                start = time.process_time()
                for _ in range(a.steps):
                    step(*args, **kwargs)
                times[name].append((time.process_time() - start) / a.steps * 1e6)
    finally:
        closed_form.tanh = chosen
    base = statistics.median(times["torch.tanh"])
    for name, t in times.items():
        median = statistics.median(t)
        print(f"{a.config:15s} {name:20s} median {median:7.1f} us, min {min(t):7.1f} us per minibatch step "
              f"({(median / base - 1) * 100:+.0f}%)")
    return times


if __name__ == "__main__":
    main()
