"""The evaluation report: results.csv, report.md (verdict in words, tables with CIs) and plots/."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from metacurr.evaluation import figures
from metacurr.evaluation.collect import load_records
from metacurr.evaluation.stats import ci_verdict, compute_statistics, mean_ci, paired_difference
from metacurr.io import atomic_write_json, atomic_write_text
from metacurr.seeds import EVAL_SEED_BASE, TRAIN_SEED_MAX

REFERENCES = ("uniform", "heuristic", "best-static")
#: Established baselines from the literature (curriculum pacing, multi-task loss weighting, self-paced
#: and bandit curricula): the best of those evaluated (by IQM) becomes a fourth reference.
LITERATURE = ("sequential", "linear-pacing", "dwa", "uncertainty", "gradnorm", "self-paced", "bandit")


def references(stats: dict) -> list[str]:
    """The references every controller is compared with in these statistics (fixed ones + best literature)."""
    return [r for r in stats.get("references", REFERENCES) if r in stats["poi"]]


def statistics(df: pd.DataFrame) -> dict:
    """`compute_statistics` with the references: uniform, heuristic, best-static and the best literature
    baseline evaluated (``stats["best_literature"]``, by IQM of the normalised score)."""
    stats = compute_statistics(df, "final_val_acc", REFERENCES)
    lit = [c for c in LITERATURE if c in stats["aggregate"] and np.isfinite(stats["aggregate"][c]["iqm"])]
    best = max(lit, key=lambda c: stats["aggregate"][c]["iqm"]) if lit else None
    refs = list(REFERENCES) + ([best] if best else [])
    if best:
        stats = compute_statistics(df, "final_val_acc", refs)
    stats["references"], stats["best_literature"] = refs, best
    return stats
SECONDARY = [
    ("shift_acc", "shift acc"), ("shift_drop", "shift drop"), ("worst_stage_acc", "worst stage acc"),
    ("stage_acc_spread", "stage spread"), ("early_stage_dominance", "early-stage dominance"),
    ("val_acc_volatility", "val-acc volatility"), ("confidence_volatility", "confidence volatility"),
    ("val_ece", "val ECE"), ("wall_s", "wall s"), ("monitor_time_fraction", "monitor time frac"),
]


def _f(v, d: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{d}f}"


def format_ci(p: float, lo: float, hi: float, d: int = 3, signed: bool = False) -> str:
    """``point [low, high]`` with ``d`` decimals (signed: ``+0.012 [-0.003, +0.027]``); ``(CI n/a)`` when
    the interval is not finite or missing (None: a NaN as stored in stats.json)."""
    p, lo, hi = (np.nan if v is None else v for v in (p, lo, hi))
    fmt = (lambda v: "n/a" if not np.isfinite(v) else f"{v:+.{d}f}") if signed else (lambda v: _f(v, d))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{fmt(p)} (CI n/a)"
    return f"{fmt(p)} [{fmt(lo)}, {fmt(hi)}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def comparison_table(stats: dict, rows: list[tuple[str, str]], first: str = "controller") -> str:
    """Markdown table: per (name, controller label) the IQM [CI] and, against every reference, the mean
    paired difference of final val accuracy [CI] with P(X > ref) [CI]."""
    agg, refs = stats["aggregate"], references(stats)
    head = [first, "IQM [95% CI]"] + [f"vs `{r}`: diff [CI]; P(X > ref)" for r in refs]
    out = []
    for name, label in rows:
        a = agg.get(label)
        if a is None:
            continue
        cells = [name, format_ci(a["iqm"], a["iqm_low"], a["iqm_high"], 2)]
        for r in refs:
            d, p = stats["paired"][r].get(label), stats["poi"][r].get(label)
            if label == r or d is None:
                cells.append("-")
                continue
            cell = format_ci(d["mean"], d["low"], d["high"], signed=True)
            cells.append(cell if p is None else f"{cell}; {format_ci(p['p'], p['low'], p['high'], 2)}")
        out.append(cells)
    return _table(head, out)


def compare_sentence(name: str, ref: str, paired: dict | None, poi: dict | None) -> str:
    """One sentence: does ``name`` beat ``ref``? Decided by the CI of the mean paired difference."""
    if paired is None:
        return f"- `{name}` vs `{ref}`: no common tasks and seeds."
    diff = format_ci(paired["mean"], paired["low"], paired["high"], signed=True)
    p = "" if poi is None else f"; probability of improvement {format_ci(poi['p'], poi['low'], poi['high'], 2)}"
    seeds = f"; better on {paired['frac_improved']:.0%} of {paired['n_pairs']} (task, seed) pairs"
    v = ci_verdict(paired["low"], paired["high"])
    head = {
        "above": f"beats `{ref}` (CI of the paired difference excludes 0)",
        "below": f"is worse than `{ref}` (CI of the paired difference is below 0)",
        "includes": f"does not beat `{ref}` (CI includes 0)",
        "undefined": f"cannot be judged against `{ref}` (too few seeds for a CI)",
    }[v]
    return f"- `{name}` {head}: mean paired difference in final val acc {diff}{p}{seeds}."


MIN_SEEDS = 5


def verdict(stats: dict, policies: list[str], min_seeds: int | None = None) -> list[str]:
    """The report's plain-words conclusions (``min_seeds``: fewest seeds any task has, for a caveat)."""
    agg = stats["aggregate"]
    ranked = sorted(agg, key=lambda c: -agg[c]["iqm"] if np.isfinite(agg[c]["iqm"]) else math.inf)
    lines = []
    if min_seeds is not None and min_seeds < MIN_SEEDS:
        lines.append(f"- *Caution: {min_seeds} seed(s) per task. Percentile-bootstrap CIs from so few runs are too "
                     f"narrow to trust; treat every statement below as a smoke test, not evidence "
                     f"(use --seeds {MIN_SEEDS * 2} or more).*")
    best = ranked[0]
    b = agg[best]
    line = (f"- **Best controller: `{best}`** by IQM of the normalised final val accuracy, "
            f"{format_ci(b['iqm'], b['iqm_low'], b['iqm_high'])} (mean final val acc {_f(b['raw_mean'])}).")
    if len(ranked) > 1:
        r = agg[ranked[1]]
        overlap = not (np.isfinite(b["iqm_low"]) and np.isfinite(r["iqm_high"])) or b["iqm_low"] <= r["iqm_high"]
        line += (f" Runner-up `{ranked[1]}` {format_ci(r['iqm'], r['iqm_low'], r['iqm_high'])}; "
                 + ("the CIs overlap, so the top ranking is not statistically resolved."
                    if overlap else "the CIs do not overlap."))
    lines.append(line)
    refs = references(stats)
    if policies:
        for pol in policies:
            lines.append(f"- Learned policy `{pol}`:")
            for ref in refs:
                lines.append("  " + compare_sentence(pol, ref, stats["paired"][ref].get(pol), stats["poi"][ref].get(pol)))
            missing = [r for r in REFERENCES if r not in refs]
            if stats.get("best_literature") is None:
                missing.append("a literature baseline")
            if missing:
                lines.append(f"  - not compared with {', '.join(r if ' ' in r else f'`{r}`' for r in missing)}: not evaluated "
                             "(add to --controllers).")
    else:
        lines.append("- No learned policy (`policy:*`) was evaluated; the comparison is among the baselines.")
    if "heuristic" in agg:
        for ref in ("uniform", "best-static"):
            if ref in stats["paired"] and "heuristic" in stats["paired"][ref]:
                lines.append("- The paper's heuristic: "
                             + compare_sentence("heuristic", ref, stats["paired"][ref]["heuristic"],
                                                stats["poi"][ref].get("heuristic"))[2:])
    return lines


