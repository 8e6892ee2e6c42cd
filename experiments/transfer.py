"""Does the learned policy transfer? Train one agent per PPO seed, evaluate each as trained and with its
fallback toward uniform, next to the shipped policy and the baselines, paired with uniform.

    python experiments/transfer.py --out runs/transfer [--config experiments/transfer.yaml]
        [--tasks validation[,heldout-difficulty,...]] [--seeds 5] [--seed-offset 0] [--workers 2]
        [--timesteps N] [--train-only] [--no-compare]

Agents train into OUT/agents/seedS (skipped when the bundle exists, resumed from a checkpoint
otherwise); the fallback variant of each (the same weights, ``fallback`` of the YAML) is written to
OUT/agents/seedS/policy-fallback. Each task set is evaluated into OUT/eval/SET (report.md,
results.csv, stats.json); OUT/summary-SETS.md tabulates, per set and controller, the paired
difference of final val accuracy against uniform [95% CI] per agent seed and pooled over the agent
seeds, with the spread of the per-seed means. Rerun with the same --out to resume. Choose designs on
``validation`` only; held-out sets are for the design once fixed. The study itself is
`metacurr.studies.transfer.run_transfer`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "transfer.yaml"))
    p.add_argument("--out", default="runs/transfer")
    p.add_argument("--tasks", default="validation", help="comma list of task sets")
    p.add_argument("--seeds", type=int, default=5, help="evaluation seeds per task")
    p.add_argument("--seed-offset", type=int, default=0, help="first evaluation seed = 10000 + offset")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timesteps", type=int, help="override the agents' PPO timesteps (smoke runs)")
    p.add_argument("--baselines", help="comma list of baseline controllers instead of the YAML's eval.baselines")
    p.add_argument("--no-compare", action="store_true", help="leave out the YAML's compare: recipes")
    p.add_argument("--train-only", action="store_true", help="train (and derive the fallback bundles), evaluate nothing")
    args = p.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")

    from metacurr.errors import ConfigError
    from metacurr.evaluation.report import summary_table
    from metacurr.studies.transfer import run_transfer

    def training(seed: int, steps: int) -> None:
        print(f"[transfer] training seed {seed} ({steps} steps)", flush=True)

    def trained(seed: int, wall_s: float, steps_per_s: float) -> None:
        print(f"[transfer] seed {seed}: {wall_s:.0f} s, {steps_per_s:.1f} env steps/s", flush=True)

    try:
        res = run_transfer(args.config, args.out, tasks=args.tasks, seeds=args.seeds, seed_offset=args.seed_offset,
                           workers=args.workers, timesteps=args.timesteps, train_only=args.train_only, compare=not args.no_compare, baselines=args.baselines, root=ROOT,
                           on_training=training, on_trained=trained)
    except ConfigError as e:
        print(f"transfer: error: {e}", file=sys.stderr)
        return 2
    if res.status != "finished":
        print(f"[transfer] seed {res.stopped_seed}: training {res.status}; rerun to resume", file=sys.stderr)
        return 1
    for task_set, ev in res.evaluations.items():
        print(f"\n## {task_set}\n{summary_table(ev.stats)}")
        print(f"{len(ev.results)} runs ({ev.ran} run now, {ev.skipped} resumed), {ev.n_diverged} diverged or failed; "
              f"wrote {Path(args.out) / 'eval' / task_set}/results.csv, report.md, stats.json, plots/")
    if res.text:
        print(res.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
