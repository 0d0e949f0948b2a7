"""Non-stationary wrappers: schedules, determinism under a seed, spaces, info fields."""
import gymnasium as gym
import numpy as np
import pytest

import lifelong  # noqa: F401  (registers the ids)
from lifelong.envs import (REGISTERED, ChangingDynamics, PermuteActions, PermuteObservations,
                           ScaleRewards)


def cartpole():
    return gym.make("CartPole-v1")


def rollout(env, steps, seed=0, action_seed=0):
    """Steps with a fixed action sequence, resetting on episode ends; returns the records."""
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    out = [(None, obs.copy(), None, info)]
    for _ in range(steps):
        a = int(rng.integers(env.action_space.n))
        obs, r, term, trunc, info = env.step(a)
        out.append((a, obs.copy(), r, info))
        if term or trunc:
            obs, info = env.reset()
    return out


# ---------------------------------------------------------------------------------- schedules
def test_phase_counts_steps_across_episodes():
    env = PermuteObservations(cartpole(), every_steps=7, seed=0)
    recs = rollout(env, 60)
    assert env.total_steps == 60
    assert env.phase == 60 // 7
    phases = [info["phase"] for _, _, _, info in recs[1:]]
    # the obs of step t (0-based) is permuted for the phase of step t + 1
    assert phases == [(t + 1) // 7 for t in range(60)]
    # several episodes happened, and the counter did not restart at resets
    assert sum(1 for _, _, _, info in recs if "permute_observations" in info) == 61


def test_permute_observations_is_a_permutation_of_the_original():
    base = PermuteObservations(cartpole(), every_steps=5, seed=3)
    plain = cartpole()
    rng = np.random.default_rng(1)
    o1, _ = base.reset(seed=11)
    o2, _ = plain.reset(seed=11)
    np.testing.assert_array_equal(o1, o2)               # phase 0 is the identity
    perms = set()
    for _ in range(40):
        a = int(rng.integers(2))
        o1, _, t1, tr1, info = base.step(a)
        o2, _, t2, tr2, _ = plain.step(a)
        perm = info["permute_observations"]["permutation"]
        np.testing.assert_array_equal(o1, o2[perm])
        perms.add(tuple(perm))
        if t1 or tr1:
            assert t2 or tr2
            base.reset()
            plain.reset()
    assert len(perms) > 2
    # consecutive phases always differ
    specs = [tuple(base.phase_spec(k)["permutation"]) for k in range(30)]
    assert all(a != b for a, b in zip(specs, specs[1:]))
    assert all(sorted(p) == [0, 1, 2, 3] for p in specs)


def test_permute_actions_relabels_and_alternates_for_two_actions():
    env = PermuteActions(cartpole(), every_steps=3, seed=0)
    plain = cartpole()
    env.reset(seed=5)
    plain.reset(seed=5)
    for t in range(12):
        perm = env.phase_spec(t // 3)["permutation"]
        o1, _, d1, _, info = env.step(0)
        o2, _, d2, _, _ = plain.step(perm[0])
        np.testing.assert_array_equal(o1, o2)
        assert info["permute_actions"]["permutation"] == perm
        assert info["phase"] == t // 3
        if d1:
            break
    perms = [env.phase_spec(k)["permutation"] for k in range(6)]
    assert perms == [[0, 1], [1, 0], [0, 1], [1, 0], [0, 1], [1, 0]]


def test_scale_rewards_cycle_and_random():
    env = ScaleRewards(cartpole(), every_steps=4, factors=[1.0, 10.0, 0.5], seed=0)
    env.reset(seed=0)
    rewards, factors = [], []
    for _ in range(12):
        _, r, term, trunc, info = env.step(0)
        rewards.append(r)
        factors.append(info["scale_rewards"]["factor"])
        if term or trunc:
            env.reset()
    assert factors == [1.0] * 4 + [10.0] * 4 + [0.5] * 4
    assert rewards == factors                              # CartPole pays 1 per step
    rnd = ScaleRewards(cartpole(), every_steps=1, factors=[1.0, 2.0, 3.0], seed=4, order="random")
    seq = [rnd.phase_spec(k)["factor"] for k in range(50)]
    assert set(seq) == {1.0, 2.0, 3.0}
    assert all(a != b for a, b in zip(seq, seq[1:]))


def test_changing_dynamics_sets_parameters_and_derived_quantities():
    env = ChangingDynamics(cartpole(), every_steps=5,
                           params={"length": [0.5, 1.0, 0.25], "masscart": [1.0, 2.0, 0.5]},
                           seed=0)
    env.reset(seed=0)
    cp = env.unwrapped
    seen = []
    for t in range(15):
        _, _, term, trunc, info = env.step(t % 2)
        d = info["changing_dynamics"]
        seen.append((d["phase"], d["length"], d["masscart"]))
        assert cp.length == d["length"] and cp.masscart == d["masscart"]
        assert cp.total_mass == pytest.approx(cp.masspole + cp.masscart)
        assert cp.polemass_length == pytest.approx(cp.masspole * cp.length)
        if term or trunc:
            env.reset()
    assert seen[0] == (0, 0.5, 1.0) and seen[5] == (1, 1.0, 2.0) and seen[10] == (2, 0.25, 0.5)
    assert env.defaults["length"] == 0.5 and env.defaults["masscart"] == 1.0


def test_changing_dynamics_changes_the_physics():
    """Same actions, same start: a heavier cart moves less."""
    def final_x(masscart):
        env = ChangingDynamics(cartpole(), every_steps=1000, params={"masscart": [masscart]},
                               seed=0)
        env.reset(seed=3)
        for _ in range(5):
            obs, *_ = env.step(1)
        return obs[0]
    assert final_x(5.0) < final_x(1.0)


# ------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("make", [
    lambda s: PermuteObservations(cartpole(), 9, seed=s),
    lambda s: PermuteActions(cartpole(), 9, seed=s),
    lambda s: ScaleRewards(cartpole(), 9, [1.0, 2.0, 3.0], seed=s, order="random"),
    lambda s: ChangingDynamics(cartpole(), 9, {"length": [0.5, 1.0, 2.0]}, seed=s,
                               order="random"),
])
def test_same_seed_same_trajectory(make):
    def run(seed):
        return [(a, o.tolist(), r, {k: v for k, v in info.items() if k != "episode"})
                for a, o, r, info in rollout(make(seed), 80, seed=seed)]
    assert run(3) == run(3)


