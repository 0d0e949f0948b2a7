"""Label-permuted streaming digits: does the optimizer keep its plasticity?

A continual-learning benchmark in the style of Elsayed & Mahmood (ICLR 2024)'s label-permuted
EMNIST, on scikit-learn's bundled 8x8 digits (1797 images, no download):

* a stream of mini-batches drawn uniformly (with replacement) from the data set;
* a *task* is a random permutation of the 10 labels, replaced every ``T`` samples;
* online learning: each batch is predicted *before* the update on it; the metric is the online
  accuracy averaged over each task;
* optimizers: SGD, Adam, UPGD, AdaptiveUPGD and Shrink & Perturb (SGD with decoupled weight decay
  and Gaussian noise on every step: UPGD without its utility gate);
* a small hyperparameter grid per optimizer; the configuration with the best mean online accuracy
  over the whole stream on the tuning seed (0) is reported on 5 other seeds (1..5).

Speed: every (configuration, seed) pair of one optimizer trains *at once*, as a batch of
independent networks (weights with a leading run dimension, ``torch.bmm``), with batched
re-implementations of the five update rules; each run has its own global UPGD utility maximum,
exactly as if it ran alone (``benchmarks/batched_rules.py``). :func:`verify_engine` (run first,
every time) checks the batched rules step by step against ``torch.optim.SGD``/``Adam`` and ``lifelong.UPGD``/``AdaptiveUPGD`` (noise
off; the noise draws differ only in which random numbers they use).

Usage::

    python benchmarks/plasticity_digits.py            # full settings (a few minutes)
    python benchmarks/plasticity_digits.py --quick    # seconds, for tests
    python benchmarks/plasticity_digits.py --tasks 400 --task-samples 2000 --out runs/digits

Prints the table (first 10% / middle 10% / last 10% of tasks, peak = best 10%-window, each the
mean over the evaluation seeds with [min, max]) and writes ``plasticity_digits.png`` and
``plasticity_digits.json`` to ``--out`` (default ``runs/benchmarks``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batched_rules import (  # noqa: E402
    BETA_UTILITY, BETAS, EPS, OPTIMIZERS, BatchedOptimizer, forward, init_params, verify_engine,
)

LABELS = {"sgd": "SGD", "adam": "Adam", "upgd": "UPGD", "adaptive_upgd": "AdaptiveUPGD",
          "shrink_perturb": "Shrink & Perturb"}

#: per-optimizer grids (small on purpose); keys are the batched rules' hyperparameters
GRIDS: dict[str, list[dict[str, float]]] = {
    "sgd": [{"lr": lr} for lr in (0.03, 0.1, 0.3)],
    "adam": [{"lr": lr} for lr in (3e-4, 1e-3, 3e-3, 1e-2)],
    "upgd": [{"lr": lr, "sigma": s, "weight_decay": 1e-3}
             for lr in (0.03, 0.1, 0.3) for s in (0.01, 0.1)],
    # AdaptiveUPGD's noise is added to the Adam-normalised direction (size ~1), not to the raw
    # gradient, so its sigma is on another scale than UPGD's
    "adaptive_upgd": [{"lr": lr, "sigma": s, "weight_decay": 1e-3}
                      for lr in (3e-4, 1e-3, 3e-3, 1e-2) for s in (0.1, 1.0)],
    "shrink_perturb": [{"lr": lr, "sigma": s, "weight_decay": 1e-3}
                       for lr in (0.03, 0.1, 0.3) for s in (0.01, 0.1)],
}


@dataclass
class Settings:
    tasks: int = 100            # number of label permutations
    task_samples: int = 600     # T: samples per task
    batch: int = 4              # samples per update
    hidden: int = 64            # width of the two hidden ReLU layers (batched engine)
    hidden_sizes: tuple[int, ...] = (64, 32)   # hidden widths of the real-optimizer engine
    tune_seed: int = 0
    eval_seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    diag_points: int = 10       # diagnostics measured at this many points of the stream

    @property
    def steps_per_task(self) -> int:
        return max(1, self.task_samples // self.batch)


# ------------------------------------------------------------------------------------ data
_DATA: tuple[torch.Tensor, torch.Tensor] | None = None


def load_data() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits (1797 x 64 pixels in 0..16, scaled to [0, 1]), read from the CSV
    file that scikit-learn ships (importing scikit-learn itself takes seconds), once per process.
    """
    global _DATA
    if _DATA is None:
        import gzip
        import importlib.util
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the digits benchmark needs scikit-learn: pip install scikit-learn")
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
        if path.exists():
            with gzip.open(path, "rt") as f:
                data = np.loadtxt(f, delimiter=",")
            x, y = data[:, :-1], data[:, -1].astype(np.int64)
        else:  # another layout: the public loader
            from sklearn.datasets import load_digits
            x, y = load_digits(return_X_y=True)
        _DATA = (torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y, dtype=torch.long))
    return _DATA


