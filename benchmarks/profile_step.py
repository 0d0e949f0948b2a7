"""Where a training update's time goes: DistributionalPPO beside Stable-Baselines3 PPO.

Wraps the functions a PPO update calls with CPU-time timers (``time.process_time``, robust to other
processes on a shared machine) (exclusive time: a
timer inside another is subtracted from the outer one) and prints, per agent, milliseconds per
update (one rollout + one ``train()``) in each part, the median over ``--rounds`` interleaved
rounds (the agents' order alternating):

  rollout: env stepping (``VecEnv.step``), observation conversion (``obs_as_tensor``), policy
  forward (``policy.forward``/``act``/``closed_form.act``, the batched critic pass), buffer writes (``RolloutBuffer.add`` or
  our in-place ``write_step``), episode bookkeeping (``_update_info_buffer``), GAE, and the rest
  of the loop (callbacks, Python);
  train: minibatch forward (``evaluate_actions``; ours also the critics' old outputs where value
  clipping needs them), backward,
  or both with the loss where ours computes the gradients in closed form (``closed_form.minibatch_step``), zero_grad, gradient clipping, optimizer step, scaler (``vgs.step``, without the optimizer step
  it calls), logging, and the rest (losses, indexing, normaliser).

    python benchmarks/profile_step.py                      # CartPole-v1 8x256 and Pendulum-v1 zoo
    python benchmarks/profile_step.py --config cartpole-zoo --updates 20 --json out.json

One torch thread. The timers add about a microsecond per call, so treat parts under 1% as noise.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from typing import Any, Callable

import torch

torch.set_num_threads(1)

import stable_baselines3.common.on_policy_algorithm as sb3_onpolicy  # noqa: E402

import lifelong.agent.closed_form as lifelong_closed_form  # noqa: E402
import lifelong.agent.metrics as lifelong_metrics  # noqa: E402
import lifelong.agent.update as lifelong_update  # noqa: E402
import lifelong.agent.rollout as lifelong_rollout  # noqa: E402
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from speed import CONFIGS, VARIANTS, make_model  # noqa: E402

from lifelong import DistributionalPPO  # noqa: E402

PARTS = [
    ("rollout", "env step"), ("rollout", "obs conversion"), ("rollout", "policy forward"), ("rollout", "buffer writes"),
    ("rollout", "episode bookkeeping"), ("rollout", "GAE"), ("rollout", "loop rest (callbacks, Python)"),
    ("train", "minibatch forward"), ("train", "backward"), ("train", "forward, loss and backward (closed form)"),
    ("train", "zero_grad"), ("train", "grad clipping"),
    ("train", "optimizer step"), ("train", "scaler (VGS)"), ("train", "logging"), ("train", "rest (losses, indexing)"),
]


class Timers:
    """Exclusive wall time per (phase, part): nested timed calls are subtracted from the caller."""

    def __init__(self) -> None:
        self.total: dict[tuple[str, str], float] = defaultdict(float)
        self.stack: list[list[Any]] = []
        self.phase = "other"

    def wrap(self, part: str, fn: Callable, phase: str | None = None) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            outer_phase = self.phase
            if phase is not None:
                self.phase = phase
            frame = [time.process_time(), 0.0]
            self.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.process_time() - frame[0]
                self.stack.pop()
                self.total[(self.phase, part)] += elapsed - frame[1]
                if self.stack:
                    self.stack[-1][1] += elapsed
                self.phase = outer_phase
        return timed


def instrument(model: Any, timers: Timers) -> Callable[[], None]:
    """Wrap the model's hot functions; returns a function that undoes the module-level patches."""
    w = timers.wrap
    policy = model.policy
    model.collect_rollouts = w("loop rest (callbacks, Python)", model.collect_rollouts, phase="rollout")
    model.train = w("rest (losses, indexing)", model.train, phase="train")
    model.env.step = w("env step", model.env.step)
    model._update_info_buffer = w("episode bookkeeping", model._update_info_buffer)
    buf = model.rollout_buffer
    buf.add = w("buffer writes", buf.add)
    buf.compute_returns_and_advantage = w("GAE", buf.compute_returns_and_advantage)
    for name in ("forward", "act", "predict_values", "critic_outputs"):
        if hasattr(policy, name):
            # critic_outputs is also the train phase's old-outputs pass: a forward either way
            setattr(policy, name, w("policy forward" if name != "critic_outputs" else "critic forward", getattr(policy, name)))
    for name in ("evaluate_actions", "evaluate_actions_distributional"):
        if hasattr(policy, name):
            setattr(policy, name, w("minibatch forward", getattr(policy, name)))
    opt = policy.optimizer
    if not isinstance(model, DistributionalPPO):
        # ours steps through lifelong.agent.update.take_step (patched below): wrapping the
        # instance's step would make take_step see a wrapped step and take torch's slow path
        opt.step = w("optimizer step", opt.step)
    opt.zero_grad = w("zero_grad", opt.zero_grad)
    if getattr(model, "vgs", None) is not None:
        model.vgs.step = w("scaler (VGS)", model.vgs.step)
    model.logger.record = w("logging", model.logger.record)
    model.dump_logs = w("logging", model.dump_logs)
    patches = [
        (sb3_onpolicy, "obs_as_tensor"), (lifelong_rollout, "observation_tensor"), (lifelong_rollout, "write_step"),
        (lifelong_rollout, "gae"), (lifelong_metrics, "log_train"),
        (torch.nn.utils, "clip_grad_norm_"),
        (torch.Tensor, "backward"), (lifelong_update, "clip_grad_norm"), (lifelong_update, "zero_grad"),
        (lifelong_closed_form, "minibatch_step"), (lifelong_closed_form, "compiled_minibatch_step"),
        (lifelong_closed_form, "act"), (lifelong_update, "take_step"), (lifelong_update, "clip_listed"),
        (lifelong_update, "step_fused_adam"),
    ]
    names = {"obs_as_tensor": "obs conversion", "observation_tensor": "obs conversion", "write_step": "buffer writes",
             "gae": "GAE",
             "log_train": "logging", "clip_grad_norm_": "grad clipping", "backward": "backward",
             "clip_grad_norm": "grad clipping", "zero_grad": "zero_grad",
             "minibatch_step": "forward, loss and backward (closed form)",
             "compiled_minibatch_step": "forward, loss and backward (closed form)", "act": "policy forward",
             "take_step": "optimizer step", "clip_listed": "grad clipping", "step_fused_adam": "optimizer step"}
    originals = [(obj, name, getattr(obj, name)) for obj, name in patches]
    for obj, name, fn in originals:
        setattr(obj, name, w(names[name], fn))

    def undo() -> None:
        for obj, name, fn in originals:
            setattr(obj, name, fn)
    return undo


