"""Crafted checkpoints: every malformed file is one CheckpointError naming the file, no code runs,
no import happens, reading is bounded. The attack matrix, the zip bombs and a seeded fuzz test."""
from __future__ import annotations

import io
import json
import random
import sys
import warnings
import zipfile

import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

from lifelong import CheckpointError
from lifelong.agent.ppo import DistributionalPPO
from lifelong.checkpoint import CheckpointManager, archive, verify
from lifelong.errors import CheckpointMismatchError, CheckpointUnsupportedError

EVIL_CLASS = "torch.utils.model_dump.__main__:X"  # importing that module runs torch's argparse main


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = DistributionalPPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu",
                              policy_kwargs={"net_arch": [8]}, diagnostics_every=0, vgs=True)
    model.learn(32)
    path = model.save(tmp_path_factory.mktemp("attack") / "good.zip")
    return path, path.read_bytes()


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n != archive.MANIFEST_NAME}


def decoded_members(data: bytes) -> dict:
    return archive.unpack(data)


def forge(members: dict[str, bytes]) -> bytes:
    """An archive with these members and a manifest, checksums and file digest forged to match."""
    return archive.pack_bytes(members)


def with_meta(data: bytes, change) -> bytes:
    members = members_of(data)
    meta = json.loads(members["model.json"])
    change(meta)
    members["model.json"] = json.dumps(meta).encode()
    return forge(members)


def with_tensors(data: bytes, name: str, tree) -> bytes:
    members = members_of(data)
    buf = io.BytesIO()
    torch.save(tree, buf)
    members[name] = buf.getvalue()
    return forge(members)


def assert_refused(path, data: bytes, *, through_verify: bool = True) -> CheckpointError:
    """``data`` at ``path`` fails load (and verify) with a CheckpointError naming the path, and
    imports nothing."""
    path.write_bytes(data)
    before = set(sys.modules)
    with pytest.raises(CheckpointError) as info:
        DistributionalPPO.load(path, device="cpu")
    assert not isinstance(info.value, CheckpointMismatchError)
    assert str(path) in str(info.value)
    if through_verify:
        with pytest.raises(CheckpointError):
            verify(path)
    assert set(sys.modules) == before
    return info.value


# ------------------------------------------------------------------------------ the matrix
def _set(path: list, value):
    def change(meta):
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _delete(key):
    return lambda meta: meta.pop(key)


DEEP = {"x": None}
for _ in range(200):
    DEEP = {"x": DEEP}