class Stream:
    """Per-seed sample indices and label permutations, generated task by task."""

    def __init__(self, seeds: list[int], n_samples: int, steps: int, batch: int):
        self.seeds = seeds
        uniq = sorted(set(seeds))
        self.rngs = {s: np.random.default_rng([s, 2024]) for s in uniq}
        self.row = torch.tensor([uniq.index(s) for s in seeds])
        self.n, self.steps, self.batch = n_samples, steps, batch

    def next_task(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices [R, steps, batch], permutation [R, 10]) of the next task for every run."""
        idx, perm = [], []
        for s in self.rngs:
            rng = self.rngs[s]
            perm.append(rng.permutation(10))
            idx.append(rng.integers(0, self.n, size=(self.steps, self.batch)))
        idx_t = torch.tensor(np.stack(idx))[self.row]
        perm_t = torch.tensor(np.stack(perm))[self.row]
        return idx_t, perm_t


# ----------------------------------------------------------------------------- experiment
def run_optimizer(kind: str, configs: list[dict[str, float]], seeds: list[int], s: Settings,
                  x: torch.Tensor, y: torch.Tensor,
                  hidden_sizes: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """Train one network per (config, seed) pair (R = len(configs) * len(seeds) at once).

    Returns ``acc [n_configs, n_seeds, tasks]`` and diagnostics ``[n_configs, n_seeds, points]``.
    """
    from lifelong.diagnostics import dormant_units, effective_rank
    run_cfg = [c for c in configs for _ in seeds]
    run_seed = [sd for _ in configs for sd in seeds]
    R = len(run_cfg)
    hidden_sizes = hidden_sizes or (s.hidden, s.hidden)
    params = init_params(run_seed, [x.shape[1], *hidden_sizes, 10])
    opt = BatchedOptimizer(kind, params, run_cfg, noise_seed=12345)
    stream = Stream(run_seed, len(x), s.steps_per_task, s.batch)
    acc = np.zeros((R, s.tasks))
    points = sorted(set(np.linspace(0, s.tasks, s.diag_points + 1).round().astype(int)[1:]))
    diag = {k: np.zeros((R, len(points))) for k in ("dormant", "erank", "wnorm")}
    probe = x[torch.linspace(0, len(x) - 1, 512).long()].expand(R, -1, -1)
    p_i = 0
    for task in range(s.tasks):
        idx, perm = stream.next_task()
        labels = perm.gather(1, y[idx].reshape(R, -1)).reshape(idx.shape)
        correct = torch.zeros(R)
        for step in range(s.steps_per_task):
            xb, yb = x[idx[:, step]], labels[:, step]
            logits = forward(params, xb)
            correct += (logits.detach().argmax(-1) == yb).sum(1)
            loss = F.cross_entropy(logits.reshape(-1, 10), yb.reshape(-1), reduction="sum")
            for p in params:
                p.grad = None
            (loss / s.batch).backward()
            opt.step()
        acc[:, task] = (correct / (s.steps_per_task * s.batch)).numpy()
        if p_i < len(points) and task + 1 == points[p_i]:
            with torch.no_grad():
                _, hidden = forward(params, probe, return_hidden=True)
                wn = torch.stack([p.detach().pow(2).sum(dim=(1, 2)) for p in params]).sum(0).sqrt()
            for r in range(R):
                dead = sum(int(dormant_units(h[r], tau=0.0).sum()) for h in hidden)
                diag["dormant"][r, p_i] = dead / sum(h.shape[-1] for h in hidden)
                diag["erank"][r, p_i] = effective_rank(hidden[-1][r])
                diag["wnorm"][r, p_i] = float(wn[r])
            p_i += 1
    shape = (len(configs), len(seeds))
    return {"acc": acc.reshape(*shape, s.tasks), "points": np.array(points),
            **{k: v.reshape(*shape, -1) for k, v in diag.items()}}


def window_stats(curve: np.ndarray) -> dict[str, float]:
    """first / middle / last 10% of tasks and peak (best 10% window) of one accuracy curve."""
    n = len(curve)
    w = max(1, n // 10)
    mid0 = (n - w) // 2
    windows = np.convolve(curve, np.ones(w) / w, mode="valid")
    return {"first": float(curve[:w].mean()), "middle": float(curve[mid0:mid0 + w].mean()),
            "last": float(curve[-w:].mean()), "peak": float(windows.max())}


def fmt_cfg(cfg: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in cfg.items())


def benchmark_optimizer(kind: str, s: Settings, quick: bool = False) -> dict:
    """Tune ``kind``'s grid on the tuning seed, then run the chosen config on the eval seeds."""
    torch.set_num_threads(1)
    x, y = load_data()
    t = time.perf_counter()
    grid = GRIDS[kind][:2] if quick else GRIDS[kind]
    tune = run_optimizer(kind, grid, [s.tune_seed], s, x, y)
    tune_scores = tune["acc"][:, 0].mean(axis=1)
    best = int(np.argmax(tune_scores))
    ev = run_optimizer(kind, [grid[best]], list(s.eval_seeds), s, x, y)
    per_seed = [window_stats(c) for c in ev["acc"][0]]
    return {
        "config": grid[best], "grid": grid, "tune_scores": tune_scores.tolist(),
        "stats": {k: [p[k] for p in per_seed] for k in per_seed[0]},
        "curve": ev["acc"][0].tolist(), "diag_points": ev["points"].tolist(),
        "dormant": ev["dormant"][0].tolist(), "erank": ev["erank"][0].tolist(),
        "wnorm": ev["wnorm"][0].tolist(), "seconds": time.perf_counter() - t,
    }


