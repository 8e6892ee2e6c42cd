"""The README's main job: the mission end to end, in under 10 minutes on 2 CPU cores.

    python experiments/main_job.py --out runs/main [--agent-config experiments/main_agent.yaml] [--seeds 6]

1. Train a small PPO controller agent on the training task distribution (task seeds < 10000).
2. Evaluate it on the held-out task set ``default`` (a held-out family, a held-out architecture,
   held-out difficulty; evaluation seeds >= 10000) against the paper's heuristic, uniform, the
   best static weighting (grid-searched on training seeds) and literature baselines, plus the
   open-loop ablation of the learned policy (its indicators frozen: does it read the state?).
3. Print the comparison and write OUT/eval/report.md with plots.

Everything is resumable: rerun with the same --out to continue.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINES = "uniform,heuristic,best-static,dwa,bandit"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/main")
    p.add_argument("--agent-config", default=str(ROOT / "experiments" / "main_agent.yaml"))
    p.add_argument("--tasks", default="default", help="held-out task set to evaluate on")
    p.add_argument("--seeds", type=int, default=5, help="evaluation seeds per task")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timesteps", type=int, help="override the agent's PPO timesteps")
    p.add_argument("--control-steps", type=int, default=20)
    p.add_argument("--inner-steps", type=int, default=10)
    args = p.parse_args(argv)

    from metacurr.cli import main as cli

    out = Path(args.out)
    t0 = time.perf_counter()
    agent = out / "agent"
    if not (agent / "policy" / "manifest.json").is_file():
        cmd = ["train-agent", "--config", args.agent_config, "--out", str(agent), "--wandb", "disabled"]
        if (agent / "checkpoints" / "latest.json").is_file():
            cmd.append("--resume")
        if args.timesteps:
            cmd += ["--timesteps", str(args.timesteps)]
        rc = cli(cmd)
        if rc != 0:
            return rc
    t_agent = time.perf_counter() - t0
    pol = f"policy:{agent / 'policy'}"
    controllers = f"{BASELINES},{pol},open-loop:{pol}"
    rc = cli(["evaluate", "--controllers", controllers, "--tasks", args.tasks, "--seeds", str(args.seeds),
              "--workers", str(args.workers), "--control-steps", str(args.control_steps),
              "--inner-steps", str(args.inner_steps), "--out", str(out / "eval")])
    t_all = time.perf_counter() - t0
    print(f"\nmain job: agent {t_agent:.0f} s, total {t_all:.0f} s; report: {out / 'eval' / 'report.md'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
