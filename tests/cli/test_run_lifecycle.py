"""How a run ends and continues: why it stopped, what config.yaml records, ``resume --set``,
and evaluation that follows a non-stationary training env's phase."""
import csv
import json
import re

import pytest
import yaml

from lifelong.cli.main import main

SMALL = ["--set", "agent.n_steps=32", "--set", "agent.batch_size=32", "--set", "agent.n_epochs=1",
         "--set", "n_envs=2", "--set", "eval_every=64", "--set", "eval_episodes=2", "--no-progress"]


def _config(out):
    return yaml.safe_load((out / "config.yaml").read_text())


def test_a_stop_at_reward_says_why_keeps_one_boundary_checkpoint_and_records_the_steps(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "CartPole-v1", "--out", str(out), "--timesteps", "256", *SMALL,
                 "--set", "stop_at_reward=0"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"stopped +early: stop_at_reward = 0 reached \(the evaluation at step 64", text)
    # one checkpoint, at the update boundary the evaluation ran at (not a mid-rollout duplicate)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["ckpt_000000000064.zip"]
    assert _config(out)["timesteps"] == 64
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_timesteps"] == 64 and summary["stop_reason"].startswith("early")
    # nothing left to do until asked; then --set lifts the threshold for this and later sessions
    assert main(["resume", str(out), "--no-progress"]) == 2
    assert "already trained 64 of 64 steps" in capsys.readouterr().err
    assert main(["resume", str(out), "--timesteps", "100", "--set", "stop_at_reward=null",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "target of 164 steps reached (learn runs whole rollouts of 64 steps)" in text
    config = _config(out)
    assert config["timesteps"] == 192 and config["stop_at_reward"] is None


@pytest.mark.parametrize("key", ["agent.n_steps=8", "seed=3", "env=Acrobot-v1", "pbt.workers=2"])
def test_resume_set_refuses_what_the_checkpoint_or_env_defines(tmp_path, capsys, key):
    out = tmp_path / "run"
    assert main(["train", "CartPole-v1", "--out", str(out), "--timesteps", "64", *SMALL]) == 0
    capsys.readouterr()
    assert main(["resume", str(out), "--timesteps", "64", "--set", key]) == 2
    err = capsys.readouterr().err
    assert f"--set {key.partition('=')[0]}: lifelong resume cannot change it" in err


def test_evaluation_follows_the_training_phase_and_can_cover_every_phase(tmp_path):
    out = tmp_path / "ns"
    assert main(["train", "lifelong/PermutedActionsCartPole-v0", "--out", str(out),
                 "--timesteps", "256", *SMALL, "--set", "env_kwargs.every_steps=32",
                 "--set", "eval_phases=all"]) == 0
    with open(out / "evals.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # 2 copies step in lockstep: after N total steps each has taken N/2, phase (N/2) // 32
    assert [(int(r["step"]), int(r["phase"])) for r in rows] == [(64, 1), (128, 2), (192, 3), (256, 4)]
    for r in rows:
        returns = [float(x) for x in r["phase_returns"].split()]
        assert len(returns) == int(r["phase"]) + 1
        assert returns[-1] == pytest.approx(float(r["mean_reward"]), rel=1e-5)
    # phases 0, 2, 4 are the original labels and 1, 3 the swapped ones (two actions alternate)
    last = [float(x) for x in rows[-1]["phase_returns"].split()]
    assert last[0] == last[2] == last[4] and last[1] == last[3]


def test_a_resumed_run_continues_its_task_stream_and_eval_shows_the_checkpoints_phase(tmp_path, capsys):
    """``lifelong resume`` (a new env in a new session) continues the task sequence where the
    checkpoint was, not from phase 0; ``lifelong eval`` evaluates the checkpoint's phase."""
    out = tmp_path / "ns"
    assert main(["train", "lifelong/PermutedActionsCartPole-v0", "--out", str(out), "--timesteps", "128",
                 *SMALL, "--set", "env_kwargs.every_steps=32"]) == 0
    assert main(["resume", str(out), "--timesteps", "128", "--no-progress"]) == 0
    with open(out / "evals.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # each of the 2 copies takes N/2 steps of the N in total: phase (N/2) // 32, across the resume
    assert [(int(r["step"]), int(r["phase"])) for r in rows] == [(64, 1), (128, 2), (192, 3), (256, 4)]
    capsys.readouterr()
    assert main(["eval", str(out / "checkpoints" / "ckpt_000000000128.zip"), "--episodes", "2"]) == 0
    assert "(128 steps, phase 2): mean return" in capsys.readouterr().out


def test_compile_step_reaches_the_agent_in_train_and_every_resumed_session(tmp_path, capsys, monkeypatch):
    from lifelong.agent import closed_form

    calls = []
    compiled = closed_form.compiled_minibatch_step
    monkeypatch.setattr(closed_form, "compiled_minibatch_step", lambda *a: calls.append(1) or compiled(*a))
    out = tmp_path / "run"
    # minibatches of 20, the shape tests/agent/test_closed_form.py compiles: one graph per process
    small = ["--set", "agent.n_steps=40", "--set", "agent.batch_size=20", "--set", "agent.n_epochs=1",
             "--set", "n_envs=2", "--set", "eval_every=80", "--set", "eval_episodes=2", "--no-progress"]
    assert main(["train", "CartPole-v1", "--out", str(out), "--timesteps", "80", *small,
                 "--set", "compile_step=true"]) == 0
    assert _config(out)["compile_step"] is True and len(calls) == 4
    assert main(["resume", str(out), "--timesteps", "80", "--no-progress"]) == 0
    assert len(calls) == 8  # the run's config carries the switch (checkpoints do not hold it)
    assert main(["resume", str(out), "--timesteps", "80", "--set", "compile_step=false", "--no-progress"]) == 0
    assert len(calls) == 8
    capsys.readouterr()
    recurrent = tmp_path / "recurrent"
    assert main(["train", "CartPole-v1", "--out", str(recurrent), "--timesteps", "80", *small,
                 "--set", "algo=recurrent_ppo", "--set", "compile_step=true"]) == 2
    assert "compile_step: true applies to algo: ppo, not recurrent_ppo" in capsys.readouterr().err
    assert not recurrent.exists()