def _secondary_table(df: pd.DataFrame, ctrls: list[str]) -> str:
    rows = []
    for c in ctrls:
        g = df[df["controller"] == c]
        r = [f"`{c}`"]
        for k, _ in SECONDARY:
            v = pd.to_numeric(g[k], errors="coerce") if k in g else pd.Series(dtype=float)
            r.append(_f(float(v.mean()) if v.notna().any() else None))
        ttt = pd.to_numeric(g["time_to_target"], errors="coerce")
        r.append(f"{_f(float(ttt.median()), 1) if ttt.notna().any() else 'n/a'} ({ttt.notna().mean():.0%})")
        r.append(str(int(g["diverged"].astype(bool).sum())))
        rows.append(r)
    return _table(["controller"] + [n for _, n in SECONDARY] + ["time-to-target median (reached)", "diverged"], rows)


#: Columns of the error-distribution table (results.csv names, `metacurr.error_distribution`).
CLASS_METRICS = [
    ("val_balanced_acc", "val balanced acc"), ("val_worst_class_acc", "val worst-class acc"),
    ("val_class_error_spread", "val class-error spread"), ("shift_balanced_acc", "shift balanced acc"),
    ("shift_worst_class_acc", "shift worst-class acc"), ("shift_class_error_spread", "shift class-error spread"),
]


