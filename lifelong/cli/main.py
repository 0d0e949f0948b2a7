"""The ``lifelong`` command: train, resume, eval, pbt, report.

Every bad input (unknown env id or key, malformed value, negative timesteps, missing or corrupted
checkpoint, a directory that is not a run) is one line on stderr and exit status 2; ``--debug``
adds the traceback. See docs/cli.md.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from pathlib import Path

from lifelong import __version__
from lifelong.checkpoint import verify
from lifelong.cli import config as cfgmod
from lifelong.cli.config import ConfigError, defaults, validate
from lifelong.cli.evaluate import evaluate_checkpoint
from lifelong.cli.pbt import run_pbt
from lifelong.cli.report import make_report
from lifelong.cli.run_dir import RunDir, check_env_id, find_run_dir, pbt_env_of
from lifelong.cli.training import Interrupted, resume, summary_text, train
from lifelong.errors import CheckpointError
from lifelong.pbt.errors import PBTError

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class UsageError(ConfigError):
    """A bad command-line input that is not about a config key."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage + error otherwise)
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def _count(kind: str, minimum: int):
    def parse(text: str) -> int:
        try:
            value = float(text)
            if not value.is_integer():
                raise ValueError
            value = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {value}")
        return value
    return parse


positive_int = _count("a positive integer", 1)
nonneg_int = _count("a non-negative integer", 0)


# --------------------------------------------------------------------------------------------
# Options that several commands take (same flags, type and metavar; each command keeps its help).
def _command(sub, common, name: str, func, **kwargs) -> argparse.ArgumentParser:
    """Add subcommand ``name`` (with the ``common`` options) that runs ``func(args)``."""
    parser = sub.add_parser(name, parents=[common], **kwargs)
    parser.set_defaults(func=func)
    return parser


def _add_set_option(parser, help=None) -> None:
    parser.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE", help=help)


def _add_timesteps_option(parser, help=None) -> None:
    parser.add_argument("--timesteps", "-n", type=positive_int, metavar="N", help=help)


def _add_out_option(parser, help=None) -> None:
    parser.add_argument("--out", "-o", type=Path, metavar="DIR", help=help)