def _bench_star(args):
    return benchmark_optimizer(*args)


# ------------------------------------------------------- real optimizers, fixed configurations
#: name -> {"optimizer": "sgd" | "adam" | "upgd" | "adaptive_upgd" | "upgdw" | "agent", "kwargs"}
#: at the issue's settings (Adam-equivalent lr 1e-3, SGD-equivalent lr 0.005). "agent" is the
#: optimizer DistributionalPPO builds by default, rebuilt from its class and ``defaults`` with
#: only ``lr`` replaced: what a user gets from ``type(opt)(params, **opt.defaults)``.
REAL_CONFIGS: dict[str, dict] = {
    "adam": {"optimizer": "adam", "kwargs": {"lr": 1e-3}},
    "upgd": {"optimizer": "upgd", "kwargs": {"lr": 0.005, "sigma": 0.01, "weight_decay": 1e-3}},
    "adaptive_upgd": {"optimizer": "adaptive_upgd", "kwargs": {"lr": 1e-3}},
    "agent": {"optimizer": "agent", "kwargs": {"lr": 1e-3}},
}


def agent_default_optimizer() -> tuple[type, dict]:
    """The class and ``defaults`` of the optimizer DistributionalPPO builds with no optimizer
    arguments (read from a real model, so it is whatever the agent's defaults are today)."""
    import gymnasium as gym

    from lifelong.agent.ppo import DistributionalPPO
    model = DistributionalPPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=8, batch_size=8,
                              device="cpu")
    opt = model.policy.optimizer
    return type(opt), dict(opt.defaults)


def build_real_optimizer(spec: dict, params) -> torch.optim.Optimizer:
    from lifelong.optim import UPGD, UPGDW, AdaptiveUPGD
    classes = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "upgd": UPGD,
               "adaptive_upgd": AdaptiveUPGD, "upgdw": UPGDW}
    name, kwargs = spec.get("optimizer"), dict(spec.get("kwargs", {}))
    if name == "agent":
        cls, defaults = agent_default_optimizer()
        kwargs = {**defaults, **kwargs}
    elif name not in classes:
        raise ValueError(f"optimizer {name!r}: expected one of {sorted(classes) + ['agent']}")
    else:
        cls = classes[name]
    head_kwargs = spec.get("head_kwargs")
    if head_kwargs is not None:  # the output layer in a param group of its own
        params = list(params)
        optimizer = cls([{"params": params[:-2]}], **kwargs)
        unknown = sorted(set(head_kwargs) - set(optimizer.defaults))
        if unknown:  # torch keeps unknown group keys without a word: refuse them here
            raise ValueError(f"head_kwargs {unknown} are not hyperparameters of {cls.__name__} "
                             f"(it has {sorted(optimizer.defaults)})")
        optimizer.add_param_group({"params": params[-2:], **head_kwargs})
        return optimizer
    return cls(params, **kwargs)


