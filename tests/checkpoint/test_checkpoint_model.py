"""Full-state checkpoints of DistributionalPPO: exact resume, live binding, safety, bad input."""
from __future__ import annotations

import io
import os
import warnings
import zipfile

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from lifelong import CheckpointError
from lifelong.checkpoint import (
    CheckpointManager,
    ResumableCheckpointCallback,
    load_model,
    load_state,
    remaining_timesteps,
    restore_vec_normalize,
    save_model,
    save_state,
    verify,
)
from lifelong.checkpoint import archive
from lifelong.errors import CheckpointMismatchError
from lifelong.agent.ppo import DistributionalPPO
from lifelong.agent.schedules import Linear

N_STEPS, N_ENVS = 16, 2
ROLLOUT = N_STEPS * N_ENVS


def make(seed=0, vec_normalize=False, **kwargs):
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=seed)
    if vec_normalize:
        env = VecNormalize(env, gamma=0.9)
    options = dict(
        n_steps=N_STEPS, batch_size=16, n_epochs=2, seed=seed, device="cpu",
        policy_kwargs=dict(net_arch=[16]), vgs=True, vgs_kwargs=dict(warmup_steps=2), diagnostics_every=0,
    )  # the scaler on: its state is part of what these tests check
    options.update(kwargs)
    return env, DistributionalPPO("MlpPolicy", env, **options)


def tensors_equal(a, b) -> bool:
    """Deep, bit-exact equality of state dicts (tensors, numbers, lists, dicts)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def assert_same_training_state(a, b):
    assert tensors_equal(a.policy.state_dict(), b.policy.state_dict())
    assert tensors_equal(a.policy.optimizer.state_dict(), b.policy.optimizer.state_dict())
    if a.vgs is not None:
        assert tensors_equal(a.vgs.state_dict(), b.vgs.state_dict())
    assert (a.num_timesteps, a._n_updates, a._episode_num) == (b.num_timesteps, b._n_updates, b._episode_num)
    # episode returns and lengths (Monitor's "t" is wall-clock time)
    assert [(e["r"], e["l"]) for e in a.ep_info_buffer] == [(e["r"], e["l"]) for e in b.ep_info_buffer]


def assert_bound_to_live_parameters(model):
    live = list(model.policy.parameters())
    held = [p for group in model.policy.optimizer.param_groups for p in group["params"]]
    # the same objects (the order is the groups': optimizer_groups reorders them)
    assert len(held) == len(live) and {id(p) for p in held} == {id(p) for p in live}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small trained model and its checkpoint, shared by the read-only tests."""
    env, model = make()
    model.learn(2 * ROLLOUT)
    path = save_model(model, tmp_path_factory.mktemp("ckpt") / "model")
    return env, model, path


# ---------------------------------------------------------------- exact resume


@pytest.mark.parametrize(
    "config",
    [
        dict(),  # quantile twin critics, Adam, no scaler
        dict(optimizer="adaptive_upgd", vgs=True),  # the noise generator and utilities, the scaler
        dict(vec_normalize=True, critic="categorical", optimizer="upgd", vgs=False, ent_coef=0.01),
        dict(normalize_returns_horizon=2.0),  # the moving-average statistics move at every update
        # reset_after: int32 runs of zero gradients and w0 in the optimizer state (ReLU units die)
        dict(optimizer="adaptive_upgd", vgs=False, policy_kwargs=dict(net_arch=[16], activation_fn=torch.nn.ReLU),
             optimizer_kwargs=dict(gate="none", sigma=0.0, weight_decay=0.0, reset_after=3)),
        # param groups with their own arguments: the output layer reset across the save, L2-Init
        # with noise on the critics' hidden layer
        dict(optimizer="adaptive_upgd", vgs=False, optimizer_kwargs=dict(gate="none", sigma=0.0, weight_decay=0.0),
             optimizer_groups={"action_net.*": {"reset_every": 3}, "critics.*.1": {"l2_init": 0.3, "sigma": 0.01}}),
    ],
    ids=["default", "adaptive-upgd-vgs", "categorical-upgd-vecnormalize", "return-horizon", "reset-after",
         "optimizer-groups"],
)
def test_exact_resume_is_bit_identical(tmp_path, config):
    n, m = 2 * ROLLOUT, 2 * ROLLOUT
    _, straight = make(**config)
    straight.learn(n + m)

    env, first = make(**config)
    first.learn(n)
    first.save(tmp_path / "ckpt")
    resumed = DistributionalPPO.load(tmp_path / "ckpt", env=env, force_reset=False, device="cpu")
    assert resumed.num_timesteps == n
    assert resumed.normalize_returns_horizon == config.get("normalize_returns_horizon")
    assert resumed.return_normalizer.horizon == config.get("normalize_returns_horizon")
    resumed.learn(m, reset_num_timesteps=False)

    assert_same_training_state(straight, resumed)
    if config.get("vec_normalize"):
        a, b = straight.get_vec_normalize_env(), resumed.get_vec_normalize_env()
        np.testing.assert_array_equal(a.obs_rms.mean, b.obs_rms.mean)
        np.testing.assert_array_equal(a.ret_rms.var, b.ret_rms.var)


