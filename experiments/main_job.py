"""The README's main job: the mission end to end, in under 10 minutes on 2 CPU cores.

    python experiments/main_job.py --out runs/main [--agent-config experiments/main_agent.yaml]
        [--tasks default[,heldout-family,...]] [--seeds 5]

1. Train a small PPO controller agent on the training task distribution (task seeds < 10000).
2. Evaluate it on held-out task sets (default: ``default``: a held-out family, a held-out
   architecture, held-out difficulty, with harmless and harmful label noise; evaluation seeds
   >= 10000) against the paper's heuristic, uniform, the best static weighting (grid-searched on
   training seeds) and literature baselines, plus the open-loop ablation of the learned policy (its
   indicators frozen: does it read the state?).
3. Print the headline table (per set: IQM [CI], paired differences and P(improvement) against
   uniform, heuristic, best-static and the best literature baseline) into OUT/headline.md, with
   each set's full report in OUT/eval/SET/report.md (plots included).

Everything is resumable: rerun with the same --out to continue. The longer recipe behind the README's
headline is this script with ``--agent-config experiments/default_policy.yaml`` and every held-out set
(see README, "Results").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# uniform, the paper's heuristic, the best static mix (grid-searched per task on training seeds) and
# literature baselines (multi-task loss weighting, curriculum pacing, bandit curriculum); the report
# compares with the best literature baseline by IQM as a fourth reference.
BASELINES = "uniform,heuristic,best-static,dwa,uncertainty,linear-pacing,bandit"


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

    from metacurr.cli import main as cli
    from metacurr.errors import ConfigError
    from metacurr.evaluation.task_sets import HELDOUT_SETS, get_task_set

    try:  # a typo in --tasks fails now, not after minutes of agent training
        for task_set in args.tasks.split(","):
            get_task_set(task_set)
    except ConfigError as e:
        print(f"main_job: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    t0 = time.perf_counter()
    agent = out / "agent"
    if args.policy:
        pol = f"policy:{args.policy}"
        try:  # checked now: a bad bundle is a one-line error, not a failure inside every evaluation run
            from metacurr.controllers import make_controller

            make_controller(pol)
        except ConfigError as e:
            print(f"main_job: error: {e}", file=sys.stderr)
            return 2
    elif not (agent / "policy" / "manifest.json").is_file():
        cmd = ["train-agent", "--config", args.agent_config, "--out", str(agent), "--wandb", "disabled"]
        if (agent / "checkpoints" / "latest.json").is_file():
            cmd.append("--resume")
        if args.timesteps:
            cmd += ["--timesteps", str(args.timesteps)]
        rc = cli(cmd)
        if rc != 0:
            return rc
    t_agent = time.perf_counter() - t0
    if not args.policy:
        pol = f"policy:{agent / 'policy'}"
    controllers = f"{BASELINES},{pol},open-loop:{pol}"
    from metacurr.evaluation.report import comparison_table

    sections = []
    for task_set in args.tasks.split(","):
        dest = out / "eval" / task_set
        rc = cli(["evaluate", "--controllers", controllers, "--tasks", task_set, "--seeds", str(args.seeds),
                  "--seed-offset", str(args.seed_offset),
                  "--workers", str(args.workers), "--control-steps", str(args.control_steps),
                  "--inner-steps", str(args.inner_steps), "--out", str(dest)])
        if rc != 0:
            return rc
        stats = json.loads((dest / "stats.json").read_text())
        rows = [("learned policy", pol), ("learned policy, open-loop", f"open-loop:{pol}"), ("heuristic (paper)", "heuristic")]
        kind = "Held-out set" if task_set in HELDOUT_SETS else "Task set (NOT held out)"
        sections.append(f"### {kind} `{task_set}` ({', '.join(f'`{t}`' for t in stats['tasks'])}; "
                        f"{args.seeds} seeds)\n\n{comparison_table(stats, rows)}\n")
    t_all = time.perf_counter() - t0
    text = ("# Main job: learned policy vs the paper's heuristic and the baselines\n\n"
            + (f"Policy: `{pol}` (given).\n" if args.policy else
               f"Agent: `{args.agent_config}` ({'trained now' if t_agent > 1 else 'reused'}, {t_agent:.0f} s). ")
            + f"Budget {args.control_steps} control steps x {args.inner_steps} inner steps; total {t_all:.0f} s.\n"
            "Metric: final val accuracy; diff = mean paired difference (same task and seed) [95% stratified "
            "bootstrap CI]; P(X > ref) [95% CI]. A CI that includes 0 (or 0.5) is no evidence either way.\n\n"
            + "\n".join(sections))
    (out / "headline.md").write_text(text)
    print("\n" + text)
    print(f"main job: agent {t_agent:.0f} s, total {t_all:.0f} s; reports: {out / 'eval'}/*/report.md, {out / 'headline.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
