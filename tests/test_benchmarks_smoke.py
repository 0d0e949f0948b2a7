"""Each continual-learning benchmark runs end to end in its --quick mode (seconds)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lifelong import AdaptiveUPGD

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod          # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_plasticity_digits_quick(tmp_path, capsys):
    pytest.importorskip("sklearn")
    mod = load("plasticity_digits")
    payload = mod.main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "first 10%" in out and "last 10%" in out and "peak" in out
    for name in mod.LABELS.values():
        assert name in out
    assert (tmp_path / "plasticity_digits.png").stat().st_size > 0
    saved = json.loads((tmp_path / "plasticity_digits.json").read_text())
    for kind, r in saved["results"].items():
        assert r["config"] in r["grid"]
        curve = np.array(r["curve"])
        assert curve.shape == (2, 6) and ((0 <= curve) & (curve <= 1)).all()
    assert payload["settings"]["tasks"] == 6


def test_batched_update_rules_match_reference_optimizers():
    mod = load("plasticity_digits")
    assert mod.verify_engine(steps=10, hidden=8, batch=4) < 1e-5


def test_continual_rl_quick_resumes_and_reports_fresh_vs_late(tmp_path, capsys):
    mod = load("continual_rl")
    argv = ["--quick", "--out", str(tmp_path), "--agents", "adam,adaptive_upgd,l2",
            "--agent", 'l2={"optimizer": "adaptive_upgd", "optimizer_kwargs": {"l2_init": 0.1}}']
    payload = mod.main(argv)
    out = capsys.readouterr().out
    assert "fresh" in out and "late" in out and "loses plasticity" in out and "dormant" in out
    assert "late (seed means)" in out
    assert (tmp_path / "continual_rl.png").stat().st_size > 0
    lines = (tmp_path / "continual_rl.jsonl").read_text().splitlines()
    assert len(lines) == 6                                   # 3 agents x 2 seeds, one line each
    summary = payload["summary"]["agents"]
    for name in ("adam", "adaptive_upgd", "l2"):
        e = summary[name]
        returns = np.array(e["returns"])
        assert returns.shape == (2, 2) and np.isfinite(returns).all() and (returns > 0).all()
        for key in ("fresh", "late", "last", "late_seed_means"):
            point, lo, hi = e[key]
            assert lo <= point <= hi
        # the seed-level late score: the IQM of each seed's mean late return (one score per seed)
        seed_means = returns[:, -payload["settings"]["late"]:].mean(axis=1)
        assert e["late_seed_means"][0] == pytest.approx(float(np.mean(seed_means)))
        assert e["loses_plasticity_by_seed"] in (True, False)
        assert "plasticity/dormant_fraction" in e["diagnostics"]
    assert "gate_histograms" in summary["l2"] and "gate_histograms" not in summary["adam"]
    hist = summary["l2"]["gate_histograms"][0][-1]
    assert len(hist) == 10 and sum(hist) == pytest.approx(1.0)
    # a rerun with the same settings trains nothing and gives the same summary
    again = mod.main(argv)
    assert "6 runs found" in capsys.readouterr().out
    assert (tmp_path / "continual_rl.jsonl").read_text().splitlines() == lines
    assert json.loads(json.dumps(again["summary"])) == json.loads(json.dumps(payload["summary"]))
    # the same rows scored by the episodes that end in each phase's second half
    second = mod.main([*argv, "--metric", "second-half"])["summary"]
    rows = [json.loads(line) for line in lines]
    for name in ("adam", "adaptive_upgd", "l2"):
        want = [r["phase_returns_second_half"] for r in sorted(rows, key=lambda r: r["seed"]) if r["agent"] == name]
        assert np.array_equal(np.nan_to_num(np.array(want, dtype=float)), np.array(second["agents"][name]["returns"]))
    assert second["metric"] == "second-half"


def test_continual_rl_rejects_bad_agents(tmp_path):
    mod = load("continual_rl")
    with pytest.raises(SystemExit):
        mod.main(["--quick", "--out", str(tmp_path), "--agents", "nope"])
    with pytest.raises(SystemExit):
        mod.main(["--quick", "--out", str(tmp_path), "--agent", "x=[1]", "--agents", "x"])


def test_digits_fixed_and_real_engines_agree(tmp_path, capsys):
    pytest.importorskip("sklearn")
    mod = load("plasticity_digits")
    cfg = 'l2={"optimizer": "adaptive_upgd", "kwargs": {"lr": 0.01, "l2_init": 0.5, "gate": "layer"}}'
    results = {}
    for engine in ("fixed", "real"):
        results[engine] = mod.main(["--quick", "--engine", engine, "--out", str(tmp_path),
                                    "--configs", "adam,upgd,l2", "--config", cfg])["summary"]
    for name in ("adam", "upgd", "l2"):
        for key in ("first", "peak", "last"):
            assert results["fixed"][name][key] == pytest.approx(results["real"][name][key], abs=0.05)
    assert len(results["real"]["l2"]["gate_histogram"]) == 10


def test_digits_real_engine_runs_reset_after_and_the_fixed_engine_refuses_it(tmp_path):
    """reset_after has no batched rule: the fixed engine says so and names the real engine,
    which runs the library's optimizer with it."""
    pytest.importorskip("sklearn")
    mod = load("plasticity_digits")
    cfg = 'reset={"optimizer": "adaptive_upgd", "kwargs": {"lr": 0.001, "gate": "none", "sigma": 0.0, "reset_after": 5}}'
    with pytest.raises(ValueError, match=r"reset_after=5 is not implemented by the batched rules \(use --engine real\)"):
        mod.batched_config({"optimizer": "adaptive_upgd", "kwargs": {"reset_after": 5}})
    result = mod.main(["--quick", "--engine", "real", "--out", str(tmp_path), "--configs", "reset", "--config", cfg])
    assert all(0.0 <= x <= 1.0 for x in result["summary"]["reset"]["last"])


