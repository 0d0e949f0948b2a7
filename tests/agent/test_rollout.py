"""The agent's rollout collection against Stable-Baselines3's: same data, same callback
protocol, same resume state; the critics' targets bootstrap from the twins' mean value."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from lifelong import DistributionalPPO
from lifelong.agent.rollout import gae

# SB3's per-step locals; "values" only at on_rollout_end (the critics run once per rollout)
SB3_LOCALS = {"self", "env", "callback", "rollout_buffer", "n_rollout_steps", "n_steps", "obs_tensor", "actions",
              "log_probs", "clipped_actions", "new_obs", "rewards", "dones", "infos"}


class Recorder(BaseCallback):
    """Records, at every on_step, the names in ``locals`` and copies of what callbacks read."""

    def __init__(self):
        super().__init__()
        self.steps = []
        self.rollout_ends = 0

    def _on_step(self) -> bool:
        loc = self.locals
        self.steps.append(dict(keys=set(loc), new_obs=np.array(loc["new_obs"]), dones=np.array(loc["dones"]),
                               rewards=np.array(loc["rewards"]), infos=[dict(i) for i in loc["infos"]],
                               num_timesteps=self.num_timesteps))
        return True

    def _on_rollout_end(self) -> None:
        self.rollout_ends += 1
        self.end_values_shape = tuple(self.locals["values"].shape)


class DictObsEnv(gym.Env):
    """Dict observations (a Box and a Discrete part), MultiDiscrete actions, time limit 7."""

    observation_space = spaces.Dict({"x": spaces.Box(-1, 1, (3,), np.float32), "k": spaces.Discrete(4)})
    action_space = spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def _obs(self):
        return {"x": self.np_random.uniform(-1, 1, 3).astype(np.float32), "k": int(self.np_random.integers(4))}

    def step(self, action):
        reward = float(action[0]) - 0.5 * float(action[1]) + float(self.np_random.normal())
        return self._obs(), reward, bool(self.np_random.random() < 0.05), False, {}


gym.register("LifelongTestDictObs-v0", entry_point=DictObsEnv, max_episode_steps=7)

CASES = {
    "cartpole-twin-min": dict(env="CartPole-v1", kw={}),
    "cartpole-one-critic": dict(env="CartPole-v1", kw=dict(twin_critics=False)),
    "pendulum-sde-vecnorm-cvar": dict(env="Pendulum-v1", kw=dict(use_sde=True, sde_sample_freq=4, cvar_alpha=0.25),
                                      norm=True, max_steps=20, tight=False),
    "dict-multidiscrete-mean": dict(env="LifelongTestDictObs-v0", kw=dict(value_aggregation="mean"), policy="MultiInputPolicy"),
    "categorical-min": dict(env="CartPole-v1", kw=dict(critic="categorical"), tight=False),
}


def _model(case, seed=3):
    c = CASES[case]
    # a short time limit where given, so truncation bootstraps happen inside the rollout
    env_kwargs = {"max_episode_steps": c["max_steps"]} if "max_steps" in c else None
    env = make_vec_env(c["env"], n_envs=3, seed=seed, env_kwargs=env_kwargs)
    if c.get("norm"):
        env = VecNormalize(env)
    # The default 64x64 networks: on some CPUs the critics' batched pass over the rollout rounds
    # exactly as SB3's per-step pass; on others (another GEMM kernel for another row count) the
    # two differ in the last bits (~1e-7 relative, seen on an AMD EPYC).
    model = DistributionalPPO(c.get("policy", "MlpPolicy"), env, n_steps=48, batch_size=48, n_epochs=1, seed=seed,
                              **c["kw"])
    model.learn(48)  # one update, so the return statistics and weights are not at their initial values
    return model


def _batched_matmul_rounds_as_per_step(n_envs: int, n_steps: int) -> bool:
    """Whether this CPU's float32 matmul of a 64x64 layer over a whole rollout's rows rounds
    exactly as over each step's ``n_envs`` rows: where it does, the values must be bit-identical
    to SB3's; where it does not (another kernel for another row count), equal to a few ulps."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((n_steps + 1) * n_envs, 64, generator=gen)
    w = torch.randn(64, 64, generator=gen)
    return torch.equal(x @ w.T, torch.cat([rows @ w.T for rows in x.split(n_envs)]))


