"""Command-line conveniences: --version, help for every option, the flags that reach the
config (--device, --vec-env, --n-eval-envs), clean warnings, block-style config.yaml."""
import argparse
import re
import warnings

import pytest
import yaml

import lifelong
from lifelong.cli.main import build_parser, main


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"lifelong {lifelong.__version__}"


@pytest.mark.parametrize("command", ["train", "resume", "eval", "pbt", "report"])
def test_every_option_and_argument_has_help(command):
    parser = _subparsers(build_parser())[command]
    undocumented = [a.dest for a in parser._actions if not a.help]
    assert undocumented == []


def test_device_vec_env_and_n_eval_envs_reach_the_config_and_the_bar_fits_a_tiny_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "CartPole-v1", "--out", str(out), "--timesteps", "20",
                 "--n-envs", "1", "--vec-env", "subproc", "--device", "cpu", "--n-eval-envs", "1",
                 "--eval-episodes", "2", "--set", "agent.n_steps=16", "--set", "agent.batch_size=16"]) == 0
    text = (out / "config.yaml").read_text()
    config = yaml.safe_load(text)
    # (one env copy: subproc starts no process for it, which keeps this test fast)
    assert (config["vec_env"], config["agent"]["device"], config["n_eval_envs"]) == ("subproc", "cpu", 1)
    assert re.search(r"\{[^}]|\[[^\]]", text) is None  # block style (only empty {} / [] inline)
    captured = capsys.readouterr()
    summary = captured.out
    # the bar's total is the whole rollouts learn() runs (20 asked -> 32), in plain step counts
    assert "32/32 [" in captured.err and "?" not in captured.err.split("32/32")[0][-20:]
    widest = max(len(line.replace(str(out), "DIR")) for line in summary.splitlines())
    assert widest < 100  # a short table, not one 600-character line


def test_warnings_are_one_plain_line(tmp_path, capsys):
    """Gymnasium colours its warnings (ANSI escape codes); the command prints them plain."""
    with warnings.catch_warnings():
        assert main(["report", str(tmp_path / "absent")]) == 2  # installs the one-line format
        warnings.warn("\x1b[33mWARN: something odd\x1b[0m", UserWarning)
    err = capsys.readouterr().err
    assert "\x1b[" not in err
    assert "lifelong report: warning: something odd\n" in err