def _add_no_progress_option(parser, help=None) -> None:
    parser.add_argument("--no-progress", action="store_true", help=help)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=positive_int, default=argparse.SUPPRESS, metavar="N",
                        help="torch CPU threads (default 1: more is slower for small networks)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of errors")

    p = _Parser(prog="lifelong", parents=[common],
                description="Distributional PPO with twin critics, UPGD, VGS and PBT.",
                epilog="`lifelong COMMAND --help` describes each command; docs/cli.md has more.")
    p.add_argument("--version", action="version", version=f"lifelong {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    t = _command(sub, common, "train", cmd_train, help="train an agent on a Gymnasium env",
                 description="Train DistributionalPPO (or, with algo: recurrent_ppo, DistributionalRecurrentPPO). Config precedence: defaults < "
                             "--config file < flags < --set.")
    t.add_argument("env", nargs="?", metavar="ENV",
                   help="Gymnasium id, e.g. CartPole-v1 (default: env: of the config file)")
    t.add_argument("--config", "-c", type=Path, metavar="FILE",
                   help="YAML config file: lifelong's keys (docs/cli.md), or an rl-zoo "
                        "hyperparams file such as ppo.yml (ENV's entry is used)")
    _add_set_option(t, help="override a config key (YAML-typed), e.g. --set agent.n_steps=256; "
                            "a bare agent argument (n_steps=256) works too; repeatable")
    _add_timesteps_option(t, help="total env steps (learn runs whole rollouts: the run may "
                                  "end a little past N)")
    t.add_argument("--seed", type=nonneg_int, metavar="N",
                   help="random seed of the agent and the envs (default 0)")
    t.add_argument("--n-envs", type=positive_int, metavar="N", help="parallel env copies")
    t.add_argument("--vec-env", choices=["dummy", "subproc"],
                   help="run the env copies in this process (dummy, default) or one process "
                        "each (subproc: for slow envs)")
    t.add_argument("--device", metavar="DEVICE",
                   help="torch device of the agent: auto (default), cpu, cuda, cuda:1, ...")
    _add_out_option(t, help="run directory (default runs/<env>-<date>-<time>)")
    t.add_argument("--eval-every", type=nonneg_int, metavar="N",
                   help="evaluate every N steps (0: only at the end)")
    t.add_argument("--eval-episodes", type=positive_int, metavar="N",
                   help="episodes per evaluation (default 10)")
    t.add_argument("--n-eval-envs", type=positive_int, metavar="N",
                   help="env copies evaluating in parallel (default min(eval episodes, 8))")
    t.add_argument("--checkpoint-every", type=nonneg_int, metavar="N",
                   help="checkpoint every N steps (0: only at the end); the last 3 are kept")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    _add_no_progress_option(t, help="no progress bar")

    r = _command(sub, common, "resume", cmd_resume, help="continue a run from its latest checkpoint",
                 description="Continue a run directory from its latest valid checkpoint, "
                             "with its saved config; counters and schedules continue.")
    r.add_argument("run_dir", type=Path, metavar="DIR",
                   help="the run directory (what lifelong train --out wrote)")
    _add_timesteps_option(r, help="train N more steps (default: up to the run's configured total)")
    _add_set_option(r, help="change a run option for this and later sessions (YAML-typed), e.g. "
                            "--set stop_at_reward=null or --set eval_every=5000; repeatable")
    _add_no_progress_option(r, help="no progress bar")

    e = _command(sub, common, "eval", cmd_eval, help="evaluate a checkpoint",
                 description="Evaluate a checkpoint (a .zip, or a run directory: its "
                             "best_model.zip, else its latest checkpoint).")
    e.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                   help="a checkpoint .zip, or a run directory")
    e.add_argument("--episodes", type=positive_int, default=10, metavar="N",
                   help="episodes to evaluate (default 10)")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--deterministic", dest="deterministic", action="store_true", default=True,
                   help="greedy actions (default)")
    g.add_argument("--stochastic", dest="deterministic", action="store_false",
                   help="sample actions from the policy")
    e.add_argument("--video", type=Path, metavar="DIR", help="record the episodes into DIR")
    e.add_argument("--env", metavar="ENV", help="env id (default: from the run's config.yaml)")
    e.add_argument("--seed", type=nonneg_int, default=0, metavar="N",
                   help="seed of the evaluation episodes (default 0)")

    b = _command(sub, common, "pbt", cmd_pbt, help="population-based training from a YAML file",
                 description="Population-based training: agent settings (env:, agent:), "
                             "PBT settings (pbt:) and the search space (space:) in one YAML.")
    b.add_argument("config", type=Path, metavar="CONFIG",
                   help="YAML file with env:, agent:, pbt: and space: (docs/pbt.md)")
    b.add_argument("--backend", choices=["local", "ray"],
                   help="local: worker processes on this machine (default); ray: Ray Tune "
                        "(pip install lifelong[ray])")
    b.add_argument("--workers", type=positive_int, metavar="N",
                   help="members trained at once (default: pbt.workers, else one per CPU "
                        "up to the population size)")
    b.add_argument("--async", dest="asynchronous", action="store_true",
                   help="asynchronous PBT: no barrier, each member exploits at its own boundaries "
                        "(same as pbt.synchronous: false)")
    _add_out_option(b, help="workdir (default pbt.workdir)")
    _add_set_option(b, help="override a config key (YAML-typed), e.g. --set pbt.population_size=8; "
                            "repeatable")
    _add_no_progress_option(b, help="no live table")

    rep = _command(sub, common, "report", cmd_report, help="plots and report.md for a run or PBT dir",
                   description="Write PNG plots and report.md into a run directory or "
                               "a PBT workdir.")
    rep.add_argument("run_dir", type=Path, metavar="DIR",
                     help="a run directory (lifelong train) or a PBT workdir (lifelong pbt)")
    return p


# --------------------------------------------------------------------------------------------
def _set_threads(n: int) -> None:
    import torch
    torch.set_num_threads(n)


def _default_out(env_id: str) -> Path:
    import time
    safe = env_id.replace("/", "_").replace(":", "_")
    return Path("runs") / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_train(args) -> int:
    if args.config is not None and not args.config.is_file():
        raise UsageError(f"--config {args.config}: no such file")
    overrides = {"env": args.env, "timesteps": args.timesteps, "seed": args.seed,
                 "n_envs": args.n_envs, "vec_env": args.vec_env, "eval_every": args.eval_every,
                 "eval_episodes": args.eval_episodes, "n_eval_envs": args.n_eval_envs,
                 "checkpoint_every": args.checkpoint_every}
    if args.device is not None:
        overrides["agent"] = {"device": args.device}
    config = cfgmod.resolve(config_file=args.config, sets=args.set, overrides=overrides)
    if not config.get("env"):
        raise UsageError("no environment: give ENV (e.g. lifelong train CartPole-v1) or env: in --config")
    check_env_id(config["env"])
    _set_threads(args.threads)
    run = RunDir(args.out or _default_out(config["env"]))
    _, summary = train(config, run, progress=not args.no_progress, overwrite=args.overwrite)
    print(summary_text(summary), flush=True)
    return 0