def run_real(name: str, spec: dict, seed: int, s: Settings) -> dict:
    """One network trained online with a real optimizer; per-task accuracy and diagnostics."""
    torch.set_num_threads(1)
    from torch import nn

    from lifelong import diagnostics as D
    x, y = load_data()
    sizes = [x.shape[1], *s.hidden_sizes, 10]
    params = init_params([seed], sizes)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            lin.weight.copy_(params[2 * i][0].t())
            lin.bias.copy_(params[2 * i + 1][0, 0])
        layers += [lin, nn.ReLU()]
    net = nn.Sequential(*layers[:-1])
    torch.manual_seed(10_000 + seed)                   # the optimizers' noise
    opt = build_real_optimizer(spec, net.parameters())
    stream = Stream([seed], len(x), s.steps_per_task, s.batch)
    probe = x[torch.linspace(0, len(x) - 1, 512).long()]
    points = sorted(set(np.linspace(0, s.tasks, s.diag_points + 1).round().astype(int)[1:]))
    acc, diag = np.zeros(s.tasks), []
    t0 = time.perf_counter()
    head = list(net[-1].parameters())
    head_initial = [p.detach().clone() for p in head]
    for task in range(s.tasks):
        idx, perm = stream.next_task()
        if task > 0 and spec.get("head_reset"):
            reset_output_layer(opt, head, head_initial)
        labels = perm[0][y[idx[0]]]                                   # [steps, batch]
        correct = 0
        for step in range(s.steps_per_task):
            logits = net(x[idx[0, step]])
            correct += int((logits.detach().argmax(-1) == labels[step]).sum())
            loss = F.cross_entropy(logits, labels[step])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        acc[task] = correct / (s.steps_per_task * s.batch)
        if task + 1 in points:
            with torch.no_grad(), D.capture_activations(net) as acts:
                net(probe)
            hidden = list(dict(acts).values())
            dead = sum(int(D.dormant_units(h, tau=0.0).sum()) for h in hidden)
            diag.append({"task": task + 1,
                         "dormant": dead / sum(h.shape[-1] for h in hidden),
                         "erank": float(D.effective_rank(hidden[-1])),
                         "wnorm": D.weight_norms(net)["all"],
                         "gate_histogram": D.upgd_gate_histogram(opt)})
    return {"name": name, "spec": spec, "seed": seed, "settings": asdict(s),
            "optimizer": f"{type(opt).__name__}({json.dumps(opt.defaults, default=str)})",
            "acc": acc.tolist(), "stats": window_stats(acc), "diagnostics": diag,
            "seconds": time.perf_counter() - t0}


def reset_output_layer(opt: torch.optim.Optimizer, head: list, initial: list) -> None:
    """The ``"head_reset"`` oracle: the output layer back to its initial weights and its optimizer
    state to a first step's (moments and run counters zero, step count 0; ``initial`` weights
    kept). It knows where tasks begin, which no optimizer does: an upper bound on what the
    output layer's stale mapping costs, not a mechanism."""
    with torch.no_grad():
        for p, w0 in zip(head, initial):
            p.copy_(w0)
            state = opt.state.get(p)
            if not state:
                continue
            for key, value in state.items():
                if key == "step":
                    state[key] = value.zero_() if isinstance(value, torch.Tensor) else 0
                elif key != "initial" and isinstance(value, torch.Tensor):
                    value.zero_()


def _real_star(args):
    return run_real(*args)


#: keyword arguments the batched rules implement (others must equal the engine's constants)
_BATCHED_KEYS = {"lr", "sigma", "weight_decay", "l2_init", "gate", "gate_temperature", "utility"}


