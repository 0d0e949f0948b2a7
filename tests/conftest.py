"""Test-wide settings: one torch thread (2 threads is ~10x slower here), deterministic seeds, and
torch.distributions' argument validation as each test found it."""
import pytest
import torch
from torch.distributions import Distribution

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _distribution_validation_restored():
    """A test that calls ``torch.compile`` itself (a compiled policy, as SB3 users compile one)
    turns torch.distributions' argument validation off for the rest of its process (torch's
    ``TorchPatcher``); restoring it keeps the later tests of that pytest worker from depending
    on which tests ran before them."""
    validation = Distribution._validate_args
    yield
    Distribution.set_default_validate_args(validation)
