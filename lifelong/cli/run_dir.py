"""The run directory: its layout, the environments and agent a config describes, the logger.

Layout (``lifelong train ... --out DIR``)::

    DIR/config.yaml       resolved configuration (what ``lifelong resume`` rebuilds from)
    DIR/checkpoints/      lifelong.checkpoint.CheckpointManager files (last ``keep_checkpoints``)
    DIR/best_model.zip    checkpoint of the best evaluation so far
    DIR/tb/               TensorBoard event files (``tensorboard --logdir DIR/tb``)
    DIR/metrics.csv       every logger key, one row per PPO update (SB3 CSV output format)
    DIR/evals.csv         step, mean_reward, std_reward, episodes, wall time of each evaluation;
                          on a non-stationary env also the phase evaluated and, with
                          ``eval_phases: all``, the mean return of every phase so far
    DIR/summary.json      the final numbers of the last ``train``/``resume``
    DIR/report.md, *.png  after ``lifelong report DIR``
"""
from __future__ import annotations

import csv
import difflib
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from lifelong.agent import ALGORITHMS, DEFAULT_ALGO, schedules
from lifelong.checkpoint import CheckpointManager, read_archive
from lifelong.checkpoint.codec import class_name
from lifelong.checkpoint.members import _check_members
from lifelong.cli.config import (
    ConfigError,
    activation_class,
    agent_class,
    agent_defaults,
    dump_yaml,
    resolve,
)
from lifelong.errors import CheckpointAgentError, CheckpointError

CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
TB = "tb"
METRICS = "metrics.csv"
EVALS = "evals.csv"
BEST = "best_model.zip"
SUMMARY = "summary.json"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / CONFIG)
    checkpoints = property(lambda self: self.path / CHECKPOINTS)
    tb = property(lambda self: self.path / TB)
    metrics = property(lambda self: self.path / METRICS)
    evals = property(lambda self: self.path / EVALS)
    best = property(lambda self: self.path / BEST)
    summary = property(lambda self: self.path / SUMMARY)

    def is_run(self) -> bool:
        return self.config.is_file()

    def check_new(self, overwrite: bool = False) -> None:
        """Raise unless a new run may be created here (nothing is changed)."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path}: exists and is not a directory")
        if self.path.is_dir() and any(self.path.iterdir()):
            if not self.is_run():
                raise ConfigError(f"--out {self.path}: directory is not empty and is not a run "
                                  "directory; choose another --out")
            if not overwrite:
                raise ConfigError(f"--out {self.path}: already holds a run; continue it with "
                                  f"`lifelong resume {self.path}`, or pass --overwrite")

    def create(self, config: Mapping, overwrite: bool = False) -> None:
        """Make the directory for a new run; refuse to mix two runs."""
        self.check_new(overwrite)
        if self.path.is_dir() and any(self.path.iterdir()):  # check_new: a run, and overwrite asked
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        self.tb.mkdir(exist_ok=True)
        self.write_config(config)

    def write_config(self, config: Mapping) -> None:
        tmp = self.config.with_suffix(".yaml.tmp")
        tmp.write_text("# resolved lifelong configuration (lifelong resume reads this file)\n"
                       + dump_yaml(config))
        os.replace(tmp, self.config)

    def read_config(self) -> dict:
        if not self.path.is_dir():
            raise ConfigError(f"{self.path}: no such run directory")
        if not self.is_run():
            raise ConfigError(f"{self.path}: not a run directory (no {CONFIG}); "
                              "start one with `lifelong train ENV --out DIR`")
        try:
            return resolve(config_file=self.config)
        except ConfigError as exc:
            raise ConfigError(f"{self.config}: {exc}") from None

    def manager(self, keep: int = 3):
        return CheckpointManager(self.checkpoints, keep=keep)


def pbt_env_of(checkpoint: Path) -> tuple[str, dict] | None:
    """(env id, env_kwargs) of a PBT member checkpoint (WORKDIR/members/<id>/step_N.zip)."""
    import json
    for parent in list(checkpoint.parents)[:3]:
        state = parent / "state.json"
        if state.is_file():
            try:
                agent = json.loads(state.read_text())["fingerprint"]["agent"]
            except (ValueError, KeyError, TypeError):
                return None
            if isinstance(agent.get("env"), str):
                return agent["env"], dict(agent.get("env_kwargs") or {})
    return None


def find_run_dir(checkpoint: Path) -> RunDir | None:
    """The run directory a checkpoint belongs to (DIR/checkpoints/x.zip or DIR/best_model.zip)."""
    for parent in list(checkpoint.parents)[:3]:
        if (parent / CONFIG).is_file():
            return RunDir(parent)
    return None


# --------------------------------------------------------------------------------------------
# Environments
def check_env_id(env_id: str) -> None:
    """Unknown ids are a ConfigError listing close matches from gymnasium.registry."""
    import gymnasium as gym
    if ":" in env_id:  # "module:EnvId" imports the module first (Gymnasium convention)
        module, _, name = env_id.partition(":")
        try:
            __import__(module)
        except ImportError as exc:
            raise ConfigError(f"env {env_id!r}: cannot import module {module!r} ({exc})") from None
        env_id = name
    if env_id in gym.registry:
        return
    ids = list(gym.registry.keys())
    close = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.6)
    if not close:
        low = env_id.lower()
        close = [i for i in ids if low.split("-v")[0] and low.split("-v")[0] in i.lower()][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else \
        "; `python -c \"import gymnasium; gymnasium.pprint_registry()\"` lists them"
    raise ConfigError(f"unknown environment {env_id!r}{hint}")


def make_env(config: Mapping, *, n_envs: int | None = None, seed: int | None = None,
             render_mode: str | None = None, normalize_training: bool = True,
             wrapper_class=None):
    """The VecEnv a config describes (Monitor-wrapped; VecNormalize when ``normalize_obs`` or
    ``normalize_reward``; an evaluation env, ``normalize_training=False``, never scales rewards)."""
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import (
        DummyVecEnv,
        SubprocVecEnv,
        VecNormalize,
    )

    env_id = config["env"]
    if not env_id:
        raise ConfigError("env: no environment given (pass ENV or set env: in the config file)")
    check_env_id(env_id)
    kwargs = dict(config.get("env_kwargs") or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    n = n_envs if n_envs is not None else config["n_envs"]
    cls = SubprocVecEnv if (config.get("vec_env") == "subproc" and n > 1) else DummyVecEnv
    try:
        venv = make_vec_env(env_id, n_envs=n, seed=seed, env_kwargs=kwargs, vec_env_cls=cls,
                            wrapper_class=wrapper_class)
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"env {env_id!r}: {str(exc).splitlines()[0]}") from None
    except TypeError as exc:
        if kwargs:
            raise ConfigError(f"env_kwargs: {env_id} rejects them ({exc})") from None
        raise
    norm_obs, norm_reward = bool(config.get("normalize_obs")), bool(config.get("normalize_reward"))
    if norm_obs or norm_reward:
        gamma = (config.get("agent") or {}).get("gamma", agent_defaults()["gamma"])
        venv = VecNormalize(venv, norm_obs=norm_obs, norm_reward=norm_reward and normalize_training,
                            gamma=gamma, training=normalize_training)
    return venv


# --------------------------------------------------------------------------------------------
# Agent
def to_schedule(value):
    """Config form of a schedule ({linear: [a, b]} / {constant: x}) -> lifelong.agent.schedules object."""
    if not isinstance(value, Mapping):
        return value
    (kind, arg), = value.items()
    if kind == "constant":
        return schedules.Constant(float(arg))
    return schedules.Linear(float(arg[0]), float(arg[1]))


def agent_kwargs(config: Mapping) -> dict:
    """Constructor arguments of the ``config["algo"]`` agent from ``config["agent"]`` (schedules
    and activation names turned into objects)."""
    defaults = agent_defaults(config.get("algo", DEFAULT_ALGO))
    # Arguments left at the agent's default are not passed: the constructor then uses its own
    # default objects (e.g. its "learning_rate not given" marker, see docs/agent.md).
    kwargs = {k: v for k, v in config["agent"].items()
              if k not in defaults or v != defaults[k]
              or isinstance(v, bool) != isinstance(defaults[k], bool)}
    for key in ("learning_rate", "clip_range", "clip_range_vf"):
        if key in kwargs:
            kwargs[key] = to_schedule(kwargs[key])
    pk = kwargs.get("policy_kwargs")
    if pk:
        pk = dict(pk)
        if isinstance(pk.get("activation_fn"), str):
            pk["activation_fn"] = activation_class(pk["activation_fn"])
        kwargs["policy_kwargs"] = pk
    return kwargs


def build_agent(config: Mapping, env):
    algo = config.get("algo", DEFAULT_ALGO)
    cls = agent_class(algo)
    kwargs = agent_kwargs(config)
    policy = kwargs.pop("policy", agent_defaults(algo)["policy"])
    try:
        return cls(policy, env, seed=config.get("seed"), verbose=0, **kwargs)
    except ValueError as exc:  # the agent's own validation: a bad config value
        raise ConfigError(f"agent: {exc}") from None


def checkpoint_algo(path: Path) -> str:
    """The ``algo`` of the agent that wrote the checkpoint at ``path`` (read from its model
    description, matched against the agents the command line builds: nothing is imported)."""
    meta = _check_members(read_archive(path), path)
    saved = str(meta.get("algorithm", ""))
    for algo, cls in ALGORITHMS.items():
        if class_name(cls) == saved:
            return algo
    raise CheckpointError(f"{path} holds a {saved or '(unnamed)'} checkpoint, which is not an agent the command "
                          f"line runs ({', '.join(cls.__name__ for cls in ALGORITHMS.values())})")


def load_agent(path: Path, env, device: str = "auto", algo: str | None = None):
    """Load a checkpoint into the ``algo`` agent (``None``: the agent that wrote it); a checkpoint
    that does not fit ``env`` (spaces, n_envs vs batch_size) is a ConfigError (bad input), a
    damaged one or one of another agent a CheckpointError."""
    cls = agent_class(algo if algo is not None else checkpoint_algo(path))
    try:
        return cls.load(str(path), env=env, device=device)
    except CheckpointAgentError:
        raise
    except ValueError as exc:
        msg = str(exc)
        raise ConfigError(msg if str(path) in msg else f"{path}: {msg}") from None


def load_latest_agent(manager: CheckpointManager, env, device: str = "auto", algo: str = DEFAULT_ALGO):
    """The ``algo`` agent of the newest checkpoint in ``manager`` that loads (corrupt newer ones
    are skipped with a warning and renamed ``*.corrupt``), or None when none does; a checkpoint
    that does not fit ``env`` is a ConfigError, as in :func:`load_agent`, and one of another agent
    a CheckpointError naming both."""
    try:
        return manager.load_latest(agent_class(algo), env=env, device=device)
    except FileNotFoundError:
        return None
    except CheckpointAgentError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


# --------------------------------------------------------------------------------------------
# Logger: SB3 Logger with metrics.csv (appending on resume) and TensorBoard under tb/.
def make_logger(run: RunDir, resumed_at: int | None = None):
    """SB3's Logger writing ``metrics.csv`` (appended to on a resume) and TensorBoard events
    under ``tb/``. ``resumed_at``: the step of the checkpoint a resumed session starts from;
    events a killed session logged after it are purged from TensorBoard's view (torch's
    ``SummaryWriter(purge_step=...)``), as ``truncate_logs`` drops them from the CSV files."""
    from stable_baselines3.common.logger import (
        CSVOutputFormat,
        Logger,
        TensorBoardOutputFormat,
    )

    class AppendingCSV(CSVOutputFormat):
        """SB3's CSV format, continuing an existing file (resume) instead of truncating it."""

        def __init__(self, filename: Path):
            if filename.is_file() and filename.stat().st_size > 0:
                self.file = open(filename, "r+")
                header = self.file.readline().rstrip("\n")
                self.keys = header.split(",") if header else []
                self.file.seek(0, os.SEEK_END)
                self.separator = ","
                self.quotechar = '"'
            else:
                super().__init__(str(filename))

    class ResumingTensorBoard(TensorBoardOutputFormat):
        """SB3's TensorBoard format whose writer hides the events at steps after a resumed
        checkpoint's (a new event file in the same folder, as before)."""

        def __init__(self, folder: Path, purge_step: int | None):
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)
            self._is_closed = False

    run.tb.mkdir(parents=True, exist_ok=True)
    purge_step = None if resumed_at is None else resumed_at + 1  # the checkpoint's own row stays
    return Logger(folder=str(run.path),
                  output_formats=[AppendingCSV(run.metrics), ResumingTensorBoard(run.tb, purge_step)])


