"""The agent: :class:`DistributionalPPO` (algorithm, policy, critics and their losses, return
normalisation, optimizer setup, hyperparameters, training metrics)."""
from lifelong.agent.policy import (
    DistributionalActorCriticPolicy,
    DistributionalCnnPolicy,
    DistributionalMultiInputPolicy,
)
from lifelong.agent.ppo import DistributionalPPO

__all__ = ["DistributionalPPO", "DistributionalActorCriticPolicy", "DistributionalCnnPolicy", "DistributionalMultiInputPolicy"]