@pytest.mark.parametrize("case", list(CASES))
def test_rollout_matches_stable_baselines3(case):
    ours, theirs = _model(case), _model(case)
    recorders = {}
    for name, model, collect in (("ours", ours, type(ours).collect_rollouts), ("sb3", theirs, OnPolicyAlgorithm.collect_rollouts)):
        recorder = Recorder()
        recorder.init_callback(model)
        torch.manual_seed(11)  # the same action noise for both
        assert collect(model, model.env, recorder, model.rollout_buffer, model.n_steps)
        recorders[name] = recorder
    a, b = ours.rollout_buffer, theirs.rollout_buffer
    obs_a = a.observations if isinstance(a.observations, dict) else {"": a.observations}
    obs_b = b.observations if isinstance(b.observations, dict) else {"": b.observations}
    for key in obs_a:
        assert np.array_equal(obs_a[key], obs_b[key])
    for name in ("actions", "rewards", "episode_starts", "log_probs"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    # The critics run once over the whole rollout instead of once per step: the same numbers,
    # up to the rounding of a matmul whose kernel depends on the row count and the CPU: a few
    # float32 ulps for the MLP critics (exact on some CPUs); the categorical expectation and the
    # CVaR weights round differently on every CPU.
    tight = CASES[case].get("tight", True)
    exact = tight and _batched_matmul_rounds_as_per_step(ours.n_envs, ours.n_steps)
    tolerance = dict(rtol=1e-6, atol=2e-6) if tight else dict(rtol=1e-5, atol=1e-6)
    for name in ("values", "advantages"):
        if exact:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        else:
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), **tolerance, err_msg=name)
    assert a.full and a.pos == b.pos
    policy = ours.policy
    if policy.targets_use_aggregate:
        np.testing.assert_allclose(a.returns, b.returns, **tolerance)
        if exact:
            assert np.array_equal(a.returns, b.returns)
    else:
        assert not np.allclose(a.returns, b.returns)  # the critics' targets differ from advantages + aggregate
    # resume state and bookkeeping
    if isinstance(ours._last_obs, dict):
        assert all(np.array_equal(ours._last_obs[k], theirs._last_obs[k]) for k in ours._last_obs)
    else:
        assert np.array_equal(ours._last_obs, theirs._last_obs)
    assert np.array_equal(ours._last_episode_starts, theirs._last_episode_starts)
    assert ours.num_timesteps == theirs.num_timesteps
    def episodes(m):  # Monitor's "t" is wall-clock time
        return [(e["r"], e["l"]) for e in m.ep_info_buffer]
    assert episodes(ours) == episodes(theirs) and len(episodes(ours)) > 0
    # callback protocol: on_step once per vectorised step with SB3's locals, on_rollout_end once
    ra, rb = recorders["ours"], recorders["sb3"]
    assert len(ra.steps) == len(rb.steps) == ours.n_steps and ra.rollout_ends == rb.rollout_ends == 1
    assert ra.end_values_shape == (ours.n_steps, ours.n_envs)
    for sa, sb in zip(ra.steps, rb.steps):
        assert SB3_LOCALS <= sa["keys"]
        assert sa["num_timesteps"] == sb["num_timesteps"]
        for k in ("new_obs", "dones", "rewards"):
            if isinstance(sa[k], np.ndarray) and sa[k].dtype != object:
                assert np.array_equal(sa[k], sb[k]), k
        assert [sorted(i) for i in sa["infos"]] == [sorted(i) for i in sb["infos"]]


def test_critic_targets_bootstrap_from_the_twins_mean():
    """returns = TD(lambda) returns over the critics' mean value (time-limit bootstrap included),
    recomputed here from the stored observations and the terminal observations."""
    model = _model("pendulum-sde-vecnorm-cvar")
    recorder = Recorder()
    recorder.init_callback(model)
    model.collect_rollouts(model.env, recorder, model.rollout_buffer, model.n_steps)
    buf = model.rollout_buffer
    policy = model.policy
    n_steps, n_envs = buf.values.shape
    with torch.no_grad():
        obs = torch.as_tensor(buf.observations.reshape(n_steps * n_envs, -1))
        mean_values = policy.critic_values(obs).mean(0).reshape(n_steps, n_envs).numpy().astype(np.float64)
        last = policy.critic_values(torch.as_tensor(model._last_obs)).mean(0).numpy().astype(np.float64)
        rewards = np.array([s["rewards"] for s in recorder.steps], dtype=np.float64)  # before any bootstrap
        truncations = 0
        for t, s in enumerate(recorder.steps):
            for i, info in enumerate(s["infos"]):
                if s["dones"][i] and info.get("TimeLimit.truncated", False):
                    term = torch.as_tensor(info["terminal_observation"]).unsqueeze(0)
                    rewards[t, i] += model.gamma * policy.critic_values(term).mean().item()
                    truncations += 1
    assert truncations > 0
    # reference GAE in float64, written from the formula
    gamma, lam = model.gamma, model.gae_lambda
    returns = np.zeros_like(mean_values)
    next_value, next_adv, next_nonterminal = last, np.zeros(n_envs), 1.0 - model._last_episode_starts
    for t in reversed(range(n_steps)):
        delta = rewards[t] + gamma * next_nonterminal * next_value - mean_values[t]
        adv = delta + gamma * lam * next_nonterminal * next_adv
        returns[t] = adv + mean_values[t]
        next_value, next_adv, next_nonterminal = mean_values[t], adv, 1.0 - buf.episode_starts[t]
    np.testing.assert_allclose(buf.returns, returns, rtol=1e-4, atol=1e-4)
    # and the advantages still use the aggregate (the CVaR), which is below the mean here
    assert (buf.values < mean_values - 1e-6).mean() > 0.9


