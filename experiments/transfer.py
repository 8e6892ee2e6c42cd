"""Does the learned policy transfer? Train one agent per PPO seed, evaluate each as trained and with its
fallback toward uniform, next to the shipped policy and the baselines, paired with uniform.

    python experiments/transfer.py --out runs/transfer [--config experiments/transfer.yaml]
        [--tasks validation[,heldout-difficulty,...]] [--seeds 5] [--seed-offset 0] [--workers 2]
        [--timesteps N] [--train-only]

Agents train into OUT/agents/seedS (skipped when the bundle exists, resumed from a checkpoint
otherwise); the fallback variant of each (the same weights, ``fallback`` of the YAML) is written to
OUT/agents/seedS/policy-fallback. Each task set is evaluated into OUT/eval/SET (``metacurr evaluate``:
report.md, results.csv, stats.json); OUT/summary-SETS.md tabulates, per set and controller, the paired
difference of final val accuracy against uniform [95% CI] per agent seed and pooled over the agent
seeds, with the spread of the per-seed means. Rerun with the same --out to resume. Choose designs on
``validation`` only; held-out sets are for the design once fixed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def paired_rows(results_csv: Path, labels: dict[str, list[str]], reference: str = "uniform",
                metric: str = "final_val_acc") -> list[dict]:
    """Per label group (one controller per agent seed): paired differences with ``reference``.

    Returns rows {name, per_seed: [(mean, low, high)], pooled: (mean, low, high), spread: (min, max), n}.
    The pooled CI stratifies by task over every (agent seed, eval seed) pair.
    """
    import numpy as np
    import pandas as pd

    from metacurr.evaluation.stats import paired_difference

    df = pd.read_csv(results_csv)
    ref = df[df.controller == reference].set_index(["task", "seed"])[metric]
    rows = []
    for name, ctrls in labels.items():
        per_seed, pooled = [], {}
        for c in ctrls:
            d = (df[df.controller == c].set_index(["task", "seed"])[metric] - ref).dropna()
            if not len(d):
                continue
            r = paired_difference([g.to_numpy() for _, g in d.groupby(level="task")])
            per_seed.append((r["mean"], r["low"], r["high"]))
            for task, g in d.groupby(level="task"):
                pooled.setdefault(task, []).extend(g.to_numpy().tolist())
        if not per_seed:
            continue
        p = paired_difference([np.asarray(v) for v in pooled.values()])
        means = [m for m, _, _ in per_seed]
        rows.append({"name": name, "per_seed": per_seed, "pooled": (p["mean"], p["low"], p["high"]),
                     "spread": (min(means), max(means)), "n": sum(len(v) for v in pooled.values())})
    return rows


def fallback_changes(results_csv: Path, pairs: list[tuple[str, str]]) -> tuple[int, int]:
    """(runs whose final weights the fallback changed, runs compared): same weights, fallback off vs on."""
    import numpy as np
    import pandas as pd

    df = pd.read_csv(results_csv)
    wcols = [c for c in df.columns if c.startswith("final_w")]
    changed = total = 0
    for plain, fb in pairs:
        a = df[df.controller == plain].set_index(["task", "seed"])[wcols]
        b = df[df.controller == fb].set_index(["task", "seed"])[wcols].reindex(a.index)
        diff = np.abs(np.nan_to_num(a.to_numpy()) - np.nan_to_num(b.to_numpy())).max(axis=1) > 1e-9
        changed += int(diff.sum())
        total += len(diff)
    return changed, total


def per_task(results_csv: Path, labels: dict[str, list[str]], metric: str = "final_val_acc") -> str:
    """Markdown: mean ``metric`` per task (rows) and controller group (columns; agent seeds averaged)."""
    import pandas as pd

    df = pd.read_csv(results_csv)
    groups = {"uniform": ["uniform"], **labels}
    tasks = sorted(df.task.unique())
    out = ["| task | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for t in tasks:
        cells = [f"{df[(df.task == t) & df.controller.isin(c)][metric].mean():.3f}" for c in groups.values()]
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def table(rows: list[dict]) -> str:
    def ci(t):
        return f"{t[0]:+.3f} [{t[1]:+.3f}, {t[2]:+.3f}]"

    out = ["| controller | − uniform, pooled over agent seeds [95% CI] | per agent seed | spread of seed means | pairs |",
           "|---|---|---|---|---|"]
    for r in rows:
        seeds = "; ".join(ci(t) for t in r["per_seed"])
        out.append(f"| {r['name']} | {ci(r['pooled'])} | {seeds} | {r['spread'][0]:+.3f} .. {r['spread'][1]:+.3f} | {r['n']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "transfer.yaml"))
    p.add_argument("--out", default="runs/transfer")
    p.add_argument("--tasks", default="validation", help="comma list of task sets")
    p.add_argument("--seeds", type=int, default=5, help="evaluation seeds per task")
    p.add_argument("--seed-offset", type=int, default=0, help="first evaluation seed = 10000 + offset")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timesteps", type=int, help="override the agents' PPO timesteps (smoke runs)")
    p.add_argument("--train-only", action="store_true", help="train (and derive the fallback bundles), evaluate nothing")
    args = p.parse_args(argv)

    from metacurr.agents.bundle import derive_bundle
    from metacurr.agents.config import load_agent_config
    from metacurr.agents.train import train_agent
    from metacurr.cli import main as cli
    from metacurr.config import load_yaml, merge
    from metacurr.errors import ConfigError
    from metacurr.evaluation.task_sets import get_task_set

    try:
        spec = load_yaml(args.config)
        base = Path(spec["base"])
        base = base if base.is_absolute() else ROOT / base
        agent = dict(spec.get("agent") or {})
        if args.timesteps:
            agent = merge(agent, {"train": {"total_timesteps": args.timesteps}})
        cfgs = {s: load_agent_config(str(base), merge(agent, {"name": f"{agent.get('name', 'agent')}-s{s}", "train": {"seed": s}}))
                for s in spec["seeds"]}
        fallback = dict(spec.get("fallback") or {})
        if fallback:
            from metacurr.agents.equivariant_policy import check_equivariant_kwargs

            check_equivariant_kwargs(fallback)
        sets = [t for t in args.tasks.split(",") if t]
        for t in sets:
            get_task_set(t)
    except ConfigError as e:
        print(f"transfer: error: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError) as e:
        print(f"transfer: error: malformed {args.config}: missing or bad key {e}", file=sys.stderr)
        return 2

    out = Path(args.out)
    agents: dict[str, list[str]] = {"learned": [], "learned + fallback": []}
    for s, cfg in cfgs.items():
        run = out / "agents" / f"seed{s}"
        if not (run / "policy" / "manifest.json").is_file():
            t0 = time.perf_counter()
            print(f"[transfer] training seed {s} ({cfg.train.total_timesteps} steps)", flush=True)
            res = train_agent(cfg, run, resume=(run / "checkpoints" / "latest.json").is_file(), progress=False)
            if res.get("status") != "finished":
                print(f"[transfer] seed {s}: training {res.get('status')}; rerun to resume", file=sys.stderr)
                return 1
            print(f"[transfer] seed {s}: {time.perf_counter() - t0:.0f} s, {res['env_steps_per_s']:.1f} env steps/s", flush=True)
        agents["learned"].append(f"policy:{run / 'policy'}")
        if fallback:
            derive_bundle(run / "policy", run / "policy-fallback", fallback, note="transfer.yaml fallback")
            agents["learned + fallback"].append(f"policy:{run / 'policy-fallback'}")
    if args.train_only:
        return 0
    ev = spec.get("eval") or {}
    baselines = [b for b in str(ev.get("baselines", "uniform")).split(",") if b]
    if "uniform" not in baselines:
        baselines.insert(0, "uniform")
    reference = spec.get("reference")
    controllers = baselines + ([reference] if reference else []) + agents["learned"] + agents["learned + fallback"]
    text = [f"# Transfer ({args.config})\n",
            "Final val accuracy, paired difference with uniform on the same (task, evaluation seed); "
            f"{args.seeds} evaluation seeds per task from {10000 + args.seed_offset}; agents: PPO seeds {list(cfgs)}.\n"]
    for t in sets:
        folder = out / "eval" / t
        rc = cli(["evaluate", "--controllers", ",".join(controllers), "--tasks", t, "--seeds", str(args.seeds),
                  "--seed-offset", str(args.seed_offset), "--workers", str(args.workers),
                  "--control-steps", str(ev.get("control_steps", 20)), "--inner-steps", str(ev.get("inner_steps", 10)),
                  "--out", str(folder), "--no-progress"])
        if rc != 0:
            return rc
        labels = {b: [b] for b in baselines if b != "uniform"}
        if reference:
            labels[reference] = [reference]
        labels.update({k: v for k, v in agents.items() if v})
        text.append(f"## `{t}`\n\n{table(paired_rows(folder / 'results.csv', labels))}\n")
        text.append(f"Mean final val accuracy per task (agent seeds averaged):\n\n{per_task(folder / 'results.csv', labels)}\n")
        if agents["learned + fallback"]:
            changed, total = fallback_changes(folder / "results.csv", list(zip(agents["learned"], agents["learned + fallback"])))
            text.append(f"The fallback changed the final weights of {changed} of {total} runs (the others never left its support).\n")
    (out / f"summary-{'+'.join(sets)}.md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
