"""rl-baselines3-zoo hyperparameter files (``hyperparams/ppo.yml``), read as they are.

A zoo file maps env ids to entries::

    CartPole-v1:
      n_envs: 8
      n_timesteps: !!float 1e5
      policy: 'MlpPolicy'
      learning_rate: lin_0.001
      normalize: true
      policy_kwargs: "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU,
                           net_arch=dict(pi=[256, 256], vf=[256, 256]))"

:func:`zoo_config` picks the entry of the env being trained (or the file's ``default`` entry, as
the zoo does) and translates it into a lifelong configuration: ``n_timesteps`` -> ``timesteps``,
``n_envs`` and ``env_kwargs`` as they are, ``normalize`` -> ``normalize_obs`` and
``normalize_reward`` (the zoo's ``VecNormalize``, discounting with the agent's ``gamma``), every
other key an ``agent:`` argument. The zoo ``eval``s its Python-expression strings
(``policy_kwargs``, ``normalize``); here they are parsed with :mod:`ast` and only literals,
``dict(...)`` and the ``nn.`` activation classes are accepted: a file never runs code. Keys the
zoo handles with code of its own (wrappers, callbacks, frame stacking) are errors naming the key.
"""
from __future__ import annotations

import ast
from typing import Any, Mapping

from lifelong.cli.config.agent import agent_defaults
from lifelong.cli.config.errors import ConfigError, suggest
from lifelong.cli.config.run_options import RUN_KEYS, SECTION_KEYS

__all__ = ["is_zoo_file", "zoo_config", "parse_python_literal"]

#: zoo key -> lifelong run option
_RUN_OPTIONS = {"n_timesteps": "timesteps", "n_envs": "n_envs", "env_kwargs": "env_kwargs"}

#: zoo keys that need the zoo's own code (wrappers it imports, callbacks it builds)
_UNSUPPORTED = {
    "env_wrapper": "Gymnasium wrappers named by import path (a config file never imports code)",
    "vec_env_wrapper": "VecEnv wrappers named by import path (a config file never imports code)",
    "callback": "callbacks named by import path (a config file never imports code)",
    "frame_stack": "frame stacking (VecFrameStack)",
    "monitor_kwargs": "Monitor arguments",
    "normalize_kwargs": "VecNormalize arguments other than norm_obs and norm_reward",
}

#: ``nn.<name>`` (also ``th.nn.<name>``, ``torch.nn.<name>``) -> lifelong activation name
_ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu", "ELU": "elu", "LeakyReLU": "leaky_relu",
                "GELU": "gelu", "SiLU": "silu", "SELU": "selu", "Sigmoid": "sigmoid"}

#: the zoo's defaults and the entries its launcher finds without an env-specific one
_FALLBACK_ENTRY = "default"


def is_zoo_file(data: Mapping) -> bool:
    """True for an rl-zoo hyperparameter file: no lifelong key at the top level, every top-level
    value a mapping, and at least one of them with ``n_timesteps`` or ``policy`` (zoo entries)."""
    if not data or any(k in RUN_KEYS or k in SECTION_KEYS for k in data):
        return False
    entries = list(data.values())
    return (all(isinstance(v, Mapping) for v in entries)
            and any("n_timesteps" in v or "policy" in v for v in entries))


def zoo_config(data: Mapping, env_id: str | None, where: str) -> dict:
    """The lifelong configuration of ``env_id``'s entry in the zoo file ``data`` (read from
    ``where``, which every error message starts with)."""
    if not env_id:
        raise ConfigError(f"{where}: an rl-zoo hyperparameter file has one entry per env; give "
                          "ENV (e.g. lifelong train CartPole-v1 --config ppo.yml)")
    if env_id in data:
        name = env_id
    elif _FALLBACK_ENTRY in data:
        name = _FALLBACK_ENTRY
    else:
        raise ConfigError(f"{where}: no entry for {env_id} (and no 'default' entry) in this rl-zoo "
                          f"file{suggest(env_id, list(data))}")
    entry = data[name]
    config: dict[str, Any] = {"env": env_id}
    agent: dict[str, Any] = {}
    for key, value in entry.items():
        path = f"{where}: {name}.{key}"
        if key in _UNSUPPORTED:
            raise ConfigError(f"{path}: rl-zoo key not supported by lifelong train "
                              f"({_UNSUPPORTED[key]})")
        if key in _RUN_OPTIONS:
            config[_RUN_OPTIONS[key]] = value
        elif key == "normalize":
            config.update(_normalize(path, value))
        elif key == "policy_kwargs":
            agent[key] = _policy_kwargs(path, value)
        else:
            agent[key] = value
    _check_agent_keys(where, name, agent)
    config["agent"] = agent
    return config