def test_linear_schedules_resume_towards_the_original_total(tmp_path):
    """A learn(total) interrupted right after a checkpoint resumes with
    learn(remaining_timesteps(model), reset_num_timesteps=False): the schedules' progress is
    measured against the original total (stored in the checkpoint), so the result is identical
    to the uninterrupted run."""
    total, crash_at = 6 * ROLLOUT, 3 * ROLLOUT
    schedules = dict(learning_rate=Linear(1e-3, 1e-4), clip_range=Linear(0.3, 0.1))
    _, straight = make(**schedules)
    straight.learn(total)

    class Crash(RuntimeError):
        pass

    class SaveThenCrash(ResumableCheckpointCallback):
        def _on_rollout_start(self) -> None:
            super()._on_rollout_start()
            if self.last_saved_step == crash_at:
                raise Crash

    env, first = make(**schedules)
    manager = CheckpointManager(tmp_path / "ckpts")
    with pytest.raises(Crash):
        first.learn(total, callback=SaveThenCrash(crash_at, manager))
    resumed = manager.load_latest(DistributionalPPO, env=env, force_reset=False, device="cpu")
    assert resumed.num_timesteps == crash_at
    assert resumed._total_timesteps == total
    assert remaining_timesteps(resumed) == total - crash_at
    assert isinstance(resumed.lr_schedule, Linear) and isinstance(resumed.clip_range, Linear)
    resumed.learn(remaining_timesteps(resumed), reset_num_timesteps=False)

    assert_same_training_state(straight, resumed)
    assert resumed.policy.optimizer.param_groups[0]["lr"] == straight.policy.optimizer.param_groups[0]["lr"]
    assert resumed.policy.optimizer.param_groups[0]["lr"] < 1e-3  # the schedule did advance


def test_three_save_load_cycles_stay_bound_to_the_live_parameters(tmp_path):
    env, model = make()
    model.learn(ROLLOUT)
    for cycle in range(3):
        path = model.save(tmp_path / f"c{cycle}")
        loaded = DistributionalPPO.load(path, env=env, force_reset=False, device="cpu")
        assert_bound_to_live_parameters(loaded)
        assert_same_training_state(model, loaded)  # scaler and optimizer state as saved, not reset
        assert loaded.vgs.steps == model.vgs.steps > 0
        before = [p.detach().clone() for p in loaded.policy.parameters()]
        opt_steps = loaded.vgs.steps
        loaded.learn(ROLLOUT, reset_num_timesteps=False)
        assert loaded.vgs.steps > opt_steps  # the scaler observed the live gradients
        assert any(not torch.equal(a, p) for a, p in zip(before, loaded.policy.parameters()))
        assert_bound_to_live_parameters(loaded)
        model = loaded
    assert model.num_timesteps == 4 * ROLLOUT


def test_load_restores_random_states_and_does_not_reseed(trained):
    env, model, path = trained
    np.random.seed(1234)
    torch.manual_seed(1234)
    env_seeds_before = list(env._seeds)
    saved = archive.read_archive(path)
    expected_torch = saved["rng.pt"]["torch"]
    loaded = load_model(DistributionalPPO, path, env=env, force_reset=False, device="cpu")
    assert torch.equal(torch.get_rng_state(), expected_torch)
    assert list(env._seeds) == env_seeds_before  # the live env was not re-seeded
    assert loaded.seed == model.seed
    np.testing.assert_array_equal(loaded._last_obs, model._last_obs)
    np.testing.assert_array_equal(loaded._last_episode_starts, model._last_episode_starts)


