"""A corrupt member checkpoint (real damaged files) does not stop PBT, and VecNormalize members.

A checkpoint that fails to load (:class:`lifelong.CheckpointError`) is a deterministic fault: the
member is not retried; the file is renamed ``*.corrupt`` and the member continues from its
previous valid checkpoint ("fallback"), or from the best member's ("reseed") when it has none.
"""
import json

import pytest
from pbt_helpers import AGENT

from lifelong.checkpoint import restore_vec_normalize
from lifelong.pbt import PBT, LogUniform, Uniform
from lifelong.pbt.member import AgentSpec, make_env, prepare_model

SPACE = {"learning_rate": LogUniform(1e-4, 3e-3), "ent_coef": Uniform(0.0, 0.02)}
SETTINGS = dict(space=SPACE, population_size=3, interval_steps=64, total_steps=192, truncation=0.25,
                eval_episodes=1, workers=2, seed=1, keep_checkpoints=None)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _run_corrupting(workdir, how):
    """Run the population; when the exploit at 128 is decided, damage the checkpoint(s) of the
    member that is neither donor nor recipient (it loads its own checkpoint next)."""
    victim = {}

    def on_event(event):
        if event["event"] == "exploit" and event["step"] == 128:
            (m,) = {"member_0", "member_1", "member_2"} - {event["donor"], event["recipient"]}
            victim["member"] = m
            folder = workdir / "members" / m
            _flip(folder / "step_000000128.zip")
            if how == "all":
                _truncate(folder / "step_000000064.zip")

    result = PBT(agent=AGENT, workdir=workdir, **SETTINGS).run(callback=on_event)
    rows = [json.loads(x) for x in (workdir / "intervals.jsonl").read_text().splitlines()]
    return result, victim["member"], rows


def test_corrupt_checkpoint_falls_back_to_the_previous_valid_one(tmp_path):
    result, m, rows = _run_corrupting(tmp_path, "latest")
    (event,) = [e for e in result.lineage if e["event"] in ("fallback", "reseed")]
    assert event["event"] == "fallback" and event["member"] == m and event["step"] == 128
    assert event["corrupt_checkpoint"] == f"members/{m}/step_000000128.zip"
    assert event["checkpoint"] == f"members/{m}/step_000000064.zip" and event["checkpoint_step"] == 64
    assert str(tmp_path / "members" / m / "step_000000128.zip") in event["error"]  # CheckpointError names the file
    assert (tmp_path / "members" / m / "step_000000128.zip.corrupt").is_file()
    assert not result.restarts  # not retried max_restarts times
    (row,) = [r for r in rows if r["member"] == m and r["step"] == 192]
    assert row["started_from"] == event["checkpoint"]
    assert row["num_timesteps"] == 128  # 64 from the fallback checkpoint + one interval
    assert all(x.step == 192 for x in result.members)


def test_member_without_a_valid_checkpoint_is_reseeded_from_the_best(tmp_path):
    result, m, rows = _run_corrupting(tmp_path, "all")
    (event,) = [e for e in result.lineage if e["event"] in ("fallback", "reseed")]
    assert event["event"] == "reseed" and event["member"] == m
    assert [c["file"] for c in event["also_corrupt"]] == [f"members/{m}/step_000000064.zip"]
    at_128 = {r["member"]: r["score"] for r in rows if r["step"] == 128 and r["member"] != m}
    assert event["donor"] == max(at_128, key=at_128.get) and event["donor_score"] == at_128[event["donor"]]
    assert (tmp_path / event["checkpoint"]).read_bytes() == (tmp_path / event["donor_checkpoint"]).read_bytes()
    (row,) = [r for r in rows if r["member"] == m and r["step"] == 192]
    assert row["started_from"] == event["checkpoint"] and row["config"] == event["new_config"]
    assert not result.restarts and all(x.step == 192 for x in result.members)


def test_vecnormalize_statistics_move_with_the_exploit(tmp_path):
    agent = dict(AGENT, n_steps=32, normalize=True, n_envs=[1, 2])  # members of different n_envs exploit each other
    pbt = PBT(agent=agent, workdir=tmp_path, **dict(SETTINGS, population_size=2, truncation=0.5, total_steps=128))
    result = pbt.run()
    (e,) = result.exploits
    spec = AgentSpec.from_agent(agent)
    donor = restore_vec_normalize(tmp_path / e["donor_checkpoint"], make_env(spec, seed=0))
    copied = restore_vec_normalize(tmp_path / e["checkpoint"], make_env(spec, seed=0))
    for a, b in ((donor.obs_rms, copied.obs_rms), (donor.ret_rms, copied.ret_rms)):
        assert (a.mean == b.mean).all() and (a.var == b.var).all() and a.count == b.count
    assert donor.obs_rms.count > 64  # statistics were gathered, not the fresh ones
    # The recipient, built as the worker builds it, carries the donor's statistics ...
    model = prepare_model(spec, e["new_config"], checkpoint=tmp_path / e["checkpoint"], env=make_env(spec, seed=0), seed=0)
    live = model.get_vec_normalize_env()
    assert (live.obs_rms.mean == donor.obs_rms.mean).all() and live.obs_rms.count == donor.obs_rms.count
    # ... and its next interval went on from them: the fresh env's first observations (one per
    # env copy) and 64 env steps on top of the donor's count (fresh statistics: 1e-4 + 64 + n).
    recipient = next(x for x in result.members if x.id == e["recipient"])
    n = spec.n_envs_of(int(recipient.id.split("_")[1]))
    after = restore_vec_normalize(recipient.checkpoint, make_env(spec, seed=0))
    assert after.obs_rms.count == pytest.approx(donor.obs_rms.count + 64 + n)
