"""``metacurr sweep`` / ``agent`` / ``sweep-run``: W&B sweep files, run locally or by W&B agents.

* ``metacurr sweep FILE.yaml --local [--workers N | --backend ray [--address ADDR]] [--count K] [--out DIR]``:
  grid / random sweep on this machine (or a Ray cluster), offline, resumable; ``bayes`` runs as random search there (a notice says so).
* ``metacurr sweep FILE.yaml``: register the sweep with W&B and print the ``wandb agent`` command.
* ``metacurr agent ENTITY/PROJECT/SWEEP_ID [--count N]``: run a W&B agent in this process.
* ``metacurr sweep-run TARGET PARAMS [--config BASE]``: one trial; what a sweep file's ``command`` runs
  under ``wandb agent``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from metacurr.cli.common import check_out_dir, nonneg_int, positive_int
from metacurr.errors import ConfigError

_TRIAL_HELP = "one sweep trial: what a sweep file's `command:` runs under `wandb agent`"


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a W&B sweep file locally (--local) or register it with W&B",
        description="Run a W&B sweep YAML locally (--local: process pool, offline W&B, resumable) or create "
                    "the sweep on the W&B server and print the `wandb agent` command for each machine.",
    )
    p.add_argument("file", help="W&B sweep YAML (see experiments/sweeps/)")
    p.add_argument("--local", action="store_true", help="run the trials on this machine (grid/random; bayes runs as random)")
    p.add_argument("--workers", type=positive_int, help="local worker processes, one torch thread each (default 1)")
    p.add_argument("--count", type=positive_int, help="local: at most this many trials (random: number of draws; default run_cap)")
    p.add_argument("--backend", choices=("pool", "ray"),
                   help="local: where the trials run: pool (--workers processes here) or ray (one Ray task per "
                        "trial; needs pip install \"metacurr[ray]\"; default pool)")
    p.add_argument("--address", help="local, --backend ray: a running Ray cluster to join, e.g. HEAD_IP:6379 "
                                     "(default: a local Ray instance sized to this machine)")
    p.add_argument("--out", help="local: sweep folder (default runs/sweeps/<sweep name>)")
    p.add_argument("--seed", type=nonneg_int, help="local: seed of the random draws (default 0)")
    p.add_argument("--project", help="W&B project (default: the file's project, $WANDB_PROJECT or metacurr)")
    p.add_argument("--entity", help="W&B entity (default: the file's entity or your default)")
    p.set_defaults(func=run_sweep)

    a = sub.add_parser("agent", help="run a W&B sweep agent here (the sweep's trials, one after another)",
                       description="Run a W&B sweep agent (like `wandb agent`, after checking login and network): "
                                   "each trial runs the sweep file's command in its own process. Start it from the "
                                   "folder the sweep file's paths are relative to (the repository root).")
    a.add_argument("sweep_id", help="ENTITY/PROJECT/SWEEP_ID as `metacurr sweep` printed it")
    a.add_argument("--count", type=positive_int, help="trials to run before exiting (default: until the sweep ends)")
    a.add_argument("--project", help="W&B project when SWEEP_ID is a bare id")
    a.add_argument("--entity", help="W&B entity when SWEEP_ID is a bare id")
    a.add_argument("--out-root", help="trial folders: OUT_ROOT/<sweep id>/runs/<run id> (default runs/sweeps)")
    a.set_defaults(func=run_agent_cmd)

    r = sub.add_parser("sweep-run", help=_TRIAL_HELP, description=_TRIAL_HELP.capitalize() + ".")
    r.add_argument("target", help="metacurr subcommand to run (train, train-agent)")
    r.add_argument("params", nargs="*",
                   help="sweep parameters, right after TARGET: a JSON object (${args_json}), a JSON file "
                        "(${args_json_file}) or name=value pairs (${args_no_hyphens}); dotted names set nested "
                        "config keys")
    r.add_argument("--config", help="base config YAML the parameters override")
    r.add_argument("--out", help="trial folder (default OUT_ROOT/<sweep id>/runs/<run id>)")
    r.add_argument("--out-root", help="root of trial folders (default runs/sweeps)")
    r.add_argument("--wandb", choices=("auto", "online", "offline", "disabled"), default="auto",
                   help="the target's W&B mode (default auto: online under `wandb agent`)")
    r.add_argument("--group", help="W&B group")
    r.add_argument("--metric", help="summary key to report (and require) when the trial ends")
    r.set_defaults(func=run_trial_cmd)


def _table(header: list[str], rows: list[list[str]], max_width: int = 40) -> str:
    def cut(s: str) -> str:
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    rows = [[cut(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def run_sweep(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `metacurr --help` and the other subcommands should not load sweeps.
    from metacurr.sweeps import check_sweep, load_sweep

    spec = load_sweep(args.file)
    if not args.local:
        given = [f for f in ("workers", "count", "out", "seed", "backend", "address") if getattr(args, f) is not None]
        if given:
            raise ConfigError(f"--{given[0]} applies to --local sweeps (W&B agents take --count: `metacurr agent ID --count N`)")
    else:
        return _run_local(args, spec)
    for notice in check_sweep(spec, seed=0):
        print(f"note: {notice}", file=sys.stderr)
    from metacurr.sweeps import create_sweep

    try:
        path = create_sweep(spec, project=args.project, entity=args.entity)
    except ConfigError as e:
        raise ConfigError(f"{e} (or run the sweep on this machine, offline: add --local)") from None
    print(f"created W&B sweep {path} ({spec.method}, metric {spec.metric_name or '-'})")
    print("start an agent on each machine, from this folder (the repository root):")
    print(f"  wandb agent {path}")
    print(f"  (or: metacurr agent {path} [--count N])")
    return 0


def _run_local(args: argparse.Namespace, spec) -> int:
    # Imported here, not at the top: `metacurr --help` and the other subcommands should not load sweeps.
    from metacurr.sweeps import results_table
    from metacurr.sweeps.api import DEFAULT_SWEEP_ROOT, sweep
    from metacurr.sweeps.trial import TrialResult

    backend = args.backend or "pool"
    if backend == "ray" and args.workers is not None:
        raise ConfigError("--workers is the process pool's; with --backend ray every CPU of the Ray instance runs trials")
    if args.address and backend != "ray":
        raise ConfigError("--address applies to --backend ray")
    out = check_out_dir(args.out if args.out is not None else DEFAULT_SWEEP_ROOT / spec.name)
    workers = args.workers or 1
    where = "on Ray" if backend == "ray" else f"{workers} worker(s)"
    total = 0
    n_done = 0

    def on_start(method: str, n: int, resumed: int, notices: list[str]) -> None:
        nonlocal total
        total = n
        for notice in notices:
            print(f"note: {notice}", file=sys.stderr)
        print(f"local sweep {spec.name}: {method}, {n} trials of `metacurr {spec.command.target}` "
              f"({resumed} already finished), {where} -> {out}", file=sys.stderr)

    def on_result(r: TrialResult) -> None:
        nonlocal n_done
        n_done += 1
        what = "resumed" if r.resumed else r.status
        m = f" {spec.metric_name}={r.metric:.4g}" if r.metric is not None else ""
        err = f" ({r.error})" if r.status != "finished" and r.error else ""
        wall = f" {r.wall_s:.1f}s" if r.wall_s is not None and not r.resumed else ""
        print(f"[{n_done}/{total}] {r.run_id} {what}{m}{wall}{err}", file=sys.stderr)

    report = sweep(spec, out=out, workers=workers, count=args.count, seed=args.seed or 0,
                   source=str(args.file), on_start=on_start, on_result=on_result, backend=backend,
                   address=args.address)
    header, rows = results_table(report.results, spec.metric_name, [p.name for p in spec.params], short=True)
    print(_table(header[:-1], [r[:-1] for r in rows]))  # errors are in results.csv and the progress lines
    failed = [r for r in report.results if r.status != "finished"]
    print(f"{report.ran} run, {report.resumed} resumed, {len(failed)} failed in {report.wall_s:.1f} s; "
          f"wrote {out}/results.csv")
    print(f"upload the offline W&B runs: wandb sync {out}/runs/*/wandb/offline-run-*")
    if failed:
        print(f"{len(failed)} trial(s) failed; see {out}/runs/<run id>/output.log", file=sys.stderr)
        return 1
    return 0


def run_agent_cmd(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `metacurr --help` and the other subcommands should not load sweeps.
    from metacurr.sweeps import run_agent

    run_agent(args.sweep_id, count=args.count, project=args.project, entity=args.entity, out_root=args.out_root)
    return 0


def run_trial_cmd(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `metacurr --help` and the other subcommands should not load sweeps.
    from metacurr.sweeps import parse_param_tokens, run_id, run_trial
    from metacurr.sweeps.spec import TrialCommand
    from metacurr.sweeps.targets import check_metric, check_target, check_trial_config

    check_target(args.target)
    params = parse_param_tokens(args.params)
    if args.out is not None:
        run_dir = check_out_dir(args.out)
    else:
        # under `wandb agent` the folder is named after the sweep and the W&B run
        from metacurr.sweeps.online import DEFAULT_OUT_ROOT, OUT_ROOT_ENV

        out_root = args.out_root or os.environ.get(OUT_ROOT_ENV) or DEFAULT_OUT_ROOT
        root = Path(out_root) / os.environ.get("WANDB_SWEEP_ID", "manual") / "runs"
        run_dir = root / (os.environ.get("WANDB_RUN_ID") or run_id(params))
    cmd = TrialCommand(args.target, args.config, args.out_root)
    cmd.base_config()  # a missing base config is a usage error (exit 2), not a failed trial
    check_trial_config(cmd, params)  # so is a bad override: exit 2 before the trial folder exists
    check_metric(args.target, args.metric)
    result = run_trial(cmd, params, run_dir, metric=args.metric, wandb=args.wandb, group=args.group,
                       tags=["sweep"], capture=False)
    print(json.dumps({k: v for k, v in result.to_dict().items() if k in ("run_id", "status", "metric", "error", "run_dir")}))
    return 0 if result.status == "finished" else 1
