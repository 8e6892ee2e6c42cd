"""Does the learned policy transfer? One agent per PPO seed, each evaluated as trained and with its
fallback toward uniform, next to a reference policy and the baselines, paired with uniform.

A transfer YAML (e.g. ``experiments/transfer.yaml``) names ``base`` (an agent config), ``agent``
(overrides on it), ``seeds`` (PPO seeds, one agent each), ``fallback`` (the equivariant policy's
inference kwargs of the fallback variant), ``reference`` (an extra controller, optional), ``compare`` (optional: label -> ``{config: another
transfer YAML, out: its study folder}``; that recipe's agents, trained there unless bundled, are
evaluated beside these and the summary adds this recipe minus that one, each group's agents averaged
per task and evaluation seed: an ablation over agent seeds) and ``eval`` (``baselines``,
``control_steps``, ``inner_steps``, ``plain``: false evaluates only the fallback variants). A YAML
with ``extends: OTHER.yaml`` is that YAML with this one's keys merged over it (an ablation names only
what it changes).

Agents train into OUT/agents/seedS (skipped when the bundle exists, resumed from a checkpoint
otherwise); the fallback variant of each (the same weights) is written to OUT/agents/seedS/policy-fallback.
Each task set is evaluated into OUT/eval/SET (report.md, results.csv, stats.json); OUT/summary-SETS.md
tabulates, per set and controller, the paired difference of final val accuracy against uniform
[95% CI] per agent seed and pooled over the agent seeds, with the spread of the per-seed means. Rerun
with the same ``out`` to resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from metacurr.agents.bundle import derive_bundle
from metacurr.agents.config import AgentConfig, load_agent_config
from metacurr.agents.equivariant_policy import check_equivariant_kwargs
from metacurr.agents.train import train_unless_bundled
from metacurr.config import load_yaml, merge
from metacurr.errors import ConfigError
from metacurr.evaluation.pipeline import EvaluationResult, evaluate
from metacurr.evaluation.stats import paired_difference, stratified_bootstrap
from metacurr.evaluation.task_sets import get_task_set
from metacurr.io import atomic_write_text

#: The two controller groups of the learned agents in the summary, in table order.
LEARNED = "learned"
LEARNED_FALLBACK = "learned + fallback"


@dataclass
class TransferSpec:
    """A checked transfer YAML (`load_transfer`)."""

    spec: dict
    """The YAML as read."""
    agents: dict[int, AgentConfig]
    """PPO seed -> the agent config trained with it."""
    fallback: dict
    """Policy kwargs of the fallback variant (empty: no fallback variant)."""


@dataclass
class TransferResult:
    """What `run_transfer` produced."""

    text: str
    """The summary markdown (also ``out/summary-SETS.md``); empty when nothing was evaluated."""
    status: str = "finished"
    """``finished``, or the agent-training status of the seed that stopped early (nothing evaluated)."""
    stopped_seed: int | None = None
    """The PPO seed whose training stopped early."""
    agents: dict[str, list[str]] = field(default_factory=dict)
    """Controller group (`LEARNED`, `LEARNED_FALLBACK`) -> its ``policy:PATH`` per agent seed."""
    training_s: dict[int, float] = field(default_factory=dict)
    """PPO seed -> agent-training wall time in this call (seeds trained now)."""
    evaluations: dict[str, EvaluationResult] = field(default_factory=dict)
    """Task set -> its evaluation (report in ``out/eval/SET``)."""
    summary_path: Path | None = None


def load_transfer(config: str | Path, timesteps: int | None = None, root: Path | None = None) -> TransferSpec:
    """The transfer YAML and one checked `AgentConfig` per PPO seed.

    Args:
        config: the transfer YAML.
        timesteps: override every agent's PPO timesteps (smoke runs).
        root: folder a relative ``base:`` is resolved against (default the current folder).

    Raises:
        ConfigError: a malformed YAML, an invalid agent config or bad fallback kwargs.
    """
    try:
        spec = load_yaml(str(config))
        if "extends" in spec:
            parent = Path(spec.pop("extends"))
            spec = merge(load_yaml(str(parent if parent.is_absolute() or root is None else root / parent)), spec)
        base = Path(spec["base"])
        if not base.is_absolute() and root is not None:
            base = root / base
        agent = dict(spec.get("agent") or {})
        if timesteps:
            agent = merge(agent, {"train": {"total_timesteps": timesteps}})
        cfgs = {s: load_agent_config(str(base), merge(agent, {"name": f"{agent.get('name', 'agent')}-s{s}",
                                                              "train": {"seed": s}}))
                for s in spec["seeds"]}
        fallback = dict(spec.get("fallback") or {})
        if fallback:
            check_equivariant_kwargs(fallback)
    except (KeyError, TypeError) as e:
        raise ConfigError(f"malformed {config}: missing or bad key {e}") from None
    return TransferSpec(spec, cfgs, fallback)


def paired_rows(results_csv: str | Path, labels: dict[str, list[str]], reference: str = "uniform",
                metric: str = "final_val_acc") -> list[dict]:
    """Per label group (one controller per agent seed): paired differences with ``reference``.

    The pooled CI stratifies by task over every (agent seed, evaluation seed) pair.

    Args:
        results_csv: an evaluation's ``results.csv``.
        labels: group name -> its controllers (one per agent seed).
        reference: the controller every difference is taken against.
        metric: the results column compared.

    Returns:
        One row per group with results: ``{name, per_seed: [(mean, low, high)], pooled: (mean, low, high),
        spread: (min, max) of the per-seed means, n: pairs pooled}``.
    """
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


def fallback_changes(results_csv: str | Path, pairs: list[tuple[str, str]]) -> tuple[int, int]:
    """How often the fallback changed the outcome: the same weights with the fallback off vs on.

    Args:
        results_csv: an evaluation's ``results.csv``.
        pairs: (controller without fallback, the same controller with it) per agent seed.

    Returns:
        (runs whose final stage weights the fallback changed, runs compared).
    """
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


def per_task(results_csv: str | Path, labels: dict[str, list[str]], metric: str = "final_val_acc") -> str:
    """Markdown: mean ``metric`` per task (rows) and controller group (columns; agent seeds averaged).

    Args:
        results_csv: an evaluation's ``results.csv``.
        labels: group name -> its controllers; uniform comes first as its own column.
        metric: the results column averaged.
    """
    df = pd.read_csv(results_csv)
    groups = {"uniform": ["uniform"], **labels}
    tasks = sorted(df.task.unique())
    out = ["| task | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for t in tasks:
        cells = [f"{df[(df.task == t) & df.controller.isin(c)][metric].mean():.3f}" for c in groups.values()]
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _group_means(df: pd.DataFrame, ctrls: list[str], metric: str) -> pd.Series:
    """``metric`` averaged over ``ctrls`` (one per agent seed) per (task, evaluation seed)."""
    return df[df.controller.isin(ctrls)].groupby(["task", "seed"])[metric].mean()


def group_difference(results_csv: str | Path, a: list[str], b: list[str], metric: str = "final_val_acc") -> dict:
    """Recipe ``a`` minus recipe ``b``: each group's controllers (one per agent seed) averaged per (task,
    evaluation seed), then the paired difference with a CI stratified by task.

    Returns:
        `paired_difference`'s dict (``mean``, ``low``, ``high``, ...) plus ``n`` (pairs).
    """
    df = pd.read_csv(results_csv)
    d = (_group_means(df, a, metric) - _group_means(df, b, metric)).dropna()
    r = paired_difference([g.to_numpy() for _, g in d.groupby(level="task")])
    return {**r, "n": len(d)}


def set_average(results: dict[str, str | Path], a: list[str], b: list[str], metric: str = "final_val_acc") -> dict:
    """Controllers ``a`` minus ``b`` averaged over task sets: each set weighs the same, each task the same
    within its set, each group's controllers (one per agent seed) averaged per (task, evaluation seed).
    The CI resamples evaluation seeds within each task (stratified bootstrap).

    Args:
        results: task set -> its evaluation's ``results.csv``.

    Returns:
        ``{mean, low, high, n}`` (n: (task, seed) pairs).
    """
    groups, weights = [], []
    for csv in results.values():
        df = pd.read_csv(csv)
        d = (_group_means(df, a, metric) - _group_means(df, b, metric)).dropna()
        tasks = [g.to_numpy() for _, g in d.groupby(level="task")]
        groups += tasks
        weights += [1.0 / (len(results) * len(tasks))] * len(tasks)
    if not groups:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    w = np.asarray(weights) / sum(weights)  # sets with no pair drop out

    def stat(*samples, axis=-1):
        return sum(wi * np.mean(x, axis=axis) for wi, x in zip(w, samples))

    mean, low, high = stratified_bootstrap(groups, stat)
    return {"mean": mean, "low": low, "high": high, "n": int(sum(len(g) for g in groups))}


def group_table(r: dict, a: str, b: str) -> str:
    """Markdown: one `group_difference` row."""
    return (f"| difference | mean [95% CI] | pairs |\n|---|---|---|\n"
            f"| {a} − {b} | {r['mean']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] | {r['n']} |")


def across_sets(results: dict[str, str | Path], labels: dict[str, list[str]], baselines: list[str]) -> str:
    """Markdown: every controller group minus every baseline, averaged over the task sets (`set_average`)."""
    refs = [b for b in baselines if b in ("uniform", *labels)]
    out = [f"## Averaged over the {len(results)} task sets ({', '.join(f'`{t}`' for t in results)})\n",
           "Each set weighs the same, each task the same within its set; 95% CI over evaluation seeds.\n",
           "| controller | " + " | ".join(f"− {b}" for b in refs) + " |", "|---" * (len(refs) + 1) + "|"]
    for name, ctrls in labels.items():
        cells = []
        for b in refs:
            if b == name:
                cells.append("–")
                continue
            r = set_average(results, ctrls, [b])
            cells.append(f"{r['mean']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def table(rows: list[dict]) -> str:
    """Markdown: the rows of `paired_rows`, pooled and per agent seed, as mean [95% CI]."""
    def ci(t):
        return f"{t[0]:+.3f} [{t[1]:+.3f}, {t[2]:+.3f}]"

    out = ["| controller | − uniform, pooled over agent seeds [95% CI] | per agent seed | spread of seed means | pairs |",
           "|---|---|---|---|---|"]
    for r in rows:
        seeds = "; ".join(ci(t) for t in r["per_seed"])
        out.append(f"| {r['name']} | {ci(r['pooled'])} | {seeds} | {r['spread'][0]:+.3f} .. {r['spread'][1]:+.3f} | {r['n']} |")
    return "\n".join(out)


@dataclass
class AgentStopped:
    """`recipe_agent`: the agent's training stopped before it finished (a signal; rerun to resume)."""

    status: str
    wall_s: float


