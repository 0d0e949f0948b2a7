"""Optimizers: the UPGD family (utility-based perturbed gradient descent)."""
from lifelong.optim.upgd import UPGD, UPGDW, AdaptiveUPGD

__all__ = ["UPGD", "AdaptiveUPGD", "UPGDW"]
