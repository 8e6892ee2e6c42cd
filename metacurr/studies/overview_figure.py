"""The README's picture: what a rebalancing controller does in one run.

One MNIST-1D + MLP curriculum of 3 stages whose easiest stage carries 60% systematic label noise (a
consistently confused annotator), trained three times from the same data and initialisation: with
uniform weights, with the paper's heuristic and with the shipped learned policy (``policy:default``).
Left: each controller's stage weights per control step; right: val accuracy on the target distribution.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from metacurr.io import atomic_write_bytes
from metacurr.run import train

#: (controller, legend label, colour) of the three runs.
CONTROLLERS = (("uniform", "uniform", "tab:gray"), ("heuristic", "heuristic (paper)", "tab:orange"),
               ("policy:default", "learned policy", "tab:blue"))
#: The task parameters of the pictured curriculum.
PARAMS = {"label_noise": [0.6, 0.0, 0.0], "noise_kind": "systematic"}


def overview_figure(out: str | Path, *, seed: int = 10000, control_steps: int = 20, inner_steps: int = 10) -> dict:
    """Run the three controllers on one task and write the two-panel PNG to ``out``.

    Args:
        out: the PNG to write (its folder is created).
        seed: the task seed (evaluation seeds are >= 10000).
        control_steps, inner_steps: the budget of each run.

    Returns:
        ``{legend label: final val accuracy}``.
    """
    from matplotlib.figure import Figure  # here: only this figure needs matplotlib

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ref, _, _ in CONTROLLERS:
            folder = Path(tmp) / ref.replace(":", "_")
            train("mnist1d", arch="mlp", controller=ref, seed=seed, control_steps=control_steps,
                  inner_steps=inner_steps, params=PARAMS, out=folder)
            runs[ref] = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    fig = Figure(figsize=(10, 3.6))
    ax_w, ax_a = fig.subplots(1, 2)
    styles = ("-", "--", ":")
    for ref, label, color in CONTROLLERS:
        rows = runs[ref]
        steps = list(range(len(rows)))
        for s, ls in enumerate(styles):
            ax_w.plot(steps, [r[f"curriculum/w_stage{s}"] for r in rows], color=color, ls=ls, lw=1.8,
                      label=label if s == 0 else None)
        ax_a.plot(steps, [r["inner/val_acc"] for r in rows], color=color, lw=1.8, label=label)
    ax_w.set(title="stage weights (— stage 0, noisy; -- stage 1; ··· stage 2)", xlabel="control step",
             ylabel="weight")
    ax_a.set(title="val accuracy (target distribution)", xlabel="control step", ylabel="accuracy")
    ax_w.legend(fontsize=8, loc="upper right")
    ax_a.legend(fontsize=8, loc="lower right")
    fig.suptitle("MNIST-1D + MLP, 3 stages, 60% systematic label noise on stage 0", fontsize=10)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(Path(out), buf.getvalue())
    return {label: runs[ref][-1]["inner/val_acc"] for ref, label, _ in CONTROLLERS}