META_ATTACKS = {
    "evil_activation": _set(["constructor_kwargs", "policy_kwargs"], {"activation_fn": {"__class__": EVIL_CLASS}}),
    "evil_policy": _set(["policy"], {"__class__": EVIL_CLASS}),
    "evil_optimizer": _set(["constructor_kwargs", "optimizer"], {"__class__": EVIL_CLASS}),
    "evil_buffer": _set(["constructor_kwargs", "rollout_buffer_class"], {"__class__": "os:system"}),
    "not_an_object": lambda meta: (meta.clear(), meta.update({"a": [1]})),
    "no_counters": _delete("counters"),
    "no_rng": _delete("rng"),
    "negative_steps": _set(["counters", "num_timesteps"], -5),
    "negative_updates": _set(["counters", "_n_updates"], -1),
    "float_steps": _set(["counters", "num_timesteps"], 1.5),
    "huge_steps": _set(["counters", "num_timesteps"], 10**30),
    "progress_string": _set(["counters", "_current_progress_remaining"], "x"),
    "n_envs_huge": _set(["n_envs"], 100_000_000),
    "n_envs_zero": _set(["n_envs"], 0),
    "n_steps_huge": _set(["constructor_kwargs", "n_steps"], 10**10),
    "n_steps_negative": _set(["constructor_kwargs", "n_steps"], -16),
    "n_steps_string": _set(["constructor_kwargs", "n_steps"], "many"),
    "net_arch_huge": _set(["constructor_kwargs", "policy_kwargs"], {"net_arch": [10**7, 10**7]}),
    "box_huge": _set(["observation_space", "shape"], [100000, 100000]),
    "box_negative": _set(["observation_space", "shape"], [-4]),
    "box_object_dtype": _set(["observation_space", "dtype"], "|O"),
    "box_bad_dtype": _set(["observation_space", "dtype"], "not-a-dtype"),
    "box_no_low": lambda meta: meta["observation_space"].pop("low"),
    "space_unknown": _set(["action_space"], {"type": "Graph"}),
    "space_list": _set(["action_space"], [1, 2]),
    "discrete_huge": _set(["action_space"], {"type": "Discrete", "n": 10**12, "start": 0, "dtype": "<i8"}),
    "rng_python_short": _set(["rng", "python"], [3, [1, 2], None]),
    "rng_numpy_bad": _set(["rng", "numpy"], {"name": "MT19937", "keys": [1], "pos": 0, "has_gauss": 0, "cached": 0}),
    "rng_space_bad": _set(["rng", "action_space"], {"own": {"bit_generator": "PCG64", "state": 3}}),
    "rng_space_generator": _set(["rng", "action_space"], {"own": {"bit_generator": "os.system"}}),
    "ep_buffer_garbage": _set(["ep_info_buffer"], [{"__ndarray__": [1, 2], "dtype": "|O"}]),
    "window_zero": _set(["stats_window_size"], 0),
    "vgs_claimed": _set(["has_vgs"], False),
    "float_tag": _set(["constructor_kwargs", "gamma"], {"__float__": "huge"}),
    "schedule_garbage": _set(["constructor_kwargs", "learning_rate"], {"__schedule__": {"kind": "rm -rf"}}),
    "deep_kwargs": _set(["constructor_kwargs", "policy_kwargs"], DEEP),
    "algorithm_type": _set(["algorithm"], 7),
    "optimizer_contradicts": _set(["optimizer_class"], "lifelong.optim.upgd:AdaptiveUPGD"),
    "unknown_kwarg": _set(["constructor_kwargs", "no_such_argument"], 1),
    "tensorboard_only": _set(["constructor_kwargs", "batch_size"], 0),
}


@pytest.mark.parametrize("attack", sorted(META_ATTACKS))
def test_crafted_model_json_is_one_checkpoint_error(saved, tmp_path, attack):
    _, data = saved
    assert_refused(tmp_path / f"{attack}.zip", with_meta(data, META_ATTACKS[attack]),
                   through_verify=attack in {"evil_activation", "evil_policy", "evil_optimizer", "evil_buffer",
                                             "not_an_object", "no_counters", "no_rng", "negative_steps",
                                             "negative_updates", "float_steps", "huge_steps", "progress_string",
                                             "n_envs_huge", "n_envs_zero", "box_huge", "box_negative",
                                             "box_object_dtype", "box_bad_dtype", "box_no_low", "space_unknown",
                                             "space_list", "vgs_claimed", "float_tag", "schedule_garbage",
                                             "window_zero", "algorithm_type"})


