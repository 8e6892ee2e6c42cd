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


def short_label(label: str) -> str:
    """A controller label short enough for a plot: ``policy:runs/main/agent/policy`` -> ``policy:…/agent/policy``."""
    prefix = ""
    while label.startswith("open-loop:"):
        prefix, label = prefix + "open-loop:", label[len("open-loop:"):]
    if label.startswith("policy:"):
        parts = Path(label[len("policy:"):]).parts
        if len(parts) > 2:
            label = "policy:…/" + "/".join(parts[-2:])
    return prefix + label


def most_different(records: list[dict], k: int = 2) -> list[tuple[str, int]]:
    """The ``k`` tasks whose controllers' weights differ most, each with its seed where they differ most.

    Difference of one (task, seed): the mean over pairs of controllers of the L1 distance between their
    time-averaged weight vectors. A task's score is the mean over its seeds."""
    by: dict[tuple[str, int], list[np.ndarray]] = {}
    for rec in records:
        rows, n = rec.get("rows") or [], rec["summary"].get("n_stages") or 0
        if not rows or not n:
            continue
        w = np.stack([np.nan_to_num(_series(rows, f"curriculum/w_stage{s}")) for s in range(n)], 1)
        by.setdefault((rec["task"], rec["seed"]), []).append(w.mean(0))
    score = {}
    for key, ws in by.items():
        pairs = [np.abs(a - b).sum() for i, a in enumerate(ws) for b in ws[i + 1:] if a.shape == b.shape]
        score[key] = float(np.mean(pairs)) if pairs else 0.0
    tasks: dict[str, list[float]] = {}
    for (task, _), v in score.items():
        tasks.setdefault(task, []).append(v)
    ranked = sorted(tasks, key=lambda t: -float(np.mean(tasks[t])))[:k]
    return [(t, max((s for (tt, s) in score if tt == t), key=lambda s: score[(t, s)])) for t in ranked]


