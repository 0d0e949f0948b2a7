"""Results of the seeded benchmarks (``suite.py``, ``recurrent.py``): the JSONL files they
append to, and the statistics of normalised scores with rliable.

A run is a JSON line with at least ``env``, ``agent``, ``seed`` and ``score`` (its final
evaluation return). The statistics, as Agarwal et al. (NeurIPS 2021) recommend:

* normalised score ``(score - random) / (reference - random)`` with an environment's random and
  reference returns;
* the interquartile mean (IQM) over all runs of all environments, with a 95% stratified-bootstrap
  confidence interval (``rliable.library.get_interval_estimates``: seeds resampled within each
  environment), per agent and for differences between agents (the difference of the IQMs of one
  joint resample).

Only seeds that every compared agent finished on an environment enter the aggregate, and an
environment with fewer than two such seeds is left out, so that every agent is measured on the
same runs. The benchmark scripts import this module from their own folder.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The runs recorded in a JSONL file (``[]`` when it does not exist yet); a line that is not
    JSON is a ``ValueError`` naming it, since resuming past it would silently drop a run."""
    p = Path(path)
    if not p.exists():
        return []
    rows = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{n} is not a JSON line ({e}); fix or remove it to resume") from e
    return rows


def git_commit() -> str:
    """The repository's short commit, ``+dirty`` when tracked files differ from it, or
    ``"unknown"`` outside a git checkout: recorded with each row, so that a result names the
    code that produced it."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def host() -> dict[str, Any]:
    """What a timing depends on besides the code: the CPU's model name (``/proc/cpuinfo`` where
    there is one, else ``platform.processor()``), the number of CPUs, torch's version, its CPU
    kernels' instruction set and thread count, and the 1-minute load average at the call.

    Why: the same commit's time per update differed by 1.6x between two hosts both reported as
    "AMD EPYC" (docs/performance.md), and ratios to SB3 PPO by 0.03-0.04; a speed row that does
    not say where it ran cannot be compared with another."""
    import torch  # the benchmark scripts that record rows import it anyway

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def latest_runs(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per ``(env, agent, seed)``: the latest written wins (a rerun at another budget
    replaces the earlier one)."""
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        latest[(r["env"], r["agent"], r["seed"])] = r
    return list(latest.values())


def score_matrices(
    rows: Sequence[dict[str, Any]], agents: Sequence[str], envs: Mapping[str, Mapping[str, float]]
) -> tuple[dict[str, np.ndarray], list[str], int]:
    """``({agent: [n_seeds, n_envs]} normalised scores, environments, n_seeds)`` over the seeds
    every agent finished on every included environment, in the order of ``envs`` (environment
    id -> ``{"random", "reference"}``); ``({}, [], 0)`` when no environment has two common seeds.
    ``rows`` one per run (:func:`latest_runs`)."""
    included, common = [], {}
    for env_id in envs:
        seeds = None
        for agent in agents:
            s = {r["seed"] for r in rows if r["env"] == env_id and r["agent"] == agent}
            seeds = s if seeds is None else seeds & s
        if seeds and len(seeds) >= 2:
            included.append(env_id)
            common[env_id] = sorted(seeds)
    if not included:
        return {}, [], 0
    n = min(len(common[e]) for e in included)
    by_key = {(r["env"], r["agent"], r["seed"]): r for r in rows}

    def normalised(env_id: str, agent: str, seed: int) -> float:
        spec = envs[env_id]
        return (by_key[(env_id, agent, seed)]["score"] - spec["random"]) / (spec["reference"] - spec["random"])

    mats = {a: np.array([[normalised(e, a, common[e][i]) for e in included] for i in range(n)]) for a in agents}
    return mats, included, n


def interval_estimates(
    score_dict: Mapping[str, Any], func: Callable[..., np.ndarray], reps: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``rliable.library.get_interval_estimates`` (percentile 95% CIs), reproducible for a
    ``seed``: rliable 1.2's stratified bootstrap draws its resamples from numpy's global
    generator (``np.random.choice`` in ``StratifiedBootstrap.update_indices``), not from the
    ``random_state`` it is given, so the same summary gave intervals that differed in the third
    decimal from run to run. The global generator is seeded for the call and restored after it.
    """
    from rliable import library as rly

    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        return rly.get_interval_estimates(dict(score_dict), func, reps=reps,
                                          random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(saved)


def iqm_tables(
    mats: Mapping[str, np.ndarray], differences: Sequence[tuple[str, str]], reps: int, seed: int
) -> list[str]:
    """Markdown lines: each agent's IQM with its 95% stratified-bootstrap CI, then each
    difference ``a - b`` of ``differences`` (both in ``mats``) with its CI (:func:`interval_estimates`
    with ``seed``: a summary is reproducible)."""
    from rliable import metrics

    point, ci = interval_estimates(mats, lambda x: np.array([metrics.aggregate_iqm(x)]), reps, seed)
    out = ["| agent | IQM | 95% CI |", "|---|---|---|"]
    out += [f"| {a} | {point[a][0]:.3f} | [{ci[a][0][0]:.3f}, {ci[a][1][0]:.3f}] |" for a in mats]
    if differences:
        diffs = {f"{a} - {b}": [mats[a], mats[b]] for a, b in differences}
        dpoint, dci = interval_estimates(
            diffs, lambda x, y: np.array([metrics.aggregate_iqm(x) - metrics.aggregate_iqm(y)]), reps, seed)
        out += ["", "| IQM difference | point | 95% CI |", "|---|---|---|"]
        out += [f"| {name} | {dpoint[name][0]:+.3f} | [{dci[name][0][0]:+.3f}, {dci[name][1][0]:+.3f}] |"
                for name in diffs]
    return out
