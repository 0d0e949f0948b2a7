"""`lifelong pbt` end to end on a tiny population, its report, and its bad inputs."""
import json
import subprocess

import pytest

from test_cli import lifelong, ok, one_line_error  # noqa: F401  (shared helpers)
from test_report import check_png

TINY_PBT = """\
env: CartPole-v1
n_envs: 1
seed: 0
agent:
  n_steps: 32
  batch_size: 32
  n_epochs: 1
  n_quantiles: 8
  policy_kwargs: {net_arch: [16]}
pbt:
  population_size: 2
  interval_steps: 64
  total_steps: 128
  truncation: 0.5
  eval_episodes: 1
  workers: 1
space:
  learning_rate: {loguniform: [1.0e-4, 1.0e-3]}
  ent_coef: {uniform: [0.0, 0.01]}
"""


@pytest.fixture
def main(capsys):
    from lifelong.cli import main as cli_main

    def call(*args):
        try:
            code = cli_main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return call


def test_pbt_command_and_report(main, tmp_path):
    cfg = tmp_path / "pbt.yaml"
    cfg.write_text(TINY_PBT)
    work = tmp_path / "work"
    proc = ok(lifelong("pbt", cfg, "--out", work, "--backend", "local"))
    assert "PBT finished" in proc.stdout and "member_0" in proc.stdout  # the member table
    for name in ("scores.csv", "lineage.jsonl", "result.json"):
        assert (work / name).is_file(), name
    result = json.loads((work / "result.json").read_text())
    assert result["steps"] == 128 and result["n_exploits"] == 1
    # report (in-process: the subprocess path is tested on a run directory in test_cli)
    proc = main("report", work)
    assert proc.returncode == 0, proc.stderr
    for name in ("pbt_scores.png", "pbt_hyperparams.png", "pbt_lineage.png"):
        check_png(work / name)
    assert "1 exploits" in (work / "report.md").read_text()
    # a member's checkpoint evaluates without --env (the env comes from the PBT state)
    proc = main("eval", result["best_checkpoint"], "--episodes", "1")
    assert proc.returncode == 0, proc.stderr
    assert "CartPole-v1" in proc.stdout
    # the workdir now holds this experiment: another one is refused, in one line
    one_line_error(main("pbt", cfg, "--out", work, "--set", "pbt.truncation=0.25"),
                   "holds a different PBT experiment")


@pytest.mark.parametrize("edit, needle", [
    (("learning_rate: {loguniform", "learnin_rate: {loguniform"), "space.learnin_rate: not a tunable hyperparameter"),
    (("population_size: 2", "population_size: 1"), "pbt.population_size: expected an integer >= 2, got 1"),
    (("truncation: 0.5", "truncation: 0.9"), "pbt.truncation: expected a number in (0, 0.5], got 0.9"),
    (("env: CartPole-v1", "env: CartPoles-v1"), "unknown environment 'CartPoles-v1'"),
    (("ent_coef: {uniform: [0.0, 0.01]}", "ent_coef: {uniform: [0.01, 0.0]}"), "expected low < high"),
    (("  workers: 1\n", "  wrokers: 1\n"), "pbt.wrokers: unknown key (did you mean workers?)"),
])
def test_pbt_bad_config(main, tmp_path, edit, needle):
    cfg = tmp_path / "pbt.yaml"
    cfg.write_text(TINY_PBT.replace(*edit))
    one_line_error(main("pbt", cfg, "--out", tmp_path / "w"), needle)
    assert not (tmp_path / "w").exists()


def test_pbt_missing_file_and_space(main, tmp_path):
    one_line_error(main("pbt", tmp_path / "nope.yaml"), "no such file")
    cfg = tmp_path / "pbt.yaml"
    cfg.write_text(TINY_PBT.split("space:")[0])
    one_line_error(main("pbt", cfg), "space: missing")
    one_line_error(main("pbt", cfg, "--backend", "slurm"), "invalid choice")


def test_pbt_async_with_vecnormalize_and_the_mode_is_kept(main, tmp_path):
    cfg = tmp_path / "pbt.yaml"
    cfg.write_text(TINY_PBT.replace("seed: 0\n", "seed: 0\nnormalize_obs: true\n"))
    work = tmp_path / "work"
    proc = main("pbt", cfg, "--out", work, "--async", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "(asynchronous;" in proc.stdout
    state = json.loads((work / "state.json").read_text())
    assert state["synchronous"] is False and state["fingerprint"]["agent"]["normalize"] == {
        "norm_obs": True, "norm_reward": False}
    assert all(m["step"] == 128 for m in state["members"].values())
    # resuming it as synchronous (no --async, no pbt.synchronous) names both modes, in one line
    one_line_error(main("pbt", cfg, "--out", work),
                   "holds an asynchronous PBT run; it cannot be resumed as synchronous")


def test_exhausted_max_restarts_is_one_line_and_exit_2(main, tmp_path):
    cfg = tmp_path / "pbt.yaml"
    # the env rejects this keyword in the worker (every try fails the same way)
    cfg.write_text(TINY_PBT.replace("seed: 0\n", "seed: 0\nenv_kwargs: {bogus_kwarg: 1}\n")
                   .replace("  workers: 1\n", "  workers: 1\n  max_restarts: 1\n"))
    proc = main("pbt", cfg, "--out", tmp_path / "w", "--no-progress")
    one_line_error(proc, "member member_0 failed 2 times (max_restarts=1); last failure: it raised: TypeError")
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_pbt_file_compile_step_reaches_the_members_spec(tmp_path):
    """The run option compile_step in a PBT file: every member runs the compiled step (the spec
    applies it to each member built or loaded, tests/pbt/test_pbt_local.py)."""
    from lifelong.cli.config import resolve
    from lifelong.cli.pbt import build_pbt

    path = tmp_path / "pbt.yaml"
    path.write_text(TINY_PBT + "compile_step: true\n")
    config = resolve(config_file=path, sets=[], sections=("agent", "pbt", "space"))
    assert build_pbt(config, workdir=tmp_path / "w").spec.compile_step is True
    path.write_text(TINY_PBT)
    config = resolve(config_file=path, sets=[], sections=("agent", "pbt", "space"))
    assert build_pbt(config, workdir=tmp_path / "w2").spec.compile_step is False
