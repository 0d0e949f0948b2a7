"""SIGINT and SIGTERM during `lifelong train`: real subprocesses, real signals. The run stops,
completes a verified checkpoint (a storm of further signals during the save changes nothing),
prints where it is with no traceback, exits 130 / 143, and resumes."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lifelong.checkpoint import CheckpointManager, verify

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "lifelong"
COMMAND = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "lifelong.cli"]
LONG = ["--timesteps", "10000000", "--set", "agent.n_steps=64", "--set", "agent.batch_size=64",
        "--set", "agent.n_epochs=1", "--set", "agent.policy_kwargs={net_arch: [16]}",
        "--set", "agent.n_quantiles=8", "--eval-every", "0", "--checkpoint-every", "0", "--no-progress"]


def start(out: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([*COMMAND, "train", "CartPole-v1", "--out", str(out), "--seed", "0", *LONG],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()  # "run directory: ..." once the agent is built and training starts
    assert line.startswith("run directory"), line + proc.stderr.read()
    return proc


def test_sigint_storm_and_sigterm_leave_verified_resumable_checkpoints(tmp_path):
    from lifelong.cli.main import main

    runs = {signal.SIGINT: tmp_path / "int", signal.SIGTERM: tmp_path / "term"}
    procs = {sig: start(out) for sig, out in runs.items()}  # both run at once (two cores)
    time.sleep(0.5)  # training has started (or is about to: then it stops at its first step)
    for sig, proc in procs.items():
        proc.send_signal(sig)
    deadline = time.time() + 0.3  # a double Ctrl-C and then some: signals during the save
    while time.time() < deadline:
        procs[signal.SIGINT].send_signal(signal.SIGINT)
        procs[signal.SIGTERM].send_signal(signal.SIGTERM)
        time.sleep(0.002)
    for sig, proc in procs.items():
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, (sig, proc.returncode, err)
        assert "Traceback" not in err and "internal error" not in err, err
        assert f"stopped by {signal.Signals(sig).name}" in err and "saved and verified" in err, err
        manager = CheckpointManager(runs[sig] / "checkpoints")
        paths = manager.paths()
        assert len(paths) == 1 and str(paths[0]) in err, (paths, err)
        verify(paths[0])
        assert not list(manager.directory.glob(".*.tmp"))
    step = int(CheckpointManager(runs[signal.SIGINT] / "checkpoints").paths()[0].stem.split("_")[1])
    assert step > 0
    assert main(["resume", str(runs[signal.SIGINT]), "--timesteps", "64", "--no-progress"]) == 0
