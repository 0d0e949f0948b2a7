"""``lifelong eval``: evaluate a checkpoint, optionally recording videos of the episodes."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Mapping

import gymnasium as gym
import numpy as np

from lifelong.checkpoint import read_archive, restore_env_streams, restore_vec_normalize
from lifelong.checkpoint.members import VEC_NORMALIZE
from lifelong.cli.config import ConfigError
from lifelong.cli.run_dir import load_agent, make_env


class GifRecorder(gym.Wrapper):
    """Records every episode as an animated GIF (Pillow) when moviepy is not installed."""

    def __init__(self, env: gym.Env, folder: Path, prefix: str = "eval", fps: int = 30):
        super().__init__(env)
        self.folder, self.prefix, self.fps = Path(folder), prefix, fps
        self.frames: list[np.ndarray] = []
        self.episode = 0
        self.written: list[Path] = []

    def reset(self, **kwargs):
        self._flush()
        out = self.env.reset(**kwargs)
        self._grab()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._grab()
        if out[2] or out[3]:
            self._flush()
        return out

    def _grab(self):
        frame = self.env.render()
        if frame is not None:
            self.frames.append(np.asarray(frame))

    def _flush(self):
        if len(self.frames) < 2:
            self.frames = []
            return
        from PIL import Image
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.prefix}-episode-{self.episode}.gif"
        images = [Image.fromarray(f) for f in self.frames[::2]]  # half the frames: smaller files
        images[0].save(path, save_all=True, append_images=images[1:],
                       duration=int(2000 / self.fps), loop=0)
        self.written.append(path)
        self.episode += 1
        self.frames = []

    def close(self):
        self._flush()
        super().close()


def _can_render_rgb(config: Mapping) -> bool:
    """Whether the env renders rgb_array frames, found by rendering one. A renderer whose
    package is missing (pygame for the classic-control envs) is a ConfigError saying what to install."""
    kwargs = dict(config.get("env_kwargs") or {})
    try:
        env = gym.make(config["env"], render_mode="rgb_array", **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"--video: {config['env']} needs a package to render: {exc}") from None
    except Exception:  # noqa: BLE001 - a constructor that refuses render_mode: cannot render
        return False
    try:
        if "rgb_array" not in (env.metadata.get("render_modes") or []):
            return False
        env.reset(seed=0)
        return env.render() is not None
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"--video: {config['env']} needs a package to render: {exc}") from None
    finally:
        env.close()


def _check_spaces(path, model, env) -> None:
    import warnings
    for what, saved, given in (("observation", model.observation_space, env.observation_space),
                               ("action", model.action_space, env.action_space)):
        if type(saved) is not type(given) or getattr(saved, "shape", None) != getattr(given, "shape", None) \
                or getattr(saved, "n", None) != getattr(given, "n", None):
            raise ConfigError(f"{path}: the checkpoint's {what} space {saved} does not match the "
                              f"environment's {given} (wrong --env?)")
        if saved != given:
            warnings.warn(f"{path}: {what} space bounds differ from the checkpoint's "
                          f"({given} vs {saved})", stacklevel=2)


def evaluate_checkpoint(path: Path, config: Mapping, *, episodes: int = 10,
                        deterministic: bool = True, seed: int = 0,
                        video: Path | None = None) -> dict:
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    wrapper = None
    recorders: list = []
    note = None
    if video is not None:
        import os
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # rgb_array frames need no display
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        if not _can_render_rgb(config):
            raise ConfigError(f"--video: environment {config['env']} cannot render rgb_array "
                              "frames, so there is nothing to record")
        video = Path(video)
        if importlib.util.find_spec("moviepy") is not None:
            from gymnasium.wrappers import RecordVideo

            def wrapper(env):
                return RecordVideo(env, str(video), episode_trigger=lambda i: True,
                                   name_prefix="eval", disable_logger=True)
            note = f"videos (MP4) in {video}"
        else:
            def wrapper(env):
                rec = GifRecorder(env, video)
                recorders.append(rec)
                return rec
            note = (f"videos (GIF; `pip install moviepy` for MP4 through Gymnasium's RecordVideo) "
                    f"in {video}")
    # The model is loaded without an env (its training env had other n_envs), then evaluated on
    # its own env: one copy when recording (one video per episode), else up to 8 in a batch.
    model = load_agent(path, None, device="cpu")
    cfg = dict(config, normalize_obs=False, normalize_reward=False)
    env = make_env(cfg, n_envs=1 if video is not None else min(episodes, 8), seed=seed,
                   render_mode="rgb_array" if video is not None else None, wrapper_class=wrapper)
    phase = None
    try:
        _check_spaces(path, model, env)
        if VEC_NORMALIZE in read_archive(path):
            env = restore_vec_normalize(path, env)
        # a non-stationary env is evaluated on the task the checkpoint was trained on, not phase 0
        try:
            phase = restore_env_streams(path, env, pin=True)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if isinstance(env, VecNormalize):
            env.training = False
            env.norm_reward = False
        rewards, lengths = evaluate_policy(model, env, n_eval_episodes=episodes,
                                           deterministic=deterministic,
                                           return_episode_rewards=True, warn=False)
    finally:
        env.close()
    rewards = np.asarray(rewards, dtype=float)
    out = {"mean_reward": float(rewards.mean()), "std_reward": float(rewards.std()),
           "min_reward": float(rewards.min()), "max_reward": float(rewards.max()),
           "mean_length": float(np.mean(lengths)), "num_timesteps": int(model.num_timesteps),
           "rewards": rewards.tolist()}
    if phase is not None:
        out["phase"] = phase
    if note is not None:
        out["video"] = note
    return out
