"""Plots of one run from its metrics rows (PNG, matplotlib Agg; no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from metacurr.io import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _series(rows: list[dict], key: str) -> np.ndarray:
    return np.array([r.get(key, np.nan) if r.get(key) is not None else np.nan for r in rows], dtype=float)


def plot_run(rows: list[dict], n_stages: int, out_dir: str | Path, stage_names: list[str] | None = None) -> list[Path]:
    """Write weights.png, indicators.png and stage_accuracy.png; return their paths."""
    out = Path(out_dir)
    names = stage_names or [f"stage{s}" for s in range(n_stages)]
    steps = _series(rows, "step")
    paths = []

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.stackplot(steps, *[_series(rows, f"curriculum/w_stage{s}") for s in range(n_stages)], labels=names, alpha=0.85)
    ax.set(xlabel="control step", ylabel="stage weight", title="Stage weights", ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper right")
    _save(fig, out / "weights.png")
    paths.append(out / "weights.png")

    feats = [("entropy", "prediction entropy"), ("drift", "representation drift"), ("grad_var", "head-gradient variance"), ("loss", "probe loss")]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True)
    for ax, (f, title) in zip(axes.flat, feats):
        for s in range(n_stages):
            ax.plot(steps, _series(rows, f"monitor/stage{s}/{f}"), label=names[s])
        ax.set_title(title, fontsize=9)
        if f == "grad_var":
            ax.set_yscale("log")
    axes[0, 0].legend(fontsize=6)
    for ax in axes[1]:
        ax.set_xlabel("control step")
    _save(fig, out / "indicators.png")
    paths.append(out / "indicators.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for s in range(n_stages):
        ax.plot(steps, _series(rows, f"monitor/stage{s}/acc"), label=names[s])
    ax.plot(steps, _series(rows, "inner/val_acc"), "k--", label="val (target)")
    ax.set(xlabel="control step", ylabel="accuracy", title="Per-stage probe accuracy and val accuracy")
    ax.legend(fontsize=7)
    _save(fig, out / "stage_accuracy.png")
    paths.append(out / "stage_accuracy.png")
    return paths
