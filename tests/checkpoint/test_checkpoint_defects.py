"""One test per checkpoint defect of the hardening issue: optimizer class on load, stale
temporaries, tensorboard_log from a file, negative counters, the vgs.pt message, memory bounds."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

from lifelong import CheckpointError
from lifelong.agent.ppo import DistributionalPPO
from lifelong.checkpoint import archive, atomic, load_state, save_state
from lifelong.errors import CheckpointMismatchError
from lifelong.optim import AdaptiveUPGD


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = DistributionalPPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu",
                              policy_kwargs={"net_arch": [8]}, diagnostics_every=0, vgs=True, optimizer="adaptive_upgd")
    model.learn(32)
    return env, model, model.save(tmp_path_factory.mktemp("defects") / "m.zip")


def _with_meta(path, out, change):
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n != archive.MANIFEST_NAME}
    meta = json.loads(members["model.json"])
    change(meta)
    members["model.json"] = json.dumps(meta).encode()
    out.write_bytes(archive.pack_bytes(members))
    return out


def test_other_optimizer_class_is_refused_naming_both(saved):
    env, _, path = saved
    with pytest.raises(ValueError, match="AdaptiveUPGD.*Adam.*reset_optimizer=True") as info:
        DistributionalPPO.load(path, env=env, device="cpu", optimizer="adam")
    assert isinstance(info.value, CheckpointMismatchError)


def test_reset_optimizer_builds_fresh_state_over_loaded_parameters(saved):
    env, model, path = saved
    loaded = DistributionalPPO.load(path, env=env, device="cpu", optimizer="adam", reset_optimizer=True)
    opt = loaded.policy.optimizer
    assert type(opt) is torch.optim.Adam and opt.state_dict()["state"] == {}
    assert all(p in {id(q) for q in loaded.policy.parameters()} for p in map(id, opt.param_groups[0]["params"]))
    for a, b in zip(loaded.policy.state_dict().values(), model.policy.state_dict().values()):
        assert torch.equal(a, b)
    loaded.learn(32, reset_num_timesteps=False)  # trains with the fresh Adam
    assert set(opt.state_dict()["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    same = DistributionalPPO.load(path, env=env, device="cpu")  # the same class: state restored
    assert type(same.policy.optimizer) is AdaptiveUPGD and same.policy.optimizer.state_dict()["state"]


def test_tensorboard_log_is_never_taken_from_a_file(saved, tmp_path):
    _, _, path = saved
    target = tmp_path / "written-by-the-file"
    crafted = _with_meta(path, tmp_path / "tb.zip",
                         lambda m: m["constructor_kwargs"].update(tensorboard_log=str(target)))
    loaded = DistributionalPPO.load(crafted, device="cpu")
    assert loaded.tensorboard_log is None
    mine = tmp_path / "mine"
    assert DistributionalPPO.load(crafted, device="cpu", tensorboard_log=str(mine)).tensorboard_log == str(mine)
    assert not target.exists()


@pytest.mark.parametrize("counter, value", [("num_timesteps", -1), ("_n_updates", -3), ("_episode_num", -1),
                                            ("_total_timesteps", -100), ("_n_train_calls", True)])
def test_negative_counters_are_refused(saved, tmp_path, counter, value):
    _, _, path = saved
    crafted = _with_meta(path, tmp_path / "neg.zip", lambda m: m["counters"].update({counter: value}))
    with pytest.raises(CheckpointError, match=f"'model.json' is malformed: counter {counter}="):
        DistributionalPPO.load(crafted, device="cpu")


def test_missing_vgs_member_message(saved, tmp_path):
    _, _, path = saved
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n not in (archive.MANIFEST_NAME, "vgs.pt")}
    crafted = tmp_path / "novgs.zip"
    crafted.write_bytes(archive.pack_bytes(members))
    with pytest.raises(CheckpointError, match="says vgs=on but the checkpoint lacks the member 'vgs.pt'") as info:
        DistributionalPPO.load(crafted, device="cpu")
    assert "vgs=on, the model has vgs=on" not in str(info.value)


def test_model_that_would_not_fit_in_memory_is_refused_before_allocating(saved, tmp_path):
    env, _, path = saved
    with pytest.raises(ValueError, match=r"n_steps=10,000,000,000 .* GiB .* available"):
        DistributionalPPO("MlpPolicy", env, n_steps=10**10, batch_size=16, device="cpu")
    with pytest.raises(ValueError, match="net_arch"):
        DistributionalPPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu",
                          policy_kwargs={"net_arch": [10**6, 10**6]})
    crafted = _with_meta(path, tmp_path / "big.zip", lambda m: m["constructor_kwargs"].update(n_steps=10**10))
    with pytest.raises(CheckpointError, match="model.json.*GiB"):
        DistributionalPPO.load(crafted, device="cpu")


def test_save_removes_temporaries_of_killed_saves(saved, tmp_path):
    """A save killed (SIGKILL) mid-write leaves its temporary; the next save of that path removes
    it, and leaves alone the temporary of a write that is still in progress."""
    _, model, _ = saved
    target = tmp_path / "model.zip"
    atomic_py = atomic.__file__
    code = ("import importlib.util, os, sys, time\n"
            f"spec = importlib.util.spec_from_file_location('atomic', {atomic_py!r})\n"
            "atomic = importlib.util.module_from_spec(spec); spec.loader.exec_module(atomic)\n"
            "os.fsync = lambda fd: time.sleep(120)  # hold the write open until killed\n"
            f"atomic.write_atomic({str(target)!r}, b'x' * 100000)\n")
    writers = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    deadline = time.time() + 60
    while len(list(tmp_path.glob(".model.zip.*.tmp"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(list(tmp_path.glob(".model.zip.*.tmp"))) == 2
    writers[0].send_signal(signal.SIGKILL)
    writers[0].wait()
    try:
        model.save(target)
        left = [p.name for p in tmp_path.glob(".model.zip.*.tmp")]
        assert left == [p.name for p in tmp_path.glob(f".model.zip.*.{writers[1].pid}.*.tmp")] and len(left) == 1
    finally:
        writers[1].send_signal(signal.SIGKILL)
        writers[1].wait()
    old = tmp_path / ".model.zip.abc123.tmp"  # an older naming: removed only once old
    old.write_bytes(b"x")
    model.save(target)
    assert old.exists()
    os.utime(old, (time.time() - 2 * atomic.STALE_AFTER_S,) * 2)
    model.save(target)
    assert not old.exists() and not list(tmp_path.glob(".model.zip.*.tmp"))
    assert DistributionalPPO.load(target, device="cpu").num_timesteps == 32



def test_a_file_from_before_quantile_mean_loss_resumes_with_the_loss_it_was_trained_with(saved, tmp_path):
    """Files written before ``quantile_mean_loss`` existed trained the critics' mean with the
    quantile-Huber loss: loading one must not switch a resumed run to the new default."""
    env, model, path = saved
    assert model.quantile_mean_loss == "squared_error"
    older = _with_meta(path, tmp_path / "older.zip", lambda m: m["constructor_kwargs"].pop("quantile_mean_loss"))
    assert DistributionalPPO.load(older, env=env, device="cpu").quantile_mean_loss == "quantile_huber"
    chosen = DistributionalPPO.load(older, env=env, device="cpu", quantile_mean_loss="squared_error")
    assert chosen.quantile_mean_loss == "squared_error"  # the caller's choice wins
    assert DistributionalPPO.load(path, env=env, device="cpu").quantile_mean_loss == "squared_error"
    categorical = DistributionalPPO("MlpPolicy", env, n_steps=16, batch_size=16, critic="categorical", device="cpu",
                                    policy_kwargs={"net_arch": [8]})
    cat_older = _with_meta(categorical.save(tmp_path / "cat.zip"), tmp_path / "cat_older.zip",
                           lambda m: m["constructor_kwargs"].pop("quantile_mean_loss"))
    assert DistributionalPPO.load(cat_older, env=env, device="cpu").quantile_mean_loss == "squared_error"


@pytest.mark.parametrize("key", ["exp_avg", "exp_avg_sq"])
def test_adam_state_of_the_wrong_shape_is_refused_at_load_not_a_crash_in_the_step(tmp_path, key):
    """torch's ``Adam.load_state_dict`` takes a moment of any shape and the fused step then reads
    out of bounds (a segmentation fault): a file whose Adam state does not fit its parameter is
    a CheckpointError at load naming the key and the parameter; in place (a PBT exploit) a
    CheckpointMismatchError, with the model unchanged."""
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = DistributionalPPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu",
                              policy_kwargs={"net_arch": [8]}, diagnostics_every=0)
    model.learn(32)
    state = archive.read_archive(model.save(tmp_path / "m.zip"))
    state["optimizer.pt"]["state"][2][key] = torch.zeros(2, 1, 8)  # action_net.weight is [2, 8]
    bad = archive.write_archive(tmp_path / "bad.zip", state)
    with pytest.raises(CheckpointError,
                       match=rf"'{key}' in the place of parameter action_net.weight has shape \(2, 1, 8\), the parameter \(2, 8\)"):
        DistributionalPPO.load(bad, env=env, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    with pytest.raises(CheckpointMismatchError, match=key):
        load_state(model, state)  # in place, as a PBT exploit: refused before anything changes
    assert all(torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))


def test_a_refused_upgd_state_leaves_the_model_as_it_was():
    """In place (a PBT exploit), an AdaptiveUPGD state that does not fit is refused before the
    policy or the optimizer changes (its own ``check_state_dict``, run with the other checks)."""
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    models = [DistributionalPPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=seed, device="cpu",
                                policy_kwargs={"net_arch": [8]}, diagnostics_every=0, optimizer="adaptive_upgd")
              for seed in (0, 1)]
    for model in models:
        model.learn(32)
    recipient, donor = models
    state = save_state(donor)
    state["optimizer.pt"]["state"][2]["utility"] = torch.zeros(3)
    params = [p.detach().clone() for p in recipient.policy.parameters()]
    moments = [recipient.policy.optimizer.state[p]["exp_avg"].clone() for p in recipient.policy.parameters()]
    with pytest.raises(CheckpointMismatchError, match=r"'utility' has shape \(3,\)"):
        load_state(recipient, state)
    assert all(torch.equal(a, b) for a, b in zip(params, recipient.policy.parameters()))
    assert all(torch.equal(m, recipient.policy.optimizer.state[p]["exp_avg"])
               for m, p in zip(moments, recipient.policy.parameters()))


def test_optimizer_state_of_the_wrong_shape_is_refused_at_load(tmp_path):
    """A file whose optimizer state does not fit the parameters (here ``reset_after``'s run counter
    of another shape) is a CheckpointError naming the member and the key, raised by load, not an
    error inside the first training step."""
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    kwargs = {"gate": "none", "sigma": 0.0, "weight_decay": 0.0, "reset_after": 5}
    model = DistributionalPPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu",
                              policy_kwargs={"net_arch": [8]}, diagnostics_every=0, optimizer="adaptive_upgd",
                              optimizer_kwargs=kwargs)
    model.learn(32)
    state = archive.read_archive(model.save(tmp_path / "m.zip"))
    entry = state["optimizer.pt"]["state"][0]
    assert entry["zero_steps"].dtype == torch.int32
    entry["zero_steps"] = torch.zeros(3, dtype=torch.int32)
    bad = archive.write_archive(tmp_path / "bad.zip", state)
    with pytest.raises(CheckpointError, match=r"optimizer.*'zero_steps' has shape \(3,\), expected"):
        DistributionalPPO.load(bad, env=env, device="cpu")


def test_a_file_from_before_the_collapse_reset_resumes_without_it(saved, tmp_path):
    """Files written before ``collapse_reset`` existed trained without it, and their model's
    initial return level is unknown: loading one keeps the reset off (the caller may choose)."""
    env, model, path = saved
    assert model.collapse_reset is not None

    def drop(meta):
        meta["constructor_kwargs"].pop("collapse_reset")
        meta["constructor_kwargs"].pop("collapse_reset_kwargs")
        meta.pop("collapse_reset")

    older = _with_meta(path, tmp_path / "older.zip", drop)
    assert DistributionalPPO.load(older, env=env, device="cpu").collapse_reset is None
    chosen = DistributionalPPO.load(older, env=env, device="cpu", collapse_reset=True)
    assert chosen.collapse_reset is not None and chosen.collapse_reset.initial_level is None  # measured afresh
