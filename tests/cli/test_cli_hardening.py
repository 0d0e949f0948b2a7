"""The CLI on the inputs of the hardening issue: one line, exit 2, never a traceback or an
"internal error"; logs consistent after a kill and a resume; corrupt checkpoints set aside."""
import csv
import sys

import pytest

from lifelong.checkpoint import CheckpointManager, read_archive, write_archive
from lifelong.cli.main import main

TINY = ["--timesteps", "512", "--set", "agent.n_steps=64", "--set", "agent.batch_size=64",
        "--set", "agent.n_epochs=1", "--set", "eval_episodes=1", "--eval-every", "128",
        "--checkpoint-every", "128", "--set", "keep_checkpoints=5", "--set", "agent.policy_kwargs={net_arch: [8]}",
        "--set", "agent.n_quantiles=4", "--no-progress"]


def one_line_error(capsys, code, argv, expected):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["--set", "n_envs=100000000"], "n_envs: expected a positive integer, at most 4,096, got 100000000"),
    (["--set", "agent.n_steps=1e10"], "agent.n_steps: expected a positive integer, at most 1,048,576"),
    (["--set", "agent.batch_size=1e12"], "agent.batch_size: expected an integer >= 2, at most 16,777,216"),
    (["--timesteps", "10000000000000"], "timesteps: expected a positive integer, at most 1,000,000,000,000"),
    (["--set", "agent.policy_kwargs={net_arch: [1000000]}"], "net_arch[0]: expected a positive integer, at most 65,536"),
    (["--set", "agent.n_quantiles=100000"], "agent.n_quantiles: expected a positive integer, at most 4,096"),
    (["--set", "agent.policy_kwargs={net_arch: [65536, 65536, 65536]}"], "more than the"),
])
def test_sizes_beyond_bounds_or_memory_are_one_line(tmp_path, capsys, argv, expected):
    one_line_error(capsys, 2, ["train", "CartPole-v1", "--out", str(tmp_path / "r"), *argv], expected)
    assert not (tmp_path / "r").exists()


def test_duplicate_yaml_keys_are_refused(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("env: CartPole-v1\nagent:\n  n_steps: 64\n  gamma: 0.9\n  n_steps: 128\n")
    one_line_error(capsys, 2, ["train", "--config", str(config), "--out", str(tmp_path / "r")],
                   "duplicate key 'n_steps' (first on line 3, again on line 5)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hardening") / "run"
    assert main(["train", "CartPole-v1", "--out", str(out), "--seed", "0", *TINY]) == 0
    return out


def _steps(path, column):
    with open(path, newline="") as f:
        return [int(float(r[column])) for r in csv.DictReader(f)]


def test_resume_after_kill_truncates_logs_and_sets_aside_corrupt_checkpoints(run, capsys, tmp_path):
    """The state kill -9 leaves: metrics and evals logged after the newest checkpoint, a torn
    last row, and a newest checkpoint that is garbage. Resume sets the garbage aside (warning,
    *.corrupt), continues from the last good checkpoint, and the logs never repeat or run back."""
    import shutil

    work = tmp_path / "run"
    shutil.copytree(run, work)
    manager = CheckpointManager(work / "checkpoints")
    steps = [int(p.stem.split("_")[1]) for p in manager.paths()]
    assert steps == [128, 256, 384, 512]
    for p in manager.paths()[2:]:
        p.unlink()  # killed before these were written: the logs run ahead of the checkpoints
    manager.path_for(384).write_bytes(b"PK\x03\x04" + b"[" * 200_000)  # a torn file
    state = read_archive(manager.path_for(256))  # and a newest one that verifies but cannot load
    state["model.json"]["constructor_kwargs"]["n_steps"] = 10**10
    write_archive(manager.path_for(512), state)
    assert max(_steps(work / "metrics.csv", "time/total_timesteps")) == 512
    with open(work / "metrics.csv", "a") as f:
        f.write("0.1,2,")  # a torn row
    capsys.readouterr()
    assert main(["resume", str(work), "--timesteps", "128", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    for step in (384, 512):
        assert f"renamed to ckpt_{step:012d}.zip.corrupt" in err, err
        assert (work / "checkpoints" / f"ckpt_{step:012d}.zip.corrupt").is_file()
    metrics = _steps(work / "metrics.csv", "time/total_timesteps")
    evals = _steps(work / "evals.csv", "step")
    assert metrics == sorted(set(metrics)) and metrics[-1] == 384, metrics
    assert evals == sorted(set(evals)) and evals[-1] == 384, evals
    # TensorBoard too: the killed session's events after step 256 are purged from its view
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(work / "tb"))
    events.Reload()
    tb_steps = [e.step for e in events.Scalars("train/learning_rate")]
    assert tb_steps == sorted(set(tb_steps)) and tb_steps[-1] == 384, tb_steps


def test_eval_video_without_pygame_is_one_line(run, capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pygame", None)  # as if pygame were not installed
    one_line_error(capsys, 2, ["eval", str(run), "--video", str(tmp_path / "v"), "--episodes", "1"],
                   "pip install")


def test_eval_and_resume_on_crafted_checkpoints_are_one_line(run, capsys, tmp_path):
    bad = tmp_path / "nested.zip"
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b"[" * 200_000)
    bad.write_bytes(buf.getvalue())
    one_line_error(capsys, 2, ["eval", str(bad), "--env", "CartPole-v1"], "nests JSON")
