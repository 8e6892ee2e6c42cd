"""Collect an evaluation's stored runs into one table (``results.csv``) and its incremental rounds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from metacurr.evaluation.execute import cell_path, read_json
from metacurr.evaluation.plan import EvalPlan

#: results.csv column order (per-stage and per-weight columns are inserted after their group).
LEADING = ["controller", "task", "family", "arch", "n_stages", "seed", "final_val_acc", "final_val_loss", "val_ece",
           "shift_acc", "shift_loss", "shift_drop", "worst_stage_acc", "stage_acc_spread",
           # error distribution over classes (metacurr.error_distribution.SUMMARY_KEYS)
           "val_balanced_acc", "val_worst_class_acc", "val_class_error_spread",
           "shift_balanced_acc", "shift_worst_class_acc", "shift_class_error_spread"]
TRAILING = ["early_stage_dominance", "val_acc_volatility", "confidence_volatility", "weight_change", "best_val_acc",
            "time_to_target", "time_to_target_self", "churn_mean", "churn_last", "forgetting_stage0", "forgetting_mean",
            "control_steps_done", "wall_s", "train_s", "monitor_s", "monitor_time_fraction", "diverged", "error",
            "controller_name", "controller_kwargs", "task_overrides", "mask"]
INCREMENTAL_ONLY = ("churn_mean", "churn_last", "forgetting_stage0", "forgetting_mean")
TARGET_FRACTION = 0.95


def load_records(plan: EvalPlan, out: str | Path) -> list[dict]:
    """The stored records of the plan's cells (missing cells are skipped)."""
    recs = []
    for cell in plan.cells:
        rec = read_json(cell_path(out, cell))
        if rec is not None:
            recs.append(rec)
    return recs


def record_row(rec: dict) -> dict:
    """One results.csv row from a stored record (before task-relative time-to-target)."""
    s = rec["summary"]
    spec = rec["spec"]
    per = [np.nan if v is None else float(v) for v in (s.get("per_stage_acc") or [])]
    row = {k: s.get(k) for k in LEADING + TRAILING if k in s}
    row.update({"controller": spec["label"], "task": rec["task"], "seed": rec["seed"],
                "n_stages": s.get("n_stages"), "diverged": bool(s.get("diverged", False)), "error": rec.get("error"),
                "controller_name": spec["controller"], "controller_kwargs": json.dumps(spec["kwargs"], sort_keys=True),
                "task_overrides": json.dumps(spec["task"], sort_keys=True),
                "mask": json.dumps(spec["mask"]) if spec["mask"] else ""})
    finite = [v for v in per if np.isfinite(v)]
    row["worst_stage_acc"] = min(finite) if finite else None
    row["stage_acc_spread"] = (max(finite) - min(finite)) if finite else None
    for i, v in enumerate(per):
        row[f"stage{i}_acc"] = v
    for i, v in enumerate(s.get("final_weights") or []):
        row[f"final_w{i}"] = v
    row["time_to_target_self"] = s.get("time_to_target")
    row["val_acc_series"] = [r.get("inner/val_acc") for r in rec.get("rows", [])]
    return row


def time_to_target(series: list, target: float) -> float:
    """First control step whose val accuracy reaches ``target`` (NaN if never)."""
    for t, v in enumerate(series):
        if v is not None and np.isfinite(v) and v >= target:
            return float(t)
    return float("nan")


def collect(plan: EvalPlan, out: str | Path):
    """All stored runs of the plan as a DataFrame (one row per run), columns ordered for results.csv.

    ``time_to_target`` is task-relative: control steps until the per-step val accuracy reaches 95% of
    the best *final* val accuracy any controller reached on that task with that seed (same data and
    initialisation, so the target is the same for every controller); NaN = never reached.
    ``time_to_target_self`` is the run's own 95%-of-its-best step (from the run summary).
    """
    rows = [record_row(r) for r in load_records(plan, out)]
    if not rows:
        return pd.DataFrame(columns=LEADING + TRAILING)
    df = pd.DataFrame(rows)
    for c in LEADING:  # runs that all failed have no metrics: the columns exist anyway (empty)
        if c not in df:
            df[c] = np.nan
    acc = pd.to_numeric(df["final_val_acc"], errors="coerce")
    best = acc.groupby([df["task"], df["seed"]]).transform("max")
    df["time_to_target"] = [time_to_target(s, TARGET_FRACTION * b) if np.isfinite(b) else np.nan
                            for s, b in zip(df["val_acc_series"], best, strict=True)]
    df = df.drop(columns=["val_acc_series"])
    stage_cols = sorted([c for c in df if re.fullmatch(r"stage\d+_acc", c)], key=lambda c: int(c[5:-4]))
    w_cols = sorted([c for c in df if re.fullmatch(r"final_w\d+", c)], key=lambda c: int(c[7:]))
    trailing = [c for c in TRAILING if plan.mode == "incremental" or c not in INCREMENTAL_ONLY]
    cols = [c for c in LEADING if c in df] + stage_cols + [c for c in trailing if c in df] + w_cols
    for c in LEADING + trailing:
        if c not in df:
            df[c] = None
            if c not in cols:
                cols.append(c)
    order = {s.label: i for i, s in enumerate(plan.specs)}
    torder = {t["name"]: i for i, t in enumerate(plan.tasks)}
    df = df.assign(_c=df["controller"].map(order), _t=df["task"].map(torder)).sort_values(["_c", "_t", "seed"])
    return df[cols].reset_index(drop=True)


def incremental_rounds(plan: EvalPlan, out: str | Path):
    """Per-round rows of an incremental evaluation (controller, task, seed, round, val/shift acc, churn, stage acc)."""
    rows = []
    for rec in load_records(plan, out):
        for rd in rec["summary"].get("rounds", []):
            row = {"controller": rec["spec"]["label"], "task": rec["task"], "seed": rec["seed"], "round": rd["round"],
                   "n_stages": rd["n_stages"], "val_acc": rd["val_acc"], "shift_acc": rd["shift_acc"], "churn": rd["churn"]}
            for i, v in enumerate(rd["stage_acc"]):
                row[f"stage{i}_acc"] = v
            rows.append(row)
    return pd.DataFrame(rows)
