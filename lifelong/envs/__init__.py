"""Non-stationary environments for continual-RL experiments.

Wrappers (any Gymnasium env): :class:`PermuteObservations`, :class:`PermuteActions`,
:class:`ScaleRewards`; for CartPole: :class:`ChangingDynamics`. Importing this package (done by
``import lifelong``) registers ``lifelong/PermutedCartPole-v0``,
``lifelong/PermutedActionsCartPole-v0``, ``lifelong/ChangingCartPole-v0`` and
``lifelong/ScaledRewardsCartPole-v0``.

Partially observed (:class:`HideVelocities`): ``lifelong/CartPoleNoVel-v1`` and
``lifelong/PendulumNoVel-v1``, the velocities hidden as in rl-zoo's ``NoVel`` environments.
"""
from lifelong.envs.base import NonStationaryWrapper
from lifelong.envs.partial import VELOCITY_ENTRIES, HideVelocities
from lifelong.envs.registration import PARTIALLY_OBSERVED, REGISTERED, register_envs
from lifelong.envs.wrappers import (
                                    CARTPOLE_PARAMS,
                                    ChangingDynamics,
                                    PermuteActions,
                                    PermuteObservations,
                                    ScaleRewards,
)

register_envs()

__all__ = ["NonStationaryWrapper", "PermuteObservations", "PermuteActions", "ScaleRewards",
           "ChangingDynamics", "CARTPOLE_PARAMS", "REGISTERED", "PARTIALLY_OBSERVED", "register_envs", "HideVelocities",
           "VELOCITY_ENTRIES"]
