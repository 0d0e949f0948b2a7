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

#: the agents by name, as a configuration's ``algo`` (command line) or a PBT ``agent["algo"]``
#: selects them
ALGORITHMS: dict[str, type] = {"ppo": DistributionalPPO, "recurrent_ppo": DistributionalRecurrentPPO}
DEFAULT_ALGO = "ppo"

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGO",
    "DistributionalPPO",
    "DistributionalRecurrentPPO",
    "DistributionalActorCriticPolicy",
    "DistributionalCnnPolicy",
    "DistributionalMultiInputPolicy",
    "DistributionalLstmPolicy",
    "DistributionalCnnLstmPolicy",
    "DistributionalMultiInputLstmPolicy",
]