def batched_config(spec: dict) -> tuple[str, dict]:
    """(batched rule, its hyperparameters) equivalent to a fixed configuration; ``ValueError``
    when the configuration uses something the batched rules do not implement."""
    name, kwargs = spec.get("optimizer"), dict(spec.get("kwargs", {}))
    if name == "agent":
        cls, defaults = agent_default_optimizer()
        kwargs = {**defaults, **kwargs}
        name = {"UPGD": "upgd", "AdaptiveUPGD": "adaptive_upgd", "UPGDW": "adaptive_upgd",
                "Adam": "adam", "SGD": "sgd"}.get(cls.__name__, cls.__name__)
    if name in ("upgd", "adaptive_upgd", "upgdw"):
        # the class's own defaults for what the configuration leaves out (sigma, weight_decay,
        # ...): the batched rule's are 0, the optimizer's are not
        import inspect

        from lifelong.optim import UPGD, UPGDW, AdaptiveUPGD
        cls = {"upgd": UPGD, "adaptive_upgd": AdaptiveUPGD, "upgdw": UPGDW}[name]
        defaults = {k: v.default for k, v in inspect.signature(cls).parameters.items()
                    if v.default is not inspect.Parameter.empty}
        kwargs = {**defaults, **kwargs}
        name = "upgd" if name == "upgd" else "adaptive_upgd"
    if name not in ("sgd", "adam", "upgd", "adaptive_upgd"):
        raise ValueError(f"optimizer {name!r} has no batched rule")
    fixed = {"betas": BETAS, "eps": EPS, "beta_utility": BETA_UTILITY, "foreach": None,
             "generator": None, "maximize": False, "amsgrad": False, "momentum": 0,
             "dampening": 0, "nesterov": False, "capturable": False, "differentiable": False,
             "fused": None, "decoupled_weight_decay": False, "reset_after": 0,
             "reset_every": 0}
    hp = {}
    for key, value in kwargs.items():
        if key in _BATCHED_KEYS:
            hp[key] = value
        elif key in fixed and (tuple(value) if isinstance(value, list) else value) == fixed[key]:
            continue
        elif key == "weight_decay" or (key in ("foreach",)):
            continue
        else:
            raise ValueError(f"{key}={value!r} is not implemented by the batched rules "
                             f"(use --engine real)")
    if name in ("sgd", "adam") and any(hp.get(k) for k in ("weight_decay", "sigma", "l2_init")):
        raise ValueError(f"{name}: the batched rule has no weight decay, noise or l2_init")
    return name, hp


def run_fixed_group(kind: str, names: list[str], specs: list[dict], hps: list[dict],
                    seeds: list[int], s: Settings) -> list[dict]:
    """All (configuration, seed) runs of one batched rule at once; records as :func:`run_real`."""
    torch.set_num_threads(1)
    x, y = load_data()
    t0 = time.perf_counter()
    out = run_optimizer(kind, hps, seeds, s, x, y, hidden_sizes=s.hidden_sizes)
    seconds = (time.perf_counter() - t0) / (len(names) * len(seeds))
    records = []
    for c, (name, spec, hp) in enumerate(zip(names, specs, hps)):
        for k, seed in enumerate(seeds):
            acc = out["acc"][c, k]
            diag = [{"task": int(task), "dormant": float(out["dormant"][c, k, i]),
                     "erank": float(out["erank"][c, k, i]), "wnorm": float(out["wnorm"][c, k, i]),
                     "gate_histogram": []} for i, task in enumerate(out["points"])]
            records.append({"name": name, "spec": spec, "seed": seed, "settings": asdict(s),
                            "engine": "batched", "optimizer": f"batched {kind}({json.dumps(hp)})",
                            "acc": acc.tolist(), "stats": window_stats(acc), "diagnostics": diag,
                            "seconds": seconds})
    return records


def _fixed_star(args):
    return run_fixed_group(*args)


def real_key(name: str, spec: dict, seed: int, s: Settings) -> str:
    return json.dumps([name, spec, seed, asdict(s)], sort_keys=True, default=str)