def recipe_agent(
    study: TransferSpec,
    seed: int,
    folder: str | Path,
    on_training: Callable[[int, int], None] | None = None,
    on_trained: Callable[[int, float, float], None] | None = None,
) -> tuple[tuple[Path, Path | None], float] | AgentStopped:
    """One PPO seed's agent of a transfer recipe: trained into ``folder/agents/seedS`` unless bundled
    (resumed from a checkpoint), and its fallback variant derived (``policy-fallback``) when the recipe has one.

    Returns:
        ((the bundle, the fallback bundle or None), seconds spent training now), or `AgentStopped`.
    """
    cfg = study.agents[seed]
    run = Path(folder) / "agents" / f"seed{seed}"
    wall = 0.0
    if not (run / "policy" / "manifest.json").is_file():
        if on_training is not None:
            on_training(seed, cfg.train.total_timesteps)
        res, wall = train_unless_bundled(cfg, run)
        if res.get("status") != "finished":
            return AgentStopped(str(res.get("status")), wall)
        if on_trained is not None:
            on_trained(seed, wall, res["env_steps_per_s"])
    derived = None
    if study.fallback:
        derived = derive_bundle(run / "policy", run / "policy-fallback", study.fallback, note="transfer.yaml fallback")
    return (run / "policy", derived), wall