@pytest.mark.parametrize("make", [
    lambda params: torch.optim.Adam(params, lr=1e-3),
    lambda params: AdaptiveUPGD(params, lr=1e-3, gate="none", sigma=0.0, weight_decay=0.0, reset_after=3),
])
def test_digits_head_reset_oracle_gives_the_output_layer_a_first_step(make):
    """After reset_output_layer the head's next step is the step a fresh optimizer takes from
    the initial weights (moments and step count zero), the rest of the network untouched."""
    mod = load("plasticity_digits")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    head = list(net[-1].parameters())
    initial = [p.detach().clone() for p in head]
    opt = make(net.parameters())
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    trunk = [p.detach().clone() for p in net[0].parameters()]
    mod.reset_output_layer(opt, head, initial)
    assert all(torch.equal(p, w0) for p, w0 in zip(head, initial))
    assert all(torch.equal(p, t) for p, t in zip(net[0].parameters(), trunk))
    # the head's next step equals a fresh optimizer's first step on the same gradient
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    grads = [p.grad.clone() for p in head]
    opt.step()
    fresh_params = [w0.clone().requires_grad_() for w0 in initial]
    fresh = make(fresh_params)
    for p, g in zip(fresh_params, grads):
        p.grad = g
    fresh.step()
    for p, q in zip(head, fresh_params):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)


@pytest.mark.parametrize("config, message", [
    ('x={"optimizer": "adam", "kwargs": {}, "head_rest": true}', "unknown keys"),
    ('x={"optimizer": "adam", "kwargs": {}, "head_reset": 1}', "must be true or false"),
])
def test_digits_refuses_bad_oracle_specs(tmp_path, config, message):
    mod = load("plasticity_digits")
    with pytest.raises(SystemExit, match=message):
        mod.main(["--quick", "--engine", "real", "--out", str(tmp_path), "--configs", "x", "--config", config])


def test_digits_fixed_engine_refuses_the_head_reset_oracle(tmp_path):
    mod = load("plasticity_digits")
    with pytest.raises(SystemExit, match="needs --engine real"):
        mod.main(["--quick", "--engine", "fixed", "--out", str(tmp_path), "--configs", "x",
                  "--config", 'x={"optimizer": "adam", "kwargs": {"lr": 0.001}, "head_reset": true}'])