def test_schedule_seed_from_reset_or_constructor():
    a = PermuteObservations(cartpole(), 2)
    b = PermuteObservations(cartpole(), 2)
    a.reset(seed=42)
    b.reset(seed=42)
    assert a.schedule_seed == b.schedule_seed == 42
    assert [a.phase_spec(k) for k in range(10)] == [b.phase_spec(k) for k in range(10)]
    c = PermuteObservations(cartpole(), 2)
    c.reset(seed=43)
    assert [a.phase_spec(k) for k in range(10)] != [c.phase_spec(k) for k in range(10)]
    # a constructor seed wins over reset seeds: vector-env copies share the schedule
    d = PermuteObservations(cartpole(), 2, seed=7)
    e = PermuteObservations(cartpole(), 2, seed=7)
    d.reset(seed=1)
    e.reset(seed=2)
    assert [d.phase_spec(k) for k in range(10)] == [e.phase_spec(k) for k in range(10)]
    # later seeded resets do not change the schedule, nor the step counter
    a.step(0)
    a.reset(seed=99)
    assert a.schedule_seed == 42 and a.total_steps == 1


# -------------------------------------------------------------------------------------- spaces
def test_spaces_unchanged_and_observations_inside():
    base = cartpole()
    for env in (PermuteActions(cartpole(), 3, seed=0), ScaleRewards(cartpole(), 3, seed=0),
                ChangingDynamics(cartpole(), 3, seed=0)):
        assert env.observation_space == base.observation_space
        assert env.action_space == base.action_space
    po = PermuteObservations(cartpole(), 3, seed=0)
    assert po.action_space == base.action_space
    assert po.observation_space.shape == base.observation_space.shape
    assert po.observation_space.dtype == base.observation_space.dtype
    for _, obs, _, _ in rollout(po, 50):
        assert po.observation_space.contains(obs)
    # uniform bounds: the space object is kept as it is
    box = gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
    env = PermuteObservations(gym.wrappers.TransformObservation(
        cartpole(), lambda o: np.zeros(6, np.float32), box), 3, seed=0)
    assert env.observation_space == box


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="every_steps"):
        PermuteObservations(cartpole(), 0)
    with pytest.raises(ValueError, match="seed"):
        PermuteObservations(cartpole(), 5, seed=-1)
    with pytest.raises(ValueError, match="Discrete"):
        PermuteActions(gym.make("Pendulum-v1"), 5)
    with pytest.raises(ValueError, match="factors"):
        ScaleRewards(cartpole(), 5, factors=[])
    with pytest.raises(ValueError, match="factors"):
        ScaleRewards(cartpole(), 5, factors=[1.0, float("nan")])
    with pytest.raises(ValueError, match="order"):
        ScaleRewards(cartpole(), 5, factors=[1.0], order="shuffle")
    with pytest.raises(ValueError, match="unknown parameter"):
        ChangingDynamics(cartpole(), 5, params={"mass": [1.0]})
    with pytest.raises(ValueError, match="same length"):
        ChangingDynamics(cartpole(), 5, params={"length": [1.0, 2.0], "masscart": [1.0]})
    with pytest.raises(ValueError, match="positive"):
        ChangingDynamics(cartpole(), 5, params={"length": [0.0]})
    with pytest.raises(ValueError, match="CartPole"):
        ChangingDynamics(gym.make("Pendulum-v1"), 5)


