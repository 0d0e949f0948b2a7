"""Observation/action spaces and constructor values as JSON data (no pickle)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from lifelong.checkpoint.codec import from_json, resolve_class, to_json
from lifelong.checkpoint.spaces import space_from_dict, space_to_dict, spaces_equal
from lifelong.agent.schedules import Constant, Linear

SPACES = [
    spaces.Box(-1.0, 1.0, (3,), np.float32),
    spaces.Box(low=np.array([-np.inf, 0.0]), high=np.array([np.inf, 5.0]), dtype=np.float64),
    spaces.Box(0, 255, (4, 4, 3), np.uint8),
    spaces.Discrete(5),
    spaces.Discrete(3, start=-1),
    spaces.MultiDiscrete([3, 4, 2]),
    spaces.MultiBinary(6),
    spaces.MultiBinary([2, 3]),
    spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "mode": spaces.Discrete(3)}),
    spaces.Tuple((spaces.Discrete(2), spaces.Box(0, 1, (1,)))),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_space_round_trip_through_json(space):
    data = json.loads(json.dumps(space_to_dict(space), allow_nan=False))
    rebuilt = space_from_dict(data)
    assert spaces_equal(rebuilt, space) and rebuilt == space
    assert rebuilt.dtype == space.dtype


def test_space_errors():
    with pytest.raises(ValueError, match="supported spaces"):
        space_to_dict(spaces.Text(5))
    with pytest.raises(ValueError, match="unknown space type"):
        space_from_dict({"type": "Graph"})
    with pytest.raises(ValueError, match="malformed"):
        space_from_dict({"type": "Box"})
    assert not spaces_equal(spaces.Discrete(2), spaces.Discrete(3))
    assert not spaces_equal(spaces.Box(-1, 1, (2,)), spaces.Box(-1, 2, (2,)))


def test_values_round_trip():
    value = {
        "betas": (0.9, 0.999),
        "lr": Linear(1e-3, 0.0),
        "clip": Constant(0.2),
        "inf": float("inf"),
        "activation_fn": torch.nn.Tanh,
        "net_arch": {"pi": [64, 64], "vf": [32]},
        "arr": np.array([1.5, 2.5], dtype=np.float32),
        "n": np.int64(3),
    }
    encoded = json.loads(json.dumps(to_json(value), allow_nan=False))
    decoded = from_json(encoded)
    assert decoded["betas"] == (0.9, 0.999) and isinstance(decoded["betas"], tuple)
    assert decoded["lr"] == Linear(1e-3, 0.0) and decoded["clip"] == Constant(0.2)
    assert decoded["inf"] == float("inf") and decoded["activation_fn"] is torch.nn.Tanh
    assert decoded["net_arch"] == {"pi": [64, 64], "vf": [32]} and decoded["n"] == 3
    assert decoded["arr"].dtype == np.float32 and decoded["arr"].tolist() == [1.5, 2.5]


def test_callables_and_foreign_classes_are_refused():
    with pytest.raises(ValueError, match="callable"):
        to_json({"lr": lambda p: p}, "kwargs")
    with pytest.raises(ValueError, match="custom_objects"):
        resolve_class("os:system")
    with pytest.raises(ValueError, match="not a class lifelong loads from a file"):
        resolve_class("torch.serialization:load")

    class Mine(torch.nn.Module):
        pass

    assert resolve_class(f"{Mine.__module__}:{Mine.__qualname__}", {"features_extractor_class": Mine}) is Mine


def test_a_file_never_causes_an_import():
    """A name under a trusted package that is not in the registry is refused before anything is
    imported (importing ``torch.utils.model_dump.__main__`` would run its ``main``)."""
    import sys

    from lifelong.checkpoint.codec import registry

    for name in ("torch.utils.model_dump.__main__:X", "torch.utils.model_dump:main", "lifelong.cli.main:main"):
        before = set(sys.modules)
        with pytest.raises(ValueError, match="custom_objects"):
            resolve_class(name)
        with pytest.raises(ValueError, match="custom_objects"):
            from_json({"activation_fn": {"__class__": name}})
        assert set(sys.modules) == before, name
    table = registry()
    assert table["torch.nn.modules.activation:ReLU"] is torch.nn.ReLU
    assert table["torch.optim.adam:Adam"] is torch.optim.Adam
    from lifelong import DistributionalPPO, UPGD

    assert DistributionalPPO in table.values() and UPGD in table.values()
    assert all(isinstance(cls, type) for cls in table.values())
