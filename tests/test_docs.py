"""Every Python snippet of README.md and docs/*.md runs.

The snippets of one file run in order in one namespace (a later snippet may use what an earlier
one defined), as ``__main__``, in a temporary working directory (what they write lands there).

Training budgets are shrunk so that this stays fast: while a snippet runs, every ``learn(N)`` of
an on-policy agent (lifelong's and Stable-Baselines3's) trains at most ``LIFELONG_DOCS_STEPS``
steps (default 256) or one rollout, a DistributionalPPO or PPO collects rollouts of at most that
many steps per env (``n_steps``, and ``batch_size`` at most as large), and a ``PBT(...)`` gets
``interval_steps`` of one rollout, two intervals, two members (``population_size=2``,
``workers=2``) and 2 evaluation episodes.
``LIFELONG_DOCS_STEPS=0`` runs the snippets with the budgets they are written with.
"""
from __future__ import annotations

import functools
import inspect
import os
import re
from pathlib import Path

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from lifelong import DistributionalPPO
from lifelong.pbt import PBT

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STEPS = int(os.environ.get("LIFELONG_DOCS_STEPS", "256"))
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def snippets(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block."""
    text = path.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in SNIPPET.finditer(text)]


def _shrink_budgets(monkeypatch) -> None:
    # every on-policy agent (PPO, DistributionalPPO, ...) trains through OnPolicyAlgorithm.learn
    learn = OnPolicyAlgorithm.learn

    @functools.wraps(learn)
    def small_learn(self, total_timesteps, *args, **kwargs):
        return learn(self, min(total_timesteps, max(STEPS, self.n_steps * self.n_envs)),
                     *args, **kwargs)

    monkeypatch.setattr(OnPolicyAlgorithm, "learn", small_learn)
    for cls in (DistributionalPPO, PPO):  # rollouts of at most STEPS steps per env
        monkeypatch.setattr(cls, "__init__", _small_rollouts(cls.__init__))

    init = PBT.__init__

    @functools.wraps(init)
    def small_pbt(self, *args, **kwargs):
        agent = dict(kwargs.get("agent") or {})
        interval = max(STEPS, agent.get("n_steps", 2048) * agent.get("n_envs", 1))
        kwargs.update(interval_steps=interval, total_steps=2 * interval, population_size=2,
                      workers=2, eval_episodes=2)
        init(self, *args, **kwargs)

    monkeypatch.setattr(PBT, "__init__", small_pbt)


def _small_rollouts(init):
    signature = inspect.signature(init)

    @functools.wraps(init)
    def small_init(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.arguments["n_steps"] > STEPS:
            bound.arguments["n_steps"] = STEPS
            bound.arguments["batch_size"] = min(bound.arguments["batch_size"], STEPS)
        init(*bound.args, **bound.kwargs)
    return small_init


@pytest.mark.parametrize("path", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_snippets_run(path, tmp_path, monkeypatch):
    found = snippets(path)
    if not found:
        pytest.skip("no Python snippet")
    monkeypatch.chdir(tmp_path)
    if STEPS:
        _shrink_budgets(monkeypatch)
    namespace = {"__name__": "__main__"}
    for line, code in found:
        try:
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)  # noqa: S102 - our docs
        except Exception as exc:
            raise AssertionError(f"{path.relative_to(ROOT)}, the snippet at line {line} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
