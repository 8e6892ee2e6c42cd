"""``metacurr train``: one inner training run under a controller."""

from __future__ import annotations

import argparse
import sys

from metacurr.cli.common import add_budget_args, add_threads_arg, check_out_dir, nonneg_int, startup_imports
from metacurr.cli.tracking_args import add_tracking_args, parse_tags, sync_hint


def register(sub) -> None:
    p = sub.add_parser("train", help="run one inner training with a controller")
    p.add_argument("--task", help="task family (default mnist1d; see `metacurr list`)")
    p.add_argument("--arch", help="model architecture (default mlp)")
    p.add_argument("--controller", help="controller name, policy:PATH or policy:default (default heuristic)")
    p.add_argument("--seed", type=nonneg_int, help="seed (default 0)")
    p.add_argument("--out", required=True, help="output folder")
    add_budget_args(p)
    p.add_argument("--config", help="YAML config (task:, controller:, controller_kwargs:, monitor:)")
    p.add_argument("--device", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line (full precision)")
    add_threads_arg(p)
    add_tracking_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with startup_imports("metacurr.training"):
        # Imported here, not at the top: `metacurr --help` and the other subcommands should not load the run stack.
        from tqdm import tqdm

        from metacurr.config import load_yaml
        from metacurr.training import train_run

    data = load_yaml(args.config) if args.config else {}
    out = check_out_dir(args.out)
    bars: list = []  # the bar appears once every check passed, so a bad input stays one line

    def started(cfg) -> None:
        bars.append(tqdm(total=cfg.task.control_steps, desc=f"{cfg.task.family}/{cfg.task.arch} {cfg.controller}",
                         disable=args.no_progress, file=sys.stderr, leave=False))

    def on_step(t: int, row: dict) -> None:
        bars[0].update(1)
        bars[0].set_postfix(val_acc=f"{row['inner/val_acc']:.3f}")

    try:
        res = train_run(data, out=out, task=args.task, arch=args.arch, seed=args.seed, control_steps=args.control_steps,
                        inner_steps=args.inner_steps, controller=args.controller, device=args.device, wandb=args.wandb,
                        group=args.group, tags=parse_tags(args.tags), threads=args.threads, on_start=started,
                        on_step=on_step)
    finally:
        for bar in bars:
            bar.close()
    from metacurr.cli.summary import human_summary, json_summary

    print(json_summary(res.summary, out) if args.json else "\n".join(human_summary(res.summary, out)))
    hint = sync_hint(res.wandb_info)
    if hint:
        print(hint)
    return 0