def _compare(spec: dict, config: str | Path, root: Path | None) -> dict[str, tuple[Path, Path]]:
    """The YAML's ``compare:`` (label -> ``{config: YAML, out: its study folder}``) as paths; a relative
    ``config`` is resolved against ``root``, ``out`` against the current folder (like ``--out``)."""
    try:
        items = {str(k): (Path(v["config"]), Path(v["out"])) for k, v in (spec.get("compare") or {}).items()}
    except (KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"malformed compare: in {config}: each entry needs config: and out: ({e})") from None
    return {k: ((c if c.is_absolute() or root is None else root / c), o) for k, (c, o) in items.items()}


def run_transfer(
    config: str | Path,
    out: str | Path,
    *,
    tasks: str = "validation",
    seeds: int = 5,
    seed_offset: int = 0,
    workers: int = 2,
    timesteps: int | None = None,
    train_only: bool = False,
    compare: bool = True,
    baselines: str | None = None,
    root: Path | None = None,
    on_training: Callable[[int, int], None] | None = None,
    on_trained: Callable[[int, float, float], None] | None = None,
) -> TransferResult:
    """Train one agent per PPO seed (resuming), derive the fallback bundles, evaluate each task set and
    write ``out/summary-SETS.md``.

    Args:
        config: the transfer YAML (`load_transfer`); its path as given heads the summary.
        out: the study folder (``agents/seedS``, ``eval/SET``, ``summary-SETS.md``).
        tasks: comma list of task sets, each evaluated into its own folder.
        seeds: evaluation seeds per task.
        seed_offset: the first evaluation seed is 10000 + offset.
        workers: evaluation worker processes.
        timesteps: override every agent's PPO timesteps (smoke runs).
        train_only: train and derive the fallback bundles, evaluate nothing.
        compare: include the YAML's ``compare:`` recipes (False: this recipe's agents only).
        baselines: comma list of baseline controllers instead of the YAML's ``eval.baselines``.
        root: folder a relative ``base:`` of the YAML is resolved against.
        on_training: called as ``on_training(seed, timesteps)`` before an agent trains.
        on_trained: called as ``on_trained(seed, wall_s, env_steps_per_s)`` after an agent finished.

    Raises:
        ConfigError: a bad YAML or task set before any training; bad evaluation input before it runs.
    """
    ts = load_transfer(config, timesteps, root)
    spec = ts.spec
    others = _compare(spec, config, root) if compare else {}
    sets = [t for t in tasks.split(",") if t]
    for t in sets:
        get_task_set(t)
    out = Path(out)
    cost: dict[int, float] = {}
    studies = [(LEARNED, ts, out)] + [(label, load_transfer(c, timesteps, root), o) for label, (c, o) in others.items()]
    agents: dict[str, list[str]] = {}
    pairs: list[tuple[str, str]] = []
    for label, study, folder in studies:
        plain, fb = agents.setdefault(label, []), agents.setdefault(f"{label} + fallback", [])
        for s in study.agents:
            got = recipe_agent(study, s, folder, on_training, on_trained)
            if isinstance(got, AgentStopped):
                cost[s] = got.wall_s
                return TransferResult("", got.status, s, agents, cost)
            (bundle, derived), cost[s] = got
            plain.append(f"policy:{bundle}")
            if derived is not None:
                fb.append(f"policy:{derived}")
                pairs.append((plain[-1], fb[-1]))
    ev = spec.get("eval") or {}
    if not ev.get("plain", True):  # only the fallback variants are evaluated
        agents = {k: (v if k.endswith(" + fallback") else []) for k, v in agents.items()}
        pairs = []
    agents = {k: v for k, v in agents.items() if v}
    if train_only:
        return TransferResult("", "finished", None, agents, cost)
    baselines = [b for b in str(baselines or ev.get("baselines", "uniform")).split(",") if b]
    if "uniform" not in baselines:
        baselines.insert(0, "uniform")
    reference = spec.get("reference")
    controllers = baselines + ([reference] if reference else []) + [c for v in agents.values() for c in v]
    labels = {b: [b] for b in baselines if b != "uniform"}
    if reference:
        labels[reference] = [reference]
    labels.update({k: v for k, v in agents.items() if v})
    text = [f"# Transfer ({config})\n",
            "Final val accuracy, paired difference with uniform on the same (task, evaluation seed); "
            f"{seeds} evaluation seeds per task from {10000 + seed_offset}; agents: PPO seeds {list(ts.agents)}.\n"]
    evaluations: dict[str, EvaluationResult] = {}
    for t in sets:
        res = evaluate(controllers, t, out=out / "eval" / t, seeds=seeds, seed_offset=seed_offset, workers=workers,
                       control_steps=ev.get("control_steps", 20), inner_steps=ev.get("inner_steps", 10))
        evaluations[t] = res
        csv = res.paths["results"]  # the summary is computed from the record on disk
        text.append(f"## `{t}`\n\n{table(paired_rows(csv, labels))}\n")
        text.append(f"Mean final val accuracy per task (agent seeds averaged):\n\n{per_task(csv, labels)}\n")
        for label, _, _ in studies[1:]:
            a, b = (LEARNED_FALLBACK, f"{label} + fallback") if ts.fallback else (LEARNED, label)
            if a in agents and b in agents:
                text.append(f"`{a}` minus `{b}` (each group's agents averaged per task and seed):\n\n"
                            f"{group_table(group_difference(csv, agents[a], agents[b]), a, b)}\n")
        if pairs:
            changed, total = fallback_changes(csv, pairs)
            text.append(f"The fallback changed the final weights of {changed} of {total} runs "
                        "(the others never left its support).\n")
    if len(evaluations) > 1:
        text.append(across_sets({t: r.paths["results"] for t, r in evaluations.items()}, labels, baselines))
    summary = "\n".join(text)
    path = out / f"summary-{'+'.join(sets)}.md"
    atomic_write_text(path, summary)
    return TransferResult(summary, "finished", None, agents, cost, evaluations, path)
