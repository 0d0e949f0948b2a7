"""``lifelong report DIR``: PNG plots and ``report.md`` for a run directory or a PBT workdir.

Run directory (``metrics.csv``, ``evals.csv``):

- ``learning_curve.png``  training return (rollout/ep_rew_mean) and evaluation return
  (eval/mean_reward ± std) against environment steps
- ``critics.png``         the critics' quantile spread and each critic's loss and explained variance
- ``vgs_upgd.png``        the VGS step factor and noise ratio, UPGD gating (mean of 1 - s) and utilities
- ``losses.png``          policy/value/entropy losses, approximate KL, clip fraction, learning rate
- ``plasticity.png``      dormant fraction, effective rank, weight norm (when logged)
- ``phases.png``          for a non-stationary environment (``rollout/phase`` logged, see
                          :mod:`lifelong.envs`): per phase the mean return of the episodes that
                          ended in it, the dormant fraction, effective rank, weight norm and UPGD
                          gate mean at the end of the phase, and the gate's histogram per phase

PBT workdir (``scores.csv``, ``lineage.jsonl``, ``result.json``):

- ``pbt_scores.png``      each member's score over time, exploits marked
- ``pbt_hyperparams.png`` each searched hyperparameter of each member over time
- ``pbt_lineage.png``     who copied whom, when

Plus ``report.md`` linking them with the key numbers. Matplotlib's Agg backend: no display needed.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Mapping

import numpy as np

from lifelong.cli.config import ConfigError
from lifelong.cli.run_dir import RunDir, read_evals

STEP = "time/total_timesteps"


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv -> {column: float array} (blank cells NaN), rows sorted by step."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            return {}
        rows = [r for r in reader if r]
    cols: dict[str, list[float]] = {h: [] for h in header}
    for r in rows:
        for i, h in enumerate(header):
            cell = r[i] if i < len(r) else ""
            try:
                cols[h].append(float(cell) if cell != "" else math.nan)
            except ValueError:
                cols[h].append(math.nan)
    out = {h: np.asarray(v, dtype=float) for h, v in cols.items()}
    if STEP in out and len(out[STEP]):
        order = np.argsort(out[STEP], kind="stable")
        out = {h: v[order] for h, v in out.items()}
    return out


def _series(m: Mapping[str, np.ndarray], key: str):
    if key not in m or STEP not in m:
        return None
    x, y = m[STEP], m[key]
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return None
    return x[ok], y[ok]


def _panel(ax, m, keys, title, ylabel=None, logy=False):
    drawn = False
    for key in keys:
        s = _series(m, key)
        if s is None:
            continue
        ax.plot(s[0], s[1], label=key.split("/", 1)[-1], lw=1.4,
                marker="." if len(s[0]) < 30 else None)
        drawn = True
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("environment steps")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn:
        if logy:
            ax.set_yscale("symlog", linthresh=1e-6)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "not logged:\n" + "\n".join(keys), ha="center", va="center",
                transform=ax.transAxes, fontsize=8, color="gray")
    return drawn


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def _last(m, key):
    s = _series(m, key)
    return None if s is None else float(s[1][-1])


def _fmt(v, spec=".3g"):
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


# --------------------------------------------------------------------------------------------
def run_report(d: Path) -> list[Path]:
    plt = _plt()
    run = RunDir(d)
    if not run.metrics.is_file():
        raise ConfigError(f"{d}: no metrics.csv yet (has the run finished its first update?)")
    m = read_metrics(run.metrics)
    evals = read_evals(run)
    written = []

    # learning curve
    fig, ax = plt.subplots(figsize=(8, 4.5))
    s = _series(m, "rollout/ep_rew_mean")
    if s is not None:
        ax.plot(s[0], s[1], label="training return (rollout/ep_rew_mean)", lw=1.2, alpha=0.8)
    if evals:
        x = np.array([e["step"] for e in evals], float)
        y = np.array([e["mean_reward"] for e in evals])
        sd = np.array([e["std_reward"] for e in evals])
        ax.plot(x, y, "o-", color="C3", label="evaluation return (eval/mean_reward)", ms=4)
        ax.fill_between(x, y - sd, y + sd, color="C3", alpha=0.15, lw=0)
    else:
        s = _series(m, "eval/mean_reward")
        if s is not None:
            ax.plot(s[0], s[1], "o-", color="C3", label="evaluation return (eval/mean_reward)", ms=4)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(f"Learning curve — {_env_name(run)}")
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(loc="lower right", fontsize=9)
    written.append(_save(fig, d / "learning_curve.png"))

    # critics
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    _panel(axes[0], m, ["train/quantile_spread"], "Critics' quantile spread", "spread")
    _panel(axes[1], m, ["train/critic0_loss", "train/critic1_loss", "train/value_loss"],
           "Critic losses", logy=True)
    _panel(axes[2], m, ["train/critic0_explained_variance", "train/critic1_explained_variance",
                        "train/explained_variance"], "Explained variance")
    written.append(_save(fig, d / "critics.png"))

    # VGS and UPGD
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
    _panel(axes[0, 0], m, ["train/vgs_factor"], "VGS step factor (1 = full step)", "factor")
    _panel(axes[0, 1], m, ["train/vgs_ratio"], "VGS gradient noise-to-signal ratio", "ratio",
           logy=True)
    _panel(axes[1, 0], m, ["train/upgd_gate_mean"],
           "UPGD gating: mean of (1 - s) (1 = no protection)", "gate")
    _panel(axes[1, 1], m, ["train/upgd_utility_mean", "train/upgd_utility_max"],
           "UPGD utilities", logy=True)
    written.append(_save(fig, d / "vgs_upgd.png"))

    # losses
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    _panel(axes[0, 0], m, ["train/policy_gradient_loss"], "Policy-gradient loss")
    _panel(axes[0, 1], m, ["train/entropy_loss"], "Entropy loss")
    _panel(axes[0, 2], m, ["train/loss"], "Total loss")
    _panel(axes[1, 0], m, ["train/approx_kl"], "Approximate KL")
    _panel(axes[1, 1], m, ["train/clip_fraction"], "Clip fraction")
    _panel(axes[1, 2], m, ["train/learning_rate", "train/clip_range"], "Learning rate, clip range",
           logy=True)
    written.append(_save(fig, d / "losses.png"))

    plast = ["plasticity/dormant_fraction", "plasticity/effective_rank", "plasticity/weight_norm"]
    if any(_series(m, k) is not None for k in plast):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, k, t in zip(axes, plast, ["Dormant fraction", "Effective rank", "Weight norm"]):
            _panel(ax, m, [k], t)
        written.append(_save(fig, d / "plasticity.png"))

    phases = phase_summary(m)
    if phases:
        written.append(_phase_plot(phases, d / "phases.png"))

    written.append(_run_markdown(run, m, evals, written, phases))
    return written


GATE_HIST = "plasticity/gate_hist/"
COLLAPSE_RESETS = "train/collapse_resets"  # the agent's collapse resets so far (lifelong.agent.collapse)
_PHASE_DIAGNOSTICS = {"dormant_fraction": "plasticity/dormant_fraction",
                      "effective_rank": "plasticity/effective_rank",
                      "weight_norm": "plasticity/weight_norm",
                      "gate_mean": "train/upgd_gate_mean"}


def phase_summary(m: Mapping[str, np.ndarray]) -> list[dict]:
    """One entry per phase of a non-stationary run (``[]`` when ``rollout/phase`` was not
    logged): ``phase``, ``steps`` (last step logged in it), ``episodes``, ``return`` (mean return
    of the episodes that ended in the phase: the episode-weighted mean of
    ``rollout/phase_ep_rew_mean``; NaN without episodes), the last value within the phase of
    each diagnostic (NaN when none was logged in it), ``collapse_resets`` (the agent's action-head
    resets logged within the phase; NaN when the run did not log them) and ``gate_hist`` (the
    last gate histogram logged in the phase, or ``None``)."""
    if "rollout/phase" not in m or STEP not in m:
        return []
    phase_col = m["rollout/phase"]
    hist_keys = sorted((k for k in m if k.startswith(GATE_HIST)), key=lambda k: int(k.rsplit("/", 1)[1]))
    out = []
    for phase in np.unique(phase_col[np.isfinite(phase_col)]).astype(int):
        rows = np.flatnonzero(phase_col == phase)
        entry: dict = {"phase": int(phase), "steps": float(m[STEP][rows].max())}
        n = m.get("rollout/phase_episodes", np.full(len(phase_col), np.nan))[rows]
        r = m.get("rollout/phase_ep_rew_mean", np.full(len(phase_col), np.nan))[rows]
        ok = np.isfinite(n) & np.isfinite(r) & (n > 0)
        entry["episodes"] = int(n[ok].sum())
        entry["return"] = float((r[ok] * n[ok]).sum() / n[ok].sum()) if ok.any() else math.nan
        for name, key in _PHASE_DIAGNOSTICS.items():
            v = m[key][rows] if key in m else np.array([])
            v = v[np.isfinite(v)]
            entry[name] = float(v[-1]) if len(v) else math.nan
        cumulative = m[COLLAPSE_RESETS][rows] if COLLAPSE_RESETS in m else np.array([])
        cumulative = cumulative[np.isfinite(cumulative)]
        entry["collapse_resets"] = float(cumulative[-1]) if len(cumulative) else math.nan  # made per phase below
        entry["gate_hist"] = None
        if hist_keys:
            h = np.stack([m[k][rows] for k in hist_keys], axis=1)       # [rows, bins]
            logged = np.flatnonzero(np.isfinite(h).all(axis=1))
            if len(logged):
                entry["gate_hist"] = h[logged[-1]].tolist()
        out.append(entry)
    previous = 0.0  # the counter is cumulative over the run: the resets within each phase
    for entry in out:
        if math.isfinite(entry["collapse_resets"]):
            entry["collapse_resets"], previous = entry["collapse_resets"] - previous, entry["collapse_resets"]
    return out


def _phase_plot(phases: list[dict], path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    x = [p["phase"] for p in phases]
    axes[0, 0].bar(x, [p["return"] for p in phases], color="C0")
    axes[0, 0].set_title("Mean return of the episodes ending in each phase", fontsize=10)
    panels = [(axes[0, 1], "dormant_fraction", "Dormant fraction (end of phase)"),
              (axes[0, 2], "effective_rank", "Effective rank (end of phase)"),
              (axes[1, 0], "weight_norm", "Weight norm (end of phase)"),
              (axes[1, 1], "gate_mean", "UPGD gate mean 1 - s (end of phase)")]
    for ax, key, title in panels:
        y = np.array([p[key] for p in phases], float)
        if np.isfinite(y).any():
            ax.plot(x, y, "o-", ms=4)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes,
                    color="gray")
        ax.set_title(title, fontsize=10)
    ax = axes[1, 2]
    hists = [p["gate_hist"] for p in phases]
    if any(h is not None for h in hists):
        bins = len(next(h for h in hists if h is not None))
        grid = np.array([h if h is not None else [np.nan] * bins for h in hists], float)
        im = ax.imshow(grid.T, origin="lower", aspect="auto", cmap="viridis", vmin=0,
                       extent=(x[0] - 0.5, x[-1] + 0.5, 0, 1))
        fig.colorbar(im, ax=ax, label="fraction of weights")
        ax.set_ylabel("gate 1 - s")
    else:
        ax.text(0.5, 0.5, "no gate histogram\n(not a UPGD optimizer)", ha="center", va="center",
                transform=ax.transAxes, color="gray")
    ax.set_title("UPGD gate histogram per phase (end of phase)", fontsize=10)
    for ax in axes.flat:
        ax.set_xlabel("phase")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _env_name(run) -> str:
    try:
        import yaml
        return str(yaml.safe_load(run.config.read_text()).get("env"))
    except Exception:  # noqa: BLE001 - only a title
        return run.path.name


def _run_markdown(run, m, evals, pngs, phases=()) -> Path:
    summary = {}
    if run.summary.is_file():
        try:
            summary = json.loads(run.summary.read_text())
        except ValueError:
            summary = {}
    steps = _last(m, STEP)
    lines = [f"# Run report: {run.path.name}", ""]
    env = _env_name(run)
    lines.append(f"- environment: **{env}**; steps: **{_fmt(steps, ',.0f')}**"
                 + (f"; wall time of the last session {summary['wall_time_s']:.0f} s "
                    f"({summary['fps']:.0f} steps/s)" if summary.get("fps") else ""))
    if evals:
        fin = evals[-1]
        best = max(evals, key=lambda e: e["mean_reward"])
        lines.append(f"- final evaluation: **{fin['mean_reward']:.2f} ± {fin['std_reward']:.2f}** "
                     f"at step {fin['step']:,} ({fin['episodes']} episodes)")
        lines.append(f"- best evaluation: **{best['mean_reward']:.2f}** at step {best['step']:,}"
                     + (" (best_model.zip)" if run.best.is_file() else ""))
    lines.append(f"- last training return (rollout/ep_rew_mean): "
                 f"{_fmt(_last(m, 'rollout/ep_rew_mean'), '.2f')}")
    lines.append(f"- last quantile spread {_fmt(_last(m, 'train/quantile_spread'))}, "
                 f"VGS factor {_fmt(_last(m, 'train/vgs_factor'))}, "
                 f"UPGD gate mean {_fmt(_last(m, 'train/upgd_gate_mean'))}, "
                 f"explained variance {_fmt(_last(m, 'train/explained_variance'))}")
    if COLLAPSE_RESETS in m:
        lines.append(f"- collapse resets (a fresh action head, {COLLAPSE_RESETS}): {_fmt(_last(m, COLLAPSE_RESETS), '.0f')}")
    lines.append(f"- files: [config.yaml](config.yaml), [metrics.csv](metrics.csv), "
                 f"[evals.csv](evals.csv), checkpoints/, tb/ (`tensorboard --logdir {run.path}/tb`)")
    lines.append("")
    if phases:
        lines += ["## Per phase (non-stationary environment)", "",
                  "| phase | last step | episodes | mean return | dormant | eff. rank | weight norm | gate mean "
                  "| collapse resets |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in phases:
            lines.append(f"| {p['phase']} | {p['steps']:,.0f} | {p['episodes']} | {_fmt(p['return'], '.1f')} | "
                         f"{_fmt(p['dormant_fraction'])} | {_fmt(p['effective_rank'])} | "
                         f"{_fmt(p['weight_norm'])} | {_fmt(p['gate_mean'])} | {_fmt(p['collapse_resets'], '.0f')} |")
        lines.append("")
    titles = {"learning_curve.png": "Learning curve", "critics.png": "Critics",
              "vgs_upgd.png": "Variance gradient scaler and UPGD gating",
              "losses.png": "Losses and optimisation", "plasticity.png": "Plasticity",
              "phases.png": "Phases: return, plasticity and gate per phase"}
    for p in pngs:
        lines += [f"## {titles.get(p.name, p.stem)}", "", f"![{p.stem}]({p.name})", ""]
    path = run.path / "report.md"
    path.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------------------------
def is_pbt_dir(d: Path) -> bool:
    return any((d / f).is_file() for f in ("scores.csv", "lineage.jsonl", "result.json"))


def read_scores(path: Path) -> tuple[list[dict], list[str]]:
    if not path.is_file():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        names = [c for c in (reader.fieldnames or []) if c not in ("step", "member", "score")]
        rows = []
        for r in reader:
            row = {"step": int(float(r["step"])), "member": r["member"],
                   "score": _num(r.get("score"))}
            for n in names:
                row[n] = _num(r.get(n))
            rows.append(row)
    return rows, names


def _num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _read_lineage(d: Path) -> list[dict]:
    path = d / "lineage.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def pbt_report(d: Path) -> list[Path]:
    plt = _plt()
    rows, names = read_scores(d / "scores.csv")
    events = _read_lineage(d)
    exploits = [e for e in events if e.get("event", "exploit") == "exploit"]
    result = {}
    if (d / "result.json").is_file():
        try:
            result = json.loads((d / "result.json").read_text())
        except ValueError:
            result = {}
    members = sorted({r["member"] for r in rows} | {str(e.get("donor")) for e in exploits}
                     | {str(e.get("recipient")) for e in exploits}
                     | {str(mm["id"]) for mm in result.get("members", [])})
    members = [x for x in members if x != "None"]
    color = {mid: f"C{i % 10}" for i, mid in enumerate(members)}
    written = []

    # scores
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for mid in members:
        rs = sorted((r for r in rows if r["member"] == mid), key=lambda r: r["step"])
        if rs:
            ax.plot([r["step"] for r in rs], [r["score"] for r in rs], "o-", ms=3,
                    color=color[mid], label=mid)
    for e in exploits:
        ax.axvline(e.get("step", 0), color="gray", alpha=0.15, lw=1)
        rec = str(e.get("recipient"))
        if e.get("donor_score") is not None:
            ax.plot([e["step"]], [e["donor_score"]], marker="*", ms=9, color=color.get(rec, "k"),
                    mec="k", mew=0.5)
    ax.set_xlabel("member steps")
    ax.set_ylabel(f"score ({result.get('metric', 'metric')})")
    ax.set_title("PBT: member scores (★ = an exploit: the recipient takes the donor's score)")
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize=8, ncol=2)
    written.append(_save(fig, d / "pbt_scores.png"))

    # hyperparameter schedules
    n = max(1, len(names))
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.6 * n), squeeze=False)
    for ax, name in zip(axes[:, 0], names or ["(no hyperparameter columns)"]):
        vals = []
        for mid in members:
            rs = sorted((r for r in rows if r["member"] == mid), key=lambda r: r["step"])
            xs = [r["step"] for r in rs if math.isfinite(r.get(name, math.nan))]
            ys = [r[name] for r in rs if math.isfinite(r.get(name, math.nan))]
            if xs:
                # a row's config is the one used during the interval ending at its step
                ax.step([0] + xs, ys[:1] + ys, where="pre", color=color[mid], label=mid, lw=1.5)
                vals += ys
        if vals and min(vals) > 0 and max(vals) / min(vals) > 20:
            ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if not vals:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    axes[0, 0].set_title("PBT: hyperparameters of each member over time")
    axes[-1, 0].set_xlabel("member steps")
    if rows:
        axes[0, 0].legend(fontsize=8, ncol=min(4, len(members)))
    written.append(_save(fig, d / "pbt_hyperparams.png"))

    # lineage
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.55 * max(2, len(members))))
    ypos = {mid: i for i, mid in enumerate(members)}
    xmax = max([r["step"] for r in rows] + [e.get("step", 0) for e in exploits] + [1])
    for mid in members:
        ax.hlines(ypos[mid], 0, xmax, color=color[mid], lw=2, alpha=0.6)
    for e in exploits:
        donor, rec = str(e.get("donor")), str(e.get("recipient"))
        if donor in ypos and rec in ypos:
            ax.annotate("", xy=(e.get("step", 0), ypos[rec]), xytext=(e.get("step", 0), ypos[donor]),
                        arrowprops=dict(arrowstyle="->", color=color[donor], lw=1.5))
    ax.set_yticks(range(len(members)), members)
    ax.set_xlim(0, xmax * 1.02)
    ax.set_ylim(-0.6, len(members) - 0.4)
    ax.set_xlabel("member steps")
    ax.set_title(f"PBT lineage: arrow = recipient copies donor ({len(exploits)} exploits)")
    ax.grid(axis="x", alpha=0.3)
    written.append(_save(fig, d / "pbt_lineage.png"))

    written.append(_pbt_markdown(d, rows, names, exploits, result, events, written))
    return written


def _pbt_markdown(d, rows, names, exploits, result, events, pngs) -> Path:
    lines = [f"# PBT report: {d.name}", ""]
    if result:
        lines.append(f"- best member **{result.get('best_member')}**, score "
                     f"**{_fmt(result.get('best_score'), '.2f')}** ({result.get('metric')}, "
                     f"{result.get('mode')}) after {result.get('steps', 0):,} steps per member")
        cfg = result.get("best_config") or {}
        if cfg:
            lines.append("- best config: " + ", ".join(f"`{k}={_fmt(v, '.4g') if isinstance(v, float) else v}`"
                                                       for k, v in cfg.items()))
        if result.get("best_checkpoint"):
            lines.append(f"- best checkpoint: `{result['best_checkpoint']}` "
                         f"(`lifelong eval {result['best_checkpoint']}`)")
    elif rows:
        best = max(rows, key=lambda r: r["score"] if math.isfinite(r["score"]) else -math.inf)
        lines.append(f"- best score so far **{best['score']:.2f}** ({best['member']} at step {best['step']:,}); "
                     "no result.json yet (still running?)")
    members = sorted({r["member"] for r in rows})
    lines.append(f"- {len(members)} members, {len(rows)} member intervals, {len(exploits)} exploits, "
                 f"{sum(1 for e in events if e.get('event') == 'restart')} restarts")
    if exploits:
        lines += ["", "| step | donor → recipient | donor score | recipient score |",
                  "|---:|---|---:|---:|"]
        for e in exploits[:50]:
            lines.append(f"| {e.get('step', 0):,} | {e.get('donor')} → {e.get('recipient')} | "
                         f"{_fmt(e.get('donor_score'), '.2f')} | {_fmt(e.get('recipient_score'), '.2f')} |")
        if len(exploits) > 50:
            lines.append(f"| … | {len(exploits) - 50} more in lineage.jsonl | | |")
    lines.append("")
    titles = {"pbt_scores.png": "Member scores", "pbt_hyperparams.png": "Hyperparameter schedules",
              "pbt_lineage.png": "Lineage"}
    for p in pngs:
        lines += [f"## {titles.get(p.name, p.stem)}", "", f"![{p.stem}]({p.name})", ""]
    path = d / "report.md"
    path.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------------------------
def make_report(d) -> list[Path]:
    """Write the plots and report.md for a run directory or a PBT workdir; returns their paths."""
    d = Path(d)
    if not d.is_dir():
        raise ConfigError(f"{d}: no such directory")
    if is_pbt_dir(d):
        return pbt_report(d)
    if (d / "metrics.csv").is_file() or (d / "config.yaml").is_file():
        return run_report(d)
    raise ConfigError(f"{d}: neither a run directory (metrics.csv, config.yaml) nor a PBT workdir "
                      "(scores.csv, lineage.jsonl, result.json)")
