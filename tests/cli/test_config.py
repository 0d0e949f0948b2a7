"""Config schema: defaults from the agent's signature, precedence, validation messages."""
from pathlib import Path

import pytest

from lifelong.cli import config as C
from lifelong.cli.config import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_defaults_come_from_the_agent_signature():
    import inspect
    from lifelong.agent.ppo import DistributionalPPO
    sig = inspect.signature(DistributionalPPO.__init__).parameters
    agent = C.defaults()["agent"]
    for name in ("n_steps", "batch_size", "learning_rate", "critic", "n_quantiles", "twin_critics",
                 "value_aggregation", "optimizer", "vgs", "normalize_returns"):
        assert agent[name] == sig[name].default, name
    for name in ("env", "seed", "tensorboard_log", "verbose", "_init_setup_model"):
        assert name not in agent


def test_yaml_floats_without_a_dot():
    assert C.parse_value("1e-4") == pytest.approx(1e-4)
    assert C.parse_value("3E5") == 300000.0
    assert C.parse_value("[64, 64]") == [64, 64]
    assert C.parse_value("null") is None
    assert C.parse_value("lin_1e-3") == "lin_1e-3"


def test_precedence_defaults_file_overrides_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("env: CartPole-v1\nseed: 3\nagent:\n  n_steps: 128\n  batch_size: 64\n  gamma: 0.9\n")
    cfg = C.resolve(config_file=f, overrides={"seed": 5}, sets=["agent.gamma=0.95", "n_epochs=3"])
    assert cfg["env"] == "CartPole-v1"
    assert cfg["seed"] == 5                      # flag over file
    assert cfg["agent"]["n_steps"] == 128         # file over defaults
    assert cfg["agent"]["gamma"] == 0.95          # --set over file
    assert cfg["agent"]["n_epochs"] == 3          # bare agent key
    assert cfg["agent"]["critic"] == "quantile"   # default kept


def test_schedules_normalised():
    cfg = C.resolve(sets=["agent.learning_rate=lin_1e-3", "agent.clip_range={linear: [0.3, 0.1]}"])
    assert cfg["agent"]["learning_rate"] == {"linear": [1e-3, 0.0]}
    assert cfg["agent"]["clip_range"] == {"linear": [0.3, 0.1]}
    from lifelong.cli.run_dir import agent_kwargs
    from lifelong.agent.schedules import Linear
    kw = agent_kwargs(cfg)
    assert isinstance(kw["learning_rate"], Linear) and kw["learning_rate"](1.0) == pytest.approx(1e-3)


