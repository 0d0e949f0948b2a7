"""PBT on the local backend: a 4-member CartPole population for 3 short intervals.

One population (run once per module) is inspected by most tests. A member's worker process
kills itself (``os._exit``) once during the second interval; it must be restarted from its last
checkpoint. A second population is interrupted mid-interval and resumed; because restarts and
resumes replay the same seeds, both populations must produce identical scores and lineage.
"""
import json
from pathlib import Path

import pytest
import torch
from pbt_helpers import AGENT, CRASH_CODE, crashing_agent

from lifelong.pbt import PBT, IntUniform, LogUniform, Uniform
from lifelong.pbt.member import AgentSpec, make_env, prepare_model

SPACE = {
    "learning_rate": LogUniform(1e-4, 3e-3),
    "ent_coef": Uniform(0.0, 0.02),
    "sigma": LogUniform(1e-4, 1e-2),
    "n_epochs": IntUniform(1, 3),
}
SETTINGS = dict(
    space=SPACE,
    population_size=4,
    interval_steps=128,
    total_steps=384,
    truncation=0.25,
    eval_episodes=2,
    workers=2,
    seed=3,
    keep_checkpoints=None,
)
def _load(path):
    from lifelong import DistributionalPPO

    return DistributionalPPO.load(path, device="cpu")


