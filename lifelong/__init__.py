"""lifelong: reinforcement-learning agents that keep learning.

Public names: DistributionalPPO, DistributionalRecurrentPPO, UPGD, AdaptiveUPGD, UPGDW, VarianceGradientScaler, CheckpointError.
"""
__version__ = "0.1.0"  # first: the checkpoint format records it while the package is importing

import lifelong.envs  # noqa: E402, F401  (registers the lifelong/... Gymnasium ids)
from lifelong.agent import DistributionalPPO, DistributionalRecurrentPPO  # noqa: E402
from lifelong.errors import CheckpointError  # noqa: E402
from lifelong.optim import UPGD, UPGDW, AdaptiveUPGD  # noqa: E402
from lifelong.vgs import VarianceGradientScaler  # noqa: E402

__all__ = ["CheckpointError", "UPGD", "AdaptiveUPGD", "UPGDW", "VarianceGradientScaler", "DistributionalPPO",
           "DistributionalRecurrentPPO"]