def _check_agent_keys(where: str, name: str, agent: Mapping) -> None:
    known = agent_defaults()
    for key in agent:
        if key not in known:
            raise ConfigError(f"{where}: {name}.{key}: unknown rl-zoo key: neither a run option "
                              "(n_timesteps, n_envs, env_kwargs, normalize) "
                              f"nor a DistributionalPPO argument{suggest(key, list(known))}")


def _normalize(path: str, value) -> dict:
    """The zoo's ``normalize``: ``true`` (observations and rewards), ``false``, or a mapping (or
    the string of one) with ``norm_obs`` / ``norm_reward``."""
    if isinstance(value, str):
        value = parse_python_literal(path, value)
    if isinstance(value, bool):
        return {"normalize_obs": value, "normalize_reward": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected true, false or a mapping with norm_obs/norm_reward, "
                          f"got {value!r}")
    out = {"normalize_obs": True, "normalize_reward": True}  # VecNormalize's defaults
    for k, v in value.items():
        if k not in ("norm_obs", "norm_reward"):
            raise ConfigError(f"{path}.{k}: VecNormalize argument not supported by lifelong train "
                              "(norm_obs and norm_reward are)")
        if not isinstance(v, bool):
            raise ConfigError(f"{path}.{k}: expected true or false, got {v!r}")
        out["normalize_obs" if k == "norm_obs" else "normalize_reward"] = v
    return out


def _policy_kwargs(path: str, value):
    if isinstance(value, str):
        value = parse_python_literal(path, value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a mapping (or the zoo's \"dict(...)\" string), "
                          f"got {value!r}")
    return dict(value)


def parse_python_literal(path: str, text: str) -> Any:
    """The value of a zoo Python-expression string, without ``eval``: an :mod:`ast` walk that
    accepts numbers, strings, booleans, ``None``, lists, tuples, ``{...}`` and ``dict(k=v, ...)``,
    and the activation classes ``nn.ReLU`` etc. (returned as lifelong's names, ``"relu"``).
    Anything else (another call, name or attribute) is a :class:`ConfigError` naming it."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"{path}: not a Python expression ({exc.msg}): {text!r}") from None
    return _literal(path, tree.body)


def _literal(path: str, node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(path, node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(path, e) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ConfigError(f"{path}: '**' is not supported")
        return {_literal(path, k): _literal(path, v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        if node.args or any(kw.arg is None for kw in node.keywords):
            raise ConfigError(f"{path}: only dict(key=value, ...) is supported, got "
                              f"{ast.unparse(node)!r}")
        return {kw.arg: _literal(f"{path}.{kw.arg}", kw.value) for kw in node.keywords}
    dotted = _dotted_name(node)
    if dotted is not None:
        module, _, name = dotted.rpartition(".")
        if module in ("nn", "th.nn", "torch.nn") and name in _ACTIVATIONS:
            return _ACTIVATIONS[name]
        raise ConfigError(f"{path}: {dotted} is not supported (accepted: literals, dict(...) and "
                          f"the activations {', '.join('nn.' + a for a in _ACTIVATIONS)})")
    raise ConfigError(f"{path}: {ast.unparse(node)!r} is not supported (accepted: literals, "
                      f"dict(...) and the nn. activation classes; the file is not evaluated)")


def _dotted_name(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None
