"""The `lifelong` command end to end (subprocesses on tiny budgets) and its bad inputs."""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--timesteps", "256", "--set", "agent.n_steps=64", "--set", "agent.batch_size=32",
        "--set", "agent.n_epochs=1", "--set", "eval_episodes=2", "--eval-every", "128",
        "--checkpoint-every", "128", "--set", "agent.policy_kwargs={net_arch: [16]}",
        "--set", "agent.n_quantiles=8", "--set", "agent.vgs=true", "--no-progress"]


SCRIPT = Path(sys.executable).parent / "lifelong"  # the console script of pyproject.toml
COMMAND = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "lifelong.cli"]


def lifelong(*args, cwd=None, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([*COMMAND, *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = ok(lifelong("train", "CartPole-v1", "--out", out, "--seed", "1", *TINY))
    return out, proc


def test_train_makes_a_run_directory(run):
    out, proc = run
    for name in ("config.yaml", "metrics.csv", "evals.csv", "summary.json", "best_model.zip"):
        assert (out / name).is_file(), name
    ckpts = sorted((out / "checkpoints").glob("*.zip"))
    assert 1 <= len(ckpts) <= 3
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and "time/total_timesteps" in rows[0]
    for key in ("rollout/ep_rew_mean", "eval/mean_reward", "eval/std_reward", "train/vgs_factor",
                "train/quantile_spread", "train/value_loss"):
        assert key in rows[0], key
    assert "train/upgd_gate_mean" not in rows[0]  # the default optimizer is Adam: no gate
    assert any(r["eval/mean_reward"] for r in rows)
    assert int(float(rows[-1]["time/total_timesteps"])) == 256
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_timesteps"] == 256 and summary["final_eval"]["episodes"] == 2
    # the final paragraph names where things are
    assert "final eval" in proc.stdout and str(out) in proc.stdout
    import yaml
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["env"] == "CartPole-v1" and cfg["seed"] == 1 and cfg["agent"]["n_steps"] == 64


def test_eval(run):
    out, _ = run
    proc = ok(lifelong("eval", out / "best_model.zip", "--episodes", "2", "--stochastic"))
    assert "mean return" in proc.stdout and "over 2 episodes (stochastic)" in proc.stdout


def test_resume_continues_counters(run):
    out, _ = run
    before = len(list(csv.DictReader(open(out / "metrics.csv"))))
    ok(lifelong("resume", out, "--timesteps", "128", "--no-progress"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_timesteps"] == 384 and summary["steps_this_session"] == 128
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) > before
    steps = [int(float(r["time/total_timesteps"])) for r in rows if r["time/total_timesteps"]]
    assert steps == sorted(steps) and steps[-1] == 384
    n_updates = [float(r["train/n_updates"]) for r in rows if r.get("train/n_updates")]
    assert n_updates == sorted(n_updates)  # the update counter was not reset
    assert len(list((out / "checkpoints").glob("*.zip"))) <= 3
    import yaml
    assert yaml.safe_load((out / "config.yaml").read_text())["timesteps"] == 384


def test_resume_of_a_finished_run(main, run):
    out, _ = run
    # nothing left to do without --timesteps: one clear line
    one_line_error(main("resume", out), "already trained")


def test_report_draws_pngs(run):
    out, _ = run
    proc = ok(lifelong("report", out))
    import matplotlib.image as mpimg
    pngs = [out / n for n in ("learning_curve.png", "critics.png", "vgs_upgd.png", "losses.png")]
    for p in pngs:
        assert p.is_file() and str(p) in proc.stdout
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img.std() > 0.01  # not a blank canvas
    md = (out / "report.md").read_text()
    assert "learning_curve.png" in md and "final evaluation" in md


# ------------------------------------------------------------------------------- bad inputs
def one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_bad_inputs_subprocess(tmp_path):
    # the installed entry point path: one line, exit 2, no traceback
    one_line_error(lifelong("train", "CartPol-v1", "--out", tmp_path / "x", "--timesteps", "1000"),
                   "unknown environment 'CartPol-v1'", "CartPole-v1")


@pytest.fixture
def main(capsys):
    from lifelong.cli import main as cli_main

    def call(*args):
        try:
            code = cli_main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return call


def test_unknown_env_lists_close_matches(main, tmp_path):
    line = one_line_error(main("train", "LunarLander-v9", "--out", tmp_path / "x"),
                          "unknown environment 'LunarLander-v9'")
    assert "LunarLander-v3" in line
    assert not (tmp_path / "x").exists()


def test_unknown_set_key(main, tmp_path):
    one_line_error(main("train", "CartPole-v1", "--set", "agent.n_stepz=5", "--out", tmp_path / "x"),
                   "agent.n_stepz: unknown key", "agent.n_steps")


def test_malformed_and_wrong_values(main, tmp_path):
    one_line_error(main("train", "CartPole-v1", "--set", "agent.policy_kwargs={net_arch: [64",
                        "--out", tmp_path / "x"), "malformed value")
    one_line_error(main("train", "CartPole-v1", "--set", "agent.n_steps=-3", "--out", tmp_path / "x"),
                   "agent.n_steps: expected a positive integer, got -3")
    one_line_error(main("train", "CartPole-v1", "--set", "n_steps", "--out", tmp_path / "x"),
                   "expected KEY=VALUE")


def test_negative_and_non_integer_timesteps(main):
    one_line_error(main("train", "CartPole-v1", "--timesteps", "-5"), "expected a positive integer, got -5")
    one_line_error(main("train", "CartPole-v1", "--timesteps", "ten"), "got 'ten'")
    one_line_error(main("resume", "somewhere", "--timesteps", "0"), "expected a positive integer, got 0")


def test_bad_config_file(main, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("agent:\n  gamma: 2\n")
    one_line_error(main("train", "CartPole-v1", "--config", f), "agent.gamma: expected a number in [0, 1], got 2")
    one_line_error(main("train", "CartPole-v1", "--config", tmp_path / "nope.yaml"), "no such file")
    one_line_error(main("train"), "no environment")


def test_missing_and_corrupted_checkpoints(main, run, tmp_path):
    one_line_error(main("eval", tmp_path / "missing.zip"), "checkpoint not found")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"this is not a checkpoint" * 10)
    one_line_error(main("eval", bad, "--env", "CartPole-v1"), str(bad))
    out, _ = run
    good = (out / "best_model.zip").read_bytes()
    trunc = tmp_path / "truncated.zip"
    trunc.write_bytes(good[: len(good) // 2])
    one_line_error(main("eval", trunc, "--env", "CartPole-v1"), str(trunc))
    lone = tmp_path / "lone.zip"
    lone.write_bytes(good)
    one_line_error(main("eval", lone), "pass --env")


def test_resume_of_a_non_run_directory(main, tmp_path):
    one_line_error(main("resume", tmp_path), "not a run directory")
    one_line_error(main("resume", tmp_path / "nowhere"), "no such run directory")
    d = tmp_path / "empty_run"
    d.mkdir()
    (d / "config.yaml").write_text("env: CartPole-v1\n")
    one_line_error(main("resume", d), "no valid checkpoint")


def test_out_holding_another_run_is_refused(main, run):
    out, _ = run
    one_line_error(main("train", "CartPole-v1", "--out", out), "already holds a run", "lifelong resume")


def test_report_of_a_non_run(main, tmp_path):
    one_line_error(main("report", tmp_path), "neither a run directory")


def test_debug_shows_the_traceback(main, tmp_path):
    proc = main("--debug", "resume", tmp_path)
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    proc = main("resume", tmp_path, "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_threads_option():
    from lifelong.cli import build_parser
    args = build_parser().parse_args(["report", "x"])
    assert not hasattr(args, "threads")  # main() then uses 1
    assert build_parser().parse_args(["report", "x", "--threads", "2"]).threads == 2


def test_threads_must_be_positive(main, tmp_path):
    one_line_error(main("--threads", "0", "report", tmp_path), "--threads")


def test_stop_at_reward(main, tmp_path):
    out = tmp_path / "stop"
    proc = main("train", "CartPole-v1", "--out", out, *TINY, "--set", "stop_at_reward=0")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_at_reward"] == 0.0
    assert summary["num_timesteps"] < 256  # stopped after the first evaluation (at 128 steps)
    assert re.search(r"stopped +early: stop_at_reward = 0 reached", proc.stdout)
    rows = list(csv.DictReader(open(out / "evals.csv")))
    assert len(rows) == 1


def test_a_config_the_agent_rejects_leaves_no_run(main, tmp_path):
    out = tmp_path / "x"
    one_line_error(main("train", "CartPole-v1", "--out", out, "--set", "agent.optimizer_kwargs={lr: 0.002}",
                        "--set", "agent.learning_rate=0.001"), "agent:")
    assert not out.exists()


def test_optimizer_groups_the_policy_does_not_have_are_one_line(main, tmp_path):
    out = tmp_path / "x"
    one_line_error(main("train", "CartPole-v1", "--out", out, "--set", "agent.optimizer_groups={'actor.*': {eps: 0.001}}"),
                   "agent: optimizer_groups: pattern 'actor.*' matches no parameter of the policy; its parameters are")
    assert not out.exists()


def test_resume_skips_a_corrupted_newest_checkpoint(main, run, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(run[0], out)
    ckpts = sorted((out / "checkpoints").glob("*.zip"))
    newest, previous = ckpts[-1], ckpts[-2]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    proc = main("resume", out, "--timesteps", "64", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    warning = [l for l in proc.stderr.splitlines() if "warning" in l]
    assert len(warning) == 1 and "skipping corrupted checkpoint" in warning[0] and newest.name in warning[0]
    step = int(previous.stem.split("_")[1])
    assert json.loads((out / "summary.json").read_text())["num_timesteps"] == step + 64


def test_eval_records_video(main, run, tmp_path):
    out, _ = run
    proc = main("eval", out / "best_model.zip", "--episodes", "1", "--video", tmp_path / "vid")
    assert proc.returncode == 0, proc.stderr
    files = list((tmp_path / "vid").glob("*.gif")) + list((tmp_path / "vid").glob("*.mp4"))
    assert len(files) == 1 and files[0].stat().st_size > 1000
    assert "videos" in proc.stdout
