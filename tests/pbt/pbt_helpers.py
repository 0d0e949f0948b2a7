"""Shared setup of the PBT population tests (local and Ray backends): a small CartPole agent whose
env kills its process once, so that a member has to be restarted from its last checkpoint."""
import functools
import os
from pathlib import Path

import gymnasium as gym

AGENT = {"env": "CartPole-v1", "n_steps": 64, "batch_size": 32, "n_epochs": 2, "device": "cpu", "vgs": True,
         "optimizer": "adaptive_upgd"}  # the UPGD family: the search spaces include sigma
CRASH_CODE = 17


class _CrashOnce(gym.Wrapper):
    """Kills its process (as SIGKILL or an OOM would: no exception, no cleanup) at the 50th step
    of an env made after ``trigger`` exists, once per ``marker``."""

    def __init__(self, env, marker, trigger):
        super().__init__(env)
        self._armed = Path(trigger).exists() and Path(trigger).stat().st_size > 0
        self._marker = marker
        self._steps = 0

    def step(self, action):
        self._steps += 1
        if self._armed and self._steps == 50:
            try:
                fd = os.open(self._marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                self._armed = False
            else:
                os.close(fd)
                os._exit(CRASH_CODE)
        return self.env.step(action)


def crashing_cartpole(marker, trigger, **kwargs):
    return _CrashOnce(gym.make("CartPole-v1", **kwargs), marker, trigger)


def crashing_agent(workdir):
    """``AGENT`` training on a CartPole that kills its process once (armed when ``workdir``'s
    ``lineage.jsonl`` is non-empty; the marker lies beside ``workdir``), evaluated on CartPole."""
    marker = workdir.parent / f"{workdir.name}_crashed"
    return dict(
        AGENT,
        env=functools.partial(crashing_cartpole, marker=str(marker), trigger=str(workdir / "lineage.jsonl")),
        eval_env="CartPole-v1",
    )
