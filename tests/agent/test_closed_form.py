"""The closed-form minibatch step (lifelong.agent.closed_form) against the autograd path it
replaces: the same loss and statistics (bit for bit with ReLU units; with Tanh units, whose
closed_form.tanh is not torch.tanh's bits, to float32 rounding), the same gradients to float
rounding (float64), and the autograd path wherever the closed form does not apply."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

from lifelong import DistributionalPPO
from lifelong.agent import closed_form, update
from lifelong.agent.gradients import zero_grad


def _model(env_id="CartPole-v1", **kwargs):
    env = make_vec_env(env_id, n_envs=2, seed=0)
    kwargs.setdefault("n_steps", 32)
    kwargs.setdefault("batch_size", 16)
    return DistributionalPPO("MlpPolicy", env, seed=0, device="cpu", **kwargs)


def _minibatch(model, dtype):
    """A rollout's first minibatch, in ``dtype``, with the policy moved to ``dtype``."""
    model.learn(model.n_steps * model.n_envs)  # fills the buffer (float32 rollout)
    model.policy.to(dtype)
    data = next(model.rollout_buffer.get(batch_size=None))
    idx = torch.arange(0, 20)
    actions = data.actions[idx]
    if model.action_space.__class__.__name__ == "Discrete":
        actions = actions.long().flatten()
    else:
        actions = actions.to(dtype)
    targets = model.policy.return_normalizer.normalize(data.returns[idx]).to(dtype)
    # Old log-probabilities away from the current ones, so that both clip branches occur.
    gen = torch.Generator().manual_seed(1)
    old_log_prob = data.old_log_prob[idx].to(dtype) + 0.3 * torch.randn(20, generator=gen, dtype=dtype)
    return (data.observations[idx].to(dtype), actions, old_log_prob, data.advantages[idx].to(dtype), targets)


def _reference(model, obs, actions, old_log_prob, advantages, targets, clip_range=0.2):
    policy = model.policy
    log_prob, entropy, outputs = policy.evaluate_actions_distributional(obs, actions)
    step = update.minibatch_loss(model, log_prob, entropy, outputs, old_log_prob, advantages, targets,
                                 None, None, None, clip_range, None)
    zero_grad(policy.optimizer)
    step.loss.backward()
    return step, {name: p.grad.clone() for name, p in policy.named_parameters()}


CASES = [
    ("CartPole-v1", {}),
    ("CartPole-v1", {"ent_coef": 0.01, "policy_kwargs": {"activation_fn": torch.nn.ReLU}}),
    ("CartPole-v1", {"ent_coef": 0.05, "vf_coef": 0.7, "twin_critics": False, "normalize_advantage": False}),
    ("CartPole-v1", {"policy_kwargs": {"share_critic_trunk": True, "net_arch": dict(pi=[32], vf=[16, 8])}}),
    ("CartPole-v1", {"policy_kwargs": {"net_arch": dict(pi=[], vf=[16]), "share_features_extractor": False}}),
    ("Pendulum-v1", {}),
    ("Pendulum-v1", {"ent_coef": 0.02, "policy_kwargs": {"activation_fn": torch.nn.ReLU, "log_std_init": -0.5}}),
    ("Pendulum-v1", {"use_sde": True, "sde_sample_freq": 4}),
    ("Pendulum-v1", {"use_sde": True, "ent_coef": 0.03, "policy_kwargs": {"net_arch": [32], "log_std_init": -1.0}}),
]


@pytest.mark.parametrize("env_id,kwargs", CASES)
def test_gradients_equal_autograd_in_float64(env_id, kwargs, monkeypatch):
    model = _model(env_id, **kwargs)
    # SB3's preprocessing casts Box observations to float32; keep them float64 for both paths
    import stable_baselines3.common.policies as sb3_policies
    monkeypatch.setattr(sb3_policies, "preprocess_obs", lambda obs, space, normalize_images=True: obs)
    assert closed_form.unsupported_reason(model) is None
    batch = _minibatch(model, torch.float64)
    ref_step, ref_grads = _reference(model, *batch)
    got = closed_form.minibatch_step(model, closed_form.plan(model), *batch, 0.2)
    assert 0.0 < float(ref_step.stats[2]) < 1.0, "both branches of the clip must occur"
    assert got.loss.loss is None  # eager: the total is derived from the statistics, the same operations
    torch.testing.assert_close(update.loss_from_stats(model, got.loss.stats), ref_step.loss.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.loss.stats, ref_step.stats, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.loss.approx_kl, ref_step.approx_kl, rtol=1e-12, atol=1e-12)
    names = {id(p): n for n, p in model.policy.named_parameters()}
    assert sorted(names[id(p)] for p, _ in got.gradients) == sorted(ref_grads)
    for p, g in got.gradients:
        ref = ref_grads[names[id(p)]]
        assert g.shape == p.shape and g.dtype == p.dtype
        torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-12, msg=names[id(p)])
        assert ref.abs().max() > 0 or names[id(p)].endswith("bias")