def _assert_tree_equal(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_tree_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_tree_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


def _sorted_scores(workdir):
    return (Path(workdir) / "scores.csv").read_text()


def _exploits(lineage):
    keys = ("step", "donor", "recipient", "donor_score", "recipient_score", "old_config", "new_config")
    return [{k: e[k] for k in keys} for e in lineage if e["event"] == "exploit"]


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pbt_local")
    pbt = PBT(agent=crashing_agent(workdir), workdir=workdir, **SETTINGS)
    result = pbt.run()
    return pbt, result, workdir


def test_outputs_and_result(population):
    pbt, result, workdir = population
    for name in ("lineage.jsonl", "scores.csv", "result.json", "state.json", "intervals.jsonl"):
        assert (workdir / name).is_file(), name
    lines = (workdir / "scores.csv").read_text().splitlines()
    assert lines[0] == "step,member,score,learning_rate,ent_coef,sigma,n_epochs"
    assert len(lines) == 1 + 4 * 3
    assert [m.id for m in result.members] == pbt.member_ids
    for m in result.members:
        assert m.step == 384 and m.checkpoint.is_file() and m.checkpoint.parent == workdir / "members" / m.id
        assert set(m.config) == set(SPACE) and isinstance(m.score, float)
    assert result.best_checkpoint == max(result.members, key=lambda m: m.score).checkpoint
    assert result.best_config == max(result.members, key=lambda m: m.score).config
    saved = json.loads((workdir / "result.json").read_text())
    assert saved["best_checkpoint"] == str(result.best_checkpoint)
    assert saved["best_config"] == result.best_config
    assert result.lineage == [json.loads(x) for x in (workdir / "lineage.jsonl").read_text().splitlines()]


def test_exploits_recorded_at_every_boundary_but_the_last(population):
    pbt, result, workdir = population
    exploits = result.exploits
    assert [e["step"] for e in exploits] == [128, 256]  # ceil(0.25 * 4) = 1 per boundary
    rows = [json.loads(x) for x in (workdir / "intervals.jsonl").read_text().splitlines()]
    for e in exploits:
        assert e["donor"] != e["recipient"]
        at = {r["member"]: r["score"] for r in rows if r["step"] == e["step"]}
        assert e["donor_score"] == max(at.values())  # the top 1 of 4
        assert e["recipient_score"] == min(at.values())  # the bottom 1 of 4
        assert e["old_config"] != e["new_config"]
        for name, dist in SPACE.items():
            assert dist.contains(e["new_config"][name]), (name, e["new_config"][name])
        assert (workdir / e["checkpoint"]).is_file()


def test_recipient_gets_donor_state_and_its_own_new_hyperparameters(population):
    pbt, result, workdir = population
    spec = AgentSpec.from_agent(AGENT)
    for e in result.exploits:
        donor = _load(workdir / e["donor_checkpoint"])
        copied = _load(workdir / e["checkpoint"])
        # The checkpoint the recipient starts from holds the donor's whole state.
        _assert_tree_equal(donor.policy.state_dict(), copied.policy.state_dict(), "policy")
        _assert_tree_equal(donor.policy.optimizer.state_dict(), copied.policy.optimizer.state_dict(), "optimizer")
        _assert_tree_equal(donor.vgs.state_dict(), copied.vgs.state_dict(), "vgs")
        # Built exactly as the worker builds it: donor state, then the recipient's new config.
        env = make_env(spec, seed=0)
        model = prepare_model(spec, e["new_config"], checkpoint=workdir / e["checkpoint"], env=env, seed=0)
        _assert_tree_equal(donor.policy.optimizer.state_dict()["state"], model.policy.optimizer.state_dict()["state"], "optimizer state")
        _assert_tree_equal(donor.vgs.state_dict(), model.vgs.state_dict(), "vgs after apply")
        hp = model.get_hyperparameters()
        for name, value in e["new_config"].items():
            assert hp[name] == pytest.approx(value), name
        assert [g["lr"] for g in model.policy.optimizer.param_groups] == [pytest.approx(e["new_config"]["learning_rate"])]
        assert e["new_config"]["learning_rate"] != e["donor_config"]["learning_rate"]
        # The optimizer holds this model's live parameters (not the donor's, not stale copies).
        live = list(model.policy.parameters())
        held = [p for g in model.policy.optimizer.param_groups for p in g["params"]]
        assert len(held) == len(live) and all(any(h is p for p in live) for h in held)
        before = [p.detach().clone() for p in live]
        model.learn(64, reset_num_timesteps=False)
        assert any(not torch.equal(b, p) for b, p in zip(before, model.policy.parameters()))
        env.close()


def test_recipient_trained_with_its_new_config(population):
    pbt, result, workdir = population
    rows = [json.loads(x) for x in (workdir / "intervals.jsonl").read_text().splitlines()]
    for e in result.exploits:
        (row,) = [r for r in rows if r["member"] == e["recipient"] and r["step"] == e["step"] + 128]
        assert row["started_from"] == e["checkpoint"]
        assert row["config"] == e["new_config"]
        for name, value in e["new_config"].items():
            assert row["applied"][name] == pytest.approx(value), name
        assert row["optimizer_lr"] == [pytest.approx(e["new_config"]["learning_rate"])]
        after = _load(workdir / row["checkpoint"])
        assert after.get_hyperparameters()["learning_rate"] == pytest.approx(e["new_config"]["learning_rate"])
        assert after.get_hyperparameters()["sigma"] == pytest.approx(e["new_config"]["sigma"])
        assert [g["lr"] for g in after.policy.optimizer.param_groups] == [pytest.approx(e["new_config"]["learning_rate"])]
        assert all(g["sigma"] == pytest.approx(e["new_config"]["sigma"]) for g in after.policy.optimizer.param_groups)


def test_killed_member_is_restarted_from_its_last_checkpoint(population):
    pbt, result, workdir = population
    (restart,) = result.restarts
    assert restart["reason"] == "died" and f"code {CRASH_CODE}" in restart["detail"]
    assert restart["step"] == 128 and restart["restarts"] == 1
    assert restart["checkpoint"].startswith(f"members/{restart['member']}/")
    member = next(m for m in result.members if m.id == restart["member"])
    assert member.restarts == 1 and member.step == 384


def test_interrupted_population_resumes_to_the_same_result(population, tmp_path):
    pbt_a, result_a, workdir_a = population

    class Interrupt(Exception):
        pass

    seen = []

    def stop_mid_second_interval(event):
        seen.append(event["event"])
        if seen.count("interval") == 6:  # 4 of interval 1, 2 of interval 2
            raise Interrupt

    pbt = PBT(agent=AGENT, workdir=tmp_path, **SETTINGS)
    with pytest.raises(Interrupt):
        pbt.run(callback=stop_mid_second_interval)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["boundary"] == 128 and sorted(m["step"] for m in state["members"].values()) == [128, 128, 256, 256]
    result = PBT(agent=AGENT, workdir=tmp_path, **SETTINGS).run()
    assert _sorted_scores(tmp_path) == _sorted_scores(workdir_a)
    assert _exploits(result.lineage) == _exploits(result_a.lineage)
    assert [m.config for m in result.members] == [m.config for m in result_a.members]
    # A finished population is not trained again.
    again = PBT(agent=AGENT, workdir=tmp_path, **SETTINGS).run()
    assert [m.score for m in again.members] == [m.score for m in result.members]


def test_compile_step_reaches_every_member_built_or_loaded(tmp_path):
    """``agent={"compile_step": True}``: a speed switch checkpoints do not hold, so every member's
    model gets it wherever it comes from (built, or loaded after an exploit or a restart)."""
    from lifelong.checkpoint import save_model

    spec = AgentSpec.from_agent({"env": "CartPole-v1", "compile_step": True, "n_steps": 32, "batch_size": 32})
    assert spec.describe()["compile_step"] is True and "compile_step" not in spec.kwargs
    env = make_env(spec, 0, 0)
    built = prepare_model(spec, {}, checkpoint=None, env=env, seed=0)
    assert built.compile_step is True
    path = save_model(built, tmp_path / "member")
    assert prepare_model(spec, {"ent_coef": 0.01}, checkpoint=path, env=env, seed=0).compile_step is True
    plain = AgentSpec.from_agent({"env": "CartPole-v1"})
    assert "compile_step" not in plain.describe()
    assert prepare_model(plain, {}, checkpoint=path, env=env, seed=0).compile_step is False
    with pytest.raises(ValueError, match=r"agent\['compile_step'\]='yes': expected true or false"):
        AgentSpec.from_agent({"env": "CartPole-v1", "compile_step": "yes"})
    with pytest.raises(ValueError, match="applies to algo 'ppo', not 'recurrent_ppo'"):
        AgentSpec.from_agent({"env": "CartPole-v1", "compile_step": True, "algo": "recurrent_ppo"})


def test_a_member_with_optimizer_groups_loads_and_trains_after_an_exploit(tmp_path):
    """``optimizer_groups`` orders the optimizer's parameters by group: the live-parameter check
    accepts that order (it failed every load before), and a member loaded from another's
    checkpoint trains on with the groups' own arguments."""
    from lifelong.checkpoint import save_model

    agent = {"env": "CartPole-v1", "n_steps": 32, "batch_size": 32, "optimizer": "adaptive_upgd",
             "optimizer_groups": {"action_net.*": {"reset_every": 3}}}
    spec = AgentSpec.from_agent(agent)
    env = make_env(spec, 0, 0)
    donor = prepare_model(spec, {}, checkpoint=None, env=env, seed=0)
    donor.learn(64)
    path = save_model(donor, tmp_path / "donor")
    recipient = prepare_model(spec, {"ent_coef": 0.01}, checkpoint=path, env=make_env(spec, 1, 1), seed=1)
    groups = recipient.policy.optimizer.param_groups
    assert [g["reset_every"] for g in groups] == [0, 3] and recipient.ent_coef == 0.01
    recipient.learn(64, reset_num_timesteps=False)


def test_a_member_continues_its_task_stream_across_intervals(tmp_path):
    """Every interval builds a fresh env and loads the member's checkpoint into it: on a
    non-stationary env the member continues at the phase and task sequence it reached, instead
    of starting phase 0 again at every interval."""
    import lifelong  # noqa: F401  (registers the ids)
    from lifelong.checkpoint import save_model

    spec = AgentSpec.from_agent({"env": "lifelong/PermutedCartPole-v0", "env_kwargs": {"every_steps": 16},
                                 "n_steps": 32, "batch_size": 32})
    model = prepare_model(spec, {}, checkpoint=None, env=make_env(spec, 0, 0), seed=0)
    model.learn(64)
    reached = model.get_env().env_method("stream_state")
    assert reached[0][0]["total_steps"] == 64 // model.n_envs
    path = save_model(model, tmp_path / "member")
    env = make_env(spec, 1, 0)  # the next interval's env
    prepare_model(spec, {}, checkpoint=path, env=env, seed=0)
    assert env.env_method("stream_state") == reached
