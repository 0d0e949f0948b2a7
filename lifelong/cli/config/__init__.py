"""Run configuration: schema, YAML files, ``--set KEY=VALUE`` overrides and validation.

A configuration is a plain mapping (what ``config.yaml`` holds)::

    algo: ppo                 # ppo (DistributionalPPO) | recurrent_ppo (DistributionalRecurrentPPO)
    env: CartPole-v1          # Gymnasium id (``lifelong train ENV`` overrides it)
    env_kwargs: {}            # extra gymnasium.make arguments
    n_envs: 8                 # vectorised copies of the env
    vec_env: dummy            # dummy | subproc
    normalize_obs: false      # VecNormalize the observations (statistics are checkpointed)
    seed: 0
    timesteps: 100000
    eval_every: 10000         # 0 = evaluate only at the end
    eval_episodes: 10
    eval_deterministic: true
    checkpoint_every: 25000   # 0 = checkpoint only at the end
    keep_checkpoints: 3
    agent:                    # constructor arguments of the algo's agent
      learning_rate: 3.0e-4   # or lin_3e-4, or {linear: [3e-4, 0]}
      n_steps: 2048
      ...
    pbt: {...}                # only for ``lifelong pbt``: PBT arguments
    space: {...}              # only for ``lifelong pbt``: the search space

Defaults come from the chosen agent's signature (read with :mod:`inspect`), so the agent's own
defaults are the config defaults (``algo`` decides which agent, so it is read first, from the file,
the flags or ``--set algo=...``). Precedence: defaults < ``--config`` file < ``--set``.
Every error is a :class:`ConfigError` whose message starts with the key's dotted path, e.g.
``agent.n_steps: expected a positive integer, got -3``.

Modules, one concept each:

- :mod:`.errors`       ConfigError and the message helpers
- :mod:`.yaml_io`      YAML load/dump, ``--set`` value typing and ``KEY=VALUE`` parsing
- :mod:`.validators`   value types (positive ints, ranges, choices, schedules like ``lin_2e-3``, ...)
- :mod:`.signature`    defaults read from a constructor's signature
- :mod:`.agent`        the ``agent:`` schema derived from the chosen agent's signature
- :mod:`.run_options`  the run-options schema (top-level keys)
- :mod:`.pbt_schema`   the ``pbt:`` settings and the ``space:`` search space
- :mod:`.merge`        defaults < file < flags < ``--set``, and whole-config validation
"""
from __future__ import annotations

from lifelong.cli.config.errors import ConfigError, suggest
from lifelong.cli.config.yaml_io import dump_yaml, load_yaml, parse_set, parse_value
from lifelong.cli.config.validators import (ACTIVATIONS, Any_, Bool, Choice, Float, FreeDict, Int,
                                        Kwargs, NetArch, Optional, PolicyKwargs, Schedule, Str, V,
                                        activation_class)
from lifelong.cli.config.run_options import RUN_KEYS, SECTION_KEYS
from lifelong.cli.config.agent import AGENT_EXCLUDED, AGENT_KNOWN, agent_class, agent_defaults
from lifelong.cli.config.pbt_schema import parse_space, pbt_class, pbt_defaults, tunable_names
from lifelong.cli.config.merge import apply_sets, defaults, resolve, validate

__all__ = ["ConfigError", "load_yaml", "parse_value", "parse_set", "apply_sets", "defaults",
           "resolve", "validate", "agent_defaults", "dump_yaml", "RUN_KEYS", "AGENT_EXCLUDED",
           "parse_space", "pbt_defaults"]