def profile(config: str, variant: str, updates: int, seed: int = 0) -> dict[str, float]:
    model = make_model(config, variant, seed)
    steps_per_update = model.n_steps * model.n_envs
    model.learn(steps_per_update)  # warm-up update, not timed
    timers = Timers()
    undo = instrument(model, timers)
    try:
        start = time.process_time()
        model.learn(updates * steps_per_update, reset_num_timesteps=False)
        wall = time.process_time() - start
    finally:
        undo()
    out: dict[str, float] = {}
    for (phase, part), seconds in timers.total.items():
        if part == "critic forward":
            part = "minibatch forward" if phase == "train" else "policy forward"
        key = f"{phase}/{part}"
        out[key] = out.get(key, 0.0) + 1000 * seconds / updates
    out["total"] = 1000 * wall / updates
    return out


def table(config: str, results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    lines = [f"\n### {config}: milliseconds per update (one rollout + one train())\n",
             "| part | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for phase, part in PARTS:
        key = f"{phase}/{part}"
        cells = []
        for n in names:
            v = results[n].get(key, 0.0)
            cells.append(f"{v:.1f} ({100 * v / results[n]['total']:.0f}%)")
        lines.append(f"| {phase}: {part} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{results[n]['total']:.1f}**" for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", choices=list(CONFIGS), help="default: cartpole-8x256 and pendulum-zoo")
    p.add_argument("--variant", action="append", choices=list(VARIANTS), help="default: sb3, ours, ours-upgd "
                   "(repeatable; the list replaces the default, name sb3 to keep it)")
    p.add_argument("--updates", type=int, default=10, help="timed updates per agent (after one warm-up update)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each part is the median over rounds")
    p.add_argument("--json", default=None, help="write the numbers to this file")
    a = p.parse_args(argv)
    everything = {}
    variants = a.variant or ["sb3", "ours", "ours-upgd"]
    for config in a.config or ["cartpole-8x256", "pendulum-zoo"]:
        updates = a.updates if not config.startswith("pendulum") else max(1, a.updates // 3)
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for rnd in range(a.rounds):  # interleaved, the order alternating, so load drifts hit every agent alike
            for v in variants if rnd % 2 == 0 else variants[::-1]:
                runs[v].append(profile(config, v, updates, seed=rnd))
        results = {v: {k: statistics.median(r.get(k, 0.0) for r in rs) for k in set().union(*rs)} for v, rs in runs.items()}
        everything[config] = results
        print(table(config, results), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(everything, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