def test_explicit_seed_at_load_starts_new_streams(trained):
    env, _, path = trained
    loaded = DistributionalPPO.load(path, env=env, device="cpu", seed=11)
    assert loaded.seed == 11 and torch.initial_seed() == 11


def test_force_reset_and_env_free_load(trained):
    env, model, path = trained
    reset = DistributionalPPO.load(path, env=env, device="cpu")  # SB3 default force_reset=True
    assert reset._last_obs is None
    bare = DistributionalPPO.load(str(path)[: -len(".zip")], device="cpu")  # no env; suffix added as in SB3
    assert bare.env is None and bare.n_envs == N_ENVS
    obs = np.asarray(model._last_obs)
    np.testing.assert_array_equal(bare.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_in_memory_state_for_pbt(trained):
    env, donor, _ = trained
    state = save_state(donor)
    assert set(state) >= {"model.json", "policy.pt", "optimizer.pt", "vgs.pt", "rng.pt", "env_state.pt"}
    donor_params = {k: v.clone() for k, v in donor.policy.state_dict().items()}
    next(iter(state["policy.pt"].values())).add_(1.0)  # a snapshot: never aliases the donor
    assert tensors_equal(donor.policy.state_dict(), donor_params)
    state = save_state(donor)

    recipient_env, recipient = make(seed=7, ent_coef=0.05)
    recipient.learn(ROLLOUT)
    own_obs = recipient._last_obs.copy()
    own_rng = torch.get_rng_state()
    load_state(recipient, state)
    assert_bound_to_live_parameters(recipient)
    assert tensors_equal(recipient.policy.state_dict(), donor.policy.state_dict())
    assert tensors_equal(recipient.policy.optimizer.state_dict(), donor.policy.optimizer.state_dict())
    assert tensors_equal(recipient.vgs.state_dict(), donor.vgs.state_dict())
    assert recipient.get_hyperparameters() == donor.get_hyperparameters()  # ent_coef came along
    np.testing.assert_array_equal(recipient._last_obs, own_obs)  # keeps its own env position ...
    assert torch.equal(torch.get_rng_state(), own_rng)  # ... and its own random streams
    recipient.learn(ROLLOUT, reset_num_timesteps=False)

    # the file and the memory paths are one: a file written from the state loads the same
    assert tensors_equal(archive.unpack(archive.pack(state))["optimizer.pt"], state["optimizer.pt"])


def test_pbt_exploit_moves_per_group_state_and_refuses_other_groups():
    """An exploit between members built with the same ``optimizer_groups`` moves each group's
    state and arguments onto the recipient's live parameters; a member whose groups hold other
    parameters (groups of the same sizes) is refused before anything changes."""
    groups = {"action_net.*": {"reset_every": 5, "sigma": 0.01}}
    _, donor = make(seed=1, optimizer="adaptive_upgd", vgs=False, optimizer_groups=groups)
    donor.learn(ROLLOUT)
    _, recipient = make(seed=2, optimizer="adaptive_upgd", vgs=False, optimizer_groups=groups)
    recipient.learn(ROLLOUT)
    load_state(recipient, save_state(donor))
    assert_bound_to_live_parameters(recipient)
    assert tensors_equal(recipient.policy.optimizer.state_dict(), donor.policy.optimizer.state_dict())
    assert recipient.policy.optimizer.param_groups[1]["reset_every"] == 5
    recipient.learn(ROLLOUT, reset_num_timesteps=False)

    _, other = make(seed=3, vgs=False, optimizer_groups={"critics.*.1": {"eps": 1e-3}})   # [6, 2] params
    _, adam = make(seed=4, vgs=False, optimizer_groups={"action_net.*": {"eps": 1e-3}})  # [6, 2] params
    adam.learn(ROLLOUT)
    before = [p.detach().clone() for p in other.policy.parameters()]
    with pytest.raises(CheckpointMismatchError, match="place of parameter .* has shape .*optimizer_groups"):
        load_state(other, save_state(adam))
    assert all(torch.equal(a, b) for a, b in zip(before, other.policy.parameters()))


def test_in_memory_exact_load_continues_identically():
    env_a, a = make()
    a.learn(ROLLOUT)
    state = save_state(a)
    a.learn(ROLLOUT, reset_num_timesteps=False)
    env_b, b = make()
    b.learn(ROLLOUT)  # same env position as when `state` was taken
    b.policy.load_state_dict({k: torch.zeros_like(v) for k, v in b.policy.state_dict().items()})
    load_state(b, state, exact=True)
    b.learn(ROLLOUT, reset_num_timesteps=False)
    assert_same_training_state(a, b)


# ---------------------------------------------------------------- compatibility


def test_sb3_checkpoint_callback_works_unchanged(tmp_path):
    env, model = make()
    model.learn(2 * ROLLOUT, callback=CheckpointCallback(save_freq=N_STEPS, save_path=str(tmp_path), name_prefix="m"))
    files = sorted(tmp_path.glob("m_*_steps.zip"))
    assert [f.name for f in files] == ["m_32_steps.zip", "m_64_steps.zip"]
    for f in files:
        verify(f)
        assert DistributionalPPO.load(f, env=env, device="cpu").num_timesteps in (32, 64)


def test_vec_normalize_statistics_travel(tmp_path):
    env, model = make(vec_normalize=True)
    model.learn(ROLLOUT)
    path = model.save(tmp_path / "vn")
    fresh = VecNormalize(make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=3))
    loaded = DistributionalPPO.load(path, env=fresh, device="cpu")
    np.testing.assert_array_equal(fresh.obs_rms.mean, env.obs_rms.mean)
    np.testing.assert_array_equal(fresh.ret_rms.var, env.ret_rms.var)
    assert fresh.gamma == 0.9 and loaded.get_vec_normalize_env() is fresh
    plain = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=3)
    with pytest.warns(RuntimeWarning, match="VecNormalize"):
        DistributionalPPO.load(path, env=plain, device="cpu")
    wrapped = restore_vec_normalize(path, plain)
    np.testing.assert_array_equal(wrapped.obs_rms.var, env.obs_rms.var)


