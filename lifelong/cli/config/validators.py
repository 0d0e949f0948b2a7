"""Value types: validators called with (path, value) that return the normalised value or raise
a :class:`ConfigError` (positive integers, numbers in a range, choices, schedules such as
``lin_2e-3``, network architectures, policy and optimizer keyword mappings)."""
from __future__ import annotations

import inspect
import math
from typing import Callable, Mapping

from lifelong.cli.config.errors import ConfigError, _fail, _show, suggest

__all__ = ["V", "Any_", "Bool", "Int", "Float", "Str", "Choice", "Optional", "FreeDict",
           "Schedule", "NetArch", "ACTIVATIONS", "activation_class", "PolicyKwargs", "Kwargs", "KwargsGroups",
           "known_items"]


class V:
    """Base validator. ``describe`` is the 'expected ...' phrase."""
    describe = "a value"

    def __call__(self, path, value):
        return value


class Any_(V):
    describe = "any value"


class Bool(V):
    describe = "true or false"

    def __call__(self, path, value):
        if not isinstance(value, bool):
            _fail(path, self.describe, value)
        return value


class Int(V):
    def __init__(self, min=None, max=None):
        self.min, self.max = min, max
        if min == 1:
            self.describe = "a positive integer"
        elif min == 0:
            self.describe = "a non-negative integer"
        elif min is not None:
            self.describe = f"an integer >= {min}"
        else:
            self.describe = "an integer"

    def __call__(self, path, value):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)  # 1e5 -> 100000
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, self.describe, value)
        if self.min is not None and value < self.min:
            _fail(path, self.describe, value)
        if self.max is not None and value > self.max:  # an upper bound: say it
            _fail(path, f"{self.describe}, at most {self.max:,}", value)
        return value


class Float(V):
    def __init__(self, min=None, max=None, min_open=False, max_open=False):
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        if min == 0 and max is None:
            self.describe = "a positive number" if min_open else "a non-negative number"
        elif min is not None and max is not None:
            lo = "(" if min_open else "["
            hi = ")" if max_open else "]"
            self.describe = f"a number in {lo}{min:g}, {max:g}{hi}"
        elif min is not None:
            self.describe = f"a number {'>' if min_open else '>='} {min:g}"
        else:
            self.describe = "a number"

    def __call__(self, path, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, self.describe, value)
        value = float(value)
        if not math.isfinite(value):
            _fail(path, "a finite " + self.describe.removeprefix("a "), value)
        if self.min is not None and (value < self.min or (self.min_open and value == self.min)):
            _fail(path, self.describe, value)
        if self.max is not None and (value > self.max or (self.max_open and value == self.max)):
            _fail(path, self.describe, value)
        return value


class Str(V):
    describe = "a string"

    def __call__(self, path, value):
        if not isinstance(value, str) or not value:
            _fail(path, "a non-empty string", value)
        return value


class Choice(V):
    def __init__(self, *options):
        self.options = options
        self.describe = "one of " + ", ".join(repr(o) for o in options)

    def __call__(self, path, value):
        if value not in self.options or isinstance(value, bool):
            raise ConfigError(f"{path}: expected {self.describe}, got {_show(value)}"
                              f"{suggest(value, self.options) if isinstance(value, str) else ''}")
        return value


class Optional(V):
    def __init__(self, inner: V):
        self.inner = inner
        self.describe = f"{inner.describe} or null"

    def __call__(self, path, value):
        if value is None:
            return None
        try:
            return self.inner(path, value)
        except ConfigError as exc:
            msg = str(exc)
            if ": expected " in msg and msg.startswith(path + ": expected "):
                raise ConfigError(f"{path}: expected {self.describe}, got {_show(value)}") from None
            raise


class FreeDict(V):
    describe = "a mapping"

    def __call__(self, path, value):
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            _fail(path, "a mapping (key: value)", value)
        for k in value:
            if not isinstance(k, str):
                _fail(f"{path}", "string keys", k)
        return dict(value)


