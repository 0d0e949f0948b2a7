"""Exploit (truncation selection) and explore (perturb or resample), as pure functions.

Both are deterministic given a ``numpy.random.Generator``; the coordinator derives that
generator from ``(seed, step)`` so that an interrupted population that is resumed makes the
same decisions it would have made uninterrupted.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from lifelong.pbt.space import Distribution

__all__ = ["n_truncated", "rank", "select_exploits", "explore", "boundary_rng"]


def boundary_rng(seed: int, step: int) -> np.random.Generator:
    """The generator for the exploit/explore decisions taken at interval boundary ``step``."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), 0x9B7])


def n_truncated(population_size: int, truncation: float) -> int:
    """How many members are replaced at a boundary: ``ceil(truncation * N)``, at most ``N // 2``.

    The ceiling is deliberate: with 4 members and ``truncation=0.25`` one member exploits at
    every boundary (a floor would give zero and PBT would silently never exploit).
    """
    k = int(math.ceil(truncation * population_size - 1e-12))
    return max(1, min(k, population_size // 2))


def rank(scores: Mapping[str, float], mode: str) -> list[str]:
    """Member ids from best to worst. NaN scores rank last; ties keep the mapping's order."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode={mode!r}: expected 'max' or 'min'")
    sign = -1.0 if mode == "max" else 1.0
    order = list(scores)

    def key(member: str) -> tuple[int, float, int]:
        s = float(scores[member])
        if math.isnan(s):
            return (1, 0.0, order.index(member))
        return (0, sign * s, order.index(member))

    return sorted(order, key=key)


def select_exploits(
    scores: Mapping[str, float], truncation: float, mode: str, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """Truncation selection: ``[(recipient, donor), ...]``.

    The bottom ``ceil(truncation * N)`` members each copy a member drawn uniformly from the top
    as many. Recipients and donors are disjoint (``truncation <= 0.5``), so no exploit chains.
    """
    ranked = rank(scores, mode)
    k = n_truncated(len(ranked), truncation)
    top, bottom = ranked[:k], ranked[len(ranked) - k :]
    pairs = []
    for recipient in bottom:
        donor = top[int(rng.integers(len(top)))]
        pairs.append((recipient, donor))
    return pairs


def explore(
    config: Mapping[str, Any],
    space: Mapping[str, Distribution],
    rng: np.random.Generator,
    resample_probability: float,
    perturb_factors: Sequence[float],
) -> tuple[dict[str, Any], dict[str, str]]:
    """A new config from ``config``: each name resampled with ``resample_probability``, else
    perturbed. Returns ``(new_config, operations)``; operations say what happened to each name
    (``"resample"``, ``"perturb"``). Names are processed in ``space`` order so the draw sequence
    is stable. The result is always inside the space."""
    new: dict[str, Any] = dict(config)
    ops: dict[str, str] = {}
    for name, dist in space.items():
        if rng.random() < resample_probability:
            new[name] = dist.sample(rng)
            ops[name] = "resample"
        else:
            new[name] = dist.perturb(config[name], rng, perturb_factors)
            ops[name] = "perturb"
        if not dist.contains(new[name]):  # pragma: no cover - guarded by the distributions
            raise AssertionError(f"explore produced {name}={new[name]!r} outside {dist!r}")
    return new, ops
