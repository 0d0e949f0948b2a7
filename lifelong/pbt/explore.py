"""Exploit (truncation selection) and explore (perturb or resample), as pure functions.

The one decision code of both modes and both backends: the local coordinators and the Ray
scheduler all rank with :func:`quantiles` and draw a donor with :func:`pick_donor`.

- synchronous (:func:`select_exploits`): at a boundary, the bottom ``k = ceil(truncation * N)``
  members each copy one of the top ``k``;
- asynchronous (:func:`asynchronous_decision`): a member at its own boundary ranks its fresh
  score against the latest recorded score of every other member; if it is among the bottom
  ``k``, it copies one of the top ``k``.

All draws are deterministic given a ``numpy.random.Generator``; the coordinators derive it from
``(seed, step)`` (synchronous) or ``(seed, member, step)`` (asynchronous), so a resumed population
makes the same decision again from the same recorded scores.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from lifelong.pbt.space import Distribution

__all__ = [
    "n_truncated",
    "rank",
    "quantiles",
    "pick_donor",
    "select_exploits",
    "asynchronous_decision",
    "explore",
    "boundary_rng",
    "member_rng",
]


def boundary_rng(seed: int, step: int) -> np.random.Generator:
    """The generator for the exploit/explore decisions taken at interval boundary ``step``."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), 0x9B7])


def member_rng(seed: int, index: int, step: int) -> np.random.Generator:
    """The generator of member ``index``'s asynchronous decision at its boundary ``step``."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), int(index), 0xA57C])


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


def quantiles(scores: Mapping[str, float], truncation: float, mode: str) -> tuple[list[str], list[str]]:
    """``(bottom, top)``: the worst and the best ``n_truncated(N, truncation)`` members, each
    list ordered best first (NaN scores rank last)."""
    ranked = rank(scores, mode)
    k = n_truncated(len(ranked), truncation)
    return ranked[len(ranked) - k :], ranked[:k]


def pick_donor(top: Sequence[str], rng: np.random.Generator) -> str:
    """A donor drawn uniformly from the top quantile."""
    return top[int(rng.integers(len(top)))]


def select_exploits(
    scores: Mapping[str, float], truncation: float, mode: str, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """Truncation selection: ``[(recipient, donor), ...]``.

    The bottom ``ceil(truncation * N)`` members each copy a member drawn uniformly from the top
    as many. Recipients and donors are disjoint (``truncation <= 0.5``), so no exploit chains.
    """
    bottom, top = quantiles(scores, truncation, mode)
    return [(recipient, pick_donor(top, rng)) for recipient in bottom]


def asynchronous_decision(
    member: str,
    latest: Mapping[str, float | None],
    truncation: float,
    mode: str,
    rng: np.random.Generator,
) -> tuple[str | None, str]:
    """What ``member`` does at its own boundary: ``(donor, reason)``, ``donor`` None to go on.

    ``latest`` maps every member (``member`` included, with its fresh score) to its latest
    recorded score, ``None`` for a member that has not finished an interval yet. Warm-up rule:
    until every member has a score, nobody exploits (``reason="warm-up"``), so a fast member
    never ranks against a partial population. Otherwise ``member`` exploits when it is among the
    bottom ``n_truncated(N, truncation)`` (``reason="bottom quantile"``) and goes on when it is
    not (``reason="not in the bottom quantile"``).
    """
    if member not in latest:
        raise ValueError(f"member {member!r} is not in the population {list(latest)}")
    if any(score is None for score in latest.values()):
        return None, "warm-up"
    bottom, top = quantiles({m: float(s) for m, s in latest.items()}, truncation, mode)
    if member not in bottom:
        return None, "not in the bottom quantile"
    return pick_donor(top, rng), "bottom quantile"


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