class Schedule(V):
    """A positive number, or a schedule: ``lin_<start>`` (rl-zoo style, linear to 0),
    ``{linear: [start, end]}`` or ``{constant: value}``. Normalised to a float or a one-key dict."""

    def __init__(self, min=0.0, min_open=True, max=None):
        self.num = Float(min=min, min_open=min_open, max=max)
        self.describe = (f"{self.num.describe} or a schedule (lin_<start>, {{linear: [start, end]}},"
                         " {constant: value})")

    def __call__(self, path, value):
        if isinstance(value, str) and value.startswith("lin_"):
            try:
                start = float(value[4:])
            except ValueError:
                _fail(path, self.describe, value)
            return {"linear": [self.num(path, start), 0.0]}
        if isinstance(value, Mapping):
            if len(value) != 1:
                _fail(path, self.describe, value)
            (kind, arg), = value.items()
            if kind == "constant":
                return {"constant": self.num(f"{path}.constant", arg)}
            if kind == "linear":
                if not isinstance(arg, (list, tuple)) or len(arg) != 2:
                    _fail(f"{path}.linear", "[start, end]", arg)
                start = self.num(f"{path}.linear[0]", arg[0])
                end = Float(min=0.0, max=self.num.max)(f"{path}.linear[1]", arg[1])
                return {"linear": [start, end]}
            raise ConfigError(f"{path}: unknown schedule {kind!r}; expected linear or constant"
                              f"{suggest(kind, ['linear', 'constant'])}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, self.describe, value)
        return self.num(path, value)


#: the widest layer and the deepest network a config may ask for
MAX_LAYER_SIZE = 1 << 16
MAX_LAYERS = 64


class NetArch(V):
    describe = "a list of positive layer sizes or {pi: [...], vf: [...]}"

    def __call__(self, path, value):
        lay = Int(min=1, max=MAX_LAYER_SIZE)
        if isinstance(value, (list, tuple, Mapping)) and any(
                isinstance(v, (list, tuple)) and len(v) > MAX_LAYERS
                for v in ([value] if not isinstance(value, Mapping) else value.values())):
            raise ConfigError(f"{path}: more than {MAX_LAYERS} layers; expected {self.describe}")
        if isinstance(value, (list, tuple)):
            return [lay(f"{path}[{i}]", v) for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if k not in ("pi", "vf", "qf"):
                    raise ConfigError(f"{path}.{k}: unknown key; expected pi or vf{suggest(k, ['pi', 'vf'])}")
                if not isinstance(v, (list, tuple)):
                    _fail(f"{path}.{k}", "a list of positive layer sizes", v)
                out[k] = [lay(f"{path}.{k}[{i}]", x) for i, x in enumerate(v)]
            return out
        _fail(path, self.describe, value)


ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu", "gelu", "silu", "selu", "sigmoid")


def activation_class(name: str):
    import torch.nn as nn
    return {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
            "gelu": nn.GELU, "silu": nn.SiLU, "selu": nn.SELU, "sigmoid": nn.Sigmoid}[name]


class PolicyKwargs(V):
    describe = "a mapping of policy arguments"
    KNOWN = {"net_arch": NetArch(), "activation_fn": Choice(*ACTIVATIONS), "ortho_init": Bool(),
             "log_std_init": Float(), "share_features_extractor": Bool(), "squash_output": Bool(),
             "full_std": Bool(), "use_expln": Bool(), "normalize_images": Bool()}

    def __call__(self, path, value):
        if value is None:
            return None
        value = FreeDict()(path, value)
        out = {}
        for k, v in value.items():
            if k in self.KNOWN:
                out[k] = self.KNOWN[k](f"{path}.{k}", v)
            else:
                out[k] = v  # checked against the policy class signature in validate()
        return out


class Kwargs(V):
    """A mapping checked against a callable's keyword arguments (resolved lazily)."""

    def __init__(self, target: Callable[[Mapping], Callable | None], skip=()):
        self.target, self.skip = target, skip
        self.describe = "a mapping"

    def __call__(self, path, value, context: Mapping | None = None):
        if value is None:
            return None
        value = FreeDict()(path, value)
        fn = self.target(context or {})
        if fn is None or not value:
            return value
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            return value
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return value
        names = [n for n, p in params.items()
                 if n not in ("self", "params") and p.kind is not p.VAR_POSITIONAL and n not in self.skip]
        for k, v in value.items():
            if k not in names:
                raise ConfigError(f"{path}.{k}: unknown key{suggest(k, names)}; "
                                  f"valid keys: {', '.join(names)}")
            default = params[k].default
            if isinstance(default, bool):
                Bool()(f"{path}.{k}", v)
            elif isinstance(default, (int, float)) and not isinstance(v, (list, tuple)) and v is not None:
                Float()(f"{path}.{k}", v)
        return value


class KwargsGroups(V):
    """A mapping from a pattern (a non-empty string) to a :class:`Kwargs` mapping: the agent's
    ``optimizer_groups`` (which parameters a pattern matches is checked when the agent is built)."""

    def __init__(self, target: Callable[[Mapping], Callable | None]):
        self.kwargs = Kwargs(target)
        self.describe = "a mapping from a parameter-name pattern to a mapping of arguments"

    def __call__(self, path, value, context: Mapping | None = None):
        if value is None:
            return None
        value = FreeDict()(path, value)
        out = {}
        for pattern, kwargs in value.items():
            if not pattern:
                _fail(path, "non-empty patterns", pattern)
            if kwargs is not None and not isinstance(kwargs, Mapping):
                _fail(f"{path}.{pattern}", "a mapping of optimizer arguments", kwargs)
            out[pattern] = self.kwargs(f"{path}.{pattern}", kwargs or {}, context=context)
        return out


def known_items(path: str, section: Mapping, known, hint: Callable[[str], str] | None = None):
    """Yield the (key, value) pairs of ``section`` in order; the first key not in ``known`` is a
    ``PATH.KEY: unknown key`` error, with ``hint(key)`` (default: close matches in ``known``)."""
    for k, v in section.items():
        if k not in known:
            raise ConfigError(f"{path}.{k}: unknown key{hint(k) if hint else suggest(k, list(known))}")
        yield k, v
