"""A process SIGKILLed at random moments while saving never leaves an unloadable checkpoint."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from lifelong.checkpoint import archive

ATOMIC = os.path.join(os.path.dirname(archive.__file__), "atomic.py")

# The child imports only the standard-library atomic writer (by file path: no torch import, so
# each repetition starts in milliseconds) and saves prepared checkpoint bytes in a loop, exactly
# as save_model does after packing: write_atomic(path, bytes).
CHILD = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("atomic", sys.argv[1])
    atomic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(atomic)
    target, versions = sys.argv[2], sys.argv[3:]
    blobs = [open(v, "rb").read() for v in versions]
    print("ready", flush=True)
    i = 0
    while True:
        atomic.write_atomic(target, blobs[i % len(blobs)])
        i += 1
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_during_save_always_leaves_a_loadable_checkpoint(tmp_path):
    rng = random.Random(0)
    versions = []
    for i, size in enumerate((1_000, 300_000, 2_000_000)):  # small, medium and large checkpoints
        blob = archive.pack({"meta.json": {"version": i}, "weights.pt": {"w": torch.full((size,), float(i))}})
        version_path = tmp_path / f"v{i}.bin"
        version_path.write_bytes(blob)
        versions.append(str(version_path))
    target = tmp_path / "ckpt.zip"
    target.write_bytes((tmp_path / "v0.bin").read_bytes())

    repetitions, torn_writes = 12, 0
    for _ in range(repetitions):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, ATOMIC, str(target), *versions],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            assert child.stdout.readline().strip() == b"ready", child.stderr.read().decode()
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
            child.stderr.close()
        torn_writes += any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        state = archive.read_archive(target)  # raises CheckpointError if torn
        version = state["meta.json"]["version"]
        assert torch.all(state["weights.pt"]["w"] == float(version))
        for leftover in tmp_path.glob(".ckpt.zip.*.tmp"):
            leftover.unlink()
    # (torn_writes counts the kills that landed mid-write; the target loaded every time)
    print(f"{torn_writes}/{repetitions} kills interrupted a write")