@pytest.mark.parametrize("activation", [torch.nn.ReLU, torch.nn.Tanh])
def test_float32_loss_and_statistics_equal_the_autograd_path_s(activation):
    """With ReLU units every forward operation is the autograd path's: the loss and statistics
    are bitwise its own. Tanh units go through closed_form.tanh (not torch.tanh's bits): equal to
    float32 rounding."""
    model = _model(ent_coef=0.01, policy_kwargs={"activation_fn": activation})
    batch = _minibatch(model, torch.float32)
    ref_step, ref_grads = _reference(model, *batch)
    got = closed_form.minibatch_step(model, closed_form.plan(model), *batch, 0.2)
    got_values = (update.loss_from_stats(model, got.loss.stats), got.loss.stats, got.loss.approx_kl)
    want_values = (ref_step.loss.detach(), ref_step.stats, ref_step.approx_kl)
    for a, b in zip(got_values, want_values):
        if activation is torch.nn.ReLU:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    names = {id(p): n for n, p in model.policy.named_parameters()}
    for p, g in got.gradients:
        torch.testing.assert_close(g, ref_grads[names[id(p)]], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kwargs,reason", [
    ({"clip_range_vf": 0.2}, "value clipping"),
    ({"critic": "categorical"}, "critic='categorical'"),
    ({"quantile_mean_loss": "quantile_huber"}, "quantile_mean_loss"),
    ({"policy_kwargs": {"activation_fn": torch.nn.ELU}}, "the actor is not Linear layers with Tanh or ReLU"),
    ({"use_sde": True, "env_id": "Pendulum-v1", "policy_kwargs": {"full_std": False}}, "gSDE other than"),
    ({"use_sde": True, "env_id": "Pendulum-v1", "policy_kwargs": {"use_expln": True}}, "gSDE other than"),
])
def test_unsupported_configurations_take_the_autograd_path(kwargs, reason):
    env_id = kwargs.pop("env_id", "CartPole-v1")
    model = _model(env_id, **kwargs)
    assert reason in closed_form.unsupported_reason(model)
    assert closed_form.plan(model) is None
    model.learn(64)  # and training works there


def test_frozen_parameter_takes_the_autograd_path():
    model = _model()
    model.policy.action_net.bias.requires_grad_(False)
    assert "does not require a gradient" in closed_form.unsupported_reason(model)


def _train_params(closed: bool, steps: int = 256, **kwargs):
    model = _model(**kwargs)
    model.closed_form_gradients = closed
    model.learn(steps)
    return model


def test_training_with_either_path_ends_close_and_the_switch_is_per_model():
    fast, slow = _train_params(True), _train_params(False)
    assert DistributionalPPO.closed_form_gradients is True
    for (name, a), (_, b) in zip(fast.policy.named_parameters(), slow.policy.named_parameters()):
        # 8 updates x 4 epochs x 4 minibatches: float rounding only, not a different algorithm
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)
    np.testing.assert_allclose(fast.logger.name_to_value["train/policy_gradient_loss"],
                               slow.logger.name_to_value["train/policy_gradient_loss"], rtol=1e-2, atol=1e-4)
    fast2 = _train_params(True)
    for a, b in zip(fast.policy.parameters(), fast2.policy.parameters()):
        assert torch.equal(a, b)  # deterministic


