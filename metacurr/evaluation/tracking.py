"""An evaluation as one tracker run: its table of runs, its statistics, its plots and its report.

`evaluation_tracker` opens the run once the plan is validated; `log_evaluation` records what the
evaluation wrote — the results table (one row per controller x task x seed, every metric) as a
table, the statistics of ``stats.json`` (IQM with CIs, paired differences, probability of
improvement) as summary values under ``eval/``, each plot as an image and the report files as one
artifact of type ``evaluation``. Policy bundles fetched from W&B are marked as used by the run
(lineage). Like every tracker call, none of this can fail an evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metacurr.evaluation.plan import EvalPlan
from metacurr.tracking import make_tracker, run_name
from metacurr.tracking.composite import CompositeTracker

#: Files of an evaluation folder that make up its report artifact (``runs/`` is the resumable store).
REPORT_FILES = ("results.csv", "report.md", "stats.json", "incremental.csv", "plots")


def flat_stats(stats: dict, prefix: str = "eval") -> dict[str, float]:
    """Numeric leaves of nested statistics as ``prefix/a/b/c`` keys (lists and strings are left out).

    >>> flat_stats({"aggregate": {"uniform": {"iqm": 0.5, "n": 3}}, "tasks": ["a"]})
    {'eval/aggregate/uniform/iqm': 0.5, 'eval/aggregate/uniform/n': 3}
    """
    out: dict[str, float] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}/{k}")
        elif isinstance(node, bool):
            out[key] = int(node)
        elif isinstance(node, int | float) and not (isinstance(node, float) and math.isnan(node)):
            out[key] = node

    walk(stats, prefix)
    return out


def policy_artifacts(plan: EvalPlan) -> list[str]:
    """The ``wandb:ENTITY/PROJECT/NAME:VERSION`` references of the evaluated policies, in plan order."""
    refs = []
    for spec in plan.specs:
        ref = spec.controller.removeprefix("policy:")
        if ref.startswith("wandb:") and ref not in refs:
            refs.append(ref)
    return refs


def evaluation_tracker(
    plan: EvalPlan, out: Path, *, wandb: str = "auto", name: str | None = None, group: str | None = None,
    tags: Sequence[str] = (),
) -> CompositeTracker:
    """Start the tracker run of one evaluation (``out/tracking.json``, W&B, TensorBoard)."""
    tracker = make_tracker(
        wandb, out,
        name=name or run_name("evaluate", plan.task_set, out.name),
        group=group,
        tags=["evaluate", plan.task_set, plan.mode, *tags],
        config={"job": "evaluate", "out": str(out), **plan.describe()},
    )
    for ref in policy_artifacts(plan):
        tracker.use_artifact(ref)
    return tracker


def log_evaluation(tracker: CompositeTracker, result: Any) -> None:
    """Record a finished `EvaluationResult` in ``tracker`` (table, summary values, plots, report artifact)."""
    tracker.log_table("eval/results", result.results)
    if result.rounds is not None and len(result.rounds):
        tracker.log_table("eval/incremental", result.rounds)
    summary = flat_stats(result.stats)
    summary.update({"eval/runs": len(result.results), "eval/ran": result.ran, "eval/skipped": result.skipped,
                    "eval/diverged": result.n_diverged, "eval/wall_s": result.wall_s})
    tracker.summary(summary)
    plots = Path(result.out) / "plots"
    tracker.log_images({f"plots/{p.stem}": p for p in sorted(plots.glob("*.png"))})
    files = [Path(result.out) / f for f in REPORT_FILES if (Path(result.out) / f).exists()]
    tracker.log_artifact(files, f"evaluation-{Path(result.out).name}", type="evaluation")
