"""lifelong.cli.report on synthetic run directories and PBT workdirs (in-process, fast)."""
import csv
import json

import numpy as np
import pytest

from lifelong.cli.config import ConfigError
from lifelong.cli.report import make_report, read_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def check_png(path, min_bytes=5000):
    import matplotlib.image as mpimg
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > min_bytes, path
    img = mpimg.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) > 100 and img.std() > 0.01


def write_run(d, n=20, with_vgs=True):
    d.mkdir(parents=True, exist_ok=True)
    keys = ["time/total_timesteps", "rollout/ep_rew_mean", "eval/mean_reward", "eval/std_reward",
            "train/quantile_spread", "train/critic0_loss", "train/critic1_loss", "train/value_loss",
            "train/explained_variance", "train/upgd_gate_mean", "train/upgd_utility_mean",
            "train/upgd_utility_max", "train/policy_gradient_loss", "train/approx_kl",
            "train/learning_rate", "plasticity/dormant_fraction"]
    if with_vgs:
        keys += ["train/vgs_factor", "train/vgs_ratio"]
    rng = np.random.default_rng(0)
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for i in range(1, n + 1):
            row = {k: float(rng.random()) for k in keys}
            row["time/total_timesteps"] = i * 512
            row["rollout/ep_rew_mean"] = 10 + 20 * i
            if i % 5:
                row["eval/mean_reward"] = row["eval/std_reward"] = ""
            w.writerow(row)
    with open(d / "evals.csv", "w") as f:
        f.write("step,mean_reward,std_reward,episodes,time_s\n")
        for i in range(5, n + 1, 5):
            f.write(f"{i * 512},{25.0 * i},{3.0},10,{i}\n")
    (d / "config.yaml").write_text("env: CartPole-v1\n")
    return d


def test_run_report(tmp_path):
    # without the VGS keys (vgs off): their panels say "not logged", the PNG is still drawn
    d = write_run(tmp_path / "run", with_vgs=False)
    written = make_report(d)
    names = {p.name for p in written}
    assert {"learning_curve.png", "critics.png", "vgs_upgd.png", "losses.png", "plasticity.png",
            "report.md"} <= names
    for p in written:
        if p.suffix == ".png":
            check_png(p)
    md = (d / "report.md").read_text()
    assert "best evaluation: **500.00** at step 10,240" in md
    for p in written:
        if p.suffix == ".png":
            assert f"]({p.name})" in md


def test_read_metrics_blank_cells(tmp_path):
    d = write_run(tmp_path / "run", n=10)
    m = read_metrics(d / "metrics.csv")
    assert len(m["time/total_timesteps"]) == 10
    assert np.isnan(m["eval/mean_reward"]).sum() == 8


def write_pbt(d):
    d.mkdir(parents=True, exist_ok=True)
    members = ["member_0", "member_1", "member_2", "member_3"]
    rows, events = [], []
    cfg = {m: {"learning_rate": 1e-4 * (i + 1), "ent_coef": 0.001 * i} for i, m in enumerate(members)}
    for step in (100, 200, 300):
        for i, m in enumerate(members):
            rows.append([step, m, repr(float(step / 10 + 10 * i)), cfg[m]["learning_rate"], cfg[m]["ent_coef"]])
        if step < 300:
            new = {"learning_rate": cfg["member_3"]["learning_rate"] * 1.2, "ent_coef": 0.0}
            events.append({"event": "exploit", "step": step, "donor": "member_3", "recipient": "member_0",
                           "donor_score": step / 10 + 30, "recipient_score": step / 10,
                           "old_config": cfg["member_0"], "new_config": new})
            cfg["member_0"] = new
    events.append({"event": "restart", "step": 200, "member": "member_2", "reason": "died"})
    with open(d / "scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "member", "score", "learning_rate", "ent_coef"])
        w.writerows(rows)
    (d / "lineage.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (d / "result.json").write_text(json.dumps({
        "metric": "eval_mean_reward", "mode": "max", "steps": 300, "best_member": "member_3",
        "best_score": 60.0, "best_config": cfg["member_3"], "best_checkpoint": str(d / "x.zip"),
        "members": [{"id": m} for m in members], "n_exploits": 2, "n_restarts": 1}))
    return d


def test_pbt_report(tmp_path):
    d = write_pbt(tmp_path / "pbt")
    written = make_report(d)
    assert {p.name for p in written} == {"pbt_scores.png", "pbt_hyperparams.png", "pbt_lineage.png",
                                         "report.md"}
    for p in written:
        if p.suffix == ".png":
            check_png(p)
    md = (d / "report.md").read_text()
    assert "member_3" in md and "2 exploits" in md and "1 restarts" in md
    assert "| 100 | member_3 → member_0 |" in md