def test_target_kl_stops_at_the_same_minibatch_as_the_autograd_path():
    fast = _train_params(True, steps=128, target_kl=0.003, n_epochs=10, learning_rate=3e-3)
    slow = _train_params(False, steps=128, target_kl=0.003, n_epochs=10, learning_rate=3e-3)
    # 2 updates of up to 10 epochs each; the KL check stops both early, at the same epoch
    assert fast._n_updates == slow._n_updates < 20
    for a, b in zip(fast.policy.parameters(), slow.policy.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("env_id,kwargs", [("CartPole-v1", {}), ("Pendulum-v1", {}),
                                           ("Pendulum-v1", {"use_sde": True}),
                                           ("CartPole-v1", {"policy_kwargs": {"activation_fn": torch.nn.ReLU}})])
@pytest.mark.parametrize("deterministic", [False, True])
def test_rollout_actor_step_equals_policy_act_bitwise(env_id, kwargs, deterministic):
    model = _model(env_id, **kwargs)
    plan = closed_form.plan(model)
    obs = torch.as_tensor(model.env.reset())
    with torch.no_grad():
        torch.manual_seed(3)
        want = model.policy.act(obs, deterministic)
        torch.manual_seed(3)
        got = closed_form.act(model.policy, plan, obs, deterministic)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_minibatch_step_reads_nothing_back_to_the_host():
    """No ``.item()``/``float(tensor)`` on the hot path (each is a device synchronisation on a GPU)."""
    from torch.profiler import ProfilerActivity, profile
    model = _model("Pendulum-v1", use_sde=True, ent_coef=0.01)
    batch = _minibatch(model, torch.float32)
    plan = closed_form.plan(model)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        closed_form.minibatch_step(model, plan, *batch, 0.2)
    events = prof.events()
    assert any(e.name == "aten::linear" for e in events)  # the profiler saw the step
    # reads called from Python (torch's CPU kernels, e.g. std's, may read a scalar internally)
    reads = [e for e in events if e.name in ("aten::item", "aten::_local_scalar_dense")
             and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))]
    assert not reads


@pytest.mark.parametrize("env_id,kwargs", [("CartPole-v1", {"ent_coef": 0.01}),
                                           ("Pendulum-v1", {"ent_coef": 0.01}),
                                           ("Pendulum-v1", {"use_sde": True}),
                                           ("CartPole-v1", {"policy_kwargs": {"share_critic_trunk": True,
                                                                              "net_arch": dict(pi=[32], vf=[16, 8])}})])
def test_step_written_into_out_equals_the_new_tensors_bitwise(env_id, kwargs):
    """``out=``: the train loop's gradients go into the parameters' ``.grad`` tensors, the same
    bits as the step that returns new tensors, and the loss and statistics unchanged."""
    model = _model(env_id, **kwargs)
    batch = _minibatch(model, torch.float32)
    plan = closed_form.plan(model)
    fresh = closed_form.minibatch_step(model, plan, *batch, 0.2)
    for p in plan.parameters:  # stale values, which the step must overwrite
        p.grad = torch.full_like(p, 7.0)
    buffers = closed_form.gradient_buffers(plan)
    assert all(b is p.grad for b, p in zip(buffers, plan.parameters))
    written = closed_form.minibatch_step(model, plan, *batch, 0.2, out=buffers)
    for (p, g), (q, h), buffer in zip(fresh.gradients, written.gradients, buffers, strict=True):
        assert p is q and h is buffer is p.grad
        assert torch.equal(g, h)
    assert fresh.loss.loss is None and written.loss.loss is None
    assert torch.equal(fresh.loss.stats, written.loss.stats) and torch.equal(fresh.loss.approx_kl, written.loss.approx_kl)
    with pytest.raises(ValueError, match="out has 1 tensors, expected one per parameter"):
        closed_form.minibatch_step(model, plan, *batch, 0.2, out=buffers[:1])


def test_gradient_buffers_replace_what_cannot_be_written_into():
    model = _model()
    plan = closed_form.plan(model)
    weight, bias = plan.parameters[0], plan.parameters[1]
    with torch.inference_mode():
        bias.grad = torch.zeros_like(bias)  # an inference tensor: read-only outside that mode
    weight.grad = torch.zeros(weight.shape[::-1]).t()  # not contiguous
    kept = torch.zeros_like(plan.parameters[2])
    plan.parameters[2].grad = kept
    buffers = closed_form.gradient_buffers(plan)
    assert buffers[2] is kept
    assert buffers[0] is weight.grad and weight.grad.is_contiguous()
    assert buffers[1] is bias.grad and not bias.grad.is_inference()
    assert all(b.shape == p.shape and not b.is_inference() for b, p in zip(buffers, plan.parameters))


def test_after_training_the_gradients_and_statistics_are_ordinary_tensors():
    """The eager step runs in inference mode; nothing of it that outlives train() is an
    inference tensor: a user's own backward pass accumulates into .grad, and the optimizer
    steps on it, after learn()."""
    model = _model(ent_coef=0.01)
    model.learn(2 * model.n_steps * model.n_envs)
    params = list(model.policy.parameters())
    assert all(p.grad is not None and not p.grad.is_inference() for p in params)
    before = [p.grad.clone() for p in params]
    obs = torch.as_tensor(model.env.reset())
    log_prob, entropy, outputs = model.policy.evaluate_actions_distributional(obs, torch.zeros(len(obs)))
    (log_prob.sum() + outputs.sum()).backward()
    changed = [not torch.equal(a, p.grad) for a, p in zip(before, params)]
    assert any(changed)
    model.policy.optimizer.step()
    assert isinstance(model.logger.name_to_value["train/loss"], float)


