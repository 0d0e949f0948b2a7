"""Run configuration: schema, YAML files, ``--set KEY=VALUE`` overrides and validation.

A configuration is a plain mapping (what ``config.yaml`` holds)::

    env: CartPole-v1          # Gymnasium id (``lifelong train ENV`` overrides it)
    env_kwargs: {}            # extra gymnasium.make arguments
    n_envs: 8                 # vectorised copies of the env
    vec_env: dummy            # dummy | subproc
    normalize_obs: false      # VecNormalize the observations (statistics are checkpointed)
    seed: 0
    timesteps: 100000
    eval_every: 10000         # 0 = evaluate only at the end
    eval_episodes: 10
    eval_deterministic: true
    checkpoint_every: 25000   # 0 = checkpoint only at the end
    keep_checkpoints: 3
    agent:                    # DistributionalPPO constructor arguments
      learning_rate: 3.0e-4   # or lin_3e-4, or {linear: [3e-4, 0]}
      n_steps: 2048
      ...
    pbt: {...}                # only for ``lifelong pbt``: PBT arguments
    space: {...}              # only for ``lifelong pbt``: the search space

Defaults come from the DistributionalPPO signature (read with :mod:`inspect`), so the agent's own
defaults are the config defaults. Precedence: defaults < ``--config`` file < ``--set``.
Every error is a :class:`ConfigError` whose message starts with the key's dotted path, e.g.
``agent.n_steps: expected a positive integer, got -3``.
"""
from __future__ import annotations

import copy
import difflib
import inspect
import math
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

__all__ = ["ConfigError", "load_yaml", "parse_value", "parse_set", "apply_sets", "defaults",
           "resolve", "validate", "agent_defaults", "dump_yaml", "RUN_KEYS", "AGENT_EXCLUDED",
           "parse_space", "pbt_defaults"]


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the key's dotted path."""


# --------------------------------------------------------------------------------------------
# YAML: PyYAML follows YAML 1.1 where ``1e-4`` (no dot) is a *string*; every user writes it, so
# resolve it as a float like YAML 1.2 does.
class _Loader(yaml.SafeLoader):
    pass


_FLOAT_RE = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _ch in list("-+0123456789."):
    _Loader.yaml_implicit_resolvers.setdefault(_ch, [])
    _Loader.yaml_implicit_resolvers[_ch] = [
        (tag, rx) for tag, rx in _Loader.yaml_implicit_resolvers[_ch]
        if tag != "tag:yaml.org,2002:float"]
    _Loader.yaml_implicit_resolvers[_ch].insert(0, ("tag:yaml.org,2002:float", _FLOAT_RE))


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file; a missing file or a syntax error is a :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level, "
                          f"got {type(data).__name__}")
    return data


