"""Design ablations of the learned controller: train one agent per variant, compare them all.

    python experiments/design_ablation.py --out runs/design [--config experiments/design.yaml]
        [--only NAME,...] [--seeds N] [--timesteps N] [--workers 2]

For every variant of the YAML (overrides on an agent config) an agent is trained into
OUT/agents/NAME (skipped when its policy bundle exists, resumed from a checkpoint otherwise); then
one evaluation compares every agent, its open-loop ablation (indicators frozen: does it read the
state?) and the baselines on the validation task set, into OUT/eval (report.md, stats.json), and a
summary table is printed and written to OUT/summary.md. Rerun with the same --out to resume. The study
itself is `metacurr.studies.design_ablation.run_design_ablation`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "design.yaml"))
    p.add_argument("--out", default="runs/design")
    p.add_argument("--only", help="comma list of variant names (default: all)")
    p.add_argument("--seeds", type=int, help="evaluation seeds per task (default: the YAML's)")
    p.add_argument("--timesteps", type=int, help="override every variant's PPO timesteps (smoke runs)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")

    from metacurr.errors import ConfigError
    from metacurr.studies.design_ablation import run_design_ablation

    def training(name: str, steps: int) -> None:
        print(f"[design] training {name} ({steps} steps)", flush=True)

    try:
        res = run_design_ablation(args.config, args.out, only=args.only.split(",") if args.only else None,
                                  seeds=args.seeds, timesteps=args.timesteps, workers=args.workers, root=ROOT,
                                  on_training=training, agent_progress=True)
    except ConfigError as e:
        print(f"design_ablation: error: {e}", file=sys.stderr)
        return 2
    if res.status != "finished":
        print(f"[design] agent training {res.status}; rerun to resume", file=sys.stderr)
        return 1
    print(res.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
