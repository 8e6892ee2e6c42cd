"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from metacurr.errors import ConfigError


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def add_budget_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control-steps", type=positive_int, help="control steps (weight updates) per run")
    p.add_argument("--inner-steps", type=positive_int, help="optimiser steps per control step")


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads", type=positive_int, default=1,
        help="torch CPU threads (default 1: tiny models run fastest single-threaded)",
    )


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def check_out_dir(path: str | Path) -> Path:
    """The output folder may exist (files are replaced atomically) but must not be a file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--out {p} exists and is not a directory")
    return p