def test_suite_runs_resumes_and_summarises(tmp_path, capsys):
    """The suite end to end at a tiny budget: one JSON line per (env, agent, seed), a rerun skips
    them, and the summary has the medians, the IQM with its CI, the differences and the profile."""
    pytest.importorskip("rliable")
    mod = load("suite")
    jsonl, png = tmp_path / "suite.jsonl", tmp_path / "profile.png"
    args = ["--env", "CartPole-v1", "--agent", "sb3", "--agent", "default", "--seeds", "2",
            "--budget", "CartPole-v1=256", "--eval-episodes", "1", "--reps", "50", "--jsonl", str(jsonl), "--profile", str(png)]
    mod.main(args)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted((r["agent"], r["seed"]) for r in rows) == [("default", 0), ("default", 1), ("sb3", 0), ("sb3", 1)]
    assert all(r["steps_done"] >= 256 and np.isfinite(r["score"]) for r in rows)
    out = capsys.readouterr().out
    assert "4 runs to do" in out and "| CartPole-v1 (256) |" in out
    assert "IQM of normalised scores over 2 seeds x 1 environments" in out and "| default - sb3 |" in out
    assert png.stat().st_size > 0
    mod.main(args)                                   # resume: nothing left to do
    assert "0 runs to do (4 already in" in capsys.readouterr().out
    assert len(jsonl.read_text().splitlines()) == 4
    # normalised scores: random -> 0, reference -> 1
    results = load("results")
    spec = mod.ENVS["CartPole-v1"]
    runs = [{"env": "CartPole-v1", "agent": "a", "seed": seed, "score": spec[k]}
            for seed, k in ((0, "random"), (1, "reference"))]
    mats, envs, n = results.score_matrices(runs, ["a"], mod.ENVS)
    assert envs == ["CartPole-v1"] and n == 2 and mats["a"][:, 0].tolist() == [0.0, 1.0]


def test_benchmark_statistics_are_reproducible_and_leave_numpy_alone():
    """The same scores and seed give the same confidence intervals (rliable 1.2 resamples from
    numpy's global generator, whatever ``random_state`` it is given), and the caller's global
    numpy stream is left where it was."""
    pytest.importorskip("rliable")
    results = load("results")
    rng = np.random.default_rng(0)
    mats = {"a": rng.normal(size=(5, 3)), "b": rng.normal(size=(5, 3))}
    first = results.iqm_tables(mats, [("a", "b")], reps=200, seed=0)
    np.random.seed(123)
    caller_stream = np.random.get_state()[1].copy()
    assert results.iqm_tables(mats, [("a", "b")], reps=200, seed=0) == first
    assert (np.random.get_state()[1] == caller_stream).all()
    assert results.iqm_tables(mats, [("a", "b")], reps=200, seed=1) != first
    assert first[2].startswith("| a | ") and "| a - b |" in first[-1]


def test_suite_dist_off_ablation_is_sb3_squared_error():
    """``dist-off`` (one quantile, the default mean-anchored loss) trains its value with exactly
    the gradient of SB3's value loss ``vf_coef * (target - v)^2`` (normalised units)."""
    import torch

    from lifelong import DistributionalPPO
    from lifelong.agent.update import critic_losses

    mod = load("suite")
    kw = mod.agent_kwargs("dist-off", {"vf_coef": 0.5})
    model = DistributionalPPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, device="cpu", **kw)
    v = torch.tensor([[[0.3], [-2.0], [5.0]]] * 2, requires_grad=True)  # [critics, batch, 1]
    target = torch.tensor([1.0, 4.0, -40.0])
    (model.vf_coef * critic_losses(model.policy, v, target, None, None, None, None).sum()).backward()
    sb3 = v.detach().clone().requires_grad_(True)
    (model.vf_coef * ((target - sb3[..., 0]) ** 2).mean(-1).sum()).backward()
    assert torch.allclose(v.grad, sb3.grad)


