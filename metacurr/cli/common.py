"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from metacurr.errors import ConfigError
from metacurr.validation import (
    check_out_dir,  # noqa: F401 - re-exported: the commands' guard is the library's
    check_threads,
)


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


def threads_int(text: str) -> int:
    try:
        return check_threads(positive_int(text), "--threads")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads", type=threads_int, default=1,
        help="torch CPU threads (default 1: tiny models run fastest single-threaded)",
    )


def set_threads(n: int) -> None:
    import torch  # here: the command line loads torch only for the subcommands that run something

    torch.set_num_threads(n)




@contextmanager
def startup_imports(module: str) -> Iterator[None]:
    """Import a command's heavy modules with the garbage collector off, then freeze what they built.

    torch and its peers build about a million long-lived objects and no garbage while they load; every
    collection during or after their import would walk them all. Off while they load, and frozen
    (``gc.freeze``: kept out of every later collection) once loaded, a short ``metacurr train`` spends
    about 0.05 s in garbage collection instead of about 0.5 s (``benchmarks/startup.py``). Only the
    first time ``module`` is imported in this process: later calls find the modules loaded.
    """
    if module in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