def _nested_list(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


TENSOR_ATTACKS = {
    "policy.pt": [[1, 2], {}, {"w": 3}, {"action_net.weight": torch.zeros(3)}, _nested_list(200),
                  {"__lifelong_ndarray__": torch.zeros(2), "dtype": "|O"}],
    "optimizer.pt": [{}, {"state": {}, "param_groups": "x"}, {"state": {0: {"step": "x"}}, "param_groups": [{"params": [0]}]},
                     {"state": {"a": {}}, "param_groups": []}, {"state": {}, "param_groups": [{"params": ["a"]}]}],
    "rng.pt": [{}, {"torch": torch.zeros(3)}, {"torch": torch.zeros(7, dtype=torch.uint8)}, {"torch": torch.zeros(0, dtype=torch.uint8), "cuda": 5}],
    "env_state.pt": [{}, {"last_obs": torch.zeros(99, 4), "last_episode_starts": None, "last_original_obs": None},
                     {"last_obs": {"a": 1}, "last_episode_starts": 3, "last_original_obs": None}],
    "vgs.pt": [[], {}, {"format": 1}],
}


@pytest.mark.parametrize("member, index", [(m, i) for m, trees in TENSOR_ATTACKS.items() for i in range(len(trees))])
def test_crafted_tensor_member_is_one_checkpoint_error(saved, tmp_path, member, index):
    _, data = saved
    name = member
    if member == "vgs.pt" and "vgs.pt" not in members_of(data):
        name = "vgs.pt"  # an unexpected member on a model without a scaler
    assert_refused(tmp_path / "t.zip", with_tensors(data, name, TENSOR_ATTACKS[member][index]), through_verify=False)


def test_pickle_payload_in_json_and_unexpected_member(saved, tmp_path):
    _, data = saved
    members = members_of(data)
    members["model.json"] = b"\x80\x04cos\nsystem\n."
    assert_refused(tmp_path / "p.zip", forge(members))
    members = members_of(data)
    members["extra.json"] = b"{}"
    raw = bytearray(forge(members_of(data)))
    assert_refused(tmp_path / "x.zip", bytes(raw[: len(raw) // 2]))


@pytest.mark.parametrize("text", [
    b"[" * 200_000, b"{\"a\":" * 100_000, b"[" * 64 + b"1" + b"]" * 64 + b" ",
    b'"' + b"x" * 10 + b'"', b"NaN", b"{\"a\": Infinity}", b"\xff\xfe", b"1e999999",
])
def test_nested_and_odd_json_in_manifest_and_model_json(saved, tmp_path, text):
    _, data = saved
    members = members_of(data)
    members["model.json"] = text
    assert_refused(tmp_path / "m.zip", forge(members))
    # the manifest itself: nothing but nested brackets, no checksum to forge at all
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", text)
    assert_refused(tmp_path / "n.zip", buf.getvalue())


@pytest.mark.parametrize("version", [0, -1, "1", 1.5, True, None, 2, 10**100])
def test_wrong_versions(saved, tmp_path, version):
    _, data = saved
    members = members_of(data)
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
    manifest["format_version"] = version
    error = assert_refused(tmp_path / "v.zip", archive.pack_bytes(members, manifest))
    assert isinstance(error, CheckpointUnsupportedError) == (isinstance(version, int) and not isinstance(version, bool)
                                                             and version > archive.FORMAT_VERSION)


@pytest.mark.parametrize("content", [
    b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, b"\x80\x04\x95" + b"\0" * 50, b"PK\x05\x06" + b"\0" * 18,
    b"# yaml: true\n", b"PK\x03\x04" + b"\xff" * 200,
])
def test_foreign_files(tmp_path, content):
    assert_refused(tmp_path / "f.zip", content)


def test_foreign_zips(tmp_path):
    from stable_baselines3 import PPO

    sb3 = PPO("MlpPolicy", "CartPole-v1", n_steps=8, batch_size=8, device="cpu")
    sb3.save(tmp_path / "sb3.zip")
    assert_refused(tmp_path / "sb3b.zip", (tmp_path / "sb3.zip").read_bytes())
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)  # a torch file is a zip too
    assert_refused(tmp_path / "torch.zip", buf.getvalue())


# ------------------------------------------------------------------------------ bombs
def _bombs():
    """benchmarks/checkpoint_bombs.py: the bomb builder shared with the measurement script."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_checkpoint_bombs", Path(__file__).resolve().parents[2] / "benchmarks" / "checkpoint_bombs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("members", [
    {"model.json": (3072, 3072)},          # honest header: refused from the declared size
    {"model.json": (1, 3072)},             # lying header: at most the declared 1 MiB is inflated
    {"policy.pt": (3072, 3072)},           # a compressed tensor member: refused before inflating
    {"policy.pt": (2, 3072)},
    {f"m{i}.json": (1, 1) for i in range(64)},  # many JSON members: their total is bounded
], ids=["json-honest", "json-lying", "tensor-honest", "tensor-lying", "json-many"])
def test_zip_bomb_is_refused_fast_and_small(tmp_path, members):
    """3 GiB of zeros in ~3 MB, checksums forged to match the declared sizes: refused with a
    CheckpointError naming the file, fast, without inflating the 3 GiB (peak RSS barely moves;
    benchmarks/checkpoint_bombs.py measures each case in a fresh process)."""
    import resource
    import time

    data = _bombs().zip_bomb(members)
    assert len(data) < 4 << 20
    path = tmp_path / "bomb.zip"
    path.write_bytes(data)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        DistributionalPPO.load(path)
    elapsed = time.perf_counter() - t0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert str(path) in str(info.value)
    assert elapsed < 5.0 and grown_kib < 256 * 1024, (elapsed, grown_kib)


def test_max_bytes_is_per_call(saved, tmp_path):
    path, data = saved
    with pytest.raises(CheckpointError, match="max_bytes=1,000"):
        DistributionalPPO.load(path, max_bytes=1000)
    with pytest.raises(CheckpointError, match="max_bytes"):
        verify(path, max_bytes=1000)
    with pytest.raises(ValueError, match="max_bytes"):
        verify(path, max_bytes=0)
    assert DistributionalPPO.load(path, device="cpu", max_bytes=10 * len(data)).num_timesteps == 32


# ------------------------------------------------------------------------------ end to end
def test_evil_class_reference_end_to_end(saved, tmp_path, capsys):
    """A model.json naming torch.utils.model_dump.__main__:X: load_model, verify(), the manager
    and `lifelong eval` all refuse it with one clear CheckpointError; nothing is imported."""
    from lifelong.cli.main import main

    _, data = saved
    evil = with_meta(data, META_ATTACKS["evil_activation"])
    before = set(sys.modules)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    manager = CheckpointManager(run / "checkpoints")
    good = manager.path_for(32)
    good.write_bytes(data)
    bad = manager.path_for(64)
    bad.write_bytes(evil)
    with pytest.raises(CheckpointUnsupportedError, match="torch.utils.model_dump.__main__:X.*custom_objects"):
        verify(bad)
    with pytest.raises(CheckpointUnsupportedError, match="torch.utils.model_dump"):
        DistributionalPPO.load(bad)
    with pytest.warns(RuntimeWarning, match="skipping.*ckpt_000000000064"):
        assert manager.latest() == good
    assert bad.exists()  # unsupported, not corrupt: skipped but kept under its name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert manager.load_latest(DistributionalPPO, device="cpu").num_timesteps == 32
    assert main(["eval", str(bad), "--env", "CartPole-v1", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "model_dump" in err and "Traceback" not in err and "internal error" not in err
    assert len(err.strip().splitlines()) == 1
    assert "torch.utils.model_dump.__main__" not in sys.modules and set(sys.modules) == before


def test_manager_sets_aside_corrupt_files(saved, tmp_path):
    _, data = saved
    manager = CheckpointManager(tmp_path / "ck")
    manager.directory.mkdir()
    manager.path_for(10).write_bytes(data)
    manager.path_for(20).write_bytes(b"[" * 1000)
    manager.path_for(30).write_bytes(with_meta(data, META_ATTACKS["n_steps_huge"]))  # verifies, fails to load
    with pytest.warns(RuntimeWarning) as caught:
        model = manager.load_latest(DistributionalPPO, device="cpu")
    assert model.num_timesteps == 32
    messages = " ".join(str(w.message) for w in caught)
    assert "ckpt_000000000030.zip.corrupt" in messages and "ckpt_000000000020.zip.corrupt" in messages
    assert [p.name for p in manager.paths()] == ["ckpt_000000000010.zip"]
    assert (manager.directory / "ckpt_000000000020.zip.corrupt").read_bytes() == b"[" * 1000


# ------------------------------------------------------------------------------ fuzz
def _random_json(rng: random.Random, depth: int = 0):
    makers = [
        lambda: None, lambda: True, lambda: -rng.randrange(1 << 40), lambda: rng.random() * 10 ** rng.randrange(-5, 300),
        lambda: "x" * rng.randrange(5), lambda: rng.randrange(1 << 70),
        lambda: {"__class__": rng.choice([EVIL_CLASS, "os:system", "builtins:eval", "torch.nn:Linear"])},
        lambda: [_random_json(rng, depth + 1) for _ in range(rng.randrange(3))],
        lambda: {rng.choice(["__class__", "__tuple__", "__float__", "__ndarray__", "dtype", "a", "__schedule__"]):
                 _random_json(rng, depth + 1) for _ in range(rng.randrange(3))},
    ]
    return makers[rng.randrange(len(makers) if depth < 3 else 7)]()


def _mutate_json(rng: random.Random, value):
    """``value`` with one randomly chosen node replaced by random JSON."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: _mutate_json(rng, value[key])}
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        return value[:i] + [_mutate_json(rng, value[i])] + value[i + 1:]
    return _random_json(rng)


def _mutate_tree(rng: random.Random, value):
    garbage = [None, 3, "x", [], {}, torch.zeros(2, 3), torch.zeros(0, dtype=torch.uint8),
               torch.full((4,), float("nan")), torch.zeros(2, dtype=torch.int64), _nested_list(200)]
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: _mutate_tree(rng, value[key])}
    if isinstance(value, (list, tuple)) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        return [*value[:i], _mutate_tree(rng, value[i]), *value[i + 1:]]
    return rng.choice(garbage)


def test_fuzz_truncations_flips_and_crafted_members(saved, tmp_path):
    """Seeded fuzzing: every variant either loads or fails with CheckpointError (or its
    ValueError sibling for a file that contradicts nothing but the model built from it); never
    another exception, never an import. Truncations and raw bit flips must all be refused."""
    _, data = saved
    rng = random.Random(20261129)
    decoded = decoded_members(data)
    members = members_of(data)
    path = tmp_path / "fuzz.zip"
    before = set(sys.modules)
    outcomes = {"refused": 0, "loaded": 0}
    for trial in range(240):
        kind = trial % 4
        if kind == 0:
            variant = data[: rng.randrange(len(data))]
        elif kind == 1:
            flipped = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            variant = bytes(flipped)
        elif kind == 2:
            meta = _mutate_json(rng, decoded["model.json"])
            variant = forge({**members, "model.json": json.dumps(meta).encode()})
        else:
            name = rng.choice(sorted(n for n in members if n.endswith(".pt")))
            buf = io.BytesIO()
            torch.save(archive.encode_tensor_tree(_mutate_tree(rng, decoded[name])), buf)
            variant = forge({**members, name: buf.getvalue()})
        path.write_bytes(variant)
        try:
            DistributionalPPO.load(path, device="cpu")
        except CheckpointError as exc:
            assert str(path) in str(exc), (trial, exc)
            outcomes["refused"] += 1
        else:
            assert kind >= 2, f"trial {trial}: a truncated or flipped file loaded"
            outcomes["loaded"] += 1
    # torch may import its own private helpers lazily; a file never gets anything else imported
    assert all(m.startswith("torch._") for m in set(sys.modules) - before), set(sys.modules) - before
    assert not any("model_dump" in m for m in sys.modules)
    assert outcomes["refused"] > 150, outcomes


@pytest.mark.parametrize("tree", [{"ret_rms": {}}, {"ret_rms": {"mean": 0, "var": 1, "count": "x"}},
                                  {"ret_rms": {"mean": 0.0, "var": 1.0, "count": 1.0}, "obs_rms": [1]}])
def test_crafted_vec_normalize_statistics(tmp_path, tree):
    """`lifelong eval` applies a checkpoint's VecNormalize statistics with restore_vec_normalize:
    crafted statistics are one CheckpointError there too."""
    from stable_baselines3.common.vec_env import VecNormalize

    from lifelong.checkpoint import restore_vec_normalize

    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=1, seed=0))
    model = DistributionalPPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu",
                              policy_kwargs={"net_arch": [8]})
    path = model.save(tmp_path / "vn.zip")
    crafted = tmp_path / "crafted.zip"
    crafted.write_bytes(with_tensors(path.read_bytes(), "vec_normalize.pt", tree))
    with pytest.raises(CheckpointError, match="vec_normalize.pt"):
        restore_vec_normalize(crafted, make_vec_env("CartPole-v1", n_envs=1, seed=0))
    with pytest.raises(CheckpointError, match="vec_normalize.pt"):
        DistributionalPPO.load(crafted, env=VecNormalize(make_vec_env("CartPole-v1", n_envs=1, seed=0)))
