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

This drives `InnerTrainer` and `LearningMonitor` directly because `InnerRun` builds a new model on
reset; the per-round states are the same `LearningState` s a controller sees in `metacurr train`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from metacurr.config import RunConfig
from metacurr.controllers.base import Controller
from metacurr.evaluation.error_distribution import error_distribution
from metacurr.evaluation.metrics import trajectory_metrics
from metacurr.inner_run import derive_seeds
from metacurr.models import build_model
from metacurr.monitors.calibration import expected_calibration_error
from metacurr.monitors.learning_monitor import LearningMonitor
from metacurr.tasks import build_curriculum
from metacurr.tasks.curriculum import Curriculum
from metacurr.trainer import InnerTrainer


def sub_curriculum(cur: Curriculum, n: int) -> Curriculum:
    """The curriculum restricted to its first ``n`` stages (same val / shift sets)."""
    return Curriculum(
        stages=cur.stages[:n], val=cur.val, shift=cur.shift, n_classes=cur.n_classes, layout=cur.layout,
        stage_names=cur.stage_names[:n], stage_tests=None if cur.stage_tests is None else cur.stage_tests[:n],
        name=cur.name, meta=dict(cur.meta, incremental_stages=n),
    )


def _params_finite(model: torch.nn.Module) -> bool:
    return bool(torch.stack([p.detach().float().abs().sum() for p in model.parameters()]).sum().isfinite())


@torch.no_grad()
def _evaluate(model, pair, bins: int) -> tuple[float | None, float | None, float | None, torch.Tensor]:
    x, y = pair
    model.eval()
    logits = torch.cat([model(x[i : i + 2048]) for i in range(0, len(y), 2048)]).float()
    model.train()
    loss = F.cross_entropy(logits, y)
    pred = logits.argmax(-1)
    acc = (pred == y).float().mean()
    ece = expected_calibration_error(logits.softmax(-1)[None], y[None], bins)[0]
    vals = [float(v) for v in torch.stack([loss, acc, ece]).double()]
    return *[v if np.isfinite(v) else None for v in vals], pred


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
    wall0 = time.perf_counter()
    full = curriculum or build_curriculum(spec.family, spec.n_stages, spec.seed, spec.params)
    full = full.to(dev) if full.val[0].device != dev else full
    seeds = derive_seeds(spec.seed)
    model = build_model(spec.arch, layout=full.layout, input_shape=full.input_shape, n_classes=full.n_classes,
                        seed=seeds["model"], norm=spec.norm).to(dev)
    order = torch.Generator().manual_seed(seeds["order"])
    rng = np.random.default_rng(seeds["controller"])
    n_all = full.n_stages
    tests = full.stage_tests or [(x[: cfg.monitor.probe_size], y[: cfg.monitor.probe_size]) for x, y in full.stages]
    rows: list[dict] = []
    rounds: list[dict] = []
    prev_pred = None
    diverged = False
    monitor_s = train_s = 0.0
    last_rows: list[dict] = []
    for r in range(n_all):
        n = r + 1
        sub = sub_curriculum(full, n)
        trainer = InnerTrainer(model, sub, spec, order)
        monitor = LearningMonitor(sub, cfg.monitor, torch.Generator().manual_seed(seeds["probe"]))
        ctrl = make_controller(n)
        w = ctrl.reset(n, rng)
        state = monitor.measure(model, 0, 0.0, w, np.full(n, np.nan), 0.0)
        state.stage["train_loss"] = state.stage["loss"].copy()
        round_rows = [dict(state.as_row(), round=r)]
        for t in range(1, spec.control_steps + 1):
            w = ctrl.update(state)
            t0 = time.perf_counter()
            stats = trainer.run(np.asarray(w, dtype=np.float64), spec.inner_steps)
            train_s += time.perf_counter() - t0
            train_loss = np.where(np.isnan(stats.train_loss), state.stage["train_loss"], stats.train_loss)
            state = monitor.measure(model, t, t / spec.control_steps, w, train_loss, stats.total_grad_norm)
            ctrl.after_step(state)
            if not stats.finite or not _params_finite(model):
                diverged = True
            round_rows.append(dict(state.as_row(), round=r, diverged=diverged))
            if diverged:
                break
        monitor_s += monitor.seconds
        rows.extend(round_rows)
        last_rows = round_rows
        val_loss, val_acc, val_ece, pred = _evaluate(model, full.val, cfg.monitor.ece_bins)
        shift_acc = None if full.shift is None else _evaluate(model, full.shift, cfg.monitor.ece_bins)[1]
        stage_acc = [_evaluate(model, p, cfg.monitor.ece_bins)[1] for p in tests]
        churn = None if prev_pred is None else float((pred != prev_pred).float().mean())
        prev_pred = pred
        rounds.append({"round": r, "n_stages": n, "val_acc": val_acc, "val_loss": val_loss, "val_ece": val_ece,
                       "shift_acc": shift_acc, "stage_acc": stage_acc, "churn": churn,
                       "weights": [float(v) for v in np.asarray(w, dtype=np.float64)]})
        if diverged:
            break
    last = rounds[-1]
    acc = np.array([[np.nan if a is None else a for a in rd["stage_acc"]] for rd in rounds])  # (rounds, S)
    forget = []
    for s in range(min(n_all - 1, len(rounds))):
        seen = acc[s:, s]  # from the round stage s arrived
        if np.isfinite(seen).any() and np.isfinite(acc[-1, s]):
            forget.append(float(np.nanmax(seen) - acc[-1, s]))
    churns = [rd["churn"] for rd in rounds if rd["churn"] is not None]
    wall = time.perf_counter() - wall0
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
    summary.update(error_distribution(model, full))
    return summary, rows