def parse_value(text: str, where: str = "value") -> Any:
    """A ``--set`` value, typed as YAML (``3e-4`` -> float, ``[64, 64]`` -> list, ``null``)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{where}: malformed value {text!r} ({problem})") from None


def dump_yaml(config: Mapping) -> str:
    return yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=None)


def _plain(x):
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# --------------------------------------------------------------------------------------------
# Validators: each is called with (path, value) and returns the normalised value or raises.
def _show(value) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list {list(value)!r}" if len(str(value)) < 60 else "a list"
    return repr(value)


def _fail(path: str, expected: str, value) -> None:
    raise ConfigError(f"{path}: expected {expected}, got {_show(value)}")


def suggest(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


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
        if min == 1 and max is None:
            self.describe = "a positive integer"
        elif min == 0 and max is None:
            self.describe = "a non-negative integer"
        elif min is not None and max is None:
            self.describe = f"an integer >= {min}"
        elif min is not None:
            self.describe = f"an integer in [{min}, {max}]"
        else:
            self.describe = "an integer"

    def __call__(self, path, value):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)  # 1e5 -> 100000
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, self.describe, value)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            _fail(path, self.describe, value)
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


class NetArch(V):
    describe = "a list of positive layer sizes or {pi: [...], vf: [...]}"

    def __call__(self, path, value):
        lay = Int(min=1)
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


def _optimizer_class(ctx):
    name = ctx.get("optimizer", "adaptive_upgd")
    try:
        import lifelong.optim as optim
    except ImportError:
        return None
    import torch
    return {"adam": torch.optim.Adam, "upgd": getattr(optim, "UPGD", None),
            "adaptive_upgd": getattr(optim, "AdaptiveUPGD", None),
            "upgdw": getattr(optim, "UPGDW", None)}.get(name)


def _vgs_class(ctx):
    try:
        from lifelong.vgs import VarianceGradientScaler
    except ImportError:
        return None
    return VarianceGradientScaler


# --------------------------------------------------------------------------------------------
# The agent's arguments.
#: validators of the agent arguments we know about; others are typed from their default.
AGENT_KNOWN: dict[str, V] = {
    "policy": Str(),
    "learning_rate": Schedule(),
    "n_steps": Int(min=1),
    "batch_size": Int(min=2),
    "n_epochs": Int(min=1),
    "gamma": Float(0.0, 1.0),
    "gae_lambda": Float(0.0, 1.0),
    "clip_range": Schedule(),
    "clip_range_vf": Optional(Schedule()),
    "normalize_advantage": Bool(),
    "ent_coef": Float(min=0.0),
    "vf_coef": Float(min=0.0),
    "max_grad_norm": Optional(Float(min=0.0, min_open=True)),
    "use_sde": Bool(),
    "sde_sample_freq": Int(min=-1),
    "target_kl": Optional(Float(min=0.0, min_open=True)),
    "stats_window_size": Int(min=1),
    "policy_kwargs": PolicyKwargs(),
    "rollout_buffer_kwargs": Optional(FreeDict()),
    "device": Str(),
    "critic": Choice("quantile", "categorical"),
    "n_quantiles": Int(min=1),
    "huber_kappa": Float(min=0.0, min_open=True),
    "n_atoms": Int(min=2),
    "v_min": Float(),
    "v_max": Float(),
    "twin_critics": Bool(),
    "value_aggregation": Choice("min", "mean"),
    "optimizer": Choice("adam", "upgd", "adaptive_upgd", "upgdw"),
    "optimizer_kwargs": Kwargs(_optimizer_class),
    "vgs": Bool(),
    "vgs_kwargs": Kwargs(_vgs_class),
    "normalize_returns": Bool(),
    "cvar_alpha": Optional(Float(0.0, 1.0, min_open=True)),
    "diagnostics_every": Optional(Int(min=0)),
}

#: constructor arguments that are not config keys (the run owns them).
AGENT_EXCLUDED = ("self", "env", "tensorboard_log", "verbose", "seed", "_init_setup_model",
                  "rollout_buffer_class")

#: what DESIGN.md adds to PPO's arguments (used only until lifelong.ppo exists).
_DOCUMENTED_EXTRAS = {"critic": "quantile", "n_quantiles": 32, "huber_kappa": 1.0, "n_atoms": 51,
                      "v_min": -10.0, "v_max": 10.0, "twin_critics": True,
                      "value_aggregation": "min", "optimizer": "adaptive_upgd",
                      "optimizer_kwargs": None, "vgs": True, "vgs_kwargs": None,
                      "normalize_returns": True, "cvar_alpha": None}


def agent_class():
    """The DistributionalPPO class (falls back to SB3's PPO only while lifelong.ppo is missing)."""
    try:
        from lifelong.ppo import DistributionalPPO
    except ModuleNotFoundError as exc:
        if exc.name not in ("lifelong.ppo",):
            raise
        return None
    return DistributionalPPO


_AGENT_DEFAULTS: dict | None = None


def agent_defaults() -> dict:
    """Constructor defaults of DistributionalPPO (read from its signature)."""
    global _AGENT_DEFAULTS
    if _AGENT_DEFAULTS is None:
        cls = agent_class()
        if cls is None:
            from stable_baselines3 import PPO
            params = dict(inspect.signature(PPO.__init__).parameters)
            extras = dict(_DOCUMENTED_EXTRAS)
        else:
            params = dict(inspect.signature(cls.__init__).parameters)
            extras = {}
        out = {"policy": "MlpPolicy"}
        for name, p in params.items():
            if name in AGENT_EXCLUDED or name == "policy" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            out[name] = _jsonable_default(p.default)
        out.update(extras)
        _AGENT_DEFAULTS = out
    return copy.deepcopy(_AGENT_DEFAULTS)


def _jsonable_default(d):
    if d is inspect.Parameter.empty:
        return None
    if isinstance(d, (bool, int, float, str)) or d is None:
        return d
    if isinstance(d, (list, tuple)):
        return [_jsonable_default(x) for x in d]
    if isinstance(d, dict):
        return {k: _jsonable_default(v) for k, v in d.items()}
    to_dict = getattr(d, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return None


def _agent_validator(name: str, default) -> V:
    if name in AGENT_KNOWN:
        return AGENT_KNOWN[name]
    if isinstance(default, bool):
        return Bool()
    if isinstance(default, int):
        return Optional(Int())
    if isinstance(default, float):
        return Optional(Float())
    if isinstance(default, str):
        return Str()
    return Any_()


# --------------------------------------------------------------------------------------------
# Run options.
RUN_KEYS: dict[str, tuple[Any, V, str]] = {
    "env": (None, Optional(Str()), "Gymnasium environment id"),
    "env_kwargs": ({}, FreeDict(), "extra gymnasium.make arguments"),
    "n_envs": (1, Int(min=1), "number of vectorised environments"),
    "vec_env": ("dummy", Choice("dummy", "subproc"), "DummyVecEnv or SubprocVecEnv"),
    "normalize_obs": (False, Bool(), "normalise observations with VecNormalize"),
    "seed": (0, Optional(Int(min=0)), "random seed"),
    "timesteps": (100_000, Int(min=1), "total environment steps"),
    "eval_every": (10_000, Int(min=0), "evaluate every N steps (0: only at the end)"),
    "eval_episodes": (10, Int(min=1), "episodes per evaluation"),
    "eval_deterministic": (True, Bool(), "greedy actions during evaluation"),
    "stop_at_reward": (None, Optional(Float()), "stop once an evaluation's mean return reaches this"),
    "checkpoint_every": (25_000, Int(min=0), "checkpoint every N steps (0: only at the end)"),
    "keep_checkpoints": (3, Int(min=1), "checkpoints kept in checkpoints/"),
}
SECTION_KEYS = ("agent", "pbt", "space")


def defaults() -> dict:
    """The full default configuration."""
    cfg = {k: copy.deepcopy(v[0]) for k, v in RUN_KEYS.items()}
    cfg["agent"] = agent_defaults()
    return cfg


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k in ("agent", "pbt", "space"):
            out[k] = _deep_merge(dict(out[k]), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# --------------------------------------------------------------------------------------------
# --set KEY=VALUE
def parse_set(item: str) -> tuple[list[str], str]:
    """``"agent.n_steps=256"`` -> (["agent", "n_steps"], "256") (the value still as text)."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected KEY=VALUE (e.g. --set agent.n_steps=256)")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item}: expected KEY=VALUE with a non-empty dotted KEY")
    return key.split("."), text


def _all_key_names() -> list[str]:
    names = list(RUN_KEYS) + list(SECTION_KEYS) + [f"agent.{k}" for k in agent_defaults()]
    return names


def _suggest_key(key: str) -> str:
    """Close matches of a --set key; a bare name is compared with bare agent names too."""
    if "." in key:
        return suggest(key, _all_key_names())
    candidates = {k: k for k in list(RUN_KEYS) + list(SECTION_KEYS)}
    candidates.update({a: f"agent.{a}" for a in agent_defaults() if a not in candidates})
    close = difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(candidates[c] for c in close)}?)" if close else ""


def apply_sets(config: dict, items) -> dict:
    """Apply ``--set`` items to ``config`` (a copy is returned). A bare agent argument name
    (``n_steps=256``) means ``agent.n_steps``. Unknown keys are errors with close matches."""
    config = copy.deepcopy(config)
    agent_keys = agent_defaults()
    for item in items or ():
        parts, text = parse_set(item)
        head = parts[0]
        if head not in RUN_KEYS and head not in SECTION_KEYS:
            if head in agent_keys:
                parts = ["agent"] + parts
            else:
                key = ".".join(parts)
                raise ConfigError(f"--set {key}: unknown key{_suggest_key(key)}")
        if parts[0] == "agent" and len(parts) >= 2 and parts[1] not in agent_keys:
            key = ".".join(parts)
            hint = suggest(key, _all_key_names())
            if parts[1] in PolicyKwargs.KNOWN:
                hint = f" (did you mean agent.policy_kwargs.{'.'.join(parts[1:])}?)"
            raise ConfigError(f"--set {key}: unknown key{hint}")
        value = parse_value(text, where=f"--set {'.'.join(parts)}")
        node = config
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"--set {'.'.join(parts)}: {'.'.join(parts[:i + 1])} is not a mapping")
            node = nxt
        node[parts[-1]] = value
    return config


# --------------------------------------------------------------------------------------------
def validate(config: Mapping, *, sections=("agent",)) -> dict:
    """Check every key and value; returns a normalised copy. ``sections`` are the sections
    allowed besides the run keys (``pbt``/``space`` only for ``lifelong pbt``)."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"config: expected a mapping, got {_show(config)}")
    out: dict = {}
    allowed = list(RUN_KEYS) + list(sections)
    for k, v in config.items():
        if k in RUN_KEYS:
            out[k] = RUN_KEYS[k][1](k, v)
        elif k in sections:
            out[k] = v
        else:
            hint = suggest(k, allowed)
            if isinstance(k, str) and k in agent_defaults():
                hint = f" (agent arguments go under agent:, i.e. agent.{k})"
            elif k in SECTION_KEYS:
                hint = f" (the {k} section is only for `lifelong pbt`)"
            raise ConfigError(f"{k}: unknown key{hint}")
    if "agent" in out:
        out["agent"] = _validate_agent(out["agent"])
        n_envs = out.get("n_envs", 1)
        agent = out["agent"]
        if "batch_size" in agent and "n_steps" in agent:
            rollout = agent["n_steps"] * n_envs
            if agent["batch_size"] > rollout:
                raise ConfigError(
                    f"agent.batch_size: {agent['batch_size']} is larger than the rollout "
                    f"(agent.n_steps * n_envs = {agent['n_steps']} * {n_envs} = {rollout})")
    if "pbt" in out:
        out["pbt"] = _validate_pbt(out["pbt"])
    if "space" in out:
        parse_space(out["space"])  # validates
    return out


def _validate_agent(agent) -> dict:
    agent = FreeDict()("agent", agent)
    known = agent_defaults()
    out = {}
    for k, v in agent.items():
        if k not in known:
            hint = suggest(k, list(known))
            if k in PolicyKwargs.KNOWN:
                hint = f" (did you mean agent.policy_kwargs.{k}?)"
            elif not hint and k in RUN_KEYS:
                hint = f" ({k} is a top-level key, not an agent argument)"
            raise ConfigError(f"agent.{k}: unknown key{hint}")
        validator = _agent_validator(k, known[k])
        if isinstance(validator, Kwargs):
            out[k] = validator(f"agent.{k}", v, context={**known, **agent})
        else:
            out[k] = validator(f"agent.{k}", v)
    vmin = out.get("v_min", known.get("v_min"))
    vmax = out.get("v_max", known.get("v_max"))
    if isinstance(vmin, (int, float)) and isinstance(vmax, (int, float)) and vmin >= vmax:
        raise ConfigError(f"agent.v_max: expected a number greater than agent.v_min ({vmin}), got {vmax}")
    if "policy_kwargs" in out and out["policy_kwargs"]:
        _check_policy_kwargs(out.get("policy", known.get("policy", "MlpPolicy")), out["policy_kwargs"])
    return out


def _check_policy_kwargs(policy, kwargs: Mapping) -> None:
    cls = agent_class()
    if cls is None or not isinstance(policy, str):
        return
    pcls = getattr(cls, "policy_aliases", {}).get(policy)
    if pcls is None:
        raise ConfigError(f"agent.policy: unknown policy {policy!r}"
                          f"{suggest(policy, list(getattr(cls, 'policy_aliases', {})))}")
    names: set[str] = set()
    for klass in pcls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            continue
        names.update(n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
    names -= {"self", "observation_space", "action_space", "lr_schedule"}
    for k in kwargs:
        if k not in names:
            raise ConfigError(f"agent.policy_kwargs.{k}: unknown key{suggest(k, sorted(names))}")


# --------------------------------------------------------------------------------------------
# PBT sections
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
}


def pbt_class():
    try:
        from lifelong.pbt import PBT
    except ImportError:
        return None
    return PBT


def pbt_defaults() -> dict:
    """Keyword defaults of lifelong.pbt.PBT (besides agent and space)."""
    cls = pbt_class()
    out = {"population_size": 4, "interval_steps": 4096, "total_steps": 40960, "truncation": 0.25,
           "resample_probability": 0.25, "perturb_factors": [0.8, 1.2],
           "metric": "eval_mean_reward", "mode": "max", "eval_episodes": 5,
           "workdir": "runs/pbt", "backend": "local", "workers": None, "seed": 0}
    if cls is not None:
        out = {}
        for name, p in inspect.signature(cls.__init__).parameters.items():
            if name in ("self", "agent", "space") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            out[name] = _jsonable_default(p.default)
    return out


def _validate_pbt(section) -> dict:
    section = FreeDict()("pbt", section)
    known = pbt_defaults()
    out = {}
    for k, v in section.items():
        if k not in known:
            raise ConfigError(f"pbt.{k}: unknown key{suggest(k, list(known))}")
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
    try:
        from lifelong.hyperparams import TUNABLE
    except ImportError:
        return None
    return list(TUNABLE)


# --------------------------------------------------------------------------------------------
def resolve(*, config_file=None, sets=(), overrides: Mapping | None = None,
            sections=("agent",)) -> dict:
    """defaults < config file < ``overrides`` (CLI flags such as --seed) < ``--set``; validated."""
    cfg = defaults()
    if config_file is not None:
        data = load_yaml(config_file)
        # validate the file's own keys first so that errors name what the user wrote
        validate(data, sections=sections)
        cfg = _deep_merge(cfg, data)
    if overrides:
        cfg = _deep_merge(cfg, {k: v for k, v in overrides.items() if v is not None})
    cfg = apply_sets(cfg, sets)
    return validate(cfg, sections=sections)
