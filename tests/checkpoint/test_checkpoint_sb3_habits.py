"""Checkpoints where Stable-Baselines3 users' habits meet them: a policy compiled with
``torch.compile`` (SB3 GH#2137), file objects at any position, and messages that name them."""
from __future__ import annotations

import io
import tempfile

import numpy as np
import pytest
import torch

from lifelong import CheckpointError, DistributionalPPO
from lifelong.checkpoint import load_state, read_archive, save_state, write_archive

OBS = np.linspace(-1, 1, 4 * 5, dtype=np.float32).reshape(5, 4)


@pytest.fixture(scope="module")
def trained():
    model = DistributionalPPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, n_epochs=1,
                              seed=0, device="cpu", policy_kwargs=dict(net_arch=[8]))
    model.learn(16)
    return model


def _compiled_copy(model, tmp_path):
    copy = DistributionalPPO.load(_saved(model, tmp_path / "plain.zip"), device="cpu")
    copy.policy = torch.compile(copy.policy, backend="eager")  # a real torch.compile wrapper
    assert any(k.startswith("_orig_mod.") for k in copy.policy.state_dict())
    return copy


def _saved(model, path):
    model.save(path)
    return path


def test_a_compiled_policy_saves_under_its_own_names_and_loads_uncompiled(trained, tmp_path):
    compiled = _compiled_copy(trained, tmp_path)
    expected, _ = compiled.predict(OBS, deterministic=True)  # runs the compiled module
    path = _saved(compiled, tmp_path / "compiled.zip")
    assert not any(k.startswith("_orig_mod.") for k in read_archive(path)["policy.pt"])
    loaded = DistributionalPPO.load(path, device="cpu")
    actions, _ = loaded.predict(OBS, deterministic=True)
    np.testing.assert_array_equal(actions, expected)
    for key, value in trained.policy.state_dict().items():
        assert torch.equal(loaded.policy.state_dict()[key], value), key


def test_a_compiled_policy_loads_a_state_in_memory(trained, tmp_path):
    compiled = _compiled_copy(trained, tmp_path)
    with torch.no_grad():
        for p in compiled.policy.parameters():
            p.add_(1.0)
    load_state(compiled, save_state(trained))  # a PBT exploit into a compiled member
    for key, value in trained.policy.state_dict().items():
        assert torch.equal(compiled.policy.state_dict()["_orig_mod." + key], value), key


def test_a_checkpoint_written_with_compile_prefixes_loads(trained, tmp_path):
    """Files written before the names were stripped at save time carry ``_orig_mod.`` names."""
    state = save_state(trained)
    state["policy.pt"] = {"_orig_mod." + k: v for k, v in state["policy.pt"].items()}
    path = write_archive(tmp_path / "prefixed.zip", state)
    loaded = DistributionalPPO.load(path, device="cpu")
    np.testing.assert_array_equal(loaded.predict(OBS, deterministic=True)[0],
                                  trained.predict(OBS, deterministic=True)[0])


def test_load_reads_a_file_object_from_its_start_wherever_its_position_is(trained):
    with tempfile.TemporaryFile() as file:
        trained.save(file)  # the position is now at the end, as SB3 users leave it
        loaded = DistributionalPPO.load(file, device="cpu")
        assert loaded.num_timesteps == trained.num_timesteps
        file.seek(7)
        assert DistributionalPPO.load(file, device="cpu").num_timesteps == trained.num_timesteps


def test_messages_name_a_file_object_not_its_descriptor_number(tmp_path):
    with tempfile.TemporaryFile() as file:
        file.write(b"not a checkpoint")
        with pytest.raises(CheckpointError, match=r"^<BufferedRandom file object>: not a zip"):
            DistributionalPPO.load(file)
    path = tmp_path / "junk.zip"
    path.write_bytes(b"not a checkpoint")
    with open(path, "rb") as file, pytest.raises(CheckpointError, match=f"^{path}: not a zip"):
        DistributionalPPO.load(file)


def test_a_file_object_is_read_only_up_to_the_cap():
    """An endless stream (here /dev/zero; a pipe or a socket alike) is refused after max_bytes plus
    the zip overhead, never read to its end; the message names it and the cap."""
    with open("/dev/zero", "rb") as stream, pytest.raises(CheckpointError, match=r"^/dev/zero: holds more than the reading cap max_bytes=1,024"):
        DistributionalPPO.load(stream, max_bytes=1024)
    with pytest.raises(CheckpointError, match="not a binary file object"):
        DistributionalPPO.load(io.StringIO("text"))
