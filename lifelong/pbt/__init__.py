"""Population-based training (Jaderberg et al. 2017) of ``DistributionalPPO`` or
``DistributionalRecurrentPPO`` members.

``PBT(...).run()`` trains a population, exploiting by truncation selection (the whole
checkpoint of a top member is copied) and exploring within a search space (the recipient's own
new hyperparameters are applied after the donor's state is loaded), synchronously (a barrier at
every boundary, the default) or asynchronously (``synchronous=False``). ``backend="local"`` runs
members in worker processes on this machine; ``backend="ray"`` on Ray Tune (``pip install
lifelong[ray]``). See docs/pbt.md.
"""
from lifelong.pbt.core import BACKENDS, PBT, PBTError
from lifelong.pbt.explore import asynchronous_decision, explore, n_truncated, quantiles, select_exploits
from lifelong.pbt.member import EVAL_METRICS
from lifelong.pbt.records import MemberResult, PBTResult, read_lineage
from lifelong.pbt.space import Choice, Distribution, IntUniform, LogUniform, Uniform

__all__ = [
    "PBT",
    "PBTError",
    "PBTResult",
    "MemberResult",
    "LogUniform",
    "Uniform",
    "IntUniform",
    "Choice",
    "Distribution",
    "EVAL_METRICS",
    "BACKENDS",
    "explore",
    "select_exploits",
    "asynchronous_decision",
    "quantiles",
    "n_truncated",
    "read_lineage",
]