def test_suite_rows_of_the_previous_critic_keep_their_meaning():
    """``NAME-qh-mean`` is ``NAME`` on the quantile-Huber mean (the critic before the default changed)."""
    mod = load("suite")
    assert mod.agent_kwargs("quantile-huber-mean", {}) == {"quantile_mean_loss": "quantile_huber"}
    assert mod.agent_kwargs("twin-off-qh-mean", {}) == {"twin_critics": False, "quantile_mean_loss": "quantile_huber"}
    assert mod.agent_kwargs("adam-qh-mean", {})["optimizer"] == "adam"
    assert "quantile-huber-mean" in mod.default_agents()
    # the default before Adam was built fused: the same agent with torch's per-tensor loop
    from lifelong import DistributionalPPO

    looped = DistributionalPPO("MlpPolicy", "CartPole-v1", device="cpu", **mod.agent_kwargs("adam-loop", {}))
    assert looped.policy.optimizer.defaults["fused"] is False




def test_clip_binding_records_every_minibatch_norm(capsys):
    """One rollout of rl-zoo CartPole (256 samples, 20 epochs of one minibatch) gives 20 recorded
    norms per agent; with raw returns the critics' initial error makes the clip bind."""
    mod = load("clip_binding")
    raw = mod.gradient_norms("ours-raw", seed=0, steps=256)
    assert raw.size == 20 and np.all(raw > 0)
    assert np.mean(raw > 0.5) > 0.5
    mod.main(["--steps", "256", "--seed", "0"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 0 |")]
    assert [r.split(" | ")[1] for r in rows] == list(mod.AGENTS)
    with pytest.raises(SystemExit):
        mod.main(["--steps", "10"])


def test_pbt_scaling_uneven_reports_throughput_and_the_barriers_bound(tmp_path, capsys):
    """Both modes of the uneven population, one round of 6 short intervals: every run is a JSON
    line with the steady-state figure and the members' interval times; a rerun resumes."""
    mod = load("pbt_scaling")
    out = tmp_path / "scaling.jsonl"
    argv = ["--only", "uneven", "--rounds", "1", "--interval", "1024", "--uneven-intervals", "6", "--out", str(out)]
    mod.main(argv)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["mode"] for r in rows) == ["async", "sync"]
    for r in rows:
        assert r["env_steps"] >= 2 * 6 * 1024 and r["steps_per_s"] > 0
        assert set(r["member_interval_s"]) == {"member_0", "member_1"}
        assert r["steady_all_training_steps_per_s"] > 0 and 0 <= r["idle_fraction"] < 1
    text = capsys.readouterr().out
    assert "start-up excluded" in text and "bounds async / sync at (1 + " in text
    mod.main(argv)  # everything is recorded: nothing runs again
    assert len(out.read_text().splitlines()) == 2


def test_profile_step_times_every_part_of_an_update():
    """The profiler wraps the agent's hot functions where they live today (it broke silently when
    the gradient helpers moved): one update of each variant gives positive times for the parts
    every update has, and they sum to no more than the update's CPU time."""
    mod = load("profile_step")
    for variant in ("sb3", "ours", "ours-autograd", "ours-compiled"):
        parts = mod.profile("cartpole-zoo", variant, updates=1)
        passes = ["train/forward, loss and backward (closed form)"] if variant in ("ours", "ours-compiled") else [
            "train/minibatch forward", "train/backward"]
        for part in ("rollout/env step", "rollout/policy forward", *passes, "train/optimizer step", "train/grad clipping"):
            assert parts.get(part, 0.0) > 0.0, (variant, part, parts)
        assert sum(v for k, v in parts.items() if k != "total") <= parts["total"] * 1.05


def test_suite_summarises_but_refuses_to_run_a_recorded_agent(capsys):
    """Rows that no option rebuilds (the default before the one-node losses) can be summarised,
    not run: running one is a one-line error with exit status 2, naming the agent."""
    mod = load("suite")
    with pytest.raises(SystemExit) as exc:
        mod.main(["--agent", "default-autograd-losses", "--quick"])
    assert exc.value.code == 2
    assert "'default-autograd-losses' cannot be run, only summarised" in capsys.readouterr().err


def test_speed_compares_variants_side_by_side_and_writes_rounds(tmp_path, capsys):
    mod = load("speed")
    assert mod.make_model("cartpole-zoo", "ours-autograd", 0).closed_form_gradients is False
    assert mod.make_model("cartpole-zoo", "ours", 0).closed_form_gradients is True
    assert mod.make_model("cartpole-zoo", "ours-compiled", 0).compile_step is True
    assert mod.make_model("cartpole-zoo", "ours", 0).compile_step is False
    out = tmp_path / "new" / "speed.jsonl"
    assert mod.main(["--config", "cartpole-zoo", "--variant", "ours-autograd", "--rounds", "1", "--jsonl", str(out)]) == 0
    row = json.loads(out.read_text().splitlines()[0])
    assert set(row["cpu_times"]) == {"sb3", "ours-autograd"} and all(t > 0 for t in row["cpu_times"].values())
    # a row says which code ran where: ratios from different hosts differ
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert row["commit"].removesuffix("+dirty") == head.stdout.strip()
    assert row["host"]["torch"] == torch.__version__ and row["host"]["torch_threads"] == 1
    assert row["host"]["cpu"] and row["host"]["cpus"] == os.cpu_count()
    assert row["host"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    out_text = capsys.readouterr().out
    assert "ours-autograd" in out_text and f"torch {torch.__version__}" in out_text


def test_digits_head_kwargs_give_the_output_layer_its_own_group(tmp_path):
    """"head_kwargs" puts the output layer's weight and bias in a second param group with those
    hyperparameters (here the periodic reset), and refuses a key the class does not have, which
    torch would otherwise keep in the group without a word."""
    mod = load("plasticity_digits")
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    spec = {"optimizer": "adaptive_upgd", "kwargs": {"lr": 0.001, "gate": "none"}, "head_kwargs": {"reset_every": 7}}
    opt = mod.build_real_optimizer(spec, net.parameters())
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2]
    assert opt.param_groups[1]["params"][0] is net[2].weight
    assert [g["reset_every"] for g in opt.param_groups] == [0, 7]
    with pytest.raises(ValueError, match=r"head_kwargs \['reset_evry'\] are not hyperparameters of AdaptiveUPGD"):
        mod.build_real_optimizer({**spec, "head_kwargs": {"reset_evry": 7}}, net.parameters())
    with pytest.raises(SystemExit, match=r"--config bad: head_kwargs \['reset_evry'\] are not hyperparameters"):
        mod.main(["--quick", "--engine", "real", "--out", str(tmp_path), "--configs", "bad",
                  "--config", "bad=" + json.dumps({**spec, "head_kwargs": {"reset_evry": 5}})])
    result = mod.main(["--quick", "--engine", "real", "--out", str(tmp_path), "--configs", "periodic",
                       "--config", "periodic=" + json.dumps({**spec, "head_kwargs": {"reset_every": 5}})])
    assert all(0.0 <= x <= 1.0 for x in result["summary"]["periodic"]["last"])


def test_every_built_in_benchmark_agent_builds_its_optimizer():
    """Each named agent of continual_rl.py and suite.py constructs (its optimizer_groups' patterns
    match the policy's parameters, its keywords fit its optimizer): a typo would otherwise surface
    only when a long benchmark reaches that agent. Continuous and discrete action heads both."""
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env

    from lifelong import DistributionalPPO

    continual = load("continual_rl")
    settings = continual.Settings()
    env = make_vec_env(settings.env, n_envs=2, seed=0, env_kwargs={"every_steps": 10, "seed": 0})
    for name, agent in continual.AGENTS.items():
        agent = dict(agent)
        collapse = agent.pop("collapse_callback", None)  # a callback's keywords, not the agent's
        if collapse is not None:
            load("collapse_reset").CollapseReset(**collapse)
        model = DistributionalPPO("MlpPolicy", env, seed=0, device="cpu",
                                  **{**settings.ppo, "n_steps": 8, "batch_size": 16, **agent})
        groups = model.policy.optimizer.param_groups
        assert sum(len(g["params"]) for g in groups) == len(list(model.policy.parameters())), name
        for pattern, kwargs in agent.get("optimizer_groups", {}).items():
            assert any(all(g[k] == v for k, v in kwargs.items()) for g in groups), (name, pattern)
    suite = load("suite")
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        hp = {k: v for k, v in suite.ENVS[env_id]["hp"].items() if k not in ("n_steps", "batch_size")}
        for name in suite.AGENTS:
            extra = suite.agent_kwargs(name, hp)
            if extra is None:
                continue
            extra = {k: v for k, v in extra.items() if k not in ("closed_form_gradients", "collapse_callback")}
            DistributionalPPO("MlpPolicy", gym.make(env_id), seed=0, device="cpu", n_steps=16, batch_size=16,
                              **{**hp, **extra})


@pytest.mark.parametrize("modules", [["action_net"], [""]])
def test_collapse_reset_fires_only_when_the_return_fell_and_the_policy_is_deterministic(modules):
    """benchmarks/collapse_reset.py (continual_rl.py's collapse_* agents): the callback restores the chosen parameters' initial
    values and clears their optimizer state when the recent return has fallen back towards the
    first episodes' level and the rollout's actions were near-certain; otherwise nothing."""
    from collections import deque

    from stable_baselines3.common.env_util import make_vec_env

    from lifelong import DistributionalPPO

    model = DistributionalPPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=8,
                              batch_size=16, seed=0, device="cpu")
    callback = load("collapse_reset").CollapseReset(modules=modules, window=4)
    callback.init_callback(model)
    callback.on_training_start({}, {})
    policy, optimizer = model.policy, model.policy.optimizer
    initial = {n: p.detach().clone() for n, p in policy.named_parameters()}
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1.0)
    for p in policy.parameters():
        optimizer.state[p]["marker"] = torch.ones(())
    model.ep_info_buffer = deque(maxlen=100)

    def rollout_end(episode_return, log_prob):
        model.ep_info_buffer.extend({"r": episode_return, "l": 1} for _ in range(4))
        model.rollout_buffer.log_probs[:] = log_prob
        callback.on_rollout_end()

    rollout_end(20.0, 0.0)                      # the first episodes: the baseline R0 = 20
    rollout_end(500.0, 0.0)                     # the best so far: 500
    rollout_end(10.0, np.log(0.5))              # fallen, but the policy still explores: no reset
    rollout_end(400.0, 0.0)                     # up again: not fallen
    assert callback.resets == []
    assert all(not torch.equal(p, initial[n]) for n, p in policy.named_parameters())
    rollout_end(10.0, -0.01)                    # fallen to R0 + 0 and near-certain actions: reset
    assert callback.resets == [0]
    chosen = {n for n in initial if n.startswith(tuple(modules))}
    assert chosen and (modules == [""]) == (chosen == set(initial))
    for n, p in policy.named_parameters():
        assert torch.equal(p, initial[n]) == (n in chosen), n
        assert ("marker" in optimizer.state.get(p, {})) == (n not in chosen), n
    rollout_end(10.0, -0.01)                    # B restarted from the fallen level: no second reset
    assert callback.resets == [0]


