"""Design ablations of the learned controller: train one agent per variant, compare them all.

For every variant of a design YAML (overrides on an agent config; e.g. ``experiments/design.yaml``) an
agent is trained into OUT/agents/NAME (skipped when its policy bundle exists, resumed from a checkpoint
otherwise); then one evaluation compares every agent, its open-loop ablation (indicators frozen: does it
read the state?) and the baselines on the YAML's task set, into OUT/eval, and the summary table goes to
OUT/summary.md. Rerun with the same ``out`` to resume.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from metacurr.agents.config import AgentConfig, load_agent_config
from metacurr.agents.train import train_unless_bundled
from metacurr.config import load_yaml, merge
from metacurr.errors import ConfigError
from metacurr.evaluation.pipeline import EvaluationResult, evaluate
from metacurr.evaluation.report import comparison_table, format_ci
from metacurr.evaluation.stats import paired_difference
from metacurr.io import atomic_write_text


@dataclass
class DesignAblationResult:
    """What `run_design_ablation` produced."""

    text: str
    """The summary markdown (also ``out/summary.md``)."""
    status: str = "finished"
    """``finished``, or the agent-training status of the variant that stopped early (nothing evaluated)."""
    agents: dict[str, str] = field(default_factory=dict)
    """Variant name -> its ``policy:PATH``."""
    training_s: dict[str, float] = field(default_factory=dict)
    """Variant name -> agent-training wall time in this call (variants trained now)."""
    evaluation: EvaluationResult | None = None


def load_variants(config: str | Path, only: list[str] | None = None, timesteps: int | None = None,
                  root: Path | None = None) -> tuple[dict, dict[str, AgentConfig]]:
    """The design YAML and one checked `AgentConfig` per (selected) variant.

    Args:
        config: the design YAML (``base:``, ``common:``, ``variants:``, ``eval:``).
        only: variant names to keep (default all).
        timesteps: override every variant's PPO timesteps.
        root: folder a relative ``base:`` is resolved against (default the current folder).

    Raises:
        ConfigError: an unknown variant, a malformed YAML or an invalid agent config.
    """
    try:
        spec = load_yaml(str(config))
        variants = spec["variants"]
        names = [v["name"] for v in variants]
        if only:
            bad = [w for w in only if w not in names]
            if bad:
                raise ConfigError(f"unknown variant {bad[0]!r}; valid choices: {', '.join(names)}")
            variants = [v for v in variants if v["name"] in only]
        base = Path(spec["base"])
        if not base.is_absolute() and root is not None:
            base = root / base
        cfgs = {}
        for v in variants:
            over = merge(spec.get("common", {}), v.get("overrides", {}))
            if timesteps:
                over = merge(over, {"train": {"total_timesteps": timesteps}})
            cfgs[v["name"]] = load_agent_config(str(base), merge(over, {"name": v["name"]}))
    except (KeyError, TypeError) as e:
        raise ConfigError(f"malformed {config}: missing or bad key {e}") from None
    spec["variants"] = variants
    return spec, cfgs


def open_loop_gaps(results: pd.DataFrame, agents: dict[str, str], metric: str = "final_val_acc") -> dict:
    """Per agent: paired difference closed-loop minus open-loop (same task and seed), bootstrap CI."""
    out = {}
    for label in agents.values():
        a = results[results.controller == label].set_index(["task", "seed"])[metric]
        b = results[results.controller == f"open-loop:{label}"].set_index(["task", "seed"])[metric]
        d = (a - b).dropna()
        out[label] = paired_difference([g.to_numpy() for _, g in d.groupby(level="task")]) if len(d) else None
    return out


def summary(stats: dict, agents: dict[str, str], baselines: list[str], gaps: dict) -> str:
    """Markdown: every variant and baseline against the references, plus each agent's closed-minus-open-loop gap."""
    rows = [(b, b) for b in baselines] + list(agents.items())
    table = comparison_table(stats, rows, first="variant")
    gap_rows = [f"| {n} | {format_ci(g['mean'], g['low'], g['high'], signed=True) if g else 'n/a'} |"
                for n, g in ((n, gaps.get(lbl)) for n, lbl in agents.items())]
    return (table + "\n\nClosed-loop minus open-loop (indicators frozen; > 0: the policy uses what it observes):\n\n"
            "| variant | paired diff of final val acc [95% CI] |\n|---|---|\n" + "\n".join(gap_rows))


def run_design_ablation(
    config: str | Path,
    out: str | Path,
    *,
    only: list[str] | None = None,
    seeds: int | None = None,
    timesteps: int | None = None,
    workers: int = 2,
    root: Path | None = None,
    on_training: Callable[[str, int], None] | None = None,
    agent_progress: bool = False,
) -> DesignAblationResult:
    """Train every variant's agent (resuming), evaluate them all in one comparison, write ``out/summary.md``.

    Args:
        config: the design YAML.
        out: the study folder (``agents/NAME``, ``eval``, ``summary.md``).
        only: variant names to run (default all).
        seeds: evaluation seeds per task (default the YAML's ``eval.seeds``, else 5).
        timesteps: override every variant's PPO timesteps (smoke runs).
        workers: evaluation worker processes.
        root: folder a relative ``base:`` of the YAML is resolved against.
        on_training: called as ``on_training(name, timesteps)`` before a variant's agent trains.
        agent_progress: show each agent's PPO progress bar on stderr.

    Raises:
        ConfigError: a bad YAML or variant name, before any training.
    """
    spec, cfgs = load_variants(config, only, timesteps, root)
    out = Path(out)
    agents: dict[str, str] = {}
    cost: dict[str, float] = {}
    for name, cfg in cfgs.items():
        run = out / "agents" / name
        bundle = run / "policy"
        if not (bundle / "manifest.json").is_file():
            if on_training is not None:
                on_training(name, cfg.train.total_timesteps)
            res, cost[name] = train_unless_bundled(cfg, run, progress=agent_progress)
            if res.get("status") != "finished":
                return DesignAblationResult("", str(res.get("status")), agents, cost)
        agents[name] = f"policy:{bundle}"
    ev = spec.get("eval", {})
    baselines = str(ev.get("baselines", "uniform,best-static,heuristic")).split(",")
    controllers = baselines + list(agents.values()) + [f"open-loop:{a}" for a in agents.values()]
    result = evaluate(controllers, str(ev.get("tasks", "validation")), out=out / "eval",
                      seeds=seeds or ev.get("seeds", 5), workers=workers, control_steps=ev.get("control_steps", 20),
                      inner_steps=ev.get("inner_steps", 10))
    # the statistics as stored (stats.json, results.csv): the summary is computed from the record on disk
    stats = json.loads(result.paths["stats"].read_text())
    table = summary(stats, agents, baselines, open_loop_gaps(pd.read_csv(result.paths["results"]), agents))
    descr = {v["name"]: v.get("description", "") for v in spec["variants"]}
    text = (f"# Design ablations ({config}), task set `{ev.get('tasks', 'validation')}`\n\n"
            f"Metric: final val accuracy; paired differences = mean [95% CI] over (task, seed) pairs; "
            f"closed - open-loop > 0 means the policy uses what it observes.\n\n{table}\n\n"
            + "\n".join(f"- `{n}`: {d}" for n, d in descr.items()) + "\n")
    if cost:
        text += "\nTraining wall time this run: " + ", ".join(f"{n} {s:.0f} s" for n, s in cost.items()) + "\n"
    atomic_write_text(out / "summary.md", text)
    return DesignAblationResult(text, "finished", agents, cost, result)