# ------------------------------------------------------------------------------- registration
@pytest.mark.parametrize("env_id", sorted(REGISTERED))
def test_registered_ids(env_id):
    env = gym.make(env_id, every_steps=4)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["phase"] == 0
    for _ in range(9):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    assert info["phase"] in (2, 3)   # obs-permuting wrappers report the next step's phase
    # the default schedule seed is shared: two instances see the same task sequence
    a, b = gym.make(env_id), gym.make(env_id)
    a.reset(seed=1)
    b.reset(seed=2)
    spec_a = [a.get_wrapper_attr("phase_spec")(k) for k in range(5)]
    spec_b = [b.get_wrapper_attr("phase_spec")(k) for k in range(5)]
    assert spec_a == spec_b


def test_vector_env_copies_share_the_task_sequence():
    from stable_baselines3.common.env_util import make_vec_env
    venv = make_vec_env("lifelong/PermutedCartPole-v0", n_envs=3, seed=0,
                        env_kwargs={"every_steps": 5})
    venv.reset()
    for _ in range(12):
        _, _, _, infos = venv.step(np.zeros(3, dtype=np.int64))
    perms = [tuple(i["permute_observations"]["permutation"]) for i in infos]
    assert len(set(perms)) == 1 and all(i["phase"] == 2 for i in infos)
    venv.close()


# ------------------------------------------------------------------------------- partially observed
@pytest.mark.parametrize("env_id, base, hidden", [
    ("lifelong/CartPoleNoVel-v1", "CartPole-v1", (1, 3)),
    ("lifelong/PendulumNoVel-v1", "Pendulum-v1", (2,)),
])
def test_no_velocity_envs_zero_the_velocities_and_keep_the_rest(env_id, base, hidden):
    from lifelong.envs import PARTIALLY_OBSERVED
    assert env_id in PARTIALLY_OBSERVED
    masked, full = gym.make(env_id), gym.make(base)
    assert masked.observation_space == full.observation_space
    obs, _ = masked.reset(seed=3)
    ref, _ = full.reset(seed=3)
    for _ in range(5):
        action = full.action_space.sample()
        obs, *_ = masked.step(action)
        ref, *_ = full.step(action)
        keep = [i for i in range(len(ref)) if i not in hidden]
        assert all(obs[i] == 0 for i in hidden) and any(ref[i] != 0 for i in hidden)
        np.testing.assert_array_equal(obs[keep], ref[keep])


