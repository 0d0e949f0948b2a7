"""The optimizer's parameter layout as the scaler sees it: every group's parameters, in order.

The statistics are keyed by position in that order; these helpers describe a changed layout
and turn a position back into ``param_groups[group]['params'][j]`` for error messages.
"""
from __future__ import annotations

from typing import Any


def _describe_shapes(shapes: list[tuple[int, ...]]) -> str:
    if len(shapes) <= 8:
        return f"{len(shapes)} tensors {[list(s) for s in shapes]}"
    return f"{len(shapes)} tensors {[list(s) for s in shapes[:8]]} ..."


def _layout_message(expected: list[tuple[int, ...]], got: list[tuple[int, ...]]) -> str:
    first = next(
        (k for k, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got))
    )
    at = (
        f"expected {list(expected[first])}, got {list(got[first])}"
        if first < min(len(expected), len(got))
        else f"expected {len(expected)} tensors, got {len(got)}"
    )
    return (
        "VarianceGradientScaler: the optimizer's parameter layout changed: expected "
        f"{_describe_shapes(expected)}, got {_describe_shapes(got)}; first difference at "
        f"position {first}: {at}. The statistics belong to another model: use a new scaler "
        "(or vgs.reset())."
    )


def _locate(i: int, groups: list[dict[str, Any]]) -> tuple[int, int]:
    """Position ``i`` in the optimizer's parameter order as ``(group, index in the group)``."""
    for k, group in enumerate(groups):
        n = len(group["params"])
        if i < n:
            return k, i
        i -= n
    raise IndexError(i)
