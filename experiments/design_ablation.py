"""Design ablations of the learned controller: train one agent per variant, compare them all.

    python experiments/design_ablation.py --out runs/design [--config experiments/design.yaml]
        [--only NAME,...] [--seeds N] [--timesteps N] [--workers 2]

For every variant of the YAML (overrides on an agent config) an agent is trained into
OUT/agents/NAME (skipped when its policy bundle exists, resumed from a checkpoint otherwise); then
one evaluation compares every agent, its open-loop ablation (indicators frozen: does it read the
state?) and the baselines on the validation task set, into OUT/eval (report.md, stats.json), and a
summary table is printed and written to OUT/summary.md. Rerun with the same --out to resume.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def open_loop_gaps(results_csv: Path, agents: dict[str, str], metric: str = "final_val_acc") -> dict:
    """Per agent: paired difference closed-loop minus open-loop (same task and seed), bootstrap CI."""
    import pandas as pd

    from metacurr.evaluation.stats import paired_difference

    df = pd.read_csv(results_csv)
    out = {}
    for label in agents.values():
        a = df[df.controller == label].set_index(["task", "seed"])[metric]
        b = df[df.controller == f"open-loop:{label}"].set_index(["task", "seed"])[metric]
        d = (a - b).dropna()
        out[label] = paired_difference([g.to_numpy() for _, g in d.groupby(level="task")]) if len(d) else None
    return out


def summary(stats: dict, agents: dict[str, str], baselines: list[str], gaps: dict) -> str:
    """Markdown: every variant and baseline against the references, plus each agent's closed-minus-open-loop gap."""
    from metacurr.evaluation.report import _ci, comparison_table

    rows = [(b, b) for b in baselines] + list(agents.items())
    table = comparison_table(stats, rows, first="variant")
    gap_rows = [f"| {n} | {_ci(g['mean'], g['low'], g['high'], signed=True) if g else 'n/a'} |"
                for n, g in ((n, gaps.get(lbl)) for n, lbl in agents.items())]
    return (table + "\n\nClosed-loop minus open-loop (indicators frozen; > 0: the policy uses what it observes):\n\n"
            "| variant | paired diff of final val acc [95% CI] |\n|---|---|\n" + "\n".join(gap_rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "design.yaml"))
    p.add_argument("--out", default="runs/design")
    p.add_argument("--only", help="comma list of variant names (default: all)")
    p.add_argument("--seeds", type=int, help="evaluation seeds per task (default: the YAML's)")
    p.add_argument("--timesteps", type=int, help="override every variant's PPO timesteps (smoke runs)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)

    from metacurr.agents.config import load_agent_config
    from metacurr.agents.train import train_agent
    from metacurr.cli import main as cli
    from metacurr.config import load_yaml, merge
    from metacurr.errors import ConfigError

    try:
        spec = load_yaml(args.config)
        variants = spec["variants"]
        names = [v["name"] for v in variants]
        if args.only:
            want = args.only.split(",")
            bad = [w for w in want if w not in names]
            if bad:
                raise ConfigError(f"unknown variant {bad[0]!r}; valid choices: {', '.join(names)}")
            variants = [v for v in variants if v["name"] in want]
        base = str((ROOT / spec["base"]) if not Path(spec["base"]).is_absolute() else spec["base"])
        cfgs = {}
        for v in variants:
            over = merge(spec.get("common", {}), v.get("overrides", {}))
            if args.timesteps:
                over = merge(over, {"train": {"total_timesteps": args.timesteps}})
            cfgs[v["name"]] = load_agent_config(base, merge(over, {"name": v["name"]}))
    except ConfigError as e:
        print(f"design_ablation: error: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError) as e:
        print(f"design_ablation: error: malformed {args.config}: missing or bad key {e}", file=sys.stderr)
        return 2

    out = Path(args.out)
    agents: dict[str, str] = {}
    cost: dict[str, float] = {}
    for name, cfg in cfgs.items():
        run = out / "agents" / name
        bundle = run / "policy"
        if not (bundle / "manifest.json").is_file():
            t0 = time.perf_counter()
            resume = (run / "checkpoints" / "latest.json").is_file()
            print(f"[design] training {name} ({cfg.train.total_timesteps} steps)", flush=True)
            res = train_agent(cfg, run, resume=resume, progress=True)
            cost[name] = time.perf_counter() - t0
            if res.get("status") != "finished":
                print(f"[design] {name}: training {res.get('status')}; rerun to resume", file=sys.stderr)
                return 1
        agents[name] = f"policy:{bundle}"
    ev = spec.get("eval", {})
    baselines = str(ev.get("baselines", "uniform,best-static,heuristic")).split(",")
    controllers = baselines + list(agents.values()) + [f"open-loop:{a}" for a in agents.values()]
    rc = cli(["evaluate", "--controllers", ",".join(controllers), "--tasks", str(ev.get("tasks", "validation")),
              "--seeds", str(args.seeds or ev.get("seeds", 5)), "--workers", str(args.workers),
              "--control-steps", str(ev.get("control_steps", 20)), "--inner-steps", str(ev.get("inner_steps", 10)),
              "--out", str(out / "eval")])
    if rc != 0:
        return rc
    stats = json.loads((out / "eval" / "stats.json").read_text())
    table = summary(stats, agents, baselines, open_loop_gaps(out / "eval" / "results.csv", agents))
    descr = {v["name"]: v.get("description", "") for v in variants}
    text = (f"# Design ablations ({args.config}), task set `{ev.get('tasks', 'validation')}`\n\n"
            f"Metric: final val accuracy; paired differences = mean [95% CI] over (task, seed) pairs; "
            f"closed - open-loop > 0 means the policy uses what it observes.\n\n{table}\n\n"
            + "\n".join(f"- `{n}`: {d}" for n, d in descr.items()) + "\n")
    if cost:
        text += "\nTraining wall time this run: " + ", ".join(f"{n} {s:.0f} s" for n, s in cost.items()) + "\n"
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