@pytest.mark.parametrize("sets, message", [
    (["agent.n_steps=-3"], "agent.n_steps: expected a positive integer, got -3"),
    (["agent.gamma=1.5"], "agent.gamma: expected a number in [0, 1], got 1.5"),
    (["agent.critic=quantil"], "agent.critic: expected one of 'quantile', 'categorical', got 'quantil' (did you mean quantile?)"),
    (["timesteps=abc"], "timesteps: expected a positive integer, got 'abc'"),
    (["agent.vgs=yes please"], "agent.vgs: expected true or false, got 'yes please'"),
    (["agent.policy_kwargs={net_arch: [64, 0]}"], "agent.policy_kwargs.net_arch[1]: expected a positive integer, got 0"),
    (["agent.learning_rate=-0.1"], "agent.learning_rate: expected a positive number"),
    (["agent.v_min=5", "agent.v_max=1"], "agent.v_max: expected a number greater than agent.v_min"),
    (["agent.batch_size=4096"], "agent.batch_size: 4096 is larger than the rollout"),
    (["n_stpes=5"], "--set n_stpes: unknown key (did you mean agent.n_steps"),
    (["agent.net_arch=[64]"], "did you mean agent.policy_kwargs.net_arch?"),
    (["agent.n_steps"], "--set agent.n_steps: expected KEY=VALUE"),
    (["agent.policy_kwargs=[1"], "--set agent.policy_kwargs: malformed value '[1'"),
    (["agent.optimizer_kwargs={betaz: [0.9, 0.99]}"], "agent.optimizer_kwargs.betaz: unknown key (did you mean betas?)"),
    (["agent.vgs_kwargs={alpah: 0.5}"], "agent.vgs_kwargs.alpah: unknown key (did you mean alpha?)"),
    (["agent.optimizer=adaptive_upgd", "agent.optimizer_groups={'action_net.*': {reset_evry: 100}}"],
     "agent.optimizer_groups.action_net.*.reset_evry: unknown key (did you mean reset_every"),
    (["agent.optimizer_groups={'action_net.*': 5}"], "agent.optimizer_groups.action_net.*: expected a mapping"),
    (["agent.optimizer_groups=[1]"], "agent.optimizer_groups: expected a mapping"),
    (["agent.policy_kwargs={activation_fn: relu6}"], "agent.policy_kwargs.activation_fn: expected one of"),
])
def test_bad_values_name_the_key(sets, message):
    with pytest.raises(ConfigError) as exc:
        C.resolve(sets=sets)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_file_errors(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("agent:\n  n_stepz: 5\n")
    with pytest.raises(ConfigError, match=r"agent.n_stepz: unknown key \(did you mean n_steps\?\)"):
        C.resolve(config_file=f)
    f.write_text("n_steps: 5\n")
    with pytest.raises(ConfigError, match=r"n_steps: unknown key.*agent.n_steps"):
        C.resolve(config_file=f)
    f.write_text("agent: [1, 2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line"):
        C.resolve(config_file=f)
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        C.resolve(config_file=f)
    f.write_text("pbt: {population_size: 4}\n")
    with pytest.raises(ConfigError, match="only for `lifelong pbt`"):
        C.resolve(config_file=f)
    with pytest.raises(ConfigError, match="config file not found"):
        C.resolve(config_file=tmp_path / "missing.yaml")


def test_integral_floats_are_integers():
    cfg = C.resolve(sets=["timesteps=1e5", "agent.n_steps=64.0"])
    assert cfg["timesteps"] == 100000 and isinstance(cfg["timesteps"], int)
    assert cfg["agent"]["n_steps"] == 64 and isinstance(cfg["agent"]["n_steps"], int)
    with pytest.raises(ConfigError, match="agent.n_steps: expected a positive integer, got 64.5"):
        C.resolve(sets=["agent.n_steps=64.5"])


def test_space_parsing():
    sp = C.parse_space({"learning_rate": {"loguniform": [1e-4, 3e-3]},
                        "ent_coef": {"type": "uniform", "low": 0, "high": 0.02},
                        "n_epochs": {"choice": [4, 8]}})
    assert sp["learning_rate"] == ("loguniform", [1e-4, 3e-3])
    assert sp["ent_coef"] == ("uniform", [0.0, 0.02])
    assert sp["n_epochs"] == ("choice", [4, 8])
    with pytest.raises(ConfigError, match="space.learnin_rate: not a tunable hyperparameter"):
        C.parse_space({"learnin_rate": {"loguniform": [1e-4, 3e-3]}})
    with pytest.raises(ConfigError, match=r"space.ent_coef.uniform: expected low < high"):
        C.parse_space({"ent_coef": {"uniform": [0.1, 0.0]}})
    with pytest.raises(ConfigError, match=r"space.ent_coef: unknown distribution 'unifrom'.*did you mean uniform"):
        C.parse_space({"ent_coef": {"unifrom": [0.0, 0.1]}})


@pytest.mark.parametrize("name", ["cartpole.yaml", "pendulum.yaml", "lunarlander.yaml"])
def test_examples_validate(name):
    cfg = C.resolve(config_file=EXAMPLES / name)
    assert cfg["env"]
    from lifelong.cli.run_dir import check_env_id
    check_env_id(cfg["env"])


def test_pbt_example_validates():
    cfg = C.resolve(config_file=EXAMPLES / "pbt_cartpole.yaml", sections=("agent", "pbt", "space"))
    assert cfg["pbt"]["population_size"] >= 2
    assert C.parse_space(cfg["space"])


def test_resolved_config_round_trips(tmp_path):
    cfg = C.resolve(config_file=EXAMPLES / "cartpole.yaml")
    f = tmp_path / "config.yaml"
    f.write_text(C.dump_yaml(cfg))
    assert C.validate(C.load_yaml(f)) == cfg


def test_agent_defaults_are_left_to_the_agent():
    """Keys at their default are not passed, so the agent's own defaults (and its
    'learning_rate not given' marker) apply: optimizer_kwargs.lr then does not conflict."""
    from lifelong.cli.run_dir import agent_kwargs, build_agent, make_env
    cfg = C.resolve(sets=["env=CartPole-v1", "agent.optimizer_kwargs={lr: 0.002}", "n_steps=64"])
    kw = agent_kwargs(cfg)
    assert "learning_rate" not in kw and kw["n_steps"] == 64
    env = make_env(cfg)
    model = build_agent(cfg, env)
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(0.002)
    env.close()
    cfg = C.resolve(sets=["env=CartPole-v1", "agent.optimizer_kwargs={lr: 0.002}",
                          "agent.learning_rate=0.001", "n_steps=64"])
    with pytest.raises(ConfigError, match="agent: .*lr"):
        build_agent(cfg, make_env(cfg))