def _class_section(df: pd.DataFrame, ctrls: list[str], refs: list[str]) -> list[str]:
    """Error distribution over classes: means with CIs, and worst-class accuracy paired against the references."""
    cols = [(k, n) for k, n in CLASS_METRICS if k in df and pd.to_numeric(df[k], errors="coerce").notna().any()]
    if not cols:
        return []
    rows = []
    for c in ctrls:
        g = df[df["controller"] == c]
        cells = [f"`{c}`"]
        for k, _ in cols:
            groups = [pd.to_numeric(t[k], errors="coerce").dropna().to_numpy() for _, t in g.groupby("task")]
            groups = [x for x in groups if len(x)]
            cells.append(format_ci(*mean_ci(groups)) if groups else "n/a")
        rows.append(cells)
    md = ["## Error distribution over classes", "",
          "Per-class accuracy on the balanced val and shift sets: balanced accuracy (mean over classes), the worst "
          "class, and the spread (best minus worst class accuracy; lower is more even). Means over runs with 95% "
          "stratified bootstrap CIs; diverged runs are left out.", "",
          _table(["controller"] + [n for _, n in cols], rows), ""]
    key = "val_worst_class_acc"
    if key not in dict(cols):
        return md
    wc = df.assign(_v=pd.to_numeric(df[key], errors="coerce"))
    for r in refs:
        b = wc[wc["controller"] == r].set_index(["task", "seed"])["_v"]
        prs = []
        for c in ctrls:
            if c == r:
                continue
            d = (wc[wc["controller"] == c].set_index(["task", "seed"])["_v"] - b).dropna()
            if not len(d):
                continue
            groups = [d.xs(t, level="task").to_numpy() for t in dict.fromkeys(d.index.get_level_values("task"))]
            p = paired_difference(groups)
            prs.append([f"`{c}`", format_ci(p["mean"], p["low"], p["high"], signed=True), f"{p['frac_improved']:.0%}",
                        p["n_pairs"]])
        if prs:
            md += [f"Val worst-class accuracy, X minus `{r}` (same task and seed):", "",
                   _table(["controller", "mean difference [95% CI]", "pairs improved", "pairs"], prs), ""]
    return md


def _incremental_section(df: pd.DataFrame, ctrls: list[str]) -> list[str]:
    rows = []
    for c in ctrls:
        g = df[df["controller"] == c]
        cells = [f"`{c}`"]
        for k in ("churn_mean", "forgetting_stage0", "forgetting_mean"):
            groups = [pd.to_numeric(t[k], errors="coerce").dropna().to_numpy() for _, t in g.groupby("task")]
            groups = [x for x in groups if len(x)]
            cells.append(format_ci(*mean_ci(groups)) if groups else "n/a")
        cells.append(_f(float(pd.to_numeric(g["final_val_acc"], errors="coerce").mean())))
        rows.append(cells)
    return [
        "## Incremental retraining",
        "",
        "Stages arrive in rounds; round r retrains the previous round's model on stages 0..r. Churn = fraction of "
        "val predictions that change between consecutive rounds; forgetting = best accuracy of a stage over the "
        "rounds minus its accuracy after the last round (stage 0, and the mean over all but the last stage). "
        "Means with 95% stratified bootstrap CIs; lower is better for churn and forgetting.",
        "",
        _table(["controller", "churn (mean over rounds)", "forgetting stage 0", "forgetting (mean)", "final val acc"], rows),
        "",
    ]


