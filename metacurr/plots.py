"""Plots of one run from its metrics rows (PNG; no display needed).

Figures are `matplotlib.figure.Figure` objects drawn with a layout engine, not through pyplot: importing
pyplot and the tight-bbox second draw cost about as much as a short run's training.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from metacurr.io import atomic_write_bytes


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    # A figure with a layout engine is laid out already; "tight" would draw it a second time.
    fig.savefig(buf, format="png", dpi=110, bbox_inches=None if fig.get_layout_engine() is not None else "tight")
    if "matplotlib.pyplot" in sys.modules:  # a pyplot-managed figure stays open until closed
        sys.modules["matplotlib.pyplot"].close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _subplots(*args, figsize: tuple[float, float], **kw):
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(*args, **kw)


def _series(rows: list[dict], key: str) -> np.ndarray:
    return np.array([r.get(key, np.nan) if r.get(key) is not None else np.nan for r in rows], dtype=float)


def plot_run(rows: list[dict], n_stages: int, out_dir: str | Path, stage_names: list[str] | None = None) -> list[Path]:
    """Write weights.png, indicators.png and stage_accuracy.png; return their paths."""
    out = Path(out_dir)
    names = stage_names or [f"stage{s}" for s in range(n_stages)]
    steps = _series(rows, "step")
    paths = []

    fig, ax = _subplots(figsize=(6, 3.5))
    ax.stackplot(steps, *[_series(rows, f"curriculum/w_stage{s}") for s in range(n_stages)], labels=names, alpha=0.85)
    ax.set(xlabel="control step", ylabel="stage weight", title="Stage weights", ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper right")
    _save(fig, out / "weights.png")
    paths.append(out / "weights.png")

    feats = [("entropy", "prediction entropy"), ("drift", "representation drift"), ("grad_var", "head-gradient variance"), ("loss", "probe loss")]
    fig, axes = _subplots(2, 2, figsize=(9, 6), sharex=True)
    for ax, (f, title) in zip(axes.flat, feats):
        for s in range(n_stages):
            ax.plot(steps, _series(rows, f"monitor/stage{s}/{f}"), label=names[s])
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(title, fontsize=8)
        if f == "grad_var":
            ax.set_yscale("log")
    axes[0, 0].legend(fontsize=6)
    for ax in axes[1]:
        ax.set_xlabel("control step")
    _save(fig, out / "indicators.png")
    paths.append(out / "indicators.png")

    fig, ax = _subplots(figsize=(6, 3.5))
    for s in range(n_stages):
        ax.plot(steps, _series(rows, f"monitor/stage{s}/acc"), label=names[s])
    ax.plot(steps, _series(rows, "inner/val_acc"), "k--", label="val (target)")
    ax.set(xlabel="control step", ylabel="accuracy", title="Per-stage probe accuracy and val accuracy")
    ax.legend(fontsize=7)
    _save(fig, out / "stage_accuracy.png")
    paths.append(out / "stage_accuracy.png")
    return paths
