"""lifelong: reinforcement-learning agents that keep learning.

Public names: DistributionalPPO, UPGD, AdaptiveUPGD, UPGDW, VarianceGradientScaler, CheckpointError.
"""
from lifelong.errors import CheckpointError
from lifelong.optim import UPGD, AdaptiveUPGD, UPGDW
from lifelong.vgs import VarianceGradientScaler
from lifelong.ppo import DistributionalPPO
import lifelong.envs  # noqa: F401  (registers the lifelong/... Gymnasium ids)

__all__ = ["CheckpointError", "UPGD", "AdaptiveUPGD", "UPGDW", "VarianceGradientScaler", "DistributionalPPO"]
__version__ = "0.1.0"
