"""A tiny Ray PBT population, run as a script so a test can SIGKILL it and resume it.

    python ray_population_main.py WORKDIR sync|async
"""
import sys

import torch

from lifelong.pbt import PBT, LogUniform, Uniform

AGENT = {"env": "CartPole-v1", "n_steps": 32, "batch_size": 32, "n_epochs": 1, "device": "cpu",
         "n_quantiles": 8, "policy_kwargs": {"net_arch": [16]}}


def population(workdir: str, mode: str) -> PBT:
    return PBT(agent=AGENT, space={"learning_rate": LogUniform(1e-4, 3e-3), "ent_coef": Uniform(0.0, 0.02)},
               population_size=2, interval_steps=32, total_steps=160, truncation=0.5, eval_episodes=1,
               workdir=workdir, backend="ray", workers=2, seed=0, synchronous=mode == "sync")


if __name__ == "__main__":
    torch.set_num_threads(1)
    result = population(sys.argv[1], sys.argv[2]).run()
    print("finished", [m.step for m in result.members], flush=True)