def test_hide_velocities_bad_input():
    from lifelong.envs import HideVelocities
    with pytest.raises(ValueError, match="MountainCar-v0"):
        HideVelocities(gym.make("MountainCar-v0"))
    with pytest.raises(ValueError, match=r"hidden=\[7\]"):
        HideVelocities(gym.make("CartPole-v1"), hidden=[7])
    assert HideVelocities(gym.make("MountainCar-v0"), hidden=[1]).hidden == (1,)


def test_pin_phase_holds_a_phase_and_adopts_another_copys_schedule():
    train = PermuteObservations(gym.make("CartPole-v1"), every_steps=3, seed=7)
    evaluation = PermuteObservations(gym.make("CartPole-v1"), every_steps=3, seed=99)
    evaluation.pin_phase(2, schedule_seed=train.schedule_seed)
    evaluation.reset(seed=0)
    for _ in range(10):  # the counter moves on, the phase does not
        evaluation.step(0)
    assert evaluation.phase == 2 and evaluation.total_steps == 10
    np.testing.assert_array_equal(evaluation.permutation(), train.permutation(2))
    evaluation.pin_phase(None)
    assert evaluation.phase == 10 // 3
    with pytest.raises(ValueError, match="phase must be None or a non-negative int"):
        evaluation.pin_phase(-1)


# --------------------------------------------------------------------------- stream position
def test_stream_state_moves_a_fresh_stack_to_where_another_is():
    """A fresh copy of a stack of wrappers put at another's ``stream_state`` continues its task
    sequence: same phase, same schedule (seeded at the first reset here), the same observations
    for the same actions from the same inner state."""
    def make():
        return ScaleRewards(PermuteObservations(cartpole(), every_steps=7), every_steps=5)
    first = make()
    rollout(first, 40, seed=3)
    saved = first.stream_state()
    assert saved == [
        {"wrapper": "ScaleRewards", "total_steps": 40, "schedule_seed": 3},
        {"wrapper": "PermuteObservations", "total_steps": 40, "schedule_seed": 3},
    ]
    fresh = make()
    fresh.set_stream_state(saved)
    assert fresh.stream_state() == saved and fresh.phase == 40 // 5
    inner = fresh.env
    assert inner.phase == 40 // 7 and inner.phase_spec(6) == first.env.phase_spec(6)
    # from here both step identically (the inner CartPole reseeded alike)
    a = rollout(first, 20, seed=11)
    b = rollout(fresh, 20, seed=11)   # a seeded reset keeps the adopted schedule
    for (_, obs_a, r_a, info_a), (_, obs_b, r_b, info_b) in zip(a, b):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert r_a == r_b and info_a["phase"] == info_b["phase"]


def test_set_stream_state_with_pin_holds_the_saved_phase():
    env = PermuteObservations(cartpole(), every_steps=7, seed=0)
    env.set_stream_state([{"wrapper": "PermuteObservations", "total_steps": 30, "schedule_seed": 0}], pin=True)
    recs = rollout(env, 20)
    assert {info["phase"] for _, _, _, info in recs} == {30 // 7}


@pytest.mark.parametrize("states,match", [
    ([], r"expected a stream state of 1 wrapper"),
    ([{"wrapper": "ScaleRewards", "total_steps": 1, "schedule_seed": 0}], "'ScaleRewards' wrapper, this one is PermuteObservations"),
    ([{"wrapper": "PermuteObservations", "total_steps": -1, "schedule_seed": 0}], r"total_steps must be an int in \[0, 2\*\*62\]"),
    ([{"wrapper": "PermuteObservations", "total_steps": True, "schedule_seed": 0}], "total_steps"),
    ([{"wrapper": "PermuteObservations", "total_steps": 3, "schedule_seed": -2}], "schedule_seed"),
    ([{"wrapper": "PermuteObservations", "total_steps": 3}], "expected a dict with wrapper, total_steps"),
    ("PermuteObservations", "expected a stream state"),
])
def test_a_bad_stream_state_is_a_value_error_and_changes_nothing(states, match):
    env = PermuteObservations(cartpole(), every_steps=7, seed=0)
    rollout(env, 10)
    before = env.stream_state()
    with pytest.raises(ValueError, match=match):
        env.set_stream_state(states)
    assert env.stream_state() == before and env.phase == 10 // 7
