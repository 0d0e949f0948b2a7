"""lifelong: reinforcement-learning agents that keep learning.

Public names: DistributionalPPO, UPGD, AdaptiveUPGD, UPGDW, VarianceGradientScaler, CheckpointError.
"""
from lifelong.errors import CheckpointError

__all__ = ["CheckpointError"]
__version__ = "0.1.0"
