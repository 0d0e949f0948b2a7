"""Resolving a configuration: defaults < ``--config`` file < CLI flags < ``--set``, then
validation of the whole (run options, then each section)."""
from __future__ import annotations

import copy
import difflib
from typing import Mapping

from lifelong.agent import DEFAULT_ALGO
from lifelong.cli.config.agent import _validate_agent, agent_defaults
from lifelong.cli.config.errors import ConfigError, _show, suggest
from lifelong.cli.config.pbt_schema import _validate_pbt, parse_space
from lifelong.cli.config.run_options import RUN_KEYS, SECTION_KEYS
from lifelong.cli.config.validators import PolicyKwargs
from lifelong.cli.config.yaml_io import load_yaml, parse_set, parse_value
from lifelong.cli.config.zoo import is_zoo_file, zoo_config

__all__ = ["defaults", "apply_sets", "validate", "resolve"]


def defaults(algo: str = DEFAULT_ALGO) -> dict:
    """The full default configuration of ``algo``'s agent."""
    cfg = {k: copy.deepcopy(v[0]) for k, v in RUN_KEYS.items()}
    cfg["algo"] = RUN_KEYS["algo"][1]("algo", algo)
    cfg["agent"] = agent_defaults(algo)
    return cfg


def _chosen_algo(data: Mapping | None, overrides: Mapping | None, sets) -> str:
    """The ``algo`` a layered configuration ends with (it decides the agent defaults below it)."""
    algo = DEFAULT_ALGO
    if isinstance(data, Mapping) and "algo" in data:
        algo = data["algo"]
    if overrides and overrides.get("algo") is not None:
        algo = overrides["algo"]
    for item in sets or ():
        parts, text = parse_set(item)
        if parts == ["algo"]:
            algo = parse_value(text, where="--set algo")
    return RUN_KEYS["algo"][1]("algo", algo)


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k in ("agent", "pbt", "space"):
            out[k] = _deep_merge(dict(out[k]), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _all_key_names(algo: str = DEFAULT_ALGO) -> list[str]:
    names = list(RUN_KEYS) + list(SECTION_KEYS) + [f"agent.{k}" for k in agent_defaults(algo)]
    return names


def _suggest_key(key: str, algo: str = DEFAULT_ALGO) -> str:
    """Close matches of a --set key; a bare name is compared with bare agent names too."""
    if "." in key:
        return suggest(key, _all_key_names(algo))
    candidates = {k: k for k in list(RUN_KEYS) + list(SECTION_KEYS)}
    candidates.update({a: f"agent.{a}" for a in agent_defaults(algo) if a not in candidates})
    close = difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(candidates[c] for c in close)}?)" if close else ""


def apply_sets(config: dict, items) -> dict:
    """Apply ``--set`` items to ``config`` (a copy is returned). A bare agent argument name
    (``n_steps=256``) means ``agent.n_steps``. Unknown keys are errors with close matches."""
    config = copy.deepcopy(config)
    algo = config.get("algo", DEFAULT_ALGO)
    agent_keys = agent_defaults(algo)
    for item in items or ():
        parts, text = parse_set(item)
        head = parts[0]
        if head not in RUN_KEYS and head not in SECTION_KEYS:
            if head in agent_keys:
                parts = ["agent"] + parts
            else:
                key = ".".join(parts)
                raise ConfigError(f"--set {key}: unknown key{_suggest_key(key, algo)}")
        if parts[0] == "agent" and len(parts) >= 2 and parts[1] not in agent_keys:
            key = ".".join(parts)
            hint = suggest(key, _all_key_names(algo))
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
        out["agent"] = _validate_agent(out["agent"], out.get("algo", DEFAULT_ALGO))
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


def resolve(*, config_file=None, sets=(), overrides: Mapping | None = None,
            sections=("agent",)) -> dict:
    """defaults < config file < ``overrides`` (CLI flags such as --seed) < ``--set``; validated."""
    data = load_yaml(config_file) if config_file is not None else None
    if data is not None and is_zoo_file(data):  # an rl-zoo hyperparams file: the entry of the env being trained
        data = zoo_config(data, (overrides or {}).get("env"), str(config_file))
    cfg = defaults(_chosen_algo(data, overrides, sets))
    if data is not None:
        # validate the file's own keys first so that errors name what the user wrote
        validate(data, sections=sections)
        cfg = _deep_merge(cfg, data)
    if overrides:
        cfg = _deep_merge(cfg, {k: v for k, v in overrides.items() if v is not None})
    cfg = apply_sets(cfg, sets)
    return validate(cfg, sections=sections)
