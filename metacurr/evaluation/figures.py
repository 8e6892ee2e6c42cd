"""Figures of an evaluation (PNG via matplotlib Agg, written atomically)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from metacurr.plots import _save, _series  # noqa: E402


def _grid(n: int, ncols: int = 4):
    ncols = min(ncols, max(1, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def _legend(ax, **kw) -> None:
    """A legend, unless the axes hold nothing labelled (every run failed): matplotlib would warn."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def plot_weight_trajectories(records: list[dict], path: Path, title: str) -> Path:
    """One stacked weight trajectory per controller (records of one task and seed)."""
    fig, axes = _grid(len(records))
    for ax, rec in zip(axes, records, strict=False):
        rows, n = rec["rows"], rec["summary"].get("n_stages") or 0
        if rows and n:
            steps = _series(rows, "step") if "round" not in rows[0] else np.arange(len(rows))
            ax.stackplot(steps, *[np.nan_to_num(_series(rows, f"curriculum/w_stage{s}")) for s in range(n)],
                         labels=[f"stage{s}" for s in range(n)], alpha=0.85)
        ax.set_title(rec["spec"]["label"], fontsize=8)
        ax.set_ylim(0, 1)
    _legend(axes[0], fontsize=6, loc="upper right")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return path


def plot_indicator_traces(records: list[dict], path: Path, title: str) -> Path:
    """Val accuracy and stage-mean indicators over control steps, one line per controller."""
    panels = [("inner/val_acc", "val accuracy", False), ("entropy", "prediction entropy (stage mean)", False),
              ("grad_var", "head-gradient variance (stage mean)", True), ("drift", "representation drift (stage mean)", False)]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    for ax, (key, name, log) in zip(axes.flat, panels, strict=True):
        for rec in records:
            rows, n = rec["rows"], rec["summary"].get("n_stages") or 0
            if not rows or not n:
                continue
            x = np.arange(len(rows))
            if key.startswith("inner/"):
                y = _series(rows, key)
            else:
                y = np.nanmean(np.stack([_series(rows, f"monitor/stage{s}/{key}") for s in range(n)]), 0)
            ax.plot(x, y, label=rec["spec"]["label"], lw=1.2)
        ax.set_title(name, fontsize=9)
        if log:
            ax.set_yscale("log")
    _legend(axes[0, 0], fontsize=6, ncol=2)
    for ax in axes[1]:
        ax.set_xlabel("control step")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return path


def plot_aggregates(stats: dict, path: Path) -> Path:
    """IQM and mean of normalised scores with 95% stratified-bootstrap CIs."""
    agg = stats["aggregate"]
    ctrls = sorted(agg, key=lambda c: agg[c]["iqm"] if np.isfinite(agg[c]["iqm"]) else -1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.4 * len(ctrls) + 1.5), sharey=True)
    for ax, (k, name) in zip(axes, [("iqm", "IQM"), ("mean", "mean")], strict=True):
        v = np.array([agg[c][k] for c in ctrls])
        lo = np.array([agg[c][f"{k}_low"] for c in ctrls])
        hi = np.array([agg[c][f"{k}_high"] for c in ctrls])
        err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)])
        ax.barh(ctrls, v, xerr=err, color="tab:blue", alpha=0.75, capsize=3)
        ax.set_xlabel(f"{name} of normalised {stats['metric']}")
        ax.set_xlim(0, 1)
    fig.suptitle("Aggregate performance (95% stratified bootstrap CIs)", fontsize=10)
    _save(fig, path)
    return path


def plot_performance_profile(stats: dict, path: Path) -> Path:
    """Fraction of runs with normalised score > tau."""
    taus = np.array(stats["profile"]["taus"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for c, frac in stats["profile"]["fractions"].items():
        ax.plot(taus, frac, label=c, lw=1.3)
    ax.set(xlabel=r"normalised score $\tau$", ylabel=r"fraction of runs with score > $\tau$",
           title="Performance profile", ylim=(0, 1.02))
    ax.legend(fontsize=6, ncol=2)
    _save(fig, path)
    return path


def plot_probability_of_improvement(stats: dict, path: Path) -> Path | None:
    """P(X > reference) with CIs, one panel per reference controller."""
    refs = [r for r in stats["poi"] if stats["poi"][r]]
    if not refs:
        return None
    fig, axes = plt.subplots(1, len(refs), figsize=(4.2 * len(refs), 0.35 * len(stats["controllers"]) + 1.5), squeeze=False)
    for ax, ref in zip(axes[0], refs, strict=True):
        d = stats["poi"][ref]
        ctrls = list(d)
        p = np.array([d[c]["p"] for c in ctrls])
        err = np.vstack([np.nan_to_num(p - np.array([d[c]["low"] for c in ctrls])),
                         np.nan_to_num(np.array([d[c]["high"] for c in ctrls]) - p)])
        ax.errorbar(p, ctrls, xerr=err, fmt="o", capsize=3)
        ax.axvline(0.5, color="grey", ls="--", lw=1)
        ax.set(xlim=(0, 1), xlabel=f"P(X > {ref})")
    fig.suptitle("Probability of improvement (95% CIs)", fontsize=10)
    _save(fig, path)
    return path


def plot_incremental(rounds_df, path: Path) -> Path | None:
    """Churn and stage-0 accuracy per round, mean over tasks and seeds, one line per controller."""
    if rounds_df is None or len(rounds_df) == 0:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for c, g in rounds_df.groupby("controller", sort=False):
        m = g.groupby("round").mean(numeric_only=True)
        axes[0].plot(m.index, m["churn"], marker="o", label=c)
        axes[1].plot(m.index, m["stage0_acc"], marker="o", label=c)
        axes[2].plot(m.index, m["val_acc"], marker="o", label=c)
    axes[0].set(xlabel="round", ylabel="prediction churn on val", title="churn vs previous round")
    axes[1].set(xlabel="round", ylabel="stage-0 accuracy", title="forgetting of stage 0")
    axes[2].set(xlabel="round", ylabel="val accuracy", title="target accuracy")
    axes[0].legend(fontsize=6)
    _save(fig, path)
    return path