def test_tanh_forms_times_each_form_and_restores_the_step_s_tanh(capsys):
    from lifelong.agent import closed_form

    chosen = closed_form.tanh
    times = load("tanh_forms").main(["--config", "cartpole-zoo", "--rounds", "3", "--steps", "2"])
    assert set(times) == {"torch.tanh", "2 sigmoid(2x) - 1", "expm1 form"}
    assert all(len(t) == 3 and all(v > 0 for v in t) for t in times.values())
    assert closed_form.tanh is chosen
    assert "per minibatch step" in capsys.readouterr().out


def test_collapse_reset_is_inert_on_continuous_actions_and_refuses_bad_thresholds():
    from stable_baselines3.common.env_util import make_vec_env

    from lifelong import DistributionalPPO

    mod = load("collapse_reset")
    for bad in ({"rho": 1.0}, {"eta": 0.0}, {"window": 0}):
        with pytest.raises(ValueError, match="CollapseReset"):
            mod.CollapseReset(**bad)
    model = DistributionalPPO("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=0), n_steps=8,
                              batch_size=16, seed=0, device="cpu")
    callback = mod.CollapseReset(modules=[""], window=1)
    model.learn(64, callback=callback)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.rollout_buffer.log_probs[:] = 0.0     # near-certain actions
    for episode_return in (-1500.0, -150.0, -1500.0):   # the initial level, the best, a fall back
        model.ep_info_buffer.append({"r": episode_return, "l": 1})
        callback.on_rollout_end()
    assert callback.resets == []                # what fires on Discrete actions (test above) does not here
    assert all(torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
