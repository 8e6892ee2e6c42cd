"""Incremental retraining: stages arrive in rounds and the model is retrained after each arrival.

Round r (r = 0 .. S-1) trains on the first r + 1 stages of the task's curriculum, *continuing from the
model of round r - 1* (the deployed model is updated, not rebuilt). Each round is a full control
budget (``spec.control_steps`` x ``spec.inner_steps``) under a freshly reset controller on the
(r + 1)-stage sub-curriculum, with a fresh optimiser (a retraining job restarts its optimiser on the
carried-over weights) and the same mini-batch generator continued across rounds. After every round
the model is evaluated on the full ``val`` set, the ``shift`` set and every stage's clean test set
(including stages not seen yet).

Measures (what a deployment that retrains as data arrives cares about):

* prediction churn between rounds r-1 and r: the fraction of ``val`` examples whose predicted label
  changes (a fixed set, so churn is comparable across rounds and controllers);
* forgetting of stage 0: its best accuracy over the rounds minus its accuracy after the last round;
  ``forgetting_mean`` averages the same over every stage but the last, from the round it arrived.

Each round is an episode of one `InnerRun` (``play(..., continue_model=True)`` from round 1 on), so the
per-round states are the same `LearningState` s a controller sees in `metacurr train`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from metacurr.config import RunConfig
from metacurr.controllers.base import Controller
from metacurr.error_distribution import error_distribution
from metacurr.inner_run import InnerRun, derive_seeds
from metacurr.tasks import build_curriculum
from metacurr.tasks.curriculum import Curriculum
from metacurr.trajectory import trajectory_metrics


def sub_curriculum(cur: Curriculum, n: int) -> Curriculum:
    """The curriculum restricted to its first ``n`` stages (same val / shift sets)."""
    return Curriculum(
        stages=cur.stages[:n], val=cur.val, shift=cur.shift, n_classes=cur.n_classes, layout=cur.layout,
        stage_names=cur.stage_names[:n], stage_tests=None if cur.stage_tests is None else cur.stage_tests[:n],
        name=cur.name, meta=dict(cur.meta, incremental_stages=n),
    )


def run_incremental(
    cfg: RunConfig,
    make_controller: Callable[[int], Controller],
    curriculum: Curriculum | None = None,
) -> tuple[dict, list[dict]]:
    """Run the incremental protocol for one task and seed.

    Args:
        cfg: the run config (task, budget per round, monitor, device).
        make_controller: ``n_stages -> Controller`` for each round (e.g. best-static restricted to the
            stages present).
        curriculum: bring-your-own curriculum (default: built from ``cfg.task``).

    Returns:
        (summary, rows): the summary has the standard final metrics of the last round plus ``rounds``
        (per-round val / shift / per-stage accuracy and churn), ``churn_mean``, ``churn_last``,
        ``forgetting_stage0``, ``forgetting_mean``; rows are the per-control-step states of all rounds
        (with a ``round`` key).
    """
    spec, dev = cfg.task, torch.device(cfg.device)
    full = curriculum or build_curriculum(spec.family, spec.n_stages, spec.seed, spec.params)
    full = full.to(dev) if full.val[0].device != dev else full
    run = InnerRun(spec, cfg.monitor, curriculum=full, device=dev)
    rng = np.random.default_rng(derive_seeds(spec.seed)["controller"])
    n_all = full.n_stages
    tests = full.stage_tests or [(x[: cfg.monitor.probe_size], y[: cfg.monitor.probe_size]) for x, y in full.stages]
    rows: list[dict] = []
    rounds: list[dict] = []
    prev_pred = None
    last_rows: list[dict] = []
    for r in range(n_all):
        n = r + 1
        round_rows: list[dict] = []

        def record(run: InnerRun, state, r=r, round_rows=round_rows) -> None:
            extra = {} if run.t == 0 else {"diverged": run.diverged}
            round_rows.append(dict(state.as_row(), round=r, **extra))

        run.play(make_controller(n), rng, record, curriculum=sub_curriculum(full, n), continue_model=r > 0)
        rows.extend(round_rows)
        last_rows = round_rows
        val_loss, val_acc, val_ece, pred = run.evaluate(full.val)
        shift_acc = None if full.shift is None else run.evaluate(full.shift)[1]
        stage_acc = [run.evaluate(p)[1] for p in tests]
        churn = None if prev_pred is None else float((pred != prev_pred).float().mean())
        prev_pred = pred
        rounds.append({"round": r, "n_stages": n, "val_acc": val_acc, "val_loss": val_loss, "val_ece": val_ece,
                       "shift_acc": shift_acc, "stage_acc": stage_acc, "churn": churn,
                       "weights": [float(v) for v in run.weights]})
        if run.diverged:
            break
    diverged = run.diverged
    train_s, monitor_s = run.train_seconds, run.monitor_seconds
    last = rounds[-1]
    acc = np.array([[np.nan if a is None else a for a in rd["stage_acc"]] for rd in rounds])  # (rounds, S)
    forget = []
    for s in range(min(n_all - 1, len(rounds))):
        seen = acc[s:, s]  # from the round stage s arrived
        if np.isfinite(seen).any() and np.isfinite(acc[-1, s]):
            forget.append(float(np.nanmax(seen) - acc[-1, s]))
    churns = [rd["churn"] for rd in rounds if rd["churn"] is not None]
    wall = time.perf_counter() - run.wall_start
    summary = {
        "final_val_loss": last["val_loss"], "final_val_acc": last["val_acc"], "val_ece": last["val_ece"],
        "shift_loss": None, "shift_acc": last["shift_acc"],
        "shift_drop": None if last["shift_acc"] is None or last["val_acc"] is None else last["val_acc"] - last["shift_acc"],
        "per_stage_acc": last["stage_acc"], "control_steps_done": len(rows) - len(rounds), "diverged": diverged,
        "wall_s": wall, "train_s": train_s, "monitor_s": monitor_s, "monitor_time_fraction": monitor_s / max(wall, 1e-9),
        "task": spec.family, "arch": spec.arch, "seed": spec.seed, "n_stages": n_all,
        "stage_names": list(full.stage_names), "final_weights": last["weights"],
        "rounds": rounds,
        "churn_mean": float(np.mean(churns)) if churns else None,
        "churn_last": churns[-1] if churns else None,
        "forgetting_stage0": forget[0] if forget else None,
        "forgetting_mean": float(np.mean(forget)) if forget else None,
    }
    if len(rounds) == n_all and len(last_rows) > 1:
        summary.update(trajectory_metrics(last_rows, n_all))
    summary.update(error_distribution(run.model, full))
    return summary, rows
