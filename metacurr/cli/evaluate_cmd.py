"""``metacurr evaluate``: every controller on every held-out task x evaluation seed, with statistics.

Writes DIR/results.csv (one row per run), DIR/report.md (verdict with CIs, IQM, probability of
improvement, paired comparisons), DIR/plots/*.png, DIR/stats.json and the resumable per-run store
DIR/runs/. ``--ablations FILE`` evaluates the named variants of an ablations YAML;
``--incremental`` runs the incremental-retraining protocol (churn and forgetting between rounds).
``--backend ray [--address ADDR]`` runs each cell as a Ray task, on a local instance or a cluster.
"""

from __future__ import annotations

import argparse
import sys

from metacurr.cli.catalog import constant, dict_keys
from metacurr.cli.common import add_budget_args, check_out_dir, nonneg_int, positive_int
from metacurr.cli.tracking_args import add_tracking_args, parse_tags, sync_hint
from metacurr.errors import ConfigError
from metacurr.seeds import DEFAULT_EVAL_SEEDS as DEFAULT_SEEDS


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="compare controllers on held-out tasks and seeds, with statistics")
    p.add_argument("--controllers",
                   help=f"comma list: registry names, name{{key=value,...}}, policy:PATH, open-loop:NAME "
                        f"(default: {constant('metacurr.evaluation.specs', 'DEFAULT_CONTROLLERS')}, or the variants of --ablations)")
    p.add_argument("--tasks", help=f"task set ({', '.join(dict_keys('metacurr.evaluation.task_sets', 'TASK_SETS'))}) "
                                   "or a comma list family:arch[:n_stages] (default: default)")
    p.add_argument("--seeds", type=positive_int, help=f"evaluation seeds per task (default {DEFAULT_SEEDS})")
    p.add_argument("--seed-offset", type=nonneg_int, default=0,
                   help="first evaluation seed = 10000 + offset (evaluation seeds are always >= 10000)")
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="process-pool worker processes (default 1 = in this process; --backend pool only)")
    p.add_argument("--backend", choices=("pool", "ray"), default="pool",
                   help="where the cells run: pool (this machine, --workers processes) or ray (one Ray task per "
                        "cell; needs pip install \"metacurr[ray]\"; default pool)")
    p.add_argument("--address", help="--backend ray: a running Ray cluster to join, e.g. HEAD_IP:6379 "
                                     "(default: start a local Ray instance sized to this machine)")
    add_budget_args(p)
    p.add_argument("--ablations", help="ablations YAML (named variants; e.g. experiments/ablations.yaml)")
    p.add_argument("--incremental", action="store_true",
                   help="incremental retraining: stages arrive in rounds; report churn and forgetting")
    p.add_argument("--search-seeds", type=positive_int, default=1,
                   help="training seeds of the best-static grid search (default 1)")
    p.add_argument("--device", default="cpu", help="torch device of the inner runs (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_tracking_args(p, name=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the pipeline pulls in pandas, scipy and matplotlib, which
    # `metacurr --help` and the other subcommands should not pay for.
    from tqdm import tqdm

    from metacurr.evaluation.pipeline import evaluate
    from metacurr.evaluation.report import summary_table

    if args.backend == "ray" and args.workers != 1:
        raise ConfigError("--workers is the process pool's; with --backend ray every CPU of the Ray instance runs cells")
    if args.address and args.backend != "ray":
        raise ConfigError("--address applies to --backend ray")
    out = check_out_dir(args.out)
    bars: list = []  # the bar appears with the first finished job, so a bad input stays one line

    def progress(event: str, done: int, total: int, what: str) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="evaluate", disable=args.no_progress, file=sys.stderr, leave=False))
        bar = bars[0]
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what[:40])
        bar.refresh()

    try:
        res = evaluate(args.controllers, args.tasks, out=out, seeds=args.seeds, seed_offset=args.seed_offset,
                       workers=args.workers, control_steps=args.control_steps, inner_steps=args.inner_steps,
                       ablations=args.ablations, incremental=args.incremental, search_seeds=args.search_seeds,
                       device=args.device, progress=progress, backend=args.backend, address=args.address,
                       wandb=args.wandb, name=args.name, group=args.group, tags=parse_tags(args.tags))
    finally:
        for bar in bars:
            bar.close()
    print(summary_table(res.stats))
    print(f"{len(res.results)} runs ({res.ran} run now, {res.skipped} resumed), {res.n_diverged} diverged or failed; "
          f"{res.wall_s:.1f} s")
    extra = ", incremental.csv" if "incremental" in res.paths else ""
    print(f"wrote {out}/results.csv, report.md, stats.json{extra}, plots/")
    hint = sync_hint(res.wandb_info)
    if hint:
        print(hint)
    return 0
