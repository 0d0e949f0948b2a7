"""The distributional critics' settings, validated once: :class:`CriticSpec` and
:func:`validate_distributional_args`.

Both :class:`~lifelong.ppo.DistributionalPPO` and
:class:`~lifelong.policy.DistributionalActorCriticPolicy` hold a ``critic_spec`` and expose its
fields as read-only attributes (``critic``, ``n_quantiles``, ``huber_kappa``, ``n_atoms``,
``v_min``, ``v_max``, ``categorical_projection``, ``value_aggregation``, ``cvar_alpha``,
``normalize_returns``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from lifelong import critics as C

__all__ = ["CriticSpec", "CRITIC_SPEC_FIELDS", "validate_distributional_args", "critic_spec_attributes"]


@dataclasses.dataclass(frozen=True)
class CriticSpec:
    """The critics' settings, as the algorithm and its policy store them (build with :meth:`build`)."""

    critic: str
    n_quantiles: int
    huber_kappa: float
    n_atoms: int
    v_min: float
    v_max: float
    categorical_projection: str
    value_aggregation: str
    cvar_alpha: float | None
    normalize_returns: bool

    @classmethod
    def build(
        cls,
        *,
        critic: Any,
        n_quantiles: Any,
        huber_kappa: Any,
        n_atoms: Any,
        v_min: Any,
        v_max: Any,
        categorical_projection: Any,
        value_aggregation: Any,
        cvar_alpha: Any,
        normalize_returns: Any,
    ) -> CriticSpec:
        """Validate (:func:`validate_distributional_args`), then convert to plain Python types."""
        validate_distributional_args(
            critic=critic, n_quantiles=n_quantiles, huber_kappa=huber_kappa, n_atoms=n_atoms, v_min=v_min,
            v_max=v_max, categorical_projection=categorical_projection, value_aggregation=value_aggregation,
            cvar_alpha=cvar_alpha,
        )
        return cls(
            critic=critic,
            n_quantiles=int(n_quantiles),
            huber_kappa=float(huber_kappa),
            n_atoms=int(n_atoms),
            v_min=float(v_min),
            v_max=float(v_max),
            categorical_projection=categorical_projection,
            value_aggregation=value_aggregation,
            cvar_alpha=None if cvar_alpha is None else float(cvar_alpha),
            normalize_returns=bool(normalize_returns),
        )

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments (of the policy's or the algorithm's constructor)."""
        return {f: getattr(self, f) for f in CRITIC_SPEC_FIELDS}


CRITIC_SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CriticSpec))


def critic_spec_attributes(cls: type) -> type:
    """Class decorator: one read-only property per :class:`CriticSpec` field, reading
    ``self.critic_spec`` (so the settings have a single source of truth)."""
    for name in CRITIC_SPEC_FIELDS:
        setattr(cls, name, property(lambda self, _n=name: getattr(self.critic_spec, _n), doc=f"``critic_spec.{name}``"))
    return cls


def validate_distributional_args(
    *,
    critic: Any,
    n_quantiles: Any,
    huber_kappa: Any,
    n_atoms: Any,
    v_min: Any,
    v_max: Any,
    categorical_projection: Any,
    value_aggregation: Any,
    cvar_alpha: Any,
) -> None:
    """``ValueError`` naming the argument, the bad value and what is accepted."""

    def is_int(x: Any) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    def is_num(x: Any) -> bool:
        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)

    if critic not in C.CRITICS:
        raise ValueError(f"critic={critic!r} is not supported: accepted values are {list(C.CRITICS)}")
    if value_aggregation not in C.AGGREGATIONS:
        raise ValueError(f"value_aggregation={value_aggregation!r} is not supported: accepted values are {list(C.AGGREGATIONS)}")
    if categorical_projection not in C.PROJECTIONS:
        raise ValueError(
            f"categorical_projection={categorical_projection!r} is not supported: accepted values are {list(C.PROJECTIONS)}"
        )
    if not is_int(n_quantiles) or n_quantiles < 1:
        raise ValueError(f"n_quantiles={n_quantiles!r} is invalid: expected an integer >= 1")
    if not is_num(huber_kappa) or huber_kappa <= 0:
        raise ValueError(f"huber_kappa={huber_kappa!r} is invalid: expected a finite number > 0")
    if not is_int(n_atoms) or n_atoms < 2:
        raise ValueError(f"n_atoms={n_atoms!r} is invalid: expected an integer >= 2")
    if not is_num(v_min) or not is_num(v_max) or not v_min < v_max:
        raise ValueError(f"v_min={v_min!r}, v_max={v_max!r} are invalid: expected finite numbers with v_min < v_max")
    if cvar_alpha is not None:
        if not is_num(cvar_alpha) or not (0.0 < cvar_alpha <= 1.0):
            raise ValueError(f"cvar_alpha={cvar_alpha!r} is invalid: expected None or a number in (0, 1]")
        if critic != "quantile":
            raise ValueError(
                f"cvar_alpha={cvar_alpha!r} requires critic='quantile' (got critic={critic!r}): "
                "CVaR is computed from the quantile distribution"
            )
