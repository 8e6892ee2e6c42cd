"""The architecture, checked: imports run one way through the layers, and no library file is too long.

Layers, bottom (imported by everything above) to top (shared/DESIGN.md, "Layout"):

    base         seeds, io, errors, weights (the weight arithmetic every layer above shares),
                 validation (the input checks every layer shares; it imports only errors)
    data         tasks, models, config (its checks name the task families and architectures);
                 tracking, trajectory metrics, plots (they import only the base)
    training     trainer, optim (the one functional optimiser), monitors
    control      controllers, inner_run, batched (the engine for N runs: InnerRun's maths, stacked)
    run          run, training (one run and its files)
    evaluation   evaluation (many runs: it calls the run layer, never the other way round)
    rl           envs (metacurr.envs), agents (metacurr.agents)
    jobs         sweeps, studies
    cli          cli
    (experiments/ scripts sit above all of it and are not scanned)

A module may import its own layer or any layer below. Every import counts: at module level and inside
functions (an import inside a function still runs against the layers when it runs). The allowlist
below names each exception with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: repository folder -> the package it installs as
SOURCES = {"metacurr": "metacurr", "envs": "metacurr.envs", "agents": "metacurr.agents"}

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("metacurr.seeds", "metacurr.io", "metacurr.errors", "metacurr.weights", "metacurr.validation")),
    ("data", ("metacurr.tasks", "metacurr.models", "metacurr.config", "metacurr.tracking", "metacurr.trajectory",
              "metacurr.error_distribution",
              "metacurr.plots")),
    ("training", ("metacurr.trainer", "metacurr.optim", "metacurr.monitors")),
    ("control", ("metacurr.controllers", "metacurr.inner_run", "metacurr.batched")),
    ("run", ("metacurr.run", "metacurr.training")),
    ("evaluation", ("metacurr.evaluation",)),
    ("rl", ("metacurr.envs", "metacurr.agents")),
    ("jobs", ("metacurr.sweeps", "metacurr.studies")),
    ("cli", ("metacurr.cli",)),
]

#: (importing module, imported module) -> why this upward import is not a layer violation.
ALLOWED_UPWARD = {
    ("metacurr.controllers", "metacurr.agents.policy_controller"):
        "plugin point: make_controller resolves `policy:PATH` / `wandb:` lazily to a PolicyController, "
        "so every caller of the registry can run a saved policy without importing the agents layer",
}

#: Library files allowed past MAX_LINES. Each entry must say why and when it goes.
MAX_LINES = 500
LONG_FILES: set[str] = set()


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, pkg in SOURCES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([pkg, *parts])] = path
    return mods


MODULES = _modules()


def layer_of(module: str) -> int | None:
    """Index of the layer holding ``module`` (longest matching prefix); None for the package facade."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def _resolve(target: str) -> str | None:
    """The known module an import names (``metacurr.config.RunConfig`` -> ``metacurr.config``)."""
    while target:
        if target in MODULES:
            return target
        target = target.rpartition(".")[0]
    return None


def imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported metacurr module, line, inside a function) for every import of ``path``, bar TYPE_CHECKING."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = module if is_pkg else module.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                names = [f"{base}.{a.name}" for a in child.names]
            else:
                visit(child, in_func or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))
                continue
            for name in names:
                target = _resolve(name) if name.startswith("metacurr") else None
                if target is not None:
                    found.append((target, child.lineno, in_func))

    visit(tree, False)
    return found


def _violations() -> list[str]:
    bad = []
    for module, path in MODULES.items():
        src = layer_of(module)
        if src is None:  # the package facade `metacurr/__init__.py` re-exports from every layer
            continue
        for target, line, in_func in imports(module, path):
            dst = layer_of(target)
            if dst is None or dst <= src:
                continue
            if any(module == a and (target == b or target.startswith(b + ".")) for a, b in ALLOWED_UPWARD):
                continue
            where = "in a function" if in_func else "at module level"
            bad.append(f"{path.name if not path.is_relative_to(ROOT) else path.relative_to(ROOT)}:{line}: {module} ({LAYERS[src][0]}) imports {target} "
                       f"({LAYERS[dst][0]}) {where}")
    return bad


def test_every_library_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) is None and m != "metacurr"]
    assert not missing, f"modules outside every layer (add them to LAYERS): {missing}"


def test_imports_run_down_the_layers():
    bad = _violations()
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_the_allowlisted_upward_import_still_exists():
    """An exception nobody needs any more is removed, not kept 'just in case'."""
    for a, b in ALLOWED_UPWARD:
        assert any(t == b or t.startswith(b + ".") for t, _, _ in imports(a, MODULES[a])), (a, b)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The walker itself: a controller importing the evaluation layer is reported, in a function too."""
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    from metacurr.evaluation.plan import make_plan\n")
    monkeypatch.setitem(MODULES, "metacurr.controllers.bad", fake)
    assert any("metacurr.controllers.bad (control) imports metacurr.evaluation.plan (evaluation) in a function" in v
               for v in _violations())


@pytest.mark.parametrize("folder", list(SOURCES))
def test_no_library_file_is_too_long(folder):
    long = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        n = len(path.read_text().splitlines())
        if n > MAX_LINES and rel not in LONG_FILES:
            long.append(f"{rel}: {n} lines")
    assert not long, f"library files over {MAX_LINES} lines: {long}"


def test_long_file_allowlist_is_current():
    for rel in LONG_FILES:
        path = ROOT / rel
        assert path.is_file() and len(path.read_text().splitlines()) > MAX_LINES, (
            f"{rel} is gone or short now: delete it from LONG_FILES")


#: Files whose in-function imports are not yet all commented.
UNCOMMENTED_OK: set[str] = set()


def _uncommented_function_imports() -> list[str]:
    """In-function imports with no comment saying why: none on the import line, none between the
    ``def`` line and it."""
    bad = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in UNCOMMENTED_OK:
                continue
            lines = path.read_text().splitlines()
            tree = ast.parse("\n".join(lines))
            for fn in ast.walk(tree):
                if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        span = lines[fn.lineno - 1 : node.end_lineno]
                        if not any(ln.strip().startswith("#") or " # " in ln for ln in span[1:]):
                            bad.append(f"{rel}:{node.lineno} in {fn.name}()")
    return bad


def test_in_function_imports_say_why():
    """An import inside a function is there for start-up time (or is the plugin point); a comment says so."""
    bad = _uncommented_function_imports()
    assert not bad, "in-function imports without a comment saying why (move them to the top, or comment):\n" + \
        "\n".join(bad)
