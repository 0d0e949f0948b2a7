"""The command line with ``algo: recurrent_ppo``: the config selects DistributionalRecurrentPPO,
train / resume / eval / report run it, and bad choices are one-line errors."""
import yaml
import pytest

from lifelong import DistributionalRecurrentPPO
from lifelong.cli import config as C
from lifelong.cli.config import ConfigError
from lifelong.cli.run_dir import load_agent

from tests.cli.test_cli import main, one_line_error  # noqa: F401  (the in-process `main` fixture)

TINY = ["--timesteps", "64", "--set", "algo=recurrent_ppo", "--set", "agent.n_steps=32", "--set",
        "agent.batch_size=32", "--set", "agent.n_epochs=1", "--set", "eval_episodes=2", "--eval-every", "32",
        "--checkpoint-every", "32", "--set", "agent.policy_kwargs={lstm_hidden_size: 8, net_arch: [8]}",
        "--set", "agent.n_quantiles=8", "--no-progress"]


def test_algo_selects_the_agent_and_its_defaults():
    assert C.resolve()["algo"] == "ppo"
    cfg = C.resolve(sets=["algo=recurrent_ppo"])
    assert cfg["agent"]["policy"] == "MlpLstmPolicy"
    assert cfg["agent"]["n_steps"] == 128 and cfg["agent"]["batch_size"] == 128  # RecurrentPPO's defaults
    assert "rollout_buffer_kwargs" not in cfg["agent"]
    assert C.agent_class("recurrent_ppo") is DistributionalRecurrentPPO


@pytest.mark.parametrize("sets, message", [
    (["algo=recurrent"], "algo: expected one of"),
    (["algo=recurrent_ppo", "agent.policy=MlpPolicy"], "unknown policy 'MlpPolicy' for algo: recurrent_ppo"),
    (["agent.policy=MlpLstmPolicy"], "unknown policy 'MlpLstmPolicy' for algo: ppo"),
    (["algo=recurrent_ppo", "agent.rollout_buffer_kwargs={}"], "agent.rollout_buffer_kwargs: unknown key"),
])
def test_bad_algo_choices_name_the_value(sets, message):
    with pytest.raises(ConfigError, match=message):
        C.resolve(sets=sets)


def test_bad_lstm_settings_are_one_line_errors(main, tmp_path):
    one_line_error(main("train", "CartPole-v1", "--out", tmp_path / "x", *TINY, "--set",
                        "agent.policy_kwargs={shared_lstm: true, enable_critic_lstm: true}"),
                   "shared_lstm=True together with enable_critic_lstm=True")
    assert not (tmp_path / "x").exists()


def test_train_resume_eval_report_a_recurrent_run(main, tmp_path):
    out = tmp_path / "run"
    proc = main("train", "lifelong/CartPoleNoVel-v1", "--out", out, *TINY)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["algo"] == "recurrent_ppo"
    assert isinstance(load_agent(out / "best_model.zip", None), DistributionalRecurrentPPO)  # chosen by the file
    proc = main("resume", out, "--timesteps", "32", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    latest = sorted((out / "checkpoints").glob("*.zip"))[-1]
    assert DistributionalRecurrentPPO.load(latest).num_timesteps == 96
    proc = main("eval", latest, "--episodes", "2")
    assert proc.returncode == 0 and "mean return" in proc.stdout, proc.stderr
    proc = main("report", out)
    assert proc.returncode == 0 and (out / "report.md").is_file(), proc.stderr
    # a run whose config says ppo cannot resume from a recurrent checkpoint: CheckpointError, one line
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump(dict(cfg, algo="ppo", agent={})))
    one_line_error(main("resume", out, "--timesteps", "32", "--no-progress"),
                   "DistributionalRecurrentPPO checkpoint", "DistributionalPPO cannot load it")


def test_pbt_with_algo_recurrent_ppo_trains_recurrent_members(main, tmp_path):
    workdir = tmp_path / "pbt"
    cfg = tmp_path / "pbt.yaml"
    cfg.write_text(yaml.safe_dump({
        "env": "lifelong/CartPoleNoVel-v1", "algo": "recurrent_ppo",
        "agent": {"n_steps": 32, "batch_size": 32, "n_epochs": 1,
                  "policy_kwargs": {"lstm_hidden_size": 8, "net_arch": [8]}},
        "pbt": {"population_size": 2, "interval_steps": 32, "total_steps": 64, "eval_episodes": 1,
                "workdir": str(workdir)},
        "space": {"learning_rate": {"loguniform": [1.0e-4, 3.0e-3]}},
    }))
    proc = main("pbt", cfg, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    for member in ("member_0", "member_1"):
        (last,) = sorted((workdir / "members" / member).glob("step_000000064.zip"))
        assert DistributionalRecurrentPPO.load(last).num_timesteps == 64
