"""PBT on Ray Tune (2 CPUs, a local Ray instance, no dashboard): the same small population.

One member's actor process kills itself once during the second interval; Tune must restart it
from its last checkpoint and the population must finish with the exploits recorded.
"""
import json

import pbt_helpers
import pytest
from pbt_helpers import AGENT, crashing_agent

ray = pytest.importorskip("ray")
pytest.importorskip("ray.tune")

from lifelong.pbt import PBT, LogUniform, Uniform  # noqa: E402

SPACE = {"learning_rate": LogUniform(1e-4, 3e-3), "ent_coef": Uniform(0.0, 0.02)}


@pytest.fixture(scope="module")
def ray_population(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pbt_ray")
    # Ray's workers cannot import the test helpers: ship their functions by value.
    ray.cloudpickle.register_pickle_by_value(pbt_helpers)
    agent = crashing_agent(workdir)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        pbt = PBT(
            agent=agent,
            space=SPACE,
            population_size=4,
            interval_steps=128,
            total_steps=384,
            truncation=0.25,
            eval_episodes=2,
            workdir=workdir,
            backend="ray",
            seed=0,
        )
        result = pbt.run()
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(pbt_helpers)
    return pbt, result, workdir


def test_ray_population_trains_and_exploits(ray_population):
    pbt, result, workdir = ray_population
    assert sorted(m.id for m in result.members) == pbt.member_ids
    for m in result.members:
        assert m.step == 384 and m.checkpoint is not None and m.checkpoint.is_file()
        assert all(SPACE[n].contains(m.config[n]) for n in SPACE)
    assert result.best_checkpoint.is_file()
    (restart,) = result.restarts  # the killed actor, restarted by Tune from its last checkpoint
    assert restart["step"] == 128 and restart["member"] in pbt.member_ids
    # Synchronous PBT: one exploit (ceil(0.25 * 4)) at each boundary but the last. Retention
    # (num_to_keep) must never delete a checkpoint that an exploit restores: the run would fail.
    steps = [e["step"] for e in result.exploits]
    assert steps == [128, 256]
    lines = (workdir / "scores.csv").read_text().splitlines()
    assert lines[0] == "step,member,score,learning_rate,ent_coef" and len(lines) == 1 + 12
    assert json.loads((workdir / "result.json").read_text())["n_exploits"] == 2


def test_ray_recipient_restores_donor_then_applies_its_new_config(ray_population):
    pbt, result, workdir = ray_population
    rows = [json.loads(x) for x in (workdir / "intervals.jsonl").read_text().splitlines()]
    for e in result.exploits:
        assert all(SPACE[n].contains(e["new_config"][n]) for n in SPACE)
        (row,) = [r for r in rows if r["member"] == e["recipient"] and r["step"] == e["step"] + 128]
        assert row["started_from_member"] == int(e["donor"].split("_")[1])  # donor's checkpoint
        assert row["config"] == pytest.approx(e["new_config"])
        # the learning rate did not revert to the donor's after the restore
        assert row["applied"]["learning_rate"] == pytest.approx(e["new_config"]["learning_rate"])
        assert row["applied"]["ent_coef"] == pytest.approx(e["new_config"]["ent_coef"])
        assert row["optimizer_lr"] == [pytest.approx(e["new_config"]["learning_rate"])]
        assert e["new_config"]["learning_rate"] != e["donor_config"]["learning_rate"]


def _make(workdir, agent=AGENT, **kw):
    return PBT(agent=agent, space=SPACE, population_size=4, interval_steps=128, total_steps=384,
               truncation=0.25, eval_episodes=2, workdir=workdir, backend="ray", seed=0, **kw)


def test_finished_ray_workdir_returns_its_result_without_training(ray_population):
    pbt, result, workdir = ray_population
    assert not ray.is_initialized()
    again = _make(workdir, agent={**AGENT, "env": pbt.spec.env, "eval_env": "CartPole-v1"}).run()
    assert not ray.is_initialized()  # nothing was started
    assert [(m.id, m.score, m.config) for m in again.members] == [(m.id, m.score, m.config) for m in result.members]
    assert again.best_checkpoint == result.best_checkpoint and len(again.exploits) == 2


def test_interrupted_ray_workdir_is_refused(tmp_path):
    from lifelong.pbt import PBTError
    from lifelong.pbt.ray_backend import _Recorder

    pbt = _make(tmp_path)
    rec = _Recorder(pbt, None)
    rec.history.append({"step": 128, "member": "member_0", "score": 1.0, "config": {}})
    rec.persist()
    with pytest.raises(PBTError, match="interrupted Ray population"):
        pbt.run()


def test_ray_connects_to_the_given_address(tmp_path, monkeypatch):
    from lifelong.pbt import ray_backend

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_backend._init_ray(_make(tmp_path, ray_address="ray://head:10001")) is True
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    ray_backend._init_ray(_make(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS")
    ray_backend._init_ray(_make(tmp_path, workers=2))
    assert calls[0]["address"] == "ray://head:10001"
    assert calls[1]["address"] == "10.0.0.1:6379"
    assert "address" not in calls[2] and calls[2]["num_cpus"] == 2 and calls[2]["include_dashboard"] is False
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    assert ray_backend._init_ray(_make(tmp_path)) is False  # an existing instance is used as is
