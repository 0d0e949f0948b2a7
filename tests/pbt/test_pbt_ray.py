"""PBT on Ray Tune (2 CPUs, a local Ray instance, no dashboard): the same small population.

One member's actor process kills itself once during the second interval; Tune must restart it
from its last checkpoint and the population must finish with the exploits recorded.
"""
import json

import pbt_helpers
import pytest
from pbt_helpers import AGENT, crashing_agent

# Every Ray test starts a Ray instance and, with synch=True, a new actor (a torch import) for
# most intervals: about 90 s at a load of 8 on 2 cores, several times that when the machine is
# saturated, hence more than the suite's default 300 s.
pytestmark = pytest.mark.timeout(900)

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


def test_ray_connects_to_the_given_address(tmp_path, monkeypatch):
    from lifelong.pbt import ray_backend

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_backend._init_ray(_make(tmp_path, ray_address="ray://head:10001").settings) is True
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    ray_backend._init_ray(_make(tmp_path).settings)
    monkeypatch.delenv("RAY_ADDRESS")
    ray_backend._init_ray(_make(tmp_path, workers=2).settings)
    assert calls[0]["address"] == "ray://head:10001"
    assert calls[1]["address"] == "10.0.0.1:6379"
    assert "address" not in calls[2] and calls[2]["num_cpus"] == 2 and calls[2]["include_dashboard"] is False
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    assert ray_backend._init_ray(_make(tmp_path).settings) is False  # an existing instance is used as is


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_ray_run_killed_midway_resumes_from_lifelong_state(tmp_path, mode):
    """SIGKILL the driver (and the Ray processes it started) once 3 intervals are recorded, then
    rerun: the population is rebuilt from state.json and the member checkpoints and finishes,
    with every member's interval recorded once per step."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = Path(__file__).with_name("ray_population_main.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]))
    workdir = tmp_path / "w"
    proc = subprocess.Popen([sys.executable, str(script), str(workdir), mode], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 420
    rows = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                rows = len(json.loads((workdir / "state.json").read_text())["history"])
            except (FileNotFoundError, ValueError):
                rows = 0
            if rows >= 3:
                break
            time.sleep(0.2)
    finally:
        _kill_session(proc.pid)  # as a crashed machine: the driver and every Ray process it started
        proc.wait()
    assert 3 <= rows < 10, f"the run was to be killed midway (recorded {rows} of 10 intervals)"
    before = json.loads((workdir / "state.json").read_text())
    done = subprocess.run([sys.executable, str(script), str(workdir), mode], env=env, capture_output=True,
                          text=True, timeout=700, start_new_session=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "finished [160, 160]" in done.stdout
    state = json.loads((workdir / "state.json").read_text())
    story = f"before the resume: {_story(before)}\nafter: {_story(state)}"
    rows = [(r["member"], r["step"], r["score"], r["started_from"]) for r in state["history"]]
    assert len(rows) == len(set(rows)), story  # no result recorded twice (what Tune's restore did)
    if mode == "sync":  # 2 members x 5 intervals, each once; async: a recipient takes its donor's step
        assert sorted((r["member"], r["step"]) for r in state["history"]) == [
            (f"member_{i}", s) for i in range(2) for s in (32, 64, 96, 128, 160)], story
    assert (workdir / "ray" / "population-1").is_dir()  # the rebuilt experiment
    for m in state["members"].values():
        assert m["step"] == 160 and (workdir / m["checkpoint"]).is_file()


def _kill_session(sid):
    """SIGKILL every process of session ``sid``: Ray's workers run in process groups of their own,
    so killing the driver's group would leave them training (and writing checkpoints)."""
    import os
    import signal

    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getsid(int(name)) == sid:
                    os.kill(int(name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # gone already, or not ours


def _story(state):
    """The rows and events of a state.json, one line each, for an assertion's message."""
    rows = [f"{r['member']}@{r['step']} from {r['started_from']} ({r.get('trial')})" for r in state["history"]]
    events = [f"{e['event']} {e.get('recipient', e.get('member'))}<-{e.get('donor')} at {e['step']}"
              for e in state["events"]]
    return "\n  " + "\n  ".join(rows + events)


def _real_checkpoint_bytes(tmp_path):
    from lifelong import DistributionalPPO
    from lifelong.checkpoint import save_model

    model = DistributionalPPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, seed=0, device="cpu")
    return save_model(model, tmp_path / "model.zip").read_bytes()


def _interrupted_sync_state(tmp_path, keep_checkpoints=2):
    """A synchronous 2-member Ray population interrupted after member_0 finished the interval
    64 -> 128 and member_1 had not: its files and rows written as the recorder writes them."""
    from lifelong.pbt.persistence import PopulationState
    from lifelong.pbt.retention import CheckpointRetention

    settings = PBT(agent=AGENT, space=SPACE, population_size=2, interval_steps=64, total_steps=320,
                   truncation=0.5, workdir=tmp_path, backend="ray", seed=0,
                   keep_checkpoints=keep_checkpoints).settings
    state = PopulationState.new(settings)
    retention = CheckpointRetention(settings)
    checkpoint = _real_checkpoint_bytes(tmp_path)  # a resume verifies the files it restarts from
    for member, step in (("member_0", 64), ("member_1", 64), ("member_0", 128)):
        s = state.members[member]
        file = tmp_path / "members" / member / f"step_{step:09d}.zip"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(checkpoint)
        state.history.append({"member": member, "step": step, "score": float(step), "config": dict(s["config"]),
                              "started_from": s["checkpoint"], "checkpoint": settings.rel(file)})
        s.update(step=step, checkpoint=settings.rel(file), score=float(step))
        retention.prune(state, [member])
    return state


def test_sync_resume_rolls_a_member_back_to_the_common_boundary(tmp_path):
    from lifelong.pbt.ray_backend import resume_plan

    state = _interrupted_sync_state(tmp_path)
    plan = resume_plan(state)
    assert plan["0"]["step"] == plan["1"]["step"] == 64
    assert plan["0"]["checkpoint"] == str((tmp_path / "members/member_0/step_000000064.zip").resolve())
    assert [(r["member"], r["step"]) for r in state.history] == [("member_0", 64), ("member_1", 64)]
    assert state.members["member_0"]["score"] == 64.0  # its score at the boundary


def test_retention_keeps_the_checkpoint_a_sync_resume_rolls_back_to(tmp_path):
    """keep_checkpoints=1 keeps only the newest file, but member_0 (ahead of member_1) still
    needs the one its latest interval started from."""
    from lifelong.pbt.ray_backend import resume_plan

    state = _interrupted_sync_state(tmp_path, keep_checkpoints=1)
    assert (tmp_path / "members/member_0/step_000000064.zip").is_file()
    assert resume_plan(state)["0"]["step"] == 64


def test_sync_resume_without_the_rollback_checkpoint_is_a_clear_error(tmp_path):
    from lifelong.pbt.errors import PBTError
    from lifelong.pbt.ray_backend import resume_plan

    state = _interrupted_sync_state(tmp_path)
    (tmp_path / "members/member_0/step_000000064.zip").unlink()
    with pytest.raises(PBTError, match=r"member_0 is at step 128, past the boundary 64.*step_000000064\.zip"):
        resume_plan(state)


def test_recorder_records_each_result_once_whoever_reports_it(tmp_path):
    """The scheduler and Tune's callbacks may both report a result (a stop result reaches only
    the callbacks): each is recorded once, even after an exploit moved the member on."""
    from types import SimpleNamespace

    from lifelong.pbt.persistence import PopulationState
    from lifelong.pbt.ray_backend import MEMBER_KEY, _Recorder

    settings = _make(tmp_path).settings
    recorder = _Recorder(settings, PopulationState.new(settings), emit=lambda event: None)
    trial = SimpleNamespace(config={MEMBER_KEY: 1}, trial_id="t1")
    file = tmp_path / "members/member_1/step_000000128.zip"
    result = {"lifelong_step": 128, settings.metric: 9.0, "lifelong_checkpoint": str(file),
              "lifelong_config": {}, "lifelong_result_id": "a"}
    recorder.interval(trial, result)
    recorder.state.members["member_1"]["checkpoint"] = "members/member_1/exploit_000000128_from_member_0.zip"
    recorder.interval(trial, dict(result))  # the callback's copy, after the exploit
    assert [(r["member"], r["step"]) for r in recorder.state.history] == [("member_1", 128)]
    recorder.interval(trial, {**result, "lifelong_step": 256, "lifelong_result_id": "b",
                              "lifelong_checkpoint": str(file.with_name("step_000000256.zip"))})
    assert [r["step"] for r in recorder.state.history] == [128, 256]


def test_a_donor_being_saved_for_its_pause_is_exploited_from_that_save(tmp_path):
    """Tune's PBT schedules a second save of an upper-quantile trial that is still RUNNING; when
    the trial is already saving for its pause, executing the pause drops that second save's
    result, Tune's checkpoint index does not advance, and the donor's next save overwrites the
    directory the recipient restores (seen in CI: a recipient skipped an interval). The scheduler
    uses the save in flight instead, and schedules none."""
    from types import SimpleNamespace

    from ray.train._internal.session import _FutureTrainingResult
    from ray.tune.experiment import Trial
    from ray.tune.schedulers.pbt import _PBTTrialState

    from lifelong.pbt.ray_backend import LifelongPBTScheduler

    scheduler = LifelongPBTScheduler(settings=_make(tmp_path).settings)
    in_flight = _FutureTrainingResult(None)
    class RunningTrial:  # the attributes the scheduler reads; hashable, as Tune's trials are
        status, trial_id, experiment_tag = Trial.RUNNING, "d", "0"
        config = {"lifelong_member": 0}
        temporary_state = SimpleNamespace(saving_to=in_flight)

    donor = RunningTrial()
    scheduler._trial_state[donor] = _PBTTrialState(donor)
    saves = []
    controller = SimpleNamespace(_schedule_trial_save=lambda trial, result=None: saves.append(trial))
    scheduler._checkpoint_or_exploit(donor, controller, [donor], [])
    assert scheduler._trial_state[donor].last_checkpoint is in_flight and saves == []


def _resumable_state_with_real_checkpoints(tmp_path, synchronous):
    """A 2-member Ray population stopped with both members at step 128, every member file a real
    checkpoint (member_0: steps 64 and 128; member_1: step 128), as the recorder writes them."""
    from lifelong.pbt.persistence import PopulationState

    settings = PBT(agent=AGENT, space=SPACE, population_size=2, interval_steps=64, total_steps=320,
                   truncation=0.5, workdir=tmp_path, backend="ray", seed=0, synchronous=synchronous).settings
    state = PopulationState.new(settings)
    checkpoint = _real_checkpoint_bytes(tmp_path)
    for member, step in (("member_0", 64), ("member_1", 64), ("member_0", 128), ("member_1", 128)):
        s = state.members[member]
        file = tmp_path / "members" / member / f"step_{step:09d}.zip"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(checkpoint)
        state.history.append({"member": member, "step": step, "score": float(step) + s["index"],
                              "config": dict(s["config"]), "started_from": s["checkpoint"],
                              "checkpoint": settings.rel(file)})
        s.update(step=step, checkpoint=settings.rel(file), score=float(step) + s["index"])
    (tmp_path / "members" / "member_1" / "step_000000064.zip").unlink()  # retention kept one file
    return state


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("synchronous", [True, False], ids=["sync", "async"])
def test_resume_falls_back_from_a_corrupt_checkpoint_to_the_previous_valid_one(tmp_path, synchronous):
    """A checkpoint a resumed Ray member would restart from is verified first: a corrupt one is
    renamed ``*.corrupt`` and the member restarts from its newest valid file at its own step
    (as the local backend does), with a ``"fallback"`` event; before, Tune retried the trial
    max_restarts times on the same bytes and the run failed."""
    from lifelong.pbt.ray_backend import resume_plan

    state = _resumable_state_with_real_checkpoints(tmp_path, synchronous)
    bad = tmp_path / "members/member_0/step_000000128.zip"
    _flip_byte(bad)
    plan = resume_plan(state)
    good = (tmp_path / "members/member_0/step_000000064.zip").resolve()
    assert plan["0"] == {"step": 128, "checkpoint": str(good), "config": state.members["member_0"]["config"]}
    assert plan["1"]["checkpoint"] == str((tmp_path / "members/member_1/step_000000128.zip").resolve())
    (event,) = state.events
    assert event["event"] == "fallback" and event["member"] == "member_0" and event["step"] == 128
    assert event["corrupt_checkpoint"] == "members/member_0/step_000000128.zip"
    assert event["checkpoint"] == "members/member_0/step_000000064.zip" and event["checkpoint_step"] == 64
    assert str(bad) in event["error"]  # the CheckpointError names the file
    assert not bad.exists() and bad.with_name(bad.name + ".corrupt").is_file()


def test_resume_reseeds_a_member_without_a_valid_checkpoint_from_the_best(tmp_path):
    from lifelong.pbt.ray_backend import resume_plan

    state = _resumable_state_with_real_checkpoints(tmp_path, synchronous=True)
    for step in (64, 128):
        _flip_byte(tmp_path / f"members/member_0/step_{step:09d}.zip")
    donor_config = dict(state.members["member_1"]["config"])
    plan = resume_plan(state)
    (event,) = state.events
    assert event["event"] == "reseed" and event["donor"] == "member_1" and event["donor_score"] == 129.0
    assert [c["file"] for c in event["also_corrupt"]] == ["members/member_0/step_000000064.zip"]
    copy = tmp_path / "members/member_0/reseed_000000128_from_member_1.zip"
    assert copy.read_bytes() == (tmp_path / "members/member_1/step_000000128.zip").read_bytes()
    assert plan["0"] == {"step": 128, "checkpoint": str(copy.resolve()), "config": donor_config}
