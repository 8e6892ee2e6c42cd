"""The dynamic-loss-rebalancing paper's claims, checked against an evaluation run.

The paper (Cartright & Bramhurst) claims that rebalancing stage weights from the learner's state, compared
with fixed weights, (1) reduces early-stage dominance, (2) gives smoother transitions, (3) is more robust
under distribution shift, (4) makes incremental retraining more stable and (5) improves accuracy. Each
claim maps to metrics `metacurr.evaluation` already computes per run (results.csv):

==================================  =========================  ======================================
claim                               metric                     better
==================================  =========================  ======================================
reduced early-stage dominance       ``early_stage_dominance``  lower (stage 0's share of the weighted
                                                               gradient, last third of training)
smoother transitions                ``confidence_volatility``  lower (std of step-to-step changes while
                                    ``val_acc_volatility``     the weights move)
robustness under distribution       ``shift_drop``             lower (val accuracy minus shift accuracy)
shift
more stable incremental retraining  ``churn_mean``             lower (predictions that change between
                                    ``forgetting_mean``        rounds; accuracy lost on earlier stages)
better final accuracy               ``final_val_acc``          higher
==================================  =========================  ======================================

Verdict rule, per method (the paper's heuristic, a learned policy) against the fixed-weight reference
(``uniform``): the mean paired difference method - reference (same task and seed) with its 95% stratified
bootstrap CI (`metacurr.evaluation.stats.paired_difference`). The claim **holds** when the CI lies entirely
on the claimed side of 0, **does not** hold when it lies entirely on the other side, and there is **no
evidence** either way when the CI includes 0, is undefined (fewer than 2 seeds per task) or the run did
not measure the metric (churn and forgetting exist only in an incremental evaluation,
``metacurr evaluate --incremental``). The volatility metrics are defined over the steps where the
weights move; a run whose weights never move (``uniform``) records 0 there, which is no measurement, so
such runs count as missing for those metrics (with a fixed-weight reference: no evidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from metacurr.errors import ConfigError
from metacurr.evaluation.stats import mean_ci, paired_difference


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and the metric that tests it."""

    claim: str
    metric: str
    lower_is_better: bool
    meaning: str
    moving_only: bool = False  # defined only for runs whose weights move (``weight_change`` > 0)


CLAIMS: tuple[Claim, ...] = (
    Claim("reduced early-stage dominance", "early_stage_dominance", True,
          "stage 0's share of the weighted gradient norm, last third of training"),
    Claim("smoother transitions", "confidence_volatility", True,
          "std of step-to-step changes of mean probe confidence while the weights move", moving_only=True),
    Claim("smoother transitions", "val_acc_volatility", True,
          "std of step-to-step changes of val accuracy while the weights move", moving_only=True),
    Claim("robustness under distribution shift", "shift_drop", True, "val accuracy minus shift-set accuracy"),
    Claim("more stable incremental retraining", "churn_mean", True,
          "fraction of val predictions that change between retraining rounds"),
    Claim("more stable incremental retraining", "forgetting_mean", True,
          "accuracy lost on earlier stages by the last round"),
    Claim("error distribution balance", "val_worst_class_acc", False,
          "accuracy of the worst class on the (balanced) val set"),
    Claim("error distribution balance", "val_class_error_spread", True,
          "best minus worst per-class val accuracy"),
    Claim("better final accuracy", "final_val_acc", False, "final accuracy on the target distribution"),
)

HOLDS, DOES_NOT, NO_EVIDENCE = "holds", "does not", "no evidence"


@dataclass
class ClaimRow:
    """The evidence for one claim and metric."""

    claim: Claim
    source: str | None  # the evaluation folder the metric came from (None: not measured)
    tasks: list[str] = field(default_factory=list)
    n_seeds: int = 0
    means: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # controller -> (mean, low, high)
    diffs: dict[str, dict] = field(default_factory=dict)  # method -> paired_difference(method - reference)
    verdicts: dict[str, str] = field(default_factory=dict)  # method -> holds / does not / no evidence


def verdict(diff: dict | None, lower_is_better: bool) -> str:
    """The verdict rule of the module docstring for one paired difference (None: not measured)."""
    if diff is None:
        return NO_EVIDENCE
    lo, hi = diff["low"], diff["high"]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return NO_EVIDENCE
    better = hi < 0 if lower_is_better else lo > 0
    worse = lo > 0 if lower_is_better else hi < 0
    return HOLDS if better else DOES_NOT if worse else NO_EVIDENCE


def read_results(folder: str | Path) -> pd.DataFrame:
    """An evaluation folder's results.csv (a one-line ConfigError when it is missing)."""
    path = Path(folder) / "results.csv"
    if not path.is_file():
        raise ConfigError(f"no results.csv in {str(folder)!r}: give a folder written by `metacurr evaluate`")
    return pd.read_csv(path)


def find_policy(frames: list[pd.DataFrame]) -> str | None:
    """The one learned policy (``policy:…`` label, not its open-loop ablation) in the runs, or None."""
    labels = sorted({c for df in frames for c in df["controller"].unique() if str(c).startswith(("policy:", "wandb:"))})
    if len(labels) > 1:
        raise ConfigError(f"several learned policies in the runs; choose one with policy=...; valid choices: {', '.join(labels)}")
    return labels[0] if labels else None


