"""rl-baselines3-zoo hyperparameter files through ``lifelong train ENV --config ppo.yml``.

tests/cli/data/rl_zoo_ppo.yml holds entries of rl-zoo3 2.9.2's hyperparams/ppo.yml unchanged."""
from pathlib import Path

import pytest
import yaml

from lifelong.cli import config as C
from lifelong.cli.config import ConfigError
from lifelong.cli.config.zoo import parse_python_literal, zoo_config
from lifelong.cli.main import main
from lifelong.cli.run_dir import build_agent, make_env

ZOO = Path(__file__).parent / "data" / "rl_zoo_ppo.yml"


def resolve(env, **flags):
    return C.resolve(config_file=ZOO, overrides={"env": env, **flags})


def test_an_entry_becomes_run_options_and_agent_arguments():
    cfg = resolve("CartPole-v1")
    assert (cfg["env"], cfg["timesteps"], cfg["n_envs"]) == ("CartPole-v1", 100_000, 8)
    assert cfg["normalize_obs"] is False and cfg["normalize_reward"] is False
    agent = cfg["agent"]
    assert (agent["n_steps"], agent["batch_size"], agent["gamma"], agent["n_epochs"]) == (32, 256, 0.98, 20)
    assert agent["learning_rate"] == {"linear": [0.001, 0.0]}  # lin_0.001
    assert agent["clip_range"] == {"linear": [0.2, 0.0]}


def test_policy_kwargs_strings_and_normalize_are_translated_without_eval():
    cfg = resolve("HalfCheetah-v4")
    assert cfg["normalize_obs"] is True and cfg["normalize_reward"] is True  # normalize: true
    assert cfg["agent"]["policy_kwargs"] == {"log_std_init": -2.0, "ortho_init": False,
                                             "activation_fn": "relu",
                                             "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
    data = yaml.load(ZOO.read_text(), Loader=yaml.SafeLoader)
    assert zoo_config(data, "MountainCarContinuous-v0", "ppo.yml")["agent"]["policy_kwargs"] == {
        "log_std_init": -3.29, "ortho_init": False}
    # ... whose batch_size (256) exceeds its rollout (8 steps): SB3 trains on 8-step batches,
    # lifelong refuses it by name (docs/agent.md, differences from Stable-Baselines3)
    with pytest.raises(ConfigError, match="agent.batch_size: 256 is larger than the rollout"):
        resolve("MountainCarContinuous-v0")


def test_flags_override_the_entry_and_the_default_entry_is_the_fallback():
    assert resolve("CartPole-v1", timesteps=64)["timesteps"] == 64
    fallback = resolve("Acrobot-v1")  # no entry: the zoo uses `default`
    assert fallback["timesteps"] == 1_000_000 and fallback["agent"]["policy"] == "MlpPolicy"


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1", "LunarLander-v3", "HalfCheetah-v4"])
def test_tuned_entries_build_their_env_and_agent(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
    cfg = resolve(env)
    venv = make_env(cfg, seed=0)
    try:
        model = build_agent(cfg, venv)
        assert model.n_steps == cfg["agent"]["n_steps"] and model.n_envs == cfg["n_envs"]
        assert model.use_sde == cfg["agent"]["use_sde"]
    finally:
        venv.close()


def test_unsupported_and_unknown_zoo_keys_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"PongNoFrameskip-v4\.env_wrapper: rl-zoo key not supported"):
        _zoo(tmp_path, "atari")
    with pytest.raises(ConfigError, match=r"CarRacing-v3\.env_wrapper: rl-zoo key not supported"):
        resolve("CarRacing-v3")
    bad = tmp_path / "bad.yml"
    bad.write_text("CartPole-v1:\n  n_timesteps: 1000\n  n_step: 64\n")
    with pytest.raises(ConfigError, match=r"CartPole-v1\.n_step: unknown rl-zoo key.*did you mean n_steps"):
        C.resolve(config_file=bad, overrides={"env": "CartPole-v1"})
    bad.write_text("CartPole-v1:\n  n_timesteps: 1000\n  normalize: \"{'norm_obs': True, 'clip_obs': 5}\"\n")
    with pytest.raises(ConfigError, match=r"normalize\.clip_obs: VecNormalize argument not supported"):
        C.resolve(config_file=bad, overrides={"env": "CartPole-v1"})
    with pytest.raises(ConfigError, match="no entry for Acrobot-v1"):
        C.resolve(config_file=bad, overrides={"env": "Acrobot-v1"})
    with pytest.raises(ConfigError, match="give ENV"):
        C.resolve(config_file=bad)


def _zoo(tmp_path, entry):
    path = tmp_path / "atari.yml"
    path.write_text(yaml.safe_dump({"PongNoFrameskip-v4": yaml.safe_load(ZOO.read_text())[entry]}))
    return C.resolve(config_file=path, overrides={"env": "PongNoFrameskip-v4"})


@pytest.mark.parametrize("text, expected", [
    ("dict(a=1, b=-2.5, c=[1, 2], d=dict(pi=[8], vf=[]), e=None, f='x')",
     {"a": 1, "b": -2.5, "c": [1, 2], "d": {"pi": [8], "vf": []}, "e": None, "f": "x"}),
    ("{'norm_obs': False}", {"norm_obs": False}),
    ("dict(activation_fn=th.nn.Tanh)", {"activation_fn": "tanh"}),
])
def test_python_literal_strings_parse(text, expected):
    assert parse_python_literal("k", text) == expected


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true')", "is not supported"),
    ("dict(features_extractor_class=MyExtractor)", "MyExtractor is not supported"),
    ("dict(optimizer_class=th.optim.RMSprop)", "th.optim.RMSprop is not supported"),
    ("dict(**x)", "only dict"),
    ("dict(a=1", "not a Python expression"),
    ("[x for x in range(3)]", "is not supported"),
])
def test_anything_but_literals_and_activations_is_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_python_literal("policy_kwargs", text)


def test_cli_trains_a_zoo_entry_unchanged(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "CartPole-v1", "--config", str(ZOO), "--timesteps", "64",
                 "--out", str(out), "--no-progress", "--set", "eval_episodes=1"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["n_envs"] == 8 and saved["agent"]["n_steps"] == 32