def _legend(ax, **kw) -> None:
    """A legend, unless the axes hold nothing labelled (every run failed): matplotlib would warn."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def plot_weight_trajectories(records: list[dict], path: Path, title: str, picks: list[tuple[str, int]] | None = None) -> Path:
    """Stacked stage-weight trajectories, one panel per controller, one block of panels per (task, seed)
    in ``picks`` (default: every task and seed in ``records``, in order)."""
    picks = picks or list(dict.fromkeys((r["task"], r["seed"]) for r in records))
    blocks = [[r for r in records if (r["task"], r["seed"]) == key] for key in picks]
    ncols = min(5, max((len(b) for b in blocks), default=1)) or 1
    nrows = [max(1, math.ceil(len(b) / ncols)) for b in blocks]
    fig = plt.figure(figsize=(2.7 * ncols, 2.3 * sum(nrows) + 0.6 * len(blocks) + 0.4), layout="constrained")
    subs = fig.subfigures(len(blocks), 1, height_ratios=nrows, squeeze=False)[:, 0] if blocks else []
    first = None
    for sub, (task, seed), block, nr in zip(subs, picks, blocks, nrows, strict=True):
        axes = sub.subplots(nr, ncols, squeeze=False, sharex=True, sharey=True).flat
        for i, ax in enumerate(axes):
            if i >= len(block):
                ax.axis("off")
                continue
            rec = block[i]
            rows, n = rec["rows"], rec["summary"].get("n_stages") or 0
            if rows and n:
                steps = _series(rows, "step") if "round" not in rows[0] else np.arange(len(rows))
                ax.stackplot(steps, *[np.nan_to_num(_series(rows, f"curriculum/w_stage{s}")) for s in range(n)],
                             labels=[f"stage {s}" for s in range(n)], alpha=0.85)
                first = first or ax
            ax.set_title(short_label(rec["spec"]["label"]), fontsize=8)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=7)
            if i % ncols == 0:
                ax.set_ylabel("stage weight", fontsize=8)
            if i >= len(block) - ncols:
                ax.set_xlabel("control step", fontsize=8)
        sub.suptitle(f"{task} (seed {seed})", fontsize=9)
    if first is not None:
        handles, labels = first.get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=len(labels))
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return path


def plot_indicator_traces(records: list[dict], path: Path, title: str) -> Path:
    """Val accuracy and stage-mean indicators over control steps, one line per controller. ``uniform`` is
    the wide grey band underneath; every other controller has its own colour and line style, so one that
    stays close to uniform shows as a line inside the band."""
    panels = [("inner/val_acc", "val accuracy", False), ("entropy", "prediction entropy (stage mean)", False),
              ("grad_var", "head-gradient variance (stage mean)", True), ("drift", "representation drift (stage mean)", False)]
    styles = [(c, ls) for ls in ("-", "--", ":", "-.") for c in plt.get_cmap("tab10").colors]
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True, layout="constrained")
    for ax, (key, name, log) in zip(axes.flat, panels, strict=True):
        k = 0
        for rec in records:
            rows, n = rec["rows"], rec["summary"].get("n_stages") or 0
            if not rows or not n:
                continue
            x = np.arange(len(rows))
            if key.startswith("inner/"):
                y = _series(rows, key)
            else:
                y = np.nanmean(np.stack([_series(rows, f"monitor/stage{s}/{key}") for s in range(n)]), 0)
            label = short_label(rec["spec"]["label"])
            if label == "uniform":
                ax.plot(x, y, label=label, lw=6, color="0.6", alpha=0.55, zorder=1)
            else:
                color, ls = styles[k % len(styles)]
                k += 1
                ax.plot(x, y, label=label, lw=1.3, color=color, ls=ls, zorder=2)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(name.split(" (")[0], fontsize=8)
        if log:
            ax.set_yscale("log")
    for ax in axes[1]:
        ax.set_xlabel("control step")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="outside right center")
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
        ax.barh([short_label(c) for c in ctrls], v, xerr=err, color="tab:blue", alpha=0.75, capsize=3)
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
        ax.plot(taus, frac, label=short_label(c), lw=1.3)
    ax.set(xlabel=r"normalised score $\tau$", ylabel=r"fraction of runs with score > $\tau$",
           title="Performance profile", ylim=(0, 1.02))
    ax.legend(fontsize=6, ncol=2)
    _save(fig, path)
    return path


def plot_probability_of_improvement(stats: dict, path: Path) -> Path | None:
    """P(X > reference) with CIs, one panel per reference controller; every panel has the same rows in the
    same order (the evaluation's controller order), labelled once on the left; a reference's own row is empty."""
    refs = [r for r in stats["poi"] if stats["poi"][r]]
    if not refs:
        return None
    ctrls = [c for c in stats["controllers"] if any(c in stats["poi"][r] for r in refs)]
    ypos = {c: i for i, c in enumerate(ctrls)}
    fig, axes = plt.subplots(1, len(refs), figsize=(2.2 + 3.0 * len(refs), 0.32 * len(ctrls) + 1.4), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, ref in zip(axes[0], refs, strict=True):
        d = stats["poi"][ref]
        cs = [c for c in ctrls if c in d]
        p = np.array([d[c]["p"] for c in cs])
        err = np.vstack([np.nan_to_num(p - np.array([d[c]["low"] for c in cs])),
                         np.nan_to_num(np.array([d[c]["high"] for c in cs]) - p)])
        ax.errorbar(p, [ypos[c] for c in cs], xerr=err, fmt="o", capsize=3)
        ax.axvline(0.5, color="grey", ls="--", lw=1)
        ax.set(xlim=(0, 1), xlabel=f"P(X > {short_label(ref)})")
    axes[0, 0].set_yticks(range(len(ctrls)), [short_label(c) for c in ctrls], fontsize=8)
    axes[0, 0].set_ylim(len(ctrls) - 0.5, -0.5)
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
        axes[0].plot(m.index, m["churn"], marker="o", label=short_label(c))
        axes[1].plot(m.index, m["stage0_acc"], marker="o", label=short_label(c))
        axes[2].plot(m.index, m["val_acc"], marker="o", label=short_label(c))
    axes[0].set(xlabel="round", ylabel="prediction churn on val", title="churn vs previous round")
    axes[1].set(xlabel="round", ylabel="stage-0 accuracy", title="forgetting of stage 0")
    axes[2].set(xlabel="round", ylabel="val accuracy", title="target accuracy")
    axes[0].legend(fontsize=6)
    _save(fig, path)
    return path
