"""Test-wide settings: one torch thread (2 threads is ~10x slower here), deterministic seeds."""
import torch

torch.set_num_threads(1)
