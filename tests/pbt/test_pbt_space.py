"""PBT unit tests that train nothing: search space, explore, truncation selection, validation."""
import math
import sys

import numpy as np
import pytest

from lifelong.pbt import (
    EVAL_METRICS,
    PBT,
    Choice,
    IntUniform,
    LogUniform,
    Uniform,
    explore,
    n_truncated,
    select_exploits,
)
from lifelong.pbt.space import from_dict

AGENT = {"env": "CartPole-v1", "n_steps": 64, "batch_size": 32}
SPACE = {"learning_rate": LogUniform(1e-4, 3e-3), "ent_coef": Uniform(0.0, 0.02)}


# ---------------------------------------------------------------- distributions


@pytest.mark.parametrize(
    "dist",
    [LogUniform(1e-5, 1e-2), Uniform(-1.0, 2.0), IntUniform(1, 7), Choice([16, 32, 64, 128])],
    ids=repr,
)
def test_sample_and_perturb_stay_in_bounds(dist):
    rng = np.random.default_rng(0)
    value = dist.sample(rng)
    for _ in range(2000):
        assert dist.contains(value), value
        if rng.random() < 0.1:
            value = dist.sample(rng)
        else:
            value = dist.perturb(value, rng, (0.5, 0.8, 1.2, 2.0))
    assert dist.contains(value)


def test_perturb_clips_to_bounds():
    rng = np.random.default_rng(1)
    assert Uniform(0.0, 1.0).perturb(1.0, rng, (1.2,)) == 1.0
    assert Uniform(0.5, 1.0).perturb(0.5, rng, (0.8,)) == 0.5
    assert LogUniform(1e-4, 3e-3).perturb(3e-3, rng, (1.2,)) == 3e-3
    assert LogUniform(1e-4, 3e-3).perturb(1e-4, rng, (0.8,)) == 1e-4
    assert IntUniform(1, 10).perturb(10, rng, (2.0,)) == 10
    assert IntUniform(1, 10).perturb(1, rng, (0.5,)) == 1


def test_perturb_multiplies():
    rng = np.random.default_rng(2)
    assert Uniform(0.0, 1.0).perturb(0.5, rng, (0.8,)) == pytest.approx(0.4)
    assert LogUniform(1e-5, 1.0).perturb(1e-3, rng, (1.2,)) == pytest.approx(1.2e-3)
    seen = {LogUniform(1e-5, 1.0).perturb(1e-3, rng, (0.8, 1.2)) for _ in range(50)}
    assert sorted(seen) == [pytest.approx(0.8e-3), pytest.approx(1.2e-3)]


def test_int_perturb_always_moves_when_it_can():
    rng = np.random.default_rng(3)
    d = IntUniform(1, 20)
    assert d.perturb(2, rng, (1.2,)) == 3  # round(2.4) == 2: one step up instead
    assert d.perturb(2, rng, (0.8,)) == 1
    assert d.perturb(10, rng, (1.2,)) == 12
    assert isinstance(d.perturb(10, rng), int)
    assert isinstance(d.sample(rng), int)


def test_log_uniform_samples_uniformly_in_log_space():
    rng = np.random.default_rng(4)
    d = LogUniform(1e-4, 1e-2)
    logs = np.log10([d.sample(rng) for _ in range(4000)])
    assert abs(np.mean(logs) - (-3.0)) < 0.05
    assert np.mean(logs < -3.0) == pytest.approx(0.5, abs=0.05)


def test_choice_moves_to_a_neighbour_without_wrap_around():
    rng = np.random.default_rng(5)
    c = Choice([16, 32, 64, 128])
    assert {c.perturb(16, rng) for _ in range(50)} == {32}  # never wraps to 128
    assert {c.perturb(128, rng) for _ in range(50)} == {64}  # never wraps to 16
    assert {c.perturb(32, rng) for _ in range(100)} == {16, 64}
    assert Choice(["only"]).perturb("only", rng) == "only"
    with pytest.raises(ValueError, match="not one of"):
        c.perturb(48, rng)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Uniform(1.0, 1.0), "empty or inverted"),
        (lambda: Uniform(2.0, 1.0), "empty or inverted"),
        (lambda: LogUniform(1e-2, 1e-4), "empty or inverted"),
        (lambda: LogUniform(0.0, 1e-2), "0 < low"),
        (lambda: IntUniform(5, 5), "empty or inverted"),
        (lambda: IntUniform(1.5, 5), "not an integer"),
        (lambda: Uniform(0.0, math.inf), "not finite"),
        (lambda: Uniform("a", 1.0), "not a number"),
        (lambda: Choice([]), "empty choice"),
        (lambda: Choice([1, 1]), "appears twice"),
        (lambda: Choice([object()]), "JSON scalar"),
        (lambda: Choice("abc"), "expected a list"),
    ],
)
def test_bad_distributions_are_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_to_dict_round_trip():
    for d in (LogUniform(1e-4, 3e-3), Uniform(0.0, 0.02), IntUniform(1, 8), Choice([32, 64])):
        assert from_dict(d.to_dict()) == d
    with pytest.raises(ValueError, match="unknown"):
        from_dict({"type": "Normal", "low": 0, "high": 1})


