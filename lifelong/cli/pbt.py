"""``lifelong pbt CONFIG.yaml``: a PBT population from a YAML file, with a live member table.

The file holds the run keys (``env``, ``n_envs``, ``env_kwargs``, ``seed``), the agent settings
(``agent:``), the PBT settings (``pbt:``, the arguments of :class:`lifelong.pbt.PBT`) and the search
space (``space:``)::

    env: CartPole-v1
    agent: {n_steps: 128, batch_size: 64}
    pbt: {population_size: 4, interval_steps: 4096, total_steps: 40960, workdir: runs/pbt}
    space:
      learning_rate: {loguniform: [1.0e-4, 3.0e-3]}
      ent_coef: {uniform: [0.0, 0.02]}
      n_epochs: {choice: [4, 8, 10]}
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from lifelong.agent import DEFAULT_ALGO
from lifelong.cli.config import ConfigError, parse_space, resolve
from lifelong.cli.run_dir import agent_kwargs, check_env_id
from lifelong.pbt import PBT, Choice, IntUniform, LogUniform, PBTError, Uniform


def build_space(space_cfg: Mapping) -> dict:
    out = {}
    for name, (kind, args) in parse_space(space_cfg).items():
        try:
            if kind == "loguniform":
                out[name] = LogUniform(*args)
            elif kind == "uniform":
                out[name] = Uniform(*args)
            elif kind == "intuniform":
                out[name] = IntUniform(int(args[0]), int(args[1]))
            else:
                out[name] = Choice(args)
        except ValueError as exc:
            raise ConfigError(f"space.{name}: {exc}") from None
    return out


def build_pbt(config: Mapping, *, backend=None, workers=None, workdir=None, synchronous=None):
    """A :class:`lifelong.pbt.PBT` from a validated config (``sections=agent, pbt, space``)."""
    if not config.get("env"):
        raise ConfigError("env: the PBT file needs an env: (a Gymnasium id)")
    check_env_id(config["env"])
    if "space" not in config:
        raise ConfigError("space: missing; the search space, e.g. "
                          "space: {learning_rate: {loguniform: [1.0e-4, 3.0e-3]}}")
    settings = dict(config.get("pbt") or {})
    if "seed" not in settings and config.get("seed") is not None:
        settings["seed"] = config["seed"]
    if backend is not None:
        settings["backend"] = backend
    if workers is not None:
        settings["workers"] = workers
    if workdir is not None:
        settings["workdir"] = str(workdir)
    if synchronous is not None:
        settings["synchronous"] = synchronous
    if "perturb_factors" in settings:
        settings["perturb_factors"] = tuple(settings["perturb_factors"])
    agent = {"env": config["env"], "n_envs": config["n_envs"],
             "env_kwargs": dict(config.get("env_kwargs") or {}), **agent_kwargs(config)}
    agent.pop("device", None) if agent.get("device") == "auto" else None
    if config.get("algo", DEFAULT_ALGO) != DEFAULT_ALGO:
        agent["algo"] = config["algo"]
    if config.get("compile_step"):  # every member, built or loaded (lifelong.pbt.member)
        agent["compile_step"] = True
    if config.get("normalize_obs") or config.get("normalize_reward"):  # as `lifelong train`
        agent["normalize"] = {"norm_obs": bool(config.get("normalize_obs")),
                              "norm_reward": bool(config.get("normalize_reward"))}
        if config.get("normalize_reward"):  # discounted with the agent's gamma, as in train
            agent["normalize"]["gamma"] = config["agent"]["gamma"]
    space = build_space(config["space"])
    try:
        return PBT(agent=agent, space=space, **settings)
    except ValueError as exc:
        raise ConfigError(f"pbt: {exc}") from None
    except ImportError as exc:  # backend="ray" without ray
        raise ConfigError(f"pbt.backend: {exc}") from None


class LiveTable:
    """A rich table of the members (step, score, config, last event), refreshed on every event."""

    def __init__(self, pbt, live: bool = True):
        from rich.console import Console
        self.pbt = pbt
        self.members: dict[str, dict[str, Any]] = {
            m: {"step": 0, "score": None, "config": {}, "note": ""} for m in pbt.member_ids}
        self.t0 = time.time()
        self.exploits = 0
        self.console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 140)
        self.live = None
        if live and self.console.is_terminal:
            from rich.live import Live
            self.live = Live(self.table(), console=self.console, refresh_per_second=2,
                             transient=False)
        self.plain = live and self.live is None
        self.printed_final = False

    def table(self):
        from rich.table import Table
        t = Table(title=f"PBT · {self.pbt.population_size} members · "
                        f"{self.pbt.total_steps:,} steps each · {time.time() - self.t0:.0f}s · "
                        f"{self.exploits} exploits", title_justify="left")
        t.add_column("member")
        t.add_column("step", justify="right")
        t.add_column("score", justify="right")
        for name in self.pbt.names:
            t.add_column(name, justify="right")
        t.add_column("last exploit / restart")
        scored = [(m, s["score"]) for m, s in self.members.items()
                  if s["score"] is not None and math.isfinite(s["score"])]
        best = (max if self.pbt.mode == "max" else min)(scored, key=lambda x: x[1])[0] if scored else None
        for m, s in self.members.items():
            cfg = s["config"]
            t.add_row(f"[bold]{m}[/bold]" if m == best else m, f"{s['step']:,}",
                      "-" if s["score"] is None else f"{s['score']:.2f}",
                      *[_short(cfg.get(n)) for n in self.pbt.names], s["note"])
        return t

    def __call__(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind == "interval":
            m = self.members[event["member"]]
            m.update(step=event["step"], score=event["score"], config=event.get("config", {}))
        elif kind == "exploit":
            self.exploits += 1
            r = self.members[event["recipient"]]
            r["config"] = event.get("new_config", {})
            r["note"] = f"copied {event['donor']} at {event['step']:,}"
        elif kind == "restart":
            self.members[event["member"]]["note"] = f"restarted ({event.get('reason')})"
        elif kind == "fallback":
            self.members[event["member"]]["note"] = f"corrupt checkpoint: back to {event['checkpoint']}"
        elif kind == "reseed":
            self.members[event["member"]]["note"] = f"corrupt checkpoint: re-seeded from {event['donor']}"
        if self.live is not None:
            self.live.update(self.table())
        elif self.plain and kind == "boundary":
            self.console.print(self.table())
            self.printed_final = all(m["step"] >= self.pbt.total_steps for m in self.members.values())

    def __enter__(self):
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.update(self.table())
            self.live.__exit__(*exc)
        elif self.plain and exc[0] is None and not self.printed_final:
            self.console.print(self.table())


def _short(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def run_pbt(config_path: Path, *, sets=(), backend=None, workers=None, workdir=None,
            live: bool = True, synchronous=None) -> int:
    config = resolve(config_file=config_path, sets=sets, sections=("agent", "pbt", "space"))
    pbt = build_pbt(config, backend=backend, workers=workers, workdir=workdir, synchronous=synchronous)
    try:  # a workdir holding another experiment (or an unreadable state) is a bad input
        pbt.load_state()
    except (ValueError, PBTError) as exc:
        raise ConfigError(str(exc)) from None
    mode = "synchronous" if pbt.synchronous else "asynchronous"
    print(f"PBT workdir: {pbt.workdir} ({mode}; rerun the same command to continue it)", flush=True)
    table = LiveTable(pbt, live=live)
    t0 = time.time()
    with table:
        result = pbt.run(callback=table)
    wall = time.time() - t0
    best = result.best
    cfg = ", ".join(f"{k}={_short(v)}" for k, v in result.best_config.items())
    print(f"PBT finished in {wall:.0f}s: {len(result.members)} members x {result.steps:,} steps, "
          f"{len(result.exploits)} exploits. Best: {best.id} with {result.metric} "
          f"{_short(best.score)} ({cfg}); checkpoint {best.checkpoint}. Lineage in "
          f"{pbt.workdir}/lineage.jsonl, scores in {pbt.workdir}/scores.csv; plots: "
          f"lifelong report {pbt.workdir}.", flush=True)
    return 0


__all__ = ["run_pbt", "build_pbt", "build_space", "LiveTable"]
