"""Asynchronous PBT on the local backend: a 4-member CartPole population, 4 short intervals.

No barrier: each member decides at its own boundaries from the latest recorded scores. The run
depends on timing, so the tests check what every run must satisfy: each decision is explained
by its records (scores and steps used, warm-up, quantiles), exploits copy a completed donor
checkpoint and the recipient goes on from it with its explored config, and an interrupted run
resumes to the end without training an interval twice.
"""
import json
import math

import pytest
from pbt_helpers import AGENT, CRASH_CODE, crashing_agent

from lifelong.pbt import PBT, LogUniform, Uniform
from lifelong.pbt.explore import n_truncated, rank

SPACE = {"learning_rate": LogUniform(1e-4, 3e-3), "ent_coef": Uniform(0.0, 0.02)}
SETTINGS = dict(
    space=SPACE,
    population_size=4,
    interval_steps=64,
    total_steps=256,
    truncation=0.5,
    eval_episodes=2,
    workers=2,
    seed=5,
    keep_checkpoints=None,
    synchronous=False,
)


def _rows(workdir):
    return [json.loads(x) for x in (workdir / "intervals.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """A member's worker process kills itself once, after the first lineage event."""
    workdir = tmp_path_factory.mktemp("pbt_async")
    events = []
    result = PBT(agent=crashing_agent(workdir), workdir=workdir, **SETTINGS).run(callback=events.append)
    return result, workdir, events


def test_killed_member_is_restarted_without_stopping_the_others(population):
    result, workdir, events = population
    (restart,) = result.restarts
    assert restart["reason"] == "died" and f"code {CRASH_CODE}" in restart["detail"]
    member = next(m for m in result.members if m.id == restart["member"])
    assert member.restarts == 1 and member.step == 256
    # nobody waited for it: another member recorded an interval while it was being rerun
    kinds = [(e["event"], e.get("member")) for e in events]
    at = kinds.index(("restart", restart["member"]))
    assert any(kind == "interval" and m != restart["member"] for kind, m in kinds[at + 1:])


def test_every_member_trains_every_interval_once(population):
    result, workdir, _ = population
    rows = _rows(workdir)
    for m in result.members:
        assert m.step == 256 and m.checkpoint.is_file()
        assert sorted(r["step"] for r in rows if r["member"] == m.id) == [64, 128, 192, 256]
    state = json.loads((workdir / "state.json").read_text())
    assert state["synchronous"] is False


def test_every_decision_is_explained_by_its_records(population):
    result, workdir, _ = population
    rows = _rows(workdir)
    exploits = {(e["recipient"], e["step"]): e for e in result.exploits}
    decided = [r for r in rows if r["step"] < 256]
    assert len(decided) == 12 and all(r["step"] == 256 or "decision" in r for r in rows)
    assert all("decision" not in r for r in rows if r["step"] == 256)  # no exploit at the end
    k = n_truncated(4, 0.5)
    for r in decided:
        d = r["decision"]
        used = d["scores_used"]
        assert set(used) == {m.id for m in result.members}
        assert used[r["member"]] == {"score": r["score"], "step": r["step"]}  # its fresh score
        if any(u["score"] is None for u in used.values()):
            assert d == {"action": "continue", "reason": "warm-up", "scores_used": used}
            continue
        ranked = rank({m: u["score"] for m, u in used.items()}, "max")
        in_bottom = r["member"] in ranked[4 - k:]
        assert (d["action"] == "exploit") == in_bottom
        if in_bottom:
            e = exploits[(r["member"], r["step"])]
            assert e["donor"] == d["donor"] and e["donor"] in ranked[:k]
            assert e["scores_used"] == used and e["recipient_step"] == r["step"]
            assert e["donor_step"] == used[e["donor"]]["step"] and e["donor_score"] == used[e["donor"]]["score"]
    assert len(exploits) == sum(r["decision"]["action"] == "exploit" for r in decided)
    assert result.exploits, "truncation=0.5 with 12 decisions: some member must have been in the bottom half"


def test_exploit_copies_a_completed_donor_checkpoint_and_recipient_goes_on(population):
    result, workdir, _ = population
    rows = _rows(workdir)
    for e in result.exploits:
        donor_file, copy = workdir / e["donor_checkpoint"], workdir / e["checkpoint"]
        assert copy.read_bytes() == donor_file.read_bytes()
        # the donor checkpoint was its latest at the decision: recorded at donor_step
        (donor_row,) = [r for r in rows if r["member"] == e["donor"] and r["checkpoint"] == e["donor_checkpoint"]]
        assert donor_row["step"] == e["donor_step"]
        (after,) = [r for r in rows if r["member"] == e["recipient"] and r["step"] == e["step"] + 64]
        assert after["started_from"] == e["checkpoint"] and after["config"] == e["new_config"]
        assert after["applied"]["learning_rate"] == pytest.approx(e["new_config"]["learning_rate"])
        assert all(SPACE[n].contains(v) for n, v in e["new_config"].items())


def test_interrupted_asynchronous_run_resumes_without_repeating_an_interval(tmp_path):
    class Stop(Exception):
        pass

    seen = []

    def stop(event):
        seen.append(event["event"])
        if seen.count("interval") == 7:
            raise Stop

    settings = dict(SETTINGS, keep_checkpoints=1)  # retention with asynchronous exploits
    with pytest.raises(Stop):
        PBT(agent=AGENT, workdir=tmp_path, **settings).run(callback=stop)
    state = json.loads((tmp_path / "state.json").read_text())
    assert sum(m["step"] for m in state["members"].values()) == 7 * 64
    with pytest.raises(ValueError, match="asynchronous PBT run; it cannot be resumed as synchronous"):
        PBT(agent=AGENT, workdir=tmp_path, **dict(settings, synchronous=True)).run()
    result = PBT(agent=AGENT, workdir=tmp_path, **settings).run()
    rows = _rows(tmp_path)
    expected = [(m.id, step) for m in result.members for step in (64, 128, 192, 256)]
    assert sorted((r["member"], r["step"]) for r in rows) == sorted(expected)
    assert all(m.step == 256 and not math.isnan(m.score) for m in result.members)
    for m in result.members:  # keep_checkpoints=1: only the current checkpoint is left
        assert [p.name for p in (tmp_path / "members" / m.id).glob("*.zip")] == [m.checkpoint.name]