def test_lambda_returns_reference():
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(6, 2)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    starts = (rng.random((6, 2)) < 0.3).astype(np.float32)
    last, dones = rng.normal(size=2).astype(np.float32), np.array([True, False])
    got = gae(rewards, values, starts, last, dones, 0.9, 0.8) + values
    want = np.zeros((6, 2))
    for e in range(2):
        g_next, v_next, nonterminal = 0.0, float(last[e]), 1.0 - float(dones[e])
        for t in reversed(range(6)):
            a = rewards[t, e] + 0.9 * nonterminal * v_next - values[t, e] + 0.9 * 0.8 * nonterminal * g_next
            want[t, e] = a + values[t, e]
            g_next, v_next, nonterminal = a, float(values[t, e]), 1.0 - float(starts[t, e])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_stacked_gae_is_each_row_s_and_the_buffer_s_own_bits():
    """Two value estimates of one rollout in one GAE loop (the rollout's advantages and critic
    targets): each row bit for bit what Stable-Baselines3's compute_returns_and_advantage gives."""
    from stable_baselines3.common.buffers import RolloutBuffer
    rng = np.random.default_rng(1)
    n_steps, n_envs = 7, 3
    starts = (rng.random((n_steps, n_envs)) < 0.3).astype(np.float32)
    dones = np.array([True, False, True])
    rewards = rng.normal(size=(2, n_steps, n_envs)).astype(np.float32)
    values = rng.normal(size=(2, n_steps, n_envs)).astype(np.float32)
    last = rng.normal(size=(2, n_envs)).astype(np.float32)
    stacked = gae(rewards, values, starts, last, dones, 0.97, 0.9)
    for k in range(2):
        buffer = RolloutBuffer(n_steps, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), n_envs=n_envs, gamma=0.97,
                               gae_lambda=0.9)
        buffer.rewards[:], buffer.values[:], buffer.episode_starts[:] = rewards[k], values[k], starts
        buffer.compute_returns_and_advantage(torch.as_tensor(last[k]), dones)
        assert np.array_equal(stacked[k], buffer.advantages)
        assert np.array_equal(gae(rewards[k], values[k], starts, last[k], dones, 0.97, 0.9), buffer.advantages)


def test_custom_buffer_add_is_called():
    from stable_baselines3.common.buffers import RolloutBuffer

    class CountingBuffer(RolloutBuffer):
        calls = 0

        def add(self, *args, **kwargs):
            CountingBuffer.calls += 1
            super().add(*args, **kwargs)

    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = DistributionalPPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0,
                              rollout_buffer_class=CountingBuffer)
    model.learn(32)
    assert CountingBuffer.calls == 16  # one rollout of n_steps vectorised steps


