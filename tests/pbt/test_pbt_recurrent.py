"""PBT of the recurrent agent (``agent["algo"] = "recurrent_ppo"``): a 3-member population on the
partially observed CartPole, 2 intervals. The exploit copies the donor's whole checkpoint, LSTM
states of the rollout included; the recipient is a ``DistributionalRecurrentPPO`` with the donor's
weights and optimizer state and its own new hyperparameters, on fresh episodes (so fresh LSTM
states); evaluation carries the LSTM state through each episode."""
import json

import numpy as np
import pytest
import torch

from lifelong import DistributionalRecurrentPPO
from lifelong.pbt import PBT, LogUniform
from lifelong.pbt.member import AgentSpec, evaluate, make_env, prepare_model

AGENT = {"algo": "recurrent_ppo", "env": "lifelong/CartPoleNoVel-v1", "n_steps": 32, "batch_size": 32,
         "n_epochs": 1, "device": "cpu", "policy_kwargs": {"lstm_hidden_size": 8, "net_arch": [8]}}
SPACE = {"learning_rate": LogUniform(1e-4, 3e-3)}


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pbt_recurrent")
    result = PBT(agent=AGENT, space=SPACE, population_size=3, interval_steps=64, total_steps=128,
                 truncation=0.34, eval_episodes=2, workers=2, seed=5, workdir=workdir,
                 keep_checkpoints=None).run()
    return result, workdir


def _states(model):
    return [t.detach().clone() for pair in model._last_lstm_states for t in pair]


def test_members_are_recurrent_and_the_exploit_moves_the_lstm_states(population):
    result, workdir = population
    (exploit,) = result.exploits
    donor = DistributionalRecurrentPPO.load(workdir / exploit["donor_checkpoint"], device="cpu")
    spec = AgentSpec.from_agent(AGENT)
    assert spec.agent_class is DistributionalRecurrentPPO and spec.policy == "MlpLstmPolicy"
    copied = DistributionalRecurrentPPO.load(workdir / exploit["checkpoint"], device="cpu")
    assert any(t.abs().sum() > 0 for t in _states(donor))  # after 64 steps not the zero state
    for a, b in zip(_states(donor), _states(copied)):
        assert torch.equal(a, b)  # the rollout's LSTM states came with the weights
    # The recipient's next interval runs on a fresh env (new episodes): the states of the
    # donor's unfinished episodes are dropped with them, as on any force_reset load.
    env = make_env(spec, seed=0)
    model = prepare_model(spec, exploit["new_config"], checkpoint=workdir / exploit["checkpoint"], env=env, seed=0)
    assert isinstance(model, DistributionalRecurrentPPO)
    assert all(t.abs().sum() == 0 for t in _states(model))
    for (name, a), b in zip(donor.policy.state_dict().items(), model.policy.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(donor.policy.optimizer.state_dict()["state"].values(),
                    model.policy.optimizer.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))
    assert model.get_hyperparameters()["learning_rate"] == pytest.approx(exploit["new_config"]["learning_rate"])
    assert exploit["new_config"] != exploit["donor_config"]
    env.close()


def test_every_member_trains_to_the_end_and_is_evaluated_with_its_state(population):
    result, workdir = population
    rows = [json.loads(x) for x in (workdir / "intervals.jsonl").read_text().splitlines()]
    assert {(r["member"], r["step"]) for r in rows} == {(m, s) for m in ("member_0", "member_1", "member_2")
                                                       for s in (64, 128)}
    for m in result.members:
        model = DistributionalRecurrentPPO.load(m.checkpoint, device="cpu")
        assert model.num_timesteps == 128 and np.isfinite(m.score)
        # the score is evaluate()'s: the LSTM state is carried from step to step of an episode
        again = evaluate(model, AgentSpec.from_agent(AGENT), episodes=2, seed=123)
        assert np.isfinite(again["eval_mean_reward"]) and again["eval_mean_length"] >= 1


def test_bad_algo_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="recurent_ppo"):
        AgentSpec.from_agent(dict(AGENT, algo="recurent_ppo"))
