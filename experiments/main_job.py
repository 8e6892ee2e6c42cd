"""The README's main job: the mission end to end, in under 10 minutes on 2 CPU cores.

    python experiments/main_job.py --out runs/main [--agent-config experiments/main_agent.yaml]
        [--tasks default[,heldout-family,...]] [--seeds 5]

Trains a small PPO controller agent on the training task distribution (task seeds < 10000), evaluates
it on held-out task sets (evaluation seeds >= 10000) against the paper's heuristic, uniform, the best
static weighting and literature baselines plus its own open-loop ablation, and prints the headline
table (also OUT/headline.md; each set's full report in OUT/eval/SET/report.md). The job itself is
`metacurr.studies.main_job.run_main_job`.

Everything is resumable: rerun with the same --out to continue. The longer recipe behind the README's
headline is this script with ``--agent-config experiments/default_policy.yaml`` and every held-out set
(see README, "Results").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/main")
    p.add_argument("--agent-config", default=str(ROOT / "experiments" / "main_agent.yaml"))
    p.add_argument("--tasks", default="default", help="comma list of task sets to evaluate on (held-out sets, "
                   "or validation / in-distribution, which the report labels as not held out)")
    p.add_argument("--seed-offset", type=int, default=0, help="first evaluation seed = 10000 + offset")
    p.add_argument("--seeds", type=int, default=5, help="evaluation seeds per task")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timesteps", type=int, help="override the agent's PPO timesteps")
    p.add_argument("--policy", help="evaluate this policy bundle (a folder, or 'default' for the shipped one) "
                                    "instead of training an agent")
    p.add_argument("--control-steps", type=int, default=20)
    p.add_argument("--inner-steps", type=int, default=10)
    args = p.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")

    from metacurr.errors import ConfigError
    from metacurr.evaluation.report import summary_table
    from metacurr.studies.main_job import run_main_job

    try:
        res = run_main_job(args.out, agent_config=args.agent_config, tasks=args.tasks, seeds=args.seeds,
                           seed_offset=args.seed_offset, workers=args.workers, timesteps=args.timesteps,
                           policy=args.policy, control_steps=args.control_steps, inner_steps=args.inner_steps,
                           agent_progress=True)
    except ConfigError as e:
        print(f"main_job: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if res.status != "finished":
        print(f"main_job: agent training {res.status}; checkpoint saved in {out / 'agent'}/checkpoints; "
              "rerun to resume", file=sys.stderr)
        return 130
    for task_set, ev in res.evaluations.items():
        print(f"\n## {task_set}\n{summary_table(ev.stats)}")
        print(f"{len(ev.results)} runs ({ev.ran} run now, {ev.skipped} resumed), {ev.n_diverged} diverged or failed")
    print("\n" + res.text)
    print(f"main job: agent {res.agent_s:.0f} s, total {res.total_s:.0f} s; reports: {out / 'eval'}/*/report.md, "
          f"{out / 'headline.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
