"""``metacurr evaluate``: every controller on every held-out task x evaluation seed, with statistics.

Writes DIR/results.csv (one row per run), DIR/report.md (verdict with CIs, IQM, probability of
improvement, paired comparisons), DIR/plots/*.png, DIR/stats.json and the resumable per-run store
DIR/runs/. ``--ablations FILE`` evaluates the named variants of an ablations YAML;
``--incremental`` runs the incremental-retraining protocol (churn and forgetting between rounds).
"""

from __future__ import annotations

import argparse
import sys
import time

from metacurr.cli.common import add_budget_args, check_out_dir, nonneg_int, positive_int

DEFAULT_CONTROLLERS = "uniform,heuristic,best-static,dwa,uncertainty,gradnorm,self-paced,bandit,random,random-policy"
DEFAULT_SEEDS = 5


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="compare controllers on held-out tasks and seeds, with statistics")
    p.add_argument("--controllers",
                   help=f"comma list: registry names, name{{key=value,...}}, policy:PATH, open-loop:NAME "
                        f"(default: {DEFAULT_CONTROLLERS}, or the variants of --ablations)")
    p.add_argument("--tasks", help="task set (default, quick, heldout-family, heldout-arch, heldout-difficulty, heldout-systematic, in-distribution, validation) "
                                   "or a comma list family:arch[:n_stages] (default: default)")
    p.add_argument("--seeds", type=positive_int, help=f"evaluation seeds per task (default {DEFAULT_SEEDS})")
    p.add_argument("--seed-offset", type=nonneg_int, default=0,
                   help="first evaluation seed = 10000 + offset (evaluation seeds are always >= 10000)")
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1 = in this process)")
    add_budget_args(p)
    p.add_argument("--ablations", help="ablations YAML (named variants; e.g. experiments/ablations.yaml)")
    p.add_argument("--incremental", action="store_true",
                   help="incremental retraining: stages arrive in rounds; report churn and forgetting")
    p.add_argument("--search-seeds", type=positive_int, default=1,
                   help="training seeds of the best-static grid search (default 1)")
    p.add_argument("--device", default="cpu", help="torch device of the inner runs (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from metacurr.evaluation.harness import collect, execute, incremental_rounds, make_plan
    from metacurr.evaluation.report import summary_table, write_report
    from metacurr.evaluation.seeds import eval_seeds
    from metacurr.evaluation.specs import load_ablations, parse_controllers
    from metacurr.evaluation.task_sets import parse_tasks

    # Validate everything before the output folder exists.
    defaults: dict = {}
    specs = []
    if args.ablations:
        specs, defaults = load_ablations(args.ablations)
    if args.controllers is not None or not specs:  # --controllers "" is an error, not the defaults
        specs = parse_controllers(DEFAULT_CONTROLLERS if args.controllers is None else args.controllers) + specs
    task_set, tasks = parse_tasks(str(defaults.get("tasks", "default")) if args.tasks is None else args.tasks)
    n_seeds = args.seeds or defaults.get("seeds", DEFAULT_SEEDS)
    seeds = eval_seeds(n_seeds, args.seed_offset)
    out = check_out_dir(args.out)
    plan = make_plan(specs, tasks, seeds, task_set=task_set, control_steps=args.control_steps,
                     inner_steps=args.inner_steps, workers=args.workers,
                     mode="incremental" if args.incremental else "standard",
                     n_search_seeds=args.search_seeds, device=args.device)

    bar = tqdm(total=len(plan.cells), desc="evaluate", disable=args.no_progress, file=sys.stderr, leave=False)

    def progress(event: str, done: int, total: int, what: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what[:40])
        bar.refresh()

    t0 = time.perf_counter()
    res = execute(plan, out, progress)
    bar.close()
    df = collect(plan, out)
    rounds = incremental_rounds(plan, out) if plan.mode == "incremental" else None
    stats = write_report(out, plan, df, res["searches"], time.perf_counter() - t0, rounds)
    print(summary_table(stats))
    n_div = int(df["diverged"].astype(bool).sum())
    print(f"{len(df)} runs ({res['ran']} run now, {res['skipped']} resumed), {n_div} diverged or failed; "
          f"{time.perf_counter() - t0:.1f} s")
    extra = ", incremental.csv" if rounds is not None and len(rounds) else ""
    print(f"wrote {out}/results.csv, report.md, stats.json{extra}, plots/")
    return 0