def write_report(out: str | Path, plan, df: pd.DataFrame, searches: dict, wall_s: float | None = None,
                 rounds_df: pd.DataFrame | None = None, where: str | None = None) -> dict:
    """Write results.csv, stats.json, report.md and plots/ into ``out``; return the statistics.

    ``where``: where the cells ran, for the report's wall-time line (default: the plan's workers).
    """
    out = Path(out)
    atomic_write_text(out / "results.csv", df.to_csv(index=False))
    if rounds_df is not None and len(rounds_df):
        atomic_write_text(out / "incremental.csv", rounds_df.to_csv(index=False))
    stats = statistics(df)
    atomic_write_json(out / "stats.json", stats)
    ctrls = stats["controllers"]
    policies = [s.label for s in plan.specs if s.is_policy]

    # Plots: weight trajectories where the controllers' weights differ most; indicators on the first of those.
    plots = out / "plots"
    recs = load_records(plan, out)
    picks = figures.most_different(recs, k=2) or [(plan.tasks[0]["name"], plan.seeds[0])]
    t0, s0 = picks[0]
    first = [r for r in recs if r["task"] == t0 and r["seed"] == s0]
    made = [
        figures.plot_weight_trajectories(recs, plots / "weights.png", "Stage weights where the controllers differ most",
                                         picks),
        figures.plot_indicator_traces(first, plots / "indicators.png", f"Indicator traces on {t0} (seed {s0})"),
        figures.plot_aggregates(stats, plots / "iqm.png"),
        figures.plot_performance_profile(stats, plots / "performance_profile.png"),
        figures.plot_probability_of_improvement(stats, plots / "probability_of_improvement.png"),
    ]
    if rounds_df is not None and len(rounds_df):
        made.append(figures.plot_incremental(rounds_df, plots / "incremental.png"))
    made = [p for p in made if p is not None]

    agg = stats["aggregate"]
    task_names = ", ".join(f"`{t['name']}`" for t in plan.tasks)
    md = [
        "# metacurr evaluation report",
        "",
        f"Mode: {plan.mode}. Controllers: {', '.join(f'`{c}`' for c in ctrls)}. "
        f"Task set `{plan.task_set}`: {task_names}. "
        f"Evaluation seeds: {', '.join(map(str, plan.seeds))} (>= {EVAL_SEED_BASE}; anything tuned or trained used "
        f"seeds <= {TRAIN_SEED_MAX}). Budget: {plan.budget['control_steps']} control steps x "
        f"{plan.budget['inner_steps']} inner steps. Runs: {len(df)}"
        + (f"; wall time {wall_s:.1f} s {where or f'with {plan.workers} worker(s)'}." if wall_s is not None else "."),
        "",
        "## Verdict",
        "",
        *verdict(stats, policies, len(plan.seeds)),
        "",
        "## Aggregate performance (IQM)",
        "",
        "Normalised score per task = min-max over all runs on the task of the final val accuracy; IQM = "
        "interquartile mean over all runs; 95% stratified bootstrap CIs (seeds resampled within each task).",
        "",
        _table(["controller", "IQM [95% CI]", "mean [95% CI]", "final val acc [95% CI]", "runs", "diverged"],
               [[f"`{c}`", format_ci(agg[c]["iqm"], agg[c]["iqm_low"], agg[c]["iqm_high"]),
                 format_ci(agg[c]["mean"], agg[c]["mean_low"], agg[c]["mean_high"]),
                 format_ci(agg[c]["raw_mean"], agg[c]["raw_low"], agg[c]["raw_high"]), agg[c]["n_runs"],
                 int(df.loc[df["controller"] == c, "diverged"].astype(bool).sum())] for c in ctrls]),
        "",
        "## Probability of improvement",
        "",
        "P(X > Y) = probability that a run of X reaches a higher final val accuracy than a run of Y on the same "
        "task (ties count half), averaged over tasks; 0.5 = no difference.",
        "",
    ]
    refs = references(stats)
    if refs:
        md.append(_table(["controller"] + [f"P(X > {r})" for r in refs],
                         [[f"`{c}`"] + [(format_ci(stats["poi"][r][c]["p"], stats["poi"][r][c]["low"], stats["poi"][r][c]["high"], 2)
                                         if c in stats["poi"][r] else "-") for r in refs] for c in ctrls]))
    else:
        md.append("No reference controller (uniform, heuristic, best-static) was evaluated.")
    md += ["", "## Paired comparisons", "",
           "Per (task, seed) difference of final val accuracy, X minus the reference (same data and initialisation); "
           "mean with 95% stratified bootstrap CI, and the fraction of pairs where X is better.", ""]
    for r in refs:
        md += [f"### vs `{r}`", "",
               _table(["controller", "mean difference [95% CI]", "pairs improved", "pairs"],
                      [[f"`{c}`", format_ci(d["mean"], d["low"], d["high"], signed=True), f"{d['frac_improved']:.0%}", d["n_pairs"]]
                       for c, d in stats["paired"][r].items()]), ""]
    md += ["## Final val accuracy per task (mean over seeds)", "",
           _table(["controller"] + [f"`{t}`" for t in stats["tasks"]],
                  [[f"`{c}`"] + [_f(stats["per_task"][t].get(c)) for t in stats["tasks"]] for c in ctrls]), "",
           "## Secondary metrics (means over runs)", "",
           "Time-to-target: control steps until the val accuracy reaches 95% of the best final val accuracy any "
           "controller reached on that task and seed (median over runs that reached it; share reached).", "",
           _secondary_table(df, ctrls), ""]
    md += _class_section(df, ctrls, refs)
    if plan.mode == "incremental":
        md += _incremental_section(df, ctrls)
    if searches:
        md += ["## best-static: chosen weights", "",
               "Grid search over the weight simplex on training seeds (never an evaluation seed, never the shift set), "
               "scored by final val accuracy; once per task.", "",
               _table(["task", "weights", "search val acc", "search seeds", "candidates"],
                      [[f"`{s['task']}`", "[" + ", ".join(f"{w:.2f}" for w in s["weights"]) + "]", _f(s.get("val_acc")),
                        ", ".join(map(str, s["seeds"])), len(s["candidates"])] for s in searches.values()]), ""]
    errs = df[df["error"].notna() & (df["error"].astype(str) != "")] if "error" in df else df.iloc[0:0]
    if len(errs):
        md += ["## Failed runs (counted as diverged, score 0)", ""]
        md += [f"- `{r.controller}` on `{r.task}` seed {r.seed}: {r.error}" for r in errs.itertuples()]
        md.append("")
    md += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in made] + [""]
    md += ["## Method", "",
           "- Every controller runs on the same (task, seed) cells; data, model initialisation and mini-batch order "
           "derive from the seed alone, so paired differences isolate the controller.",
           "- Diverged or failed runs count as final val accuracy 0.",
           "- Statistics: `scipy.stats.trim_mean` (IQM) and `scipy.stats.bootstrap` (percentile, one sample per task = "
           "stratified); probability of improvement as in Agarwal et al. (2021). With one seed per task CIs are n/a.",
           "- Min-max normalisation depends on the set of controllers compared; probability of improvement and paired "
           "differences do not.", ""]
    atomic_write_text(out / "report.md", "\n".join(md))
    return stats


def summary_table(stats: dict) -> str:
    """A plain-text table for the terminal (the CLI prints it)."""
    agg = stats["aggregate"]
    refs = references(stats)
    w = max(12, *(len(c) for c in agg))
    head = f"{'controller':<{w}}  {'IQM [95% CI]':<24}{'val acc':>9}" + "".join(f"{'P(>' + r + ')':>18}" for r in refs)
    lines = [head, "-" * len(head)]
    for c in sorted(agg, key=lambda c: -agg[c]["iqm"] if np.isfinite(agg[c]["iqm"]) else math.inf):
        a = agg[c]
        line = f"{c:<{w}}  {format_ci(a['iqm'], a['iqm_low'], a['iqm_high'], 2):<24}{_f(a['raw_mean']):>9}"
        for r in refs:
            line += f"{(_f(stats['poi'][r][c]['p'], 2) if c in stats['poi'][r] else '-'):>18}"
        lines.append(line)
    return "\n".join(lines)
