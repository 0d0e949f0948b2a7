"""The ``lifelong pbt`` sections: PBT settings (``pbt:``) and the search space (``space:``)."""
from __future__ import annotations

import inspect
from typing import Mapping

from lifelong.agent.hyperparameters import TUNABLE
from lifelong.cli.config.agent import _agent_validator
from lifelong.cli.config.errors import ConfigError, _fail, suggest
from lifelong.cli.config.signature import signature_defaults
from lifelong.cli.config.validators import (
    Any_,
    Bool,
    Choice,
    Float,
    FreeDict,
    Int,
    Optional,
    Str,
    V,
    known_items,
)
from lifelong.pbt.settings import PBTSettings

__all__ = ["pbt_class", "pbt_defaults", "parse_space", "tunable_names"]

_PBT_KNOWN: dict[str, V] = {
    "population_size": Int(min=2),
    "interval_steps": Int(min=1),
    "total_steps": Int(min=1),
    "truncation": Float(0.0, 0.5, min_open=True),
    "resample_probability": Float(0.0, 1.0),
    "perturb_factors": Any_(),
    "metric": Str(),
    "mode": Choice("max", "min"),
    "eval_episodes": Int(min=1),
    "workdir": Str(),
    "backend": Choice("local", "ray"),
    "workers": Optional(Int(min=1)),
    "seed": Optional(Int(min=0)),
    "synchronous": Bool(),
}


def pbt_class():
    """The class whose keyword arguments the ``pbt:`` section holds (``PBT`` takes the same)."""
    return PBTSettings


def pbt_defaults() -> dict:
    """Keyword defaults of lifelong.pbt.PBT (besides agent and space)."""
    cls = pbt_class()
    out = {"population_size": 4, "interval_steps": 4096, "total_steps": 40960, "truncation": 0.25,
           "resample_probability": 0.25, "perturb_factors": [0.8, 1.2],
           "metric": "eval_mean_reward", "mode": "max", "eval_episodes": 5,
           "workdir": "runs/pbt", "backend": "local", "workers": None, "seed": 0}
    if cls is not None:
        out = signature_defaults(inspect.signature(cls.__init__).parameters,
                                 exclude=("self", "agent", "space"))
    return out


def _validate_pbt(section) -> dict:
    section = FreeDict()("pbt", section)
    known = pbt_defaults()
    out = {}
    for k, v in known_items("pbt", section, known):
        validator = _PBT_KNOWN.get(k) or _agent_validator(k, known[k])
        out[k] = validator(f"pbt.{k}", v)
    pf = out.get("perturb_factors")
    if pf is not None:
        if not isinstance(pf, (list, tuple)) or not pf:
            _fail("pbt.perturb_factors", "a list of positive numbers", pf)
        out["perturb_factors"] = [Float(0.0, min_open=True)(f"pbt.perturb_factors[{i}]", x)
                                  for i, x in enumerate(pf)]
    return out


_SPACE_KINDS = ("loguniform", "uniform", "intuniform", "choice")


def parse_space(space) -> dict:
    """The ``space:`` section -> {name: (kind, args)}. Each entry is ``{loguniform: [low, high]}``,
    ``{uniform: [low, high]}``, ``{intuniform: [low, high]}`` or ``{choice: [v1, v2, ...]}`` (also accepted: ``{type: ..., low:,
    high:}`` / ``{type: choice, values: [...]}``). Names must be tunable hyperparameters."""
    space = FreeDict()("space", space)
    if not space:
        raise ConfigError("space: expected at least one hyperparameter to search")
    tunable = tunable_names()
    out = {}
    for name, spec in space.items():
        path = f"space.{name}"
        if tunable is not None and name not in tunable:
            raise ConfigError(f"{path}: not a tunable hyperparameter{suggest(name, tunable)}; "
                              f"tunable: {', '.join(tunable)}")
        if not isinstance(spec, Mapping):
            _fail(path, "{loguniform: [low, high]}, {uniform: [low, high]} or {choice: [...]}", spec)
        spec = dict(spec)
        if "type" in spec:
            kind = spec.pop("type")
            if kind == "choice":
                args = spec.pop("values", None)
            else:
                args = [spec.pop("low", None), spec.pop("high", None)]
            if spec:
                k = next(iter(spec))
                raise ConfigError(f"{path}.{k}: unknown key")
        elif len(spec) == 1:
            (kind, args), = spec.items()
        else:
            _fail(path, "one of {loguniform: [low, high]}, {uniform: [low, high]}, {choice: [...]}", spec)
        if kind not in _SPACE_KINDS:
            raise ConfigError(f"{path}: unknown distribution {kind!r}; expected one of "
                              f"{', '.join(_SPACE_KINDS)}{suggest(kind, _SPACE_KINDS)}")
        if kind == "choice":
            if not isinstance(args, (list, tuple)) or not args:
                _fail(f"{path}.choice", "a non-empty list of values", args)
            args = list(args)
        else:
            if not isinstance(args, (list, tuple)) or len(args) != 2:
                _fail(f"{path}.{kind}", "[low, high]", args)
            if kind == "loguniform":
                lo = Float(min=0.0, min_open=True)(f"{path}.{kind}[0]", args[0])
            elif kind == "intuniform":
                lo = Int()(f"{path}.{kind}[0]", args[0])
            else:
                lo = Float()(f"{path}.{kind}[0]", args[0])
            hi = (Int() if kind == "intuniform" else Float())(f"{path}.{kind}[1]", args[1])
            if not hi > lo:
                raise ConfigError(f"{path}.{kind}: expected low < high, got [{args[0]}, {args[1]}]")
            args = [lo, hi]
        out[name] = (kind, args)
    return out


def tunable_names():
    return list(TUNABLE)