def _paired(df: pd.DataFrame, metric: str, a: str, b: str, seed: int) -> dict | None:
    x = df[df["controller"] == a].set_index(["task", "seed"])[metric]
    y = df[df["controller"] == b].set_index(["task", "seed"])[metric]
    d = (pd.to_numeric(x, errors="coerce") - pd.to_numeric(y, errors="coerce")).dropna()
    if d.empty:
        return None
    tasks = list(dict.fromkeys(d.index.get_level_values("task")))
    return paired_difference([d.xs(t, level="task").to_numpy(dtype=np.float64) for t in tasks], seed=seed)


def check_claims(
    folders: list[str | Path],
    methods: tuple[str, ...] = ("heuristic",),
    policy: str | None = None,
    reference: str = "uniform",
    seed: int = 0,
) -> tuple[list[ClaimRow], list[str]]:
    """Evidence and verdict for every claim of the paper, from one or more evaluation folders.

    Args:
        folders: evaluation output folders (``metacurr evaluate --out``); for each metric the first folder
            that measured it for the reference is used (so a standard run and an incremental run combine).
        methods: the rebalancing methods to test besides the learned policy (default: the paper's heuristic).
        policy: the learned policy's controller label; default: the one ``policy:…`` label in the runs.
        reference: the fixed-weight baseline the claims are made against.
        seed: bootstrap seed.

    Returns:
        One `ClaimRow` per claim and metric, and the compared controllers (reference first).
    """
    if not folders:
        raise ConfigError("give at least one evaluation folder")
    frames = [read_results(f) for f in folders]
    policy = policy or find_policy(frames)
    ctrls = [reference, *methods] + ([policy] if policy else [])
    for name in ctrls:
        if not any((df["controller"] == name).any() for df in frames):
            valid = sorted({c for df in frames for c in df["controller"].unique()})
            raise ConfigError(f"controller {name!r} is not in the runs; valid choices: {', '.join(valid)}")
    rows = []
    for claim in CLAIMS:
        row = ClaimRow(claim, None)
        for folder, df in zip(folders, frames, strict=True):
            if claim.metric not in df:
                continue
            vals = pd.to_numeric(df.loc[df["controller"] == reference, claim.metric], errors="coerce")
            if vals.notna().any():
                row.source = str(folder)
                df = df.assign(**{claim.metric: pd.to_numeric(df[claim.metric], errors="coerce")})
                if claim.moving_only and "weight_change" in df:
                    still = pd.to_numeric(df["weight_change"], errors="coerce").fillna(0.0) <= 1e-9
                    df.loc[still, claim.metric] = np.nan
                row.tasks = list(dict.fromkeys(df.loc[df["controller"] == reference, "task"]))
                row.n_seeds = int(df[df["controller"] == reference].groupby("task")["seed"].nunique().min())
                for c in ctrls:
                    sub = df[(df["controller"] == c) & df[claim.metric].notna()]
                    groups = [g.to_numpy(dtype=np.float64) for _, g in sub.groupby("task", sort=False)[claim.metric]]
                    row.means[c] = mean_ci(groups, seed=seed) if groups else (math.nan,) * 3
                for m in ctrls[1:]:
                    row.diffs[m] = _paired(df, claim.metric, m, reference, seed)
                break
        row.verdicts = {m: verdict(row.diffs.get(m), claim.lower_is_better) for m in ctrls[1:]}
        rows.append(row)
    return rows, ctrls


def _num(v: float, signed: bool = False) -> str:
    if not np.isfinite(v):
        return "–"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def claims_markdown(rows: list[ClaimRow], ctrls: list[str], names: dict[str, str] | None = None) -> str:
    """The claims table in Markdown: per metric the mean [95% CI] of each controller, and per method the
    paired difference against the reference [95% CI] with its verdict."""
    names = names or {}
    label = {c: names.get(c, f"`{c}`") for c in ctrls}
    ref, methods = ctrls[0], ctrls[1:]
    head = ["claim", "metric (better)", *[f"{label[c]} mean [CI]" for c in ctrls],
            *[f"{label[m]} − {label[ref]} [CI]: verdict" for m in methods]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        better = "lower" if r.claim.lower_is_better else "higher"
        cells = [r.claim.claim, f"`{r.claim.metric}` ({better})"]
        if r.source is None:
            cells += ["not measured"] * len(ctrls)
        elif r.claim.moving_only:
            cells += [f"{_num(m)} [{_num(lo)}, {_num(hi)}]" if np.isfinite(m) else "– (weights never move)"
                      for m, lo, hi in (r.means[c] for c in ctrls)]
        else:
            cells += [f"{_num(m)} [{_num(lo)}, {_num(hi)}]" for m, lo, hi in (r.means[c] for c in ctrls)]
        for m in methods:
            d = r.diffs.get(m)
            ev = "–" if d is None else f"{_num(d['mean'], True)} [{_num(d['low'], True)}, {_num(d['high'], True)}]"
            cells.append(f"{ev}: **{r.verdicts[m]}**")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims_sources(rows: list[ClaimRow]) -> list[str]:
    """One line per evaluation folder used: its tasks and seeds per task."""
    seen: dict[str, str] = {}
    for r in rows:
        if r.source is not None and r.source not in seen:
            seen[r.source] = (f"`{r.source}`: {len(r.tasks)} tasks ({', '.join(f'`{t}`' for t in r.tasks)}), "
                              f"{r.n_seeds} evaluation seeds per task")
    missing = sorted({r.claim.metric for r in rows if r.source is None})
    out = list(seen.values())
    if missing:
        out.append(f"not measured by these runs: {', '.join(f'`{m}`' for m in missing)}")
    return out