def test_save_refuses_what_it_cannot_store(tmp_path):
    _, model = make(learning_rate=lambda progress: 1e-3 * progress)
    with pytest.raises(ValueError, match="callable"):
        model.save(tmp_path / "x")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- bad input


def test_space_mismatch_names_both_spaces(trained):
    _, _, path = trained
    other = make_vec_env("MountainCar-v0", n_envs=N_ENVS, seed=0)
    with pytest.raises(ValueError) as info:
        DistributionalPPO.load(path, env=other, device="cpu")
    message = str(info.value)
    assert "Box([-4.8" in message and "Box([-1.2" in message and "Discrete(3)" in message and "Discrete(2)" in message


def test_unknown_kwargs_and_custom_objects(trained):
    env, _, path = trained
    with pytest.raises(ValueError, match="not_a_parameter"):
        DistributionalPPO.load(path, env=env, not_a_parameter=1)
    with pytest.raises(ValueError, match="bogus"):
        DistributionalPPO.load(path, env=env, custom_objects={"bogus": 1})
    loaded = DistributionalPPO.load(path, env=env, device="cpu", ent_coef=0.02, custom_objects={"vf_coef": 0.25})
    assert loaded.ent_coef == 0.02 and loaded.vf_coef == 0.25


def test_file_objects_and_malformed_metadata(trained, tmp_path):
    env, model, path = trained
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    assert DistributionalPPO.load(buffer, env=env, device="cpu").num_timesteps == model.num_timesteps
    members = _members(path)
    members["model.json"] = b'{"algorithm": "x"}'
    bad = tmp_path / "meta.zip"
    bad.write_bytes(archive.pack_bytes(members, _manifest(members)))
    with pytest.raises(CheckpointError, match="'model.json' is malformed"):
        DistributionalPPO.load(bad, env=env)
    with pytest.raises(CheckpointError, match="'model.json' is malformed"):
        verify(bad)
    with pytest.raises(ValueError, match="n_envs=2"):
        DistributionalPPO.load(path, env=make_vec_env("CartPole-v1", n_envs=3), force_reset=False)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        DistributionalPPO.load(tmp_path / "absent.zip")