class DelayedUniformReward(gym.Env):
    """Three steps, observation = one-hot of the step, reward 0 then ``10 U`` (``U ~ Uniform(0, 1)``)
    at the last step. With discount ``g`` the return from step ``t`` is ``g^(2-t) 10 U``: its
    quantile at ``tau`` is ``g^(2-t) 10 tau``, its mean ``g^(2-t) 5`` and its CVaR at ``a`` is
    ``g^(2-t) 5 a``."""

    observation_space = spaces.Box(0, 1, (3,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.eye(3, dtype=np.float32)[0], {}

    def step(self, action):
        self.t += 1
        done = self.t == 3
        reward = 10.0 * float(self.np_random.random()) if done else 0.0
        return np.eye(3, dtype=np.float32)[min(self.t, 2)], reward, done, False, {}


def _learn_delayed_uniform(gae_lambda):
    from lifelong.agent.schedules import Linear

    model = DistributionalPPO("MlpPolicy", make_vec_env(DelayedUniformReward, n_envs=8, seed=0), n_steps=30,
                              batch_size=240, n_epochs=5, gamma=0.9, gae_lambda=gae_lambda, optimizer="adam", vgs=False,
                              learning_rate=Linear(1e-2, 0.0), cvar_alpha=0.25, huber_kappa=0.01, seed=0,
                              policy_kwargs=dict(net_arch=[32]))
    model.learn(8000)
    policy, obs = model.policy, torch.eye(3)
    with torch.no_grad():
        quantiles = policy.return_normalizer.denormalize(policy.critic_outputs(obs)).sort(-1).values.numpy()
        value = policy.predict_values(obs)[:, 0].numpy()
        means = policy.critic_values(obs).numpy()
    scale = 0.9 ** np.arange(2, -1, -1)  # g^(2-t) for t = 0, 1, 2
    return quantiles, value, means, scale


def test_learned_quantiles_and_cvar_match_the_return_distribution():
    """Monte-Carlo targets (lambda = 1, whole episodes): every critic's 32 quantiles within 0.3 of
    the exact ones (3% of the return's range 10), the CVaR(0.25) value within 0.15 and both
    critics' means within 0.1 of the exact return statistics, in every state."""
    quantiles, value, means, scale = _learn_delayed_uniform(1.0)
    taus = (2 * np.arange(32) + 1) / 64
    exact_quantiles = scale[None, :, None] * 10 * taus  # [1, state, N]
    assert np.abs(quantiles - exact_quantiles).max() < 0.3
    np.testing.assert_allclose(value, scale * 5 * 0.25, atol=0.15)
    np.testing.assert_allclose(means, np.broadcast_to(scale * 5, means.shape), atol=0.1)


def test_critics_mean_is_unbiased_under_a_cvar_aggregate():
    """lambda = 0.5 with the advantages' value at CVaR(0.25): bootstrapping the critics' targets
    from the twins' mean keeps both critics' mean at the return's mean in every state (within
    0.2). Bootstrapping them from the CVaR, as before, gave 1.83 and 2.85 for 4.05 and 4.5."""
    _, _, means, scale = _learn_delayed_uniform(0.5)
    np.testing.assert_allclose(means, np.broadcast_to(scale * 5, means.shape), atol=0.2)


def test_categorical_sample_is_torch_multinomial_draw_for_draw():
    """The rollout's categorical draw: the same actions as ``torch.multinomial(p, 1)`` and the
    same generator state after, over many distributions (peaked, flat, with zero entries)."""
    from lifelong.agent.policy import categorical_sample

    torch.manual_seed(0)
    cases = [torch.softmax(torch.randn(8, n) * scale, -1) for n in (2, 5, 18) for scale in (0.1, 3.0, 30.0)]
    cases.append(torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]))
    for probs in cases:
        for _ in range(200):
            state = torch.get_rng_state()
            want = torch.multinomial(probs, 1).squeeze(-1)
            after = torch.get_rng_state()
            torch.set_rng_state(state)
            assert torch.equal(categorical_sample(probs), want)
            assert torch.equal(torch.get_rng_state(), after)


def test_rollout_with_nan_parameters_is_a_clear_error():
    model = DistributionalPPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=16, batch_size=32, seed=0)
    with torch.no_grad():
        model.policy.action_net.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"log-probabilities are NaN, first at rollout step 0 of 16"):
        model.learn(32)


@pytest.mark.parametrize("make", [
    lambda: np.arange(32, dtype=np.float32).reshape(8, 4),                       # the common case
    lambda: np.arange(32, dtype=np.float64).reshape(8, 4),                       # dtype kept
    lambda: np.arange(24, dtype=np.float32).reshape(2, 4, 3).transpose(0, 2, 1),  # not contiguous
    lambda: np.arange(18, dtype=np.float32).reshape(2, 3, 3, 1).transpose(0, 3, 1, 2),  # size-1 dim, odd strides
    lambda: np.arange(4, dtype=np.float32).reshape(1, 4),                        # one environment
])
def test_observation_tensor_has_row_major_strides_and_the_array_s_values(make):
    from lifelong.agent.rollout import observation_tensor
    obs = make()
    got = observation_tensor(obs, torch.device("cpu"))
    assert got.shape == obs.shape and got.dtype == torch.from_numpy(np.ascontiguousarray(obs)).dtype
    assert np.array_equal(got.numpy(), obs)
    row_major = tuple(int(np.prod(obs.shape[i + 1:])) for i in range(obs.ndim))
    assert got.stride() == row_major
    if obs.flags.c_contiguous:
        assert np.shares_memory(got.numpy(), obs)  # no copy, as obs_as_tensor on the CPU
