"""Reusable scratch memory of the UPGD step, and the noise drawn into it."""
from __future__ import annotations

import torch
from torch import Tensor


class _Workspace:
    """Reusable scratch memory for the step's temporaries (never part of the optimizer state).

    Allocating and freeing a multi-megabyte temporary on every step costs more than the
    arithmetic done in it (page faults), so large temporaries live in flat buffers that are
    kept between steps, one per (slot, device, dtype), and handed out as views shaped like the
    parameters. Holds no parameter and no reference to one: only shapes and scratch values."""

    #: buckets with at least this many elements use persistent buffers for the gate and the
    #: denominator; smaller ones allocate (cheap below the allocator's mmap threshold)
    large = 1 << 16

    def __init__(self) -> None:
        self._flat: dict[tuple, Tensor] = {}
        self._views: dict[tuple, list[Tensor]] = {}

    def views(self, slot: str, tensors: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """A flat buffer of the tensors' total size and its views shaped like each tensor."""
        first = tensors[0]
        shapes = tuple(t.shape for t in tensors)
        key = (slot, first.device, first.dtype, shapes)
        flat_key = key[:3]
        views = self._views.get(key)
        if views is None:
            total = sum(t.numel() for t in tensors)
            flat = self._flat.get(flat_key)
            if flat is None or flat.numel() < total:
                flat = torch.empty(total, device=first.device, dtype=first.dtype)
                self._flat[flat_key] = flat
                self._views = {k: v for k, v in self._views.items() if k[:3] != flat_key}
            views, offset = [], 0
            for shape, t in zip(shapes, tensors):
                views.append(flat[offset:offset + t.numel()].view(shape))
                offset += t.numel()
            self._views[key] = views
        return self._flat[flat_key], views

    def clear(self) -> None:
        self._flat.clear()
        self._views.clear()


def _draw_noise(buckets, sigma: float, generator: torch.Generator | None,
                workspace: _Workspace):
    """Standard normal noise for every stepping parameter of one group, drawn in one call
    (parameters in bucket order) into reusable memory. Returns, per bucket, a list of tensors
    shaped like its parameters (or None per bucket when sigma == 0)."""
    if sigma == 0.0:
        return [None] * len(buckets)
    params = [p for b in buckets for p in b["params"]]
    total = sum(p.numel() for p in params)
    flat, views = workspace.views("noise", params)
    if generator is None or generator.device == flat.device:
        flat[:total].normal_(generator=generator)
    else:
        flat[:total].copy_(torch.randn(total, generator=generator, device=generator.device,
                                       dtype=flat.dtype))
    out, i = [], 0
    for b in buckets:
        pieces = []
        for p in b["params"]:
            piece = views[i]
            if piece.device != p.device or piece.dtype != p.dtype:  # mixed group: cast
                piece = piece.to(device=p.device, dtype=p.dtype)
            pieces.append(piece)
            i += 1
        out.append(pieces)
    return out