class _DictObsDiscreteActions(__import__("gymnasium").Env):
    """Dict observations (a Box and a Discrete part, one-hot encoded by SB3), two actions."""

    from gymnasium import spaces as _spaces
    observation_space = _spaces.Dict({"x": _spaces.Box(-1, 1, (3,), np.float32), "k": _spaces.Discrete(4)})
    action_space = _spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return {"x": self.np_random.uniform(-1, 1, 3).astype(np.float32), "k": int(self.np_random.integers(4))}

    def step(self, action):
        self.t += 1
        return self._obs(), float(action), self.t >= 9, False, {}


@pytest.mark.parametrize("case", ["discrete-obs", "dict-obs", "one-sample", "three-samples"])
def test_other_inputs_and_tiny_minibatches_match_autograd(case):
    if case == "discrete-obs":
        model = _model("FrozenLake-v1")
    elif case == "dict-obs":
        env = make_vec_env(_DictObsDiscreteActions, n_envs=2, seed=0)
        model = DistributionalPPO("MultiInputPolicy", env, n_steps=32, batch_size=16, seed=0, device="cpu")
    else:
        model = _model(ent_coef=0.01)
    plan = closed_form.plan(model)
    assert plan is not None
    model.learn(64)
    data = next(model.rollout_buffer.get(batch_size=None))
    n = {"one-sample": 1, "three-samples": 3}.get(case, 20)
    idx = torch.arange(5, 5 + n)
    obs = {k: v[idx] for k, v in data.observations.items()} if isinstance(data.observations, dict) else data.observations[idx]
    batch = (obs, data.actions[idx].long().flatten(), data.old_log_prob[idx] + 0.1, data.advantages[idx],
             model.policy.return_normalizer.normalize(data.returns[idx]))
    ref_step, ref_grads = _reference(model, *batch)
    got = closed_form.minibatch_step(model, plan, *batch, 0.2)
    torch.testing.assert_close(got.loss.stats, ref_step.stats, rtol=1e-5, atol=1e-6)  # Tanh: closed_form.tanh
    names = {id(p): name for name, p in model.policy.named_parameters()}
    for p, g in got.gradients:
        torch.testing.assert_close(g, ref_grads[names[id(p)]], rtol=1e-4, atol=1e-6, msg=names[id(p)])


# ------------------------------------------------------------------ the compiled step (torch.compile)
# Every compiled test uses minibatches of 20 samples, so that the process compiles one graph per
# architecture (CartPole's categorical actor, Pendulum's Gaussian and gSDE actors).


def _total(model, step):
    return update.loss_from_stats(model, step.loss.stats) if step.loss.loss is None else step.loss.loss