# ---------------------------------------------------------------- exploit / explore


def test_truncation_count_uses_ceil():
    assert n_truncated(4, 0.25) == 1  # floor would be 0: nobody would ever exploit
    assert n_truncated(4, 0.5) == 2
    assert n_truncated(10, 0.25) == 3
    assert n_truncated(2, 0.1) == 1
    assert n_truncated(3, 0.5) == 1  # never more than half


def test_select_exploits_bottom_copies_top():
    scores = {"a": 1.0, "b": 5.0, "c": 3.0, "d": 4.0, "e": 2.0, "f": 6.0, "g": 0.0, "h": 7.0}
    rng = np.random.default_rng(0)
    pairs = select_exploits(scores, 0.25, "max", rng)
    assert sorted(r for r, _ in pairs) == ["a", "g"]
    assert all(d in {"h", "f"} for _, d in pairs)
    pairs_min = select_exploits(scores, 0.25, "min", np.random.default_rng(0))
    assert sorted(r for r, _ in pairs_min) == ["f", "h"]
    assert all(d in {"g", "a"} for _, d in pairs_min)


def test_select_exploits_is_deterministic_and_ranks_nan_last():
    scores = {"a": 1.0, "b": float("nan"), "c": 3.0, "d": 2.0}
    p1 = select_exploits(scores, 0.25, "max", np.random.default_rng(7))
    p2 = select_exploits(scores, 0.25, "max", np.random.default_rng(7))
    assert p1 == p2 == [("b", "c")]
    assert select_exploits(scores, 0.25, "min", np.random.default_rng(7)) == [("b", "a")]


def test_explore_resamples_or_perturbs_within_bounds():
    space = {"learning_rate": LogUniform(1e-4, 3e-3), "n_epochs": IntUniform(1, 10), "batch_size": Choice([32, 64, 128])}
    config = {"learning_rate": 1e-3, "n_epochs": 4, "batch_size": 64}
    rng = np.random.default_rng(0)
    ops_seen = set()
    for _ in range(300):
        new, ops = explore(config, space, rng, 0.25, (0.8, 1.2))
        assert set(new) == set(config)
        assert all(space[n].contains(new[n]) for n in space)
        ops_seen |= set(ops.values())
    assert ops_seen == {"resample", "perturb"}
    new, ops = explore(config, space, np.random.default_rng(1), 0.0, (0.8, 1.2))
    assert set(ops.values()) == {"perturb"}
    assert new["learning_rate"] in (pytest.approx(0.8e-3), pytest.approx(1.2e-3))
    assert new["batch_size"] in (32, 128)
    a = explore(config, space, np.random.default_rng(3), 0.25, (0.8, 1.2))
    b = explore(config, space, np.random.default_rng(3), 0.25, (0.8, 1.2))
    assert a == b


# ---------------------------------------------------------------- PBT validation


def make(tmp_path, **kw):
    args = dict(agent=AGENT, space=SPACE, population_size=4, interval_steps=128, total_steps=256, workdir=tmp_path)
    args.update(kw)
    return PBT(**args)


