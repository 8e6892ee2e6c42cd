"""Names and defaults for ``metacurr list`` and ``--help``, read without importing torch.

The task families, the models and the controller registry define their names as plain literals
(``ARCHS = (...)``, ``DEFAULTS = {...}``, ``REGISTRY = {...}``) in modules that import torch. Importing
them costs more than a second; reading the literals from the source costs milliseconds. A module that is
already imported is read directly. `tests/core/test_cli_catalog.py` checks both ways give the same values.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import metacurr


def _source(module: str) -> Path:
    # Found by path, not importlib.util.find_spec: that would import the parent packages (and torch).
    parts = module.split(".")
    if parts[0] != "metacurr":
        raise ImportError(f"not a metacurr module: {module!r}")
    for root in metacurr.__path__:
        base = Path(root).joinpath(*parts[1:])
        for path in (base / "__init__.py", base.with_suffix(".py")):
            if path.is_file():
                return path
    raise ImportError(f"no module {module!r}")


@cache
def _literals(module: str) -> dict[str, object]:
    path = _source(module)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                out[target.id] = ast.literal_eval(value)
            except ValueError:  # not a literal: not a catalogue entry
                continue
    return out


def dict_keys(module: str, name: str) -> list[str]:
    """The keys of the module-level dict ``name`` of ``module`` (string-literal keys; values may be any
    expression), from the module itself when it is imported."""
    if module in sys.modules:
        return list(getattr(sys.modules[module], name))
    path = _source(module)
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == name and isinstance(node.value, ast.Dict):
            return [ast.literal_eval(k) for k in node.value.keys]
    raise LookupError(f"{module}.{name} is not a dict display")


def constant(module: str, name: str):
    """The module-level literal ``name`` of ``module`` (from the module itself when it is imported)."""
    if module in sys.modules:
        return getattr(sys.modules[module], name)
    values = _literals(module)
    if name not in values:
        raise LookupError(f"{module}.{name} is not a literal")
    return values[name]
