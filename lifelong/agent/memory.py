"""How much memory an agent's configuration needs, checked before anything is allocated.

A configuration (or a checkpoint) can ask for more memory than the machine has: ``n_envs`` of
10^8, ``n_steps`` of 10^10, layers of 10^6 units. Allocating it would end in ``MemoryError`` or,
worse, the kernel's OOM killer taking this process (and other jobs) down with no message. So
:func:`check_fits` estimates the need from the sizes alone and refuses clearly beforehand.

The estimate (bytes, float32 everywhere as Stable-Baselines3 stores it)::

    rollout  = 2 * n_steps * n_envs * (obs_dim + action_dim + 8) * 4
    networks = 6 * (params(actor) + n_critics * params(critic)) * 4

``obs_dim``/``action_dim`` are the flattened sizes (``gymnasium.spaces.flatdim``: a Discrete(n)
observation is one-hot, n values); the 8 are rewards, returns, values, log-probabilities,
advantages, episode starts and slack; the factor 2 covers the flattened copy ``get`` makes. A
network's parameters are the sum of ``fan_in * fan_out + fan_out`` over its layers; the factor 6
covers parameters, gradients, up to three optimizer states (UPGD's utility and moments) and the
scaler's running mean. It is a lower bound of the true need, good to a small factor, so it only
refuses what cannot work.
"""
from __future__ import annotations

import os
from typing import Any

from gymnasium import spaces

__all__ = ["estimate_bytes", "available_bytes", "check_fits"]


def _layer_params(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def _arch(net_arch: Any) -> tuple[list[int], list[int]]:
    """(actor hidden sizes, critic hidden sizes) of an SB3 ``net_arch`` (list or dict, or the
    pre-1.8 ``[dict(pi=..., vf=...)]``, which means its dict as in the policy)."""
    if isinstance(net_arch, list) and net_arch and isinstance(net_arch[0], dict):
        net_arch = net_arch[0]
    if net_arch is None:
        return [64, 64], [64, 64]
    if isinstance(net_arch, dict):
        return [int(x) for x in net_arch.get("pi", [])], [int(x) for x in net_arch.get("vf", [])]
    sizes = [int(x) for x in net_arch]
    return sizes, sizes


def estimate_bytes(observation_space: spaces.Space, action_space: spaces.Space, n_envs: int, n_steps: int,
                   net_arch: Any = None, critic_outputs: int = 1, n_critics: int = 1) -> int:
    """The estimate of the module docstring, in bytes."""
    obs_dim = int(spaces.flatdim(observation_space))
    act_dim = int(spaces.flatdim(action_space))
    rollout = 2 * int(n_steps) * int(n_envs) * (obs_dim + act_dim + 8) * 4
    pi, vf = _arch(net_arch)
    actor = _layer_params([obs_dim, *pi, act_dim])
    critic = _layer_params([obs_dim, *vf, int(critic_outputs)])
    return rollout + 6 * (actor + int(n_critics) * critic) * 4


def available_bytes() -> int | None:
    """Memory available to a new allocation now (Linux ``MemAvailable``), else the physical
    memory, else None when the platform says neither."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_fits(observation_space: spaces.Space, action_space: spaces.Space, n_envs: int, n_steps: int,
               net_arch: Any = None, critic_outputs: int = 1, n_critics: int = 1) -> int:
    """The estimate in bytes; ``ValueError`` naming the sizes when it exceeds the memory available."""
    need = estimate_bytes(observation_space, action_space, n_envs, n_steps, net_arch, critic_outputs, n_critics)
    have = available_bytes()
    if have is not None and need > have:
        raise ValueError(
            f"n_steps={n_steps:,} x n_envs={n_envs:,} with net_arch={net_arch} needs about {_gib(need)} for the "
            f"rollout buffer and networks, more than the {_gib(have)} this machine has available: reduce "
            "n_steps, n_envs or the layer sizes"
        )
    return need