def main_real(args, s: Settings) -> dict:
    """``--engine real``: fixed configurations (no tuning) with the real optimizers, results
    appended to ``--out/plasticity_digits_real.jsonl`` as they finish (a rerun resumes)."""
    configs = dict(REAL_CONFIGS)
    for text in args.config:
        name, sep, blob = text.partition("=")
        try:
            spec = json.loads(blob) if sep and name else None
        except ValueError:
            spec = None
        if not isinstance(spec, dict) or "optimizer" not in spec:
            raise SystemExit(f"--config must be NAME={{\"optimizer\": ..., \"kwargs\": {{...}}}}, "
                             f"got {text!r}")
        extra = sorted(set(spec) - {"optimizer", "kwargs", "head_reset", "head_kwargs"})
        if extra:
            raise SystemExit(f"--config {name}: unknown keys {extra}; expected \"optimizer\", "
                             "\"kwargs\" and optionally \"head_reset\", \"head_kwargs\"")
        if not isinstance(spec.get("head_kwargs", {}), dict):
            raise SystemExit(f"--config {name}: \"head_kwargs\" must be an object, got "
                             f"{spec['head_kwargs']!r}")
        if not isinstance(spec.get("head_reset", False), bool):
            raise SystemExit(f"--config {name}: \"head_reset\" must be true or false, got "
                             f"{spec['head_reset']!r}")
        for key in ("head_reset", "head_kwargs"):
            if spec.get(key) and args.engine != "real":
                raise SystemExit(f"--config {name}: \"{key}\" needs --engine real")
        if spec.get("head_kwargs"):  # refuse a bad group key now, not inside a worker
            probe = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))
            try:
                build_real_optimizer(spec, probe.parameters())
            except ValueError as e:
                raise SystemExit(f"--config {name}: {e}") from None
        configs[name] = spec
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in configs]
    if unknown:
        raise SystemExit(f"--configs: unknown {unknown}; known: {sorted(configs)}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"plasticity_digits_{args.engine}.jsonl"
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[real_key(r["name"], r["spec"], r["seed"], Settings(**{
                    **r["settings"], "eval_seeds": tuple(r["settings"]["eval_seeds"]),
                    "hidden_sizes": tuple(r["settings"]["hidden_sizes"])}))] = r
    runs, jobs = [], []
    for sd in s.eval_seeds:
        for n in names:
            found = done.get(real_key(n, configs[n], sd, s))
            (runs.append(found) if found else jobs.append((n, configs[n], sd, s)))
    if args.engine == "fixed":     # one batched job per rule (gate and utility modes)
        groups: dict[tuple, list] = {}
        for n, spec, sd, _ in jobs:
            try:
                kind, hp = batched_config(spec)
            except ValueError as e:
                raise SystemExit(f"--config {n}: {e}") from None
            key = (kind, hp.get("gate", "global"), hp.get("utility", "weight"))
            g = groups.setdefault(key, {"names": [], "specs": [], "hps": [], "seeds": set()})
            if n not in g["names"]:
                g["names"].append(n)
                g["specs"].append(spec)
                g["hps"].append(hp)
            g["seeds"].add(sd)
        jobs = [(k[0], g["names"], g["specs"], g["hps"], sorted(g["seeds"]), s)
                for k, g in groups.items()]
    workers = args.workers or 1
    print(f"label-permuted digits, {args.engine} engine: {s.tasks} tasks x T={s.task_samples} "
          f"(batch {s.batch}), MLP {'-'.join(map(str, [64, *s.hidden_sizes, 10]))} ReLU; "
          f"seeds {list(s.eval_seeds)}; {len(runs)} runs found in {path}, {len(jobs)} to run on "
          f"{workers} process(es)", flush=True)

    def record(r: dict) -> None:
        runs.append(r)
        with open(path, "a") as f:
            f.write(json.dumps(r) + "\n")
        st = r["stats"]
        print(f"  {r['name']:<24} seed {r['seed']}: first {st['first']:.3f} peak {st['peak']:.3f} "
              f"last {st['last']:.3f} ({r['seconds']:.0f} s)", flush=True)

    fixed = args.engine == "fixed"
    if workers == 1:
        for j in jobs:
            for r in (run_fixed_group(*j) if fixed else [run_real(*j)]):
                record(r)
    elif jobs:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            for fut in as_completed([ex.submit(_fixed_star if fixed else _real_star, j)
                                     for j in jobs]):
                for r in (fut.result() if fixed else [fut.result()]):
                    record(r)
    summary = {}
    print("\nlast 10% / first 10% / peak: mean over seeds [min, max]; dormant, eff. rank, |w| "
          "at the end (means); gate histogram at the end (10 bins over [0, 1], mean)")
    for n in names:
        rs = [r for r in runs if r["name"] == n]
        st = {k: [r["stats"][k] for r in rs] for k in ("first", "peak", "last")}
        end = [r["diagnostics"][-1] for r in rs]
        hist = [e["gate_histogram"] for e in end if e["gate_histogram"]]
        summary[n] = {"spec": configs[n], "seeds": [r["seed"] for r in rs], **st,
                      "dormant": float(np.mean([e["dormant"] for e in end])),
                      "erank": float(np.mean([e["erank"] for e in end])),
                      "wnorm": float(np.mean([e["wnorm"] for e in end])),
                      "gate_histogram": np.mean(hist, 0).tolist() if hist else [],
                      "optimizer": rs[0]["optimizer"]}
        e = summary[n]
        print(f"{n:<24} last {_mr(st['last'])}  first {_mr(st['first'])}  peak {_mr(st['peak'])}  "
              f"dormant {e['dormant']:.2f} rank {e['erank']:.1f} |w| {e['wnorm']:.1f}"
              + ("  gate " + " ".join(f"{v:.2f}" for v in e["gate_histogram"])
                 if e["gate_histogram"] else ""))
    (out_dir / f"plasticity_digits_{args.engine}.json").write_text(json.dumps(summary, indent=1))
    return {"settings": asdict(s), "summary": summary}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny settings (seconds), for tests")
    ap.add_argument("--tasks", type=int, help="number of tasks (label permutations)")
    ap.add_argument("--task-samples", type=int, help="T: samples per task")
    ap.add_argument("--batch", type=int, help="samples per update")
    ap.add_argument("--hidden", type=int, help="hidden-layer width")
    ap.add_argument("--seeds", type=int, default=5, help="evaluation seeds (1..N); tuning seed 0")
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    ap.add_argument("--workers", type=int, default=None,
                    help="parallel processes, one optimizer each (default: min(CPUs, optimizers))")
    ap.add_argument("--out", default="runs/benchmarks", help="directory for the PNG and JSON")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--engine", choices=("batched", "fixed", "real"), default="batched",
                    help="batched: tuned grids of the batched rules (default); fixed: fixed "
                         "configurations (--configs), all seeds of a rule at once in the batched "
                         "rules; real: fixed configurations with the real optimizers, one run "
                         "at a time")
    ap.add_argument("--configs", default=",".join(REAL_CONFIGS),
                    help=f"--engine real: configuration names (built in: {', '.join(REAL_CONFIGS)})")
    ap.add_argument("--config", action="append", default=[], metavar="NAME=JSON",
                    help='--engine real: define a configuration, e.g. '
                         'l2=\'{"optimizer": "adaptive_upgd", "kwargs": {"lr": 1e-3}}\'; '
                         'optional keys: "head_kwargs" (the output layer in a param group of its '
                         'own with these hyperparameters, e.g. {"reset_every": 150}) and '
                         '"head_reset": true (an oracle: the output layer and its optimizer state '
                         'reset at every task boundary)')
    ap.add_argument("--hidden-sizes", help="--engine real: hidden widths, e.g. 64,32")
    args = ap.parse_args(argv)

    s = Settings()
    if args.quick:
        s = Settings(tasks=6, task_samples=32, batch=4, hidden=16, eval_seeds=(1, 2),
                     diag_points=2)
    for name in ("tasks", "task_samples", "batch", "hidden"):
        if getattr(args, name) is not None:
            if getattr(args, name) < 1:
                ap.error(f"--{name.replace('_', '-')} must be >= 1")
            setattr(s, name, getattr(args, name))
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    if not args.quick:
        s.eval_seeds = tuple(range(1, args.seeds + 1))
    if args.hidden_sizes:
        try:
            s.hidden_sizes = tuple(int(v) for v in args.hidden_sizes.split(","))
        except ValueError:
            ap.error(f"--hidden-sizes must be comma-separated ints, got {args.hidden_sizes!r}")
        if not s.hidden_sizes or min(s.hidden_sizes) < 1:
            ap.error(f"--hidden-sizes must be positive ints, got {args.hidden_sizes!r}")
    if args.engine in ("fixed", "real"):
        if args.quick:
            s.hidden_sizes = (16, 8)
        return main_real(args, s)
    kinds = [k.strip() for k in args.optimizers.split(",") if k.strip()]
    bad = [k for k in kinds if k not in OPTIMIZERS]
    if bad:
        ap.error(f"--optimizers: unknown {bad}; choose from {OPTIMIZERS}")
    workers = args.workers or (1 if args.quick else min(os.cpu_count() or 1, len(kinds)))

    t0 = time.perf_counter()
    err = verify_engine(steps=3 if args.quick else 25)
    print(f"batched update rules match torch.optim / lifelong.optim: max |diff| = {err:.2e}")
    print(f"label-permuted digits: {s.tasks} tasks x T={s.task_samples} samples "
          f"(batch {s.batch}, {s.steps_per_task} updates/task, {s.tasks * s.steps_per_task} "
          f"updates), MLP 64-{s.hidden}-{s.hidden}-10 ReLU; grid on seed {s.tune_seed}, "
          f"chosen config on seeds {list(s.eval_seeds)}; {workers} process(es)", flush=True)
    jobs = [(k, s, args.quick) for k in kinds]
    results = {}

    def report(kind: str, r: dict) -> None:
        results[kind] = r
        scores = ", ".join(f"{v:.3f}" for v in r["tune_scores"])
        print(f"  {LABELS[kind]:<17} {r['seconds']:4.0f} s; tuning-seed mean accuracy per "
              f"config: [{scores}] -> {fmt_cfg(r['config'])}", flush=True)

    if workers == 1:
        for j in jobs:
            report(j[0], benchmark_optimizer(*j))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            for j, r in zip(jobs, ex.map(_bench_star, jobs)):
                report(j[0], r)

    print()
    print_table(results, s)
    payload = {"settings": asdict(s), "results": results, "seconds": time.perf_counter() - t0}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "plasticity_digits.json").write_text(json.dumps(payload, indent=1))
    if not args.no_plot:
        plot(results, s, out_dir / "plasticity_digits.png")
        print(f"wrote {out_dir / 'plasticity_digits.png'} and {out_dir / 'plasticity_digits.json'}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return payload


def _mr(values: list[float]) -> str:
    return f"{np.mean(values):.3f} [{min(values):.3f},{max(values):.3f}]"


def print_table(results: dict, s: Settings) -> None:
    n = len(s.eval_seeds)
    print(f"Online accuracy per task, mean over {n} evaluation seeds [min, max] "
          f"(10% = {max(1, s.tasks // 10)} tasks; peak = best 10% window)")
    head = f"{'optimizer':<17} {'first 10%':>21} {'middle 10%':>21} {'last 10%':>21} " \
           f"{'peak':>21} {'last-peak':>9} {'last-first':>10}"
    print(head)
    print("-" * len(head))
    for kind, r in results.items():
        st = r["stats"]
        lp = np.mean(st["last"]) - np.mean(st["peak"])
        lf = np.mean(st["last"]) - np.mean(st["first"])
        print(f"{LABELS[kind]:<17} {_mr(st['first']):>21} {_mr(st['middle']):>21} "
              f"{_mr(st['last']):>21} {_mr(st['peak']):>21} {lp:>+9.3f} {lf:>+10.3f}")
    print()
    print("End-of-stream diagnostics (512 probe images, mean over evaluation seeds): "
          "dormant = fraction of hidden ReLU units never active (tau=0), eff. rank = Roy & "
          "Vetterli effective rank of the last hidden layer, |w| = L2 norm of all weights")
    print(f"{'optimizer':<17} {'dormant':>8} {'eff. rank':>10} {'|w|':>8}   chosen config")
    for kind, r in results.items():
        d = np.array(r["dormant"])[:, -1].mean()
        e = np.array(r["erank"])[:, -1].mean()
        w = np.array(r["wnorm"])[:, -1].mean()
        print(f"{LABELS[kind]:<17} {d:>8.3f} {e:>10.1f} {w:>8.1f}   {fmt_cfg(r['config'])}")


def plot(results: dict, s: Settings, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), gridspec_kw={"width_ratios": [2, 1, 1]})
    ax = axes[0]
    w = max(1, s.tasks // 50)
    for kind, r in results.items():
        c = np.array(r["curve"])
        mean = c.mean(0)
        k = np.ones(w) / w
        sm = np.convolve(mean, k, mode="valid")
        lo = np.convolve(c.min(0), k, mode="valid")
        hi = np.convolve(c.max(0), k, mode="valid")
        xs = np.arange(len(sm)) + w / 2
        ax.plot(xs, sm, label=f"{LABELS[kind]} ({fmt_cfg(r['config'])})", lw=1.4)
        ax.fill_between(xs, lo, hi, alpha=0.15)
    ax.set_xlabel("task index")
    ax.set_ylabel(f"online accuracy per task (mean of {len(s.eval_seeds)} seeds, "
                  f"smoothed over {w})")
    ax.set_title(f"Label-permuted digits, T={s.task_samples}, batch {s.batch}")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    for ax, key, title in ((axes[1], "dormant", "dormant ReLU units (fraction)"),
                           (axes[2], "erank", "effective rank, last hidden layer")):
        for kind, r in results.items():
            vals = np.array(r[key]).mean(0)
            ax.plot(r["diag_points"], vals, marker="o", ms=3, label=LABELS[kind])
        ax.set_xlabel("task index")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1:])