def test_truncated_and_bit_flipped_checkpoints(trained, tmp_path):
    _, _, path = trained
    data = path.read_bytes()
    bad = tmp_path / "bad.zip"
    for cut in (0, 10, len(data) // 2, len(data) - 30):
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            DistributionalPPO.load(bad)
        assert str(bad) in str(info.value)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        policy = zf.read("policy.pt")
    offset = data.find(policy[len(policy) // 2 : len(policy) // 2 + 64]) + 7
    flipped = bytearray(data)
    flipped[offset] ^= 0x10
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="'policy.pt'.*corrupted") as info:
        DistributionalPPO.load(bad)
    assert str(bad) in str(info.value)


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}


def _manifest(members, version=archive.FORMAT_VERSION):
    import hashlib

    return {
        "format": archive.FORMAT_NAME, "format_version": version, "library_version": "9.9.9",
        "members": {n: {"kind": archive.KIND_BY_SUFFIX[os.path.splitext(n)[1]], "size": len(b),
                        "sha256": hashlib.sha256(b).hexdigest()} for n, b in members.items()},
    }


def test_newer_version_is_refused(trained, tmp_path):
    _, _, path = trained
    members = _members(path)
    newer = tmp_path / "newer.zip"
    newer.write_bytes(archive.pack_bytes(members, _manifest(members, archive.FORMAT_VERSION + 1)))
    with pytest.raises(CheckpointError, match="newer checkpoint format") as info:
        DistributionalPPO.load(newer)
    assert str(newer) in str(info.value)


class _Payload:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize(
    "member", ["model.json", "policy.pt", "optimizer.pt", "vgs.pt", "rng.pt", "env_state.pt"]
)
def test_malicious_pickle_in_each_model_member_is_refused(trained, tmp_path, member):
    env, _, path = trained
    marker = tmp_path / "pwned"
    members = _members(path)
    if member.endswith(".pt"):
        buf = io.BytesIO()
        torch.save({"evil": _Payload(f"touch {marker}")}, buf)
        members[member] = buf.getvalue()
    else:
        import pickle

        members[member] = pickle.dumps(_Payload(f"touch {marker}"))
    evil = tmp_path / "evil.zip"
    evil.write_bytes(archive.pack_bytes(members, _manifest(members)))  # checksums forged to match
    with pytest.raises(CheckpointError, match=member.replace(".", r"\.")) as info:
        DistributionalPPO.load(evil, env=env)
    assert str(evil) in str(info.value)
    assert not marker.exists()


# ---------------------------------------------------------------- manager


def test_manager_rotation_and_fallback(tmp_path):
    env, model = make()
    manager = CheckpointManager(tmp_path / "ck", keep=3)
    assert manager.latest() is None
    with pytest.raises(FileNotFoundError):
        manager.load_latest(DistributionalPPO)
    model.learn(ROLLOUT)
    for step in (10, 20, 30, 40, 50):
        manager.save(model, step)
    assert [p.name for p in manager.paths()] == [f"ckpt_{s:012d}.zip" for s in (30, 40, 50)]
    assert manager.latest() == manager.paths()[-1]
    newest = manager.paths()[-1]
    newest.write_bytes(newest.read_bytes()[:-100])  # a torn newest file
    with pytest.warns(RuntimeWarning, match="skipping corrupted checkpoint.*ckpt_000000000050"):
        assert manager.latest() == manager.paths()[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        loaded = manager.load_latest(DistributionalPPO, env=env, device="cpu")
    assert_bound_to_live_parameters(loaded)
    assert manager.save(model).name == f"ckpt_{model.num_timesteps:012d}.zip"
    with pytest.raises(ValueError, match="keep"):
        CheckpointManager(tmp_path, keep=0)


def test_load_state_refuses_another_architecture_without_changing_anything(trained):
    _, donor, _ = trained
    _, other = make(policy_kwargs=dict(net_arch=[8]), ent_coef=0.05)
    before = {k: v.clone() for k, v in other.policy.state_dict().items()}
    with pytest.raises(ValueError, match="does not fit this model's policy"):
        load_state(other, save_state(donor))
    assert tensors_equal(other.policy.state_dict(), before) and other.ent_coef == 0.05


def test_package_exports_resolve():
    """Every name in the package's export list resolves; the member names stay what
    ``lifelong.cli.evaluate`` reads."""
    import lifelong.checkpoint as package
    from lifelong.checkpoint import members

    for name in package.__all__:
        assert getattr(package, name) is not None, name
    assert members.VEC_NORMALIZE == "vec_normalize.pt"


# ---------------------------------------------------------------- non-stationary env streams
def make_stream_env(n_envs=N_ENVS, seed=0):
    # no schedule seed in the constructor: copy i draws its task sequence from its reset seed
    return make_vec_env("lifelong/PermutedCartPole-v0", n_envs=n_envs, seed=seed,
                        env_kwargs={"every_steps": 10, "seed": None})


def test_load_puts_a_fresh_env_where_the_task_stream_was(tmp_path):
    """A run resumed on a new env (a new process: ``lifelong resume``) continues its task
    sequence, at the saved phase and with the saved schedules, instead of restarting at phase 0
    on a schedule drawn from the new env's seeds."""
    import lifelong  # noqa: F401  (registers lifelong/PermutedCartPole-v0)
    env = make_stream_env()
    model = DistributionalPPO("MlpPolicy", env, n_steps=N_STEPS, batch_size=16, n_epochs=1, seed=0, device="cpu",
                              policy_kwargs=dict(net_arch=[16]), diagnostics_every=0)
    model.learn(2 * ROLLOUT)
    saved = env.env_method("stream_state")
    assert saved == [[{"wrapper": "PermuteObservations", "total_steps": 2 * N_STEPS, "schedule_seed": i}]
                     for i in range(N_ENVS)]
    path = model.save(tmp_path / "m")

    fresh = make_stream_env(seed=123)
    resumed = DistributionalPPO.load(path, env=fresh, device="cpu")  # force_reset=True, as SB3's default
    assert fresh.env_method("stream_state") == saved
    spec = [fresh.env_method("get_wrapper_attr", "phase_spec")[i](4) for i in range(N_ENVS)]
    assert spec == [env.env_method("get_wrapper_attr", "phase_spec")[i](4) for i in range(N_ENVS)]
    resumed.learn(ROLLOUT, reset_num_timesteps=False)
    assert [s[0]["total_steps"] for s in fresh.env_method("stream_state")] == [3 * N_STEPS] * N_ENVS

    # a PBT exploit (load_state, not exact) leaves the recipient's env where it is; exact moves it
    other_env = make_stream_env(seed=7)
    other = DistributionalPPO("MlpPolicy", other_env, n_steps=N_STEPS, batch_size=16, n_epochs=1, seed=1,
                              device="cpu", policy_kwargs=dict(net_arch=[16]), diagnostics_every=0)
    other.learn(ROLLOUT)
    own = other_env.env_method("stream_state")
    load_state(other, save_state(model))
    assert other_env.env_method("stream_state") == own
    load_state(other, save_state(model), exact=True)
    assert other_env.env_method("stream_state") == saved

    # another number of copies: the positions are not applied, with a warning
    three = make_stream_env(n_envs=3, seed=5)
    with pytest.warns(RuntimeWarning, match="task stream"):
        DistributionalPPO.load(path, env=three, device="cpu", batch_size=16)
    assert [s[0]["total_steps"] for s in three.env_method("stream_state")] == [0, 0, 0]


@pytest.mark.parametrize("streams", ["x", [[]], [[{"wrapper": "PermuteObservations", "total_steps": -1,
                                                   "schedule_seed": 0}]] * N_ENVS])
def test_malformed_stream_positions_are_a_checkpoint_error(trained, tmp_path, streams):
    _, model, path = trained
    state = archive.read_archive(path)
    state["model.json"]["env_streams"] = streams
    bad = archive.write_archive(tmp_path / "bad.zip", state)
    with pytest.raises(CheckpointError, match="env_streams"):
        DistributionalPPO.load(bad, device="cpu")
