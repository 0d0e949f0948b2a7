"""The agents: :class:`DistributionalPPO` and :class:`DistributionalRecurrentPPO` (algorithms,
policies, critics and their losses, return normalisation, optimizer setup, hyperparameters,
training metrics)."""
from lifelong.agent.lstm_policy import (
    DistributionalCnnLstmPolicy,
    DistributionalLstmPolicy,
    DistributionalMultiInputLstmPolicy,
)
from lifelong.agent.policy import (
    DistributionalActorCriticPolicy,
    DistributionalCnnPolicy,
    DistributionalMultiInputPolicy,
)
from lifelong.agent.ppo import DistributionalPPO
from lifelong.agent.recurrent import DistributionalRecurrentPPO

__all__ = [
    "DistributionalPPO",
    "DistributionalRecurrentPPO",
    "DistributionalActorCriticPolicy",
    "DistributionalCnnPolicy",
    "DistributionalMultiInputPolicy",
    "DistributionalLstmPolicy",
    "DistributionalCnnLstmPolicy",
    "DistributionalMultiInputLstmPolicy",
]
