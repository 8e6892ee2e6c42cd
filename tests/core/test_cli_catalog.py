"""`metacurr list` and `--help` read names without importing torch, and read the same values as the modules."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from metacurr.cli.catalog import _literals, dict_keys

CONSTANTS = [("metacurr.tasks", "_FAMILY_MODULES"), ("metacurr.models", "ARCHS"), ("metacurr.controllers", "REGISTRY"),
             ("metacurr.evaluation.specs", "DEFAULT_CONTROLLERS")]
CONSTANTS += [(m, n) for m in ("metacurr.tasks.mnist1d", "metacurr.tasks.digits", "metacurr.tasks.sequence")
              for n in ("ARCHS", "DEFAULTS")]


@pytest.mark.parametrize(("module", "name"), CONSTANTS)
def test_source_literals_equal_the_imported_values(module, name):
    assert _literals(module)[name] == getattr(importlib.import_module(module), name)


def test_dict_keys_read_from_source_equal_the_imported_keys(monkeypatch):
    from metacurr.evaluation import task_sets

    monkeypatch.delitem(sys.modules, "metacurr.evaluation.task_sets")  # force the source reading
    assert dict_keys("metacurr.evaluation.task_sets", "TASK_SETS") == list(task_sets.TASK_SETS)
    with pytest.raises(LookupError):
        dict_keys("metacurr.evaluation.task_sets", "HELDOUT_SETS")


@pytest.mark.parametrize("argv", [["--help"], ["list"]])
def test_help_and_list_do_not_import_torch(argv):
    code = (f"import sys\nfrom metacurr.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'stable_baselines3', 'wandb', 'matplotlib', 'tensorboard') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "controllers:" in out or "HEAVY []" in out and "usage: metacurr" in out
