"""The main job: train a PPO controller agent, evaluate it on held-out task sets, write the headline table.

1. Train a small PPO controller agent on the training task distribution (task seeds < 10000), or take
   a given policy bundle.
2. Evaluate it on held-out task sets (evaluation seeds >= 10000) against the paper's heuristic,
   uniform, the best static weighting (grid-searched on training seeds) and literature baselines, plus
   the open-loop ablation of the learned policy (its indicators frozen: does it read the state?).
3. The headline table (per set: IQM [CI], paired differences and P(improvement) against uniform,
   heuristic, best-static and the best literature baseline) goes to OUT/headline.md, each set's full
   report to OUT/eval/SET/report.md.

Everything is resumable: rerun with the same ``out`` to continue.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from metacurr.agents.job import train_agent
from metacurr.controllers import make_controller
from metacurr.evaluation.pipeline import EvaluationResult, evaluate
from metacurr.evaluation.report import comparison_table
from metacurr.evaluation.task_sets import HELDOUT_SETS, get_task_set
from metacurr.io import atomic_write_text

# uniform, the paper's heuristic, the best static mix (grid-searched per task on training seeds) and
# literature baselines (multi-task loss weighting, curriculum pacing, bandit curriculum); the report
# compares with the best literature baseline by IQM as a fourth reference.
BASELINES = "uniform,heuristic,best-static,dwa,uncertainty,linear-pacing,bandit"


@dataclass
class MainJobResult:
    """What `run_main_job` produced."""

    text: str
    """The headline markdown (also ``out/headline.md``)."""
    policy: str
    """The evaluated policy reference (``policy:PATH``)."""
    status: str = "finished"
    """``finished``, or ``interrupted`` when agent training stopped early (nothing evaluated yet)."""
    agent_s: float = 0.0
    total_s: float = 0.0
    evaluations: dict[str, EvaluationResult] = field(default_factory=dict)
    """Per task set, the evaluation (its report in ``out/eval/SET``)."""


def headline_section(stats: dict, policy: str, task_set: str, n_seeds: int) -> str:
    """One task set's section of the headline: the learned policy, its open-loop ablation and the
    paper's heuristic against the references (`metacurr.evaluation.report.comparison_table`)."""
    rows = [("learned policy", policy), ("learned policy, open-loop", f"open-loop:{policy}"),
            ("heuristic (paper)", "heuristic")]
    kind = "Held-out set" if task_set in HELDOUT_SETS else "Task set (NOT held out)"
    return (f"### {kind} `{task_set}` ({', '.join(f'`{t}`' for t in stats['tasks'])}; "
            f"{n_seeds} seeds)\n\n{comparison_table(stats, rows)}\n")


def run_main_job(
    out: str | Path,
    *,
    agent_config: str | Path,
    tasks: str = "default",
    seeds: int = 5,
    seed_offset: int = 0,
    workers: int = 2,
    timesteps: int | None = None,
    policy: str | None = None,
    control_steps: int = 20,
    inner_steps: int = 10,
    agent_progress: bool = False,
) -> MainJobResult:
    """Train (or take) a policy, evaluate it on each task set of ``tasks``, write ``out/headline.md``.

    Args:
        out: the job folder (``agent/``, ``eval/SET/``, ``headline.md``); rerun with it to resume.
        agent_config: the agent YAML (e.g. ``experiments/main_agent.yaml``).
        tasks: comma list of task sets (held-out sets, or validation / in-distribution, which the
            headline labels as not held out).
        seeds, seed_offset: evaluation seeds per task; the first is 10000 + offset.
        workers: evaluation worker processes.
        timesteps: override the agent's PPO timesteps.
        policy: evaluate this bundle (a folder, or ``default``) instead of training an agent.
        control_steps, inner_steps: the evaluation budget.
        agent_progress: show the agent-training progress bar on stderr.

    Raises:
        ConfigError: a bad task set or policy, before any training.
    """
    sets = tasks.split(",")
    for task_set in sets:  # a typo fails now, not after minutes of agent training
        get_task_set(task_set)
    out = Path(out)
    t0 = time.perf_counter()
    agent = out / "agent"
    if policy:
        pol = f"policy:{policy}"
        make_controller(pol)  # a bad bundle is one error now, not a failure inside every evaluation run
    else:
        pol = f"policy:{agent / 'policy'}"
        if not (agent / "policy" / "manifest.json").is_file():
            overrides: dict = {"train": {}}
            if timesteps:
                overrides["train"]["total_timesteps"] = timesteps
            res = train_agent(agent_config, out=agent, overrides=overrides,
                              resume=(agent / "checkpoints" / "latest.json").is_file(),
                              progress=agent_progress, wandb="disabled")
            if res.status != "finished":
                return MainJobResult("", pol, res.status, time.perf_counter() - t0, time.perf_counter() - t0)
    t_agent = time.perf_counter() - t0
    controllers = f"{BASELINES},{pol},open-loop:{pol}"
    sections = []
    evaluations = {}
    for task_set in sets:
        ev = evaluate(controllers, task_set, out=out / "eval" / task_set, seeds=seeds, seed_offset=seed_offset,
                      workers=workers, control_steps=control_steps, inner_steps=inner_steps)
        evaluations[task_set] = ev
        # the statistics as stored: the headline is computed from the record on disk
        sections.append(headline_section(json.loads(ev.paths["stats"].read_text()), pol, task_set, seeds))
    t_all = time.perf_counter() - t0
    text = ("# Main job: learned policy vs the paper's heuristic and the baselines\n\n"
            + (f"Policy: `{pol}` (given).\n" if policy else
               f"Agent: `{agent_config}` ({'trained now' if t_agent > 1 else 'reused'}, {t_agent:.0f} s). ")
            + f"Budget {control_steps} control steps x {inner_steps} inner steps; total {t_all:.0f} s.\n"
            "Metric: final val accuracy; diff = mean paired difference (same task and seed) [95% stratified "
            "bootstrap CI]; P(X > ref) [95% CI]. A CI that includes 0 (or 0.5) is no evidence either way.\n\n"
            + "\n".join(sections))
    atomic_write_text(out / "headline.md", text)
    return MainJobResult(text, pol, "finished", t_agent, t_all, evaluations)
