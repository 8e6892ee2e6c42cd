"""The tracking flags shared by run-producing subcommands: ``--wandb``, ``--group``, ``--tags``."""

from __future__ import annotations

import argparse

from metacurr.tracking.wandb_env import WANDB_MODES


def add_tracking_args(p: argparse.ArgumentParser) -> None:
    """Add ``--wandb {auto,online,offline,disabled}``, ``--group`` and ``--tags``."""
    p.add_argument(
        "--wandb", choices=WANDB_MODES, default="auto",
        help="W&B logging: auto = online when logged in (WANDB_API_KEY or `wandb login`), else off (the run "
             "folder keeps every metric); offline = into OUT/wandb/ to upload later with `wandb sync`; "
             "never blocks or fails the run (default auto)",
    )
    p.add_argument("--group", help="W&B run group (e.g. a study or sweep name)")
    p.add_argument("--tags", action="append", metavar="TAG[,TAG...]",
                   help="extra W&B tags, comma-separated or repeated")


def parse_tags(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    return [t.strip() for v in (values or []) for t in v.split(",") if t.strip()]


def sync_hint(info: dict) -> str | None:
    """One line telling the user where the W&B run went (None when W&B was off)."""
    mode = info.get("mode")
    if mode == "offline" and info.get("run_dir"):
        return f"W&B offline run: upload with `wandb sync {info['run_dir']}`"
    if mode == "online" and info.get("url"):
        return f"W&B run: {info['url']}"
    return None