def _assert_steps_close(got, want, model):
    for a, b in zip((_total(model, got), got.loss.stats, got.loss.approx_kl),
                    (_total(model, want), want.loss.stats, want.loss.approx_kl)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert [id(p) for p, _ in got.gradients] == [id(p) for p, _ in want.gradients]
    for (p, a), (_, b) in zip(got.gradients, want.gradients):
        assert a.shape == p.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("env_id,kwargs", [("CartPole-v1", {"ent_coef": 0.01, "vf_coef": 0.7}),
                                           ("Pendulum-v1", {"ent_coef": 0.02}),
                                           ("Pendulum-v1", {"use_sde": True, "ent_coef": 0.03})])
def test_compiled_step_equals_the_eager_step(env_id, kwargs):
    model = _model(env_id, **kwargs)
    batch = _minibatch(model, torch.float32)
    plan = closed_form.plan(model)
    compiled = closed_form.compiled_minibatch_step(model, plan, *batch, 0.2)
    _assert_steps_close(compiled, closed_form.minibatch_step(model, plan, *batch, 0.2), model)


def test_compiled_step_is_one_graph_for_new_coefficients_and_models():
    """Schedules (clip range) and PBT (ent_coef, vf_coef) change numbers every update; another
    model of the same architecture has other weights: none of them may recompile."""
    from torch._dynamo.utils import counters

    model = _model("CartPole-v1", ent_coef=0.01, vf_coef=0.7)
    batch = _minibatch(model, torch.float32)
    plan = closed_form.plan(model)
    closed_form.compiled_minibatch_step(model, plan, *batch, 0.2)
    graphs = counters["stats"]["unique_graphs"]
    for clip_range, ent_coef, vf_coef in [(0.1, 0.0, 0.5), (0.3, 0.05, 1.0)]:
        model.ent_coef, model.vf_coef = ent_coef, vf_coef
        compiled = closed_form.compiled_minibatch_step(model, plan, *batch, clip_range)
        _assert_steps_close(compiled, closed_form.minibatch_step(model, plan, *batch, clip_range), model)
    other = _model("CartPole-v1")
    with torch.no_grad():
        for p in other.policy.parameters():
            p.mul_(1.5)
    other_plan = closed_form.plan(other)
    compiled = closed_form.compiled_minibatch_step(other, other_plan, *batch, 0.2)
    _assert_steps_close(compiled, closed_form.minibatch_step(other, other_plan, *batch, 0.2), other)
    assert counters["stats"]["unique_graphs"] == graphs


def test_compiled_training_resumes_bit_identically(tmp_path):
    def make():
        env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
        model = DistributionalPPO("MlpPolicy", env, n_steps=40, batch_size=20, n_epochs=2, seed=0, device="cpu")
        model.compile_step = True
        return env, model

    _, straight = make()
    straight.learn(320)
    env, first = make()
    first.learn(160)
    first.save(tmp_path / "ckpt")
    resumed = DistributionalPPO.load(tmp_path / "ckpt", env=env, force_reset=False, device="cpu")
    assert resumed.compile_step is False  # a speed switch: not saved
    resumed.compile_step = True
    resumed.learn(160, reset_num_timesteps=False)
    assert resumed._n_updates == straight._n_updates == 8
    for a, b in zip(straight.policy.parameters(), resumed.policy.parameters()):
        assert torch.equal(a, b)
    eager = make()[1]
    eager.compile_step = False
    eager.learn(320)  # the eager path rounds differently: close, not equal
    for a, b in zip(straight.policy.parameters(), eager.policy.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


_VALIDATION_PROBE = """
import torch
from torch.distributions import Categorical, Distribution
{compile}
try:
    Categorical(logits=torch.tensor([float("nan"), 0.0]))
    print("accepted", Distribution._validate_args)
except ValueError:
    print("refused", Distribution._validate_args)
"""


@pytest.mark.parametrize("compile_code,expected", [
    ("from stable_baselines3.common.env_util import make_vec_env\n"
     "from lifelong import DistributionalPPO\n"
     "model = DistributionalPPO('MlpPolicy', make_vec_env('CartPole-v1', n_envs=2, seed=0), n_steps=40, batch_size=20,"
     " n_epochs=1, seed=0, device='cpu')\n"
     "model.compile_step = True\n"
     "model.learn(80)", "refused True"),
    # the control: torch.compile's own side effect, which the check above would miss otherwise
    ("torch.compile(lambda x: x + 1)", "accepted False"),
])
def test_compiled_step_keeps_the_process_distribution_validation(compile_code, expected):
    """The first torch.compile in a process turns off torch.distributions' argument validation
    for the whole process (once per process, hence a fresh interpreter); training with the
    compiled step must not, so that Stable-Baselines3's Categorical still refuses NaN logits
    elsewhere in the process."""
    out = subprocess.run([sys.executable, "-c", _VALIDATION_PROBE.format(compile=compile_code)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == expected


# ------------------------------------------------------------------ closed_form.tanh


@pytest.mark.parametrize("dtype,bound", [(torch.float32, 2e-7), (torch.float64, 1e-15)])
def test_tanh_is_within_its_absolute_error_bound_everywhere(dtype, bound):
    """2 sigmoid(2x) - 1 against torch.tanh in float64: absolute error below 2e-7 in float32
    (1e-15 in float64) on a dense grid with tiny and huge magnitudes; never above 1 in
    magnitude; exactly +-1 far out; 0 at 0."""
    grid = torch.linspace(-25, 25, 1_000_001, dtype=torch.float64)
    tails = torch.logspace(-40, 3, 20_001, dtype=torch.float64)
    x = torch.cat([grid, tails, -tails]).to(dtype)
    got = closed_form.tanh(x)
    assert got.dtype == dtype
    error = (got.double() - torch.tanh(x.double())).abs().max().item()
    assert error < bound, error
    assert got.abs().max().item() <= 1.0
    far = torch.tensor([40.0, 1e4, 1e30], dtype=dtype)
    assert torch.equal(closed_form.tanh(far), torch.ones(3, dtype=dtype))
    assert torch.equal(closed_form.tanh(-far), -torch.ones(3, dtype=dtype))
    assert closed_form.tanh(torch.zeros(1, dtype=dtype)).item() == 0.0


def test_tanh_special_values():
    got = closed_form.tanh(torch.tensor([float("inf"), -float("inf"), float("nan")]))
    assert torch.equal(got[:2], torch.tensor([1.0, -1.0]))
    assert torch.isnan(got[2])