def test_pbt_report_while_running(tmp_path):
    d = write_pbt(tmp_path / "pbt")
    (d / "result.json").unlink()
    make_report(d)
    assert "still running" in (d / "report.md").read_text()


def test_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="neither a run directory"):
        make_report(tmp_path)
    with pytest.raises(ConfigError, match="no such directory"):
        make_report(tmp_path / "missing")


#: the cumulative collapse-reset counter of write_phased_run's 12 updates: 1, 2 and 0 per phase
COLLAPSE_COUNTS = [0, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3]


def write_phased_run(d, hist=True, resets=True):
    """A non-stationary run: 3 phases of 4 updates; known per-phase returns and diagnostics."""
    d.mkdir(parents=True, exist_ok=True)
    keys = ["time/total_timesteps", "rollout/ep_rew_mean", "rollout/phase", "rollout/phase_episodes",
            "rollout/phase_ep_rew_mean", "plasticity/dormant_fraction", "plasticity/effective_rank",
            "plasticity/weight_norm", "train/upgd_gate_mean"] + (["train/collapse_resets"] if resets else [])
    if hist:
        keys += [f"plasticity/gate_hist/{k}" for k in range(10)]
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for i in range(12):
            phase = i // 4
            row = {k: "" for k in keys}
            row.update({"time/total_timesteps": (i + 1) * 100, "rollout/ep_rew_mean": 50.0,
                        "rollout/phase": phase, "rollout/phase_episodes": i % 4,
                        "rollout/phase_ep_rew_mean": 10.0 * (phase + 1) + i % 4 if i % 4 else "",
                        "train/upgd_gate_mean": 0.5 - 0.01 * i})
            if resets:
                row["train/collapse_resets"] = COLLAPSE_COUNTS[i]
            if i % 2:                                            # diagnostics every 2nd update
                row.update({"plasticity/dormant_fraction": 0.1 * i, "plasticity/effective_rank": 20 - i,
                            "plasticity/weight_norm": 5 + i})
                if hist:
                    h = np.zeros(10)
                    h[min(i, 9)] = 1.0
                    row.update({f"plasticity/gate_hist/{k}": h[k] for k in range(10)})
            w.writerow(row)
    (d / "config.yaml").write_text("env: lifelong/PermutedCartPole-v0\n")
    return d


def test_phase_summary_aggregates_each_phase(tmp_path):
    from lifelong.cli.report import phase_summary
    d = write_phased_run(tmp_path / "run")
    phases = phase_summary(read_metrics(d / "metrics.csv"))
    assert [p["phase"] for p in phases] == [0, 1, 2]
    for p in phases:
        k = p["phase"]
        # updates 1..3 of the phase ended 1, 2, 3 episodes with means 10(k+1) + 1, + 2, + 3
        expected = sum(n * (10.0 * (k + 1) + n) for n in (1, 2, 3)) / 6
        assert p["episodes"] == 6 and p["return"] == pytest.approx(expected)
        last = 4 * k + 3                                         # last update of the phase
        assert p["steps"] == (last + 1) * 100
        assert p["dormant_fraction"] == pytest.approx(0.1 * last)
        assert p["effective_rank"] == 20 - last and p["weight_norm"] == 5 + last
        assert p["gate_mean"] == pytest.approx(0.5 - 0.01 * last)
        assert np.argmax(p["gate_hist"]) == min(last, 9) and sum(p["gate_hist"]) == pytest.approx(1)
    assert [p["collapse_resets"] for p in phases] == [1, 2, 0]  # within each phase, not cumulative
    assert phase_summary(read_metrics(write_run(d.parent / "stationary") / "metrics.csv")) == []
    no_resets = phase_summary(read_metrics(write_phased_run(tmp_path / "old", resets=False) / "metrics.csv"))
    assert all(np.isnan(p["collapse_resets"]) for p in no_resets)


@pytest.mark.parametrize("hist", [True, False])
def test_run_report_plots_phases_of_a_nonstationary_run(tmp_path, hist):
    d = write_phased_run(tmp_path / "run", hist=hist)
    written = make_report(d)
    assert d / "phases.png" in written
    check_png(d / "phases.png")
    md = (d / "report.md").read_text()
    assert "## Per phase" in md and "phases.png" in md
    assert md.count("\n| 0 |") == 1 and "| 2 | 1,200 | 6 | 32.3 |" in md
    assert md.count(" | 0 |\n") == 1 and md.count(" | 1 |\n") == 1 and md.count(" | 2 |\n") == 1  # resets per phase
    assert "- collapse resets (a fresh action head, train/collapse_resets): 3" in md
    # a stationary run gets no phase plot
    d2 = write_run(tmp_path / "stationary")
    assert d2 / "phases.png" not in make_report(d2)