def cmd_resume(args) -> int:
    run = RunDir(args.run_dir)
    run.read_config()  # bad directory -> one line before torch is imported
    _set_threads(args.threads)
    _, summary = resume(run, timesteps=args.timesteps, progress=not args.no_progress,
                        sets=args.set)
    print(summary_text(summary), flush=True)
    return 0


def _checkpoint_path(path: Path) -> Path:
    if path.is_dir():
        run = RunDir(path)
        if not run.is_run():
            raise UsageError(f"{path}: a directory that is not a run directory (no config.yaml)")
        if run.best.is_file():
            return run.best
        cfg = run.read_config()
        latest = run.manager(keep=cfg["keep_checkpoints"]).latest()
        if latest is None:
            raise UsageError(f"{path}: run directory without a valid checkpoint")
        return latest
    if not path.exists():
        alt = path.with_name(path.name + ".zip")
        if path.suffix == "" and alt.is_file():
            return alt
        raise UsageError(f"checkpoint not found: {path}")
    return path


def cmd_eval(args) -> int:
    path = _checkpoint_path(args.checkpoint)
    _set_threads(args.threads)
    verify(path)  # CheckpointError for a truncated/corrupted/foreign file
    run = find_run_dir(path.resolve())
    config = run.read_config() if run is not None else validate(defaults())
    if run is None and not args.env:
        found = pbt_env_of(path.resolve())
        if found is not None:
            config["env"], config["env_kwargs"] = found
    if args.env:
        config["env"] = args.env
    if not config.get("env"):
        raise UsageError(f"{path}: cannot tell which environment it was trained on "
                         "(no run directory with config.yaml above it); pass --env ID")
    check_env_id(config["env"])
    res = evaluate_checkpoint(path, config, episodes=args.episodes,
                              deterministic=args.deterministic, seed=args.seed, video=args.video)
    mode = "deterministic" if args.deterministic else "stochastic"
    on = f", phase {res['phase']}" if "phase" in res else ""
    print(f"{config['env']} · {path} ({res['num_timesteps']:,} steps{on}): mean return "
          f"{res['mean_reward']:.2f} ± {res['std_reward']:.2f} over {args.episodes} episodes "
          f"({mode}); min {res['min_reward']:.2f}, max {res['max_reward']:.2f}")
    if res.get("video"):
        print(res["video"])
    return 0


def cmd_pbt(args) -> int:
    if not args.config.is_file():
        raise UsageError(f"{args.config}: no such file")
    _set_threads(args.threads)
    return run_pbt(args.config, sets=args.set, backend=args.backend, workers=args.workers,
                   workdir=args.out, live=not args.no_progress,
                   synchronous=False if args.asynchronous else None)


def cmd_report(args) -> int:
    written = make_report(args.run_dir)
    for path in written:
        print(path)
    return 0


# --------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    args.threads = getattr(args, "threads", 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    prog = f"lifelong {args.command}"
    if not debug:
        import warnings

        def _one_line_warning(message, category, filename, lineno, file=None, line=None):
            # Gymnasium colours its warnings with ANSI codes: plain text on one line
            text = " ".join(_ANSI.sub("", str(message)).split())
            text = text.removeprefix("WARN: ")
            sys.stderr.write(f"{prog}: warning: {text}\n")
        warnings.showwarning = _one_line_warning
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit statuses
        if isinstance(exc, SystemExit):
            raise
        if debug:
            traceback.print_exc()
        if isinstance(exc, Interrupted):
            print(f"{prog}: {exc}", file=sys.stderr)
            return exc.exit_code
        one_line = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, (ConfigError, CheckpointError, PBTError)):
            print(f"{prog}: error: {one_line}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError,
                            PermissionError)):
            print(f"{prog}: error: {one_line}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{prog}: internal error: {type(exc).__name__}: {one_line}"
              f"{'' if debug else ' (rerun with --debug for the traceback)'}", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