def test_valid_construction(tmp_path):
    pbt = make(tmp_path)
    assert pbt.member_ids == ["member_0", "member_1", "member_2", "member_3"]
    configs = pbt.settings.initial_configs()
    assert configs == make(tmp_path).settings.initial_configs()  # seeded
    assert configs != make(tmp_path, seed=1).settings.initial_configs()
    assert pbt.synchronous is True  # the default mode
    assert all(SPACE[n].contains(c[n]) for c in configs.values() for n in SPACE)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"population_size": 1}, "population_size=1"),
        ({"population_size": 2.0}, "population_size"),
        ({"interval_steps": 0}, "interval_steps=0"),
        ({"total_steps": 64}, "total_steps"),
        ({"truncation": 0.0}, r"truncation=0.0.*\(0, 0.5\]"),
        ({"truncation": 0.6}, "truncation=0.6"),
        ({"truncation": -0.1}, "truncation"),
        ({"backend": "dask"}, "backend='dask' is unknown"),
        ({"metric": "train_loss"}, "metric='train_loss' is not produced by the evaluation"),
        ({"mode": "best"}, "mode='best'"),
        ({"resample_probability": 1.5}, "resample_probability"),
        ({"perturb_factors": ()}, "perturb_factors"),
        ({"perturb_factors": (0.8, -1.0)}, "perturb_factors"),
        ({"eval_episodes": 0}, "eval_episodes"),
        ({"workers": 0}, "workers"),
        ({"max_restarts": -1}, "max_restarts"),
        ({"space": {}}, "non-empty"),
        ({"space": {"lr": LogUniform(1e-4, 1e-3)}}, "'lr' is not a tunable hyperparameter"),
        ({"space": {"policy_kwargs": Choice([1, 2])}}, "not a tunable"),
        ({"space": {"gamma": Uniform(0.9, 1.5)}}, "not a valid gamma"),
        ({"space": {"n_epochs": Choice([0, 4])}}, "not a valid n_epochs"),
        ({"space": {"learning_rate": (1e-4, 1e-3)}}, "expected LogUniform"),
        ({"agent": {"n_steps": 64}}, "agent has no 'env'"),
        ({"agent": {"env": 3}}, "Gymnasium id"),
        ({"agent": {"env": "CartPole-v1", "seed": 3}}, "seed"),
        ({"agent": {"env": "CartPole-v1", "n_envs": 0}}, "n_envs"),
        ({"agent": {"env": "CartPole-v1", "normalize": "yes"}}, "normalize"),
        ({"agent": {"env": "CartPole-v1", "n_envs": [1, 2]}}, r"has 2 entries; expected one per member \(population_size=4\)"),
        ({"agent": {"env": "CartPole-v1", "n_envs": [1, 0, 1, 1]}}, "n_envs"),
        ({"agent": {"env": "CartPole-v1", "normalize": {"norm_obsv": True}}}, "unknown keys.*norm_obsv"),
        ({"synchronous": 0}, r"synchronous=0: expected True .* or False"),
        ({"synchronous": "false"}, "synchronous='false'"),
    ],
)
def test_bad_arguments_are_value_errors(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        make(tmp_path, **kw)


def test_every_eval_metric_is_accepted(tmp_path):
    for metric in EVAL_METRICS:
        make(tmp_path, metric=metric, mode="min" if "std" in metric else "max")


def test_ray_backend_without_ray_is_an_import_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install lifelong\[ray\]"):
        make(tmp_path, backend="ray")


def test_resume_refuses_a_different_experiment(tmp_path):
    import json

    from lifelong.pbt.persistence import PopulationState

    pbt = make(tmp_path)
    state = PopulationState.new(pbt.settings).data
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert make(tmp_path, total_steps=512).load_state()["boundary"] == 0  # longer run: same experiment
    with pytest.raises(ValueError, match="different PBT experiment"):
        make(tmp_path, seed=5).load_state()


def test_start_method_is_validated(tmp_path):
    from lifelong.pbt.local import START_METHODS

    assert make(tmp_path).settings.start_method in START_METHODS
    assert make(tmp_path, start_method="spawn").settings.start_method == "spawn"
    with pytest.raises(ValueError, match="start_method='fork'"):
        make(tmp_path, start_method="fork")


def test_interval_not_a_multiple_of_the_rollout_warns(tmp_path):
    with pytest.warns(UserWarning, match="not a multiple of n_steps"):
        make(tmp_path, interval_steps=100, total_steps=300)


def test_resuming_in_the_other_mode_names_both_modes(tmp_path):
    import json

    from lifelong.pbt.persistence import PopulationState

    sync = make(tmp_path)
    (tmp_path / "state.json").write_text(json.dumps(PopulationState.new(sync.settings).data))
    assert sync.load_state()["synchronous"] is True
    with pytest.raises(ValueError, match="holds a synchronous PBT run; it cannot be resumed as asynchronous"):
        make(tmp_path, synchronous=False).load_state()
    asyn = make(tmp_path / "a", synchronous=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "state.json").write_text(json.dumps(PopulationState.new(asyn.settings).data))
    with pytest.raises(ValueError, match="holds an asynchronous PBT run; it cannot be resumed as synchronous"):
        make(tmp_path / "a").load_state()


# ---------------------------------------------------------------- the shared decision code


def test_quantiles_and_asynchronous_decision():
    import numpy as np

    from lifelong.pbt.explore import asynchronous_decision, member_rng, quantiles

    scores = {"a": 3.0, "b": 1.0, "c": 2.0, "d": float("nan")}
    assert quantiles(scores, 0.25, "max") == (["d"], ["a"])  # NaN ranks last
    assert quantiles(scores, 0.5, "max") == (["b", "d"], ["a", "c"])
    assert quantiles(scores, 0.5, "min") == (["a", "d"], ["b", "c"])
    rng = np.random.default_rng(0)
    # warm-up: a member without a score blocks every exploit
    assert asynchronous_decision("b", {"a": 3.0, "b": 1.0, "c": None, "d": 0.5}, 0.25, "max", rng) == (None, "warm-up")
    full = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 0.5}
    assert asynchronous_decision("c", full, 0.25, "max", rng) == (None, "not in the bottom quantile")
    assert asynchronous_decision("d", full, 0.25, "max", rng) == ("a", "bottom quantile")
    donors = {asynchronous_decision("b", full, 0.5, "max", member_rng(0, 1, s))[0] for s in range(0, 6400, 64)}
    assert donors == {"a", "c"}  # drawn from the whole top half
    again = [asynchronous_decision("b", full, 0.5, "max", member_rng(0, 1, s))[0] for s in range(0, 640, 64)]
    assert again == [asynchronous_decision("b", full, 0.5, "max", member_rng(0, 1, s))[0] for s in range(0, 640, 64)]
    with pytest.raises(ValueError, match="'z' is not in the population"):
        asynchronous_decision("z", full, 0.25, "max", rng)