EVAL_FIELDS = ["step", "mean_reward", "std_reward", "episodes", "time_s", "phase", "phase_returns"]


def append_eval(run: RunDir, row: Mapping[str, Any]) -> None:
    """One evaluation as a row of evals.csv (a file written by an older version keeps its own
    columns)."""
    fields = EVAL_FIELDS
    new = not run.evals.is_file() or run.evals.stat().st_size == 0
    if not new:
        with open(run.evals, newline="") as f:
            fields = next(csv.reader(f), None) or EVAL_FIELDS
    with open(run.evals, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: row.get(k) for k in fields})


def read_evals(run: RunDir) -> list[dict]:
    if not run.evals.is_file():
        return []
    with open(run.evals, newline="") as f:
        rows = []
        for r in csv.DictReader(f):
            try:
                row = {"step": int(float(r["step"])), "mean_reward": float(r["mean_reward"]),
                       "std_reward": float(r["std_reward"]),
                       "episodes": int(float(r.get("episodes") or 0)),
                       "time_s": float(r.get("time_s") or 0.0)}
                if r.get("phase"):
                    row["phase"] = int(float(r["phase"]))
                if r.get("phase_returns"):
                    row["phase_returns"] = [float(x) for x in r["phase_returns"].split()]
                rows.append(row)
            except (TypeError, ValueError, KeyError):
                continue
        return rows


def truncate_logs(run: RunDir, step: int) -> None:
    """Drop the rows of ``metrics.csv`` and ``evals.csv`` logged after ``step`` (and a torn last
    row), atomically. A resume continues from the checkpoint at ``step``: rows after it describe
    training that the checkpoint does not hold (the run was killed after logging them), and
    keeping them would repeat steps and make the curves run backwards."""
    for path, column in ((run.metrics, "time/total_timesteps"), (run.evals, "step")):
        if not path.is_file():
            continue
        lines = path.read_text().splitlines(keepends=True)
        if not lines:
            continue
        header = next(csv.reader([lines[0]]))
        if column not in header:
            continue
        index = header.index(column)
        kept = [lines[0]]
        for line in lines[1:]:
            try:
                row = next(csv.reader([line]))
                keep = len(row) == len(header) and line.endswith("\n") and float(row[index]) <= step
            except (ValueError, IndexError, StopIteration, csv.Error):
                keep = False
            if keep:
                kept.append(line)
        if len(kept) != len(lines):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(kept))
            os.replace(tmp, path)
