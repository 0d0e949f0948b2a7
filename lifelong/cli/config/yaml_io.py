"""YAML files and ``--set KEY=VALUE`` text: reading, typing and writing.

PyYAML follows YAML 1.1 where ``1e-4`` (no dot) is a *string*; every user writes it, so it is
resolved as a float like YAML 1.2 does.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from lifelong.cli.config.errors import ConfigError

__all__ = ["load_yaml", "parse_value", "dump_yaml", "parse_set"]


class _Loader(yaml.SafeLoader):
    pass


_FLOAT_RE = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A YAML mapping; a key given twice is an error naming it and both lines (PyYAML would keep
    the last silently, so a typo'd override would go unnoticed)."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {first + 1}, again on line "
                            f"{key_node.start_mark.line + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)

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
    return yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=False)  # block style


def _plain(x):
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def parse_set(item: str) -> tuple[list[str], str]:
    """``"agent.n_steps=256"`` -> (["agent", "n_steps"], "256") (the value still as text)."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected KEY=VALUE (e.g. --set agent.n_steps=256)")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item}: expected KEY=VALUE with a non-empty dotted KEY")
    return key.split("."), text
