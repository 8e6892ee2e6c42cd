"""Mutation testing of the modules that carry metacurr's guarantees: kill rate per module.

Each mutant is one small change to one module (an operator swapped, a constant moved, a call or an
assignment dropped, a factor removed). The module's test files run against it; the mutant is *killed*
when they fail (or run past the time limit), and *survives* when they pass. A survivor is either a
blind spot of the tests or an equivalent mutant (same behaviour); `EQUIVALENT` lists the ones judged
equivalent, with the reason, and the report marks them.

The mutated module is served by an import hook (its compiled AST replaces the file's), so nothing in the
working tree is modified and an interrupted run leaves no trace. Every mutant runs pytest in a process
forked from one that has already imported torch, scipy, pandas, Gymnasium and SB3 (not metacurr, which
each mutant imports afresh); subprocesses the tests start get the same hook through ``sitecustomize``.

Usage (CPU heavy; the full run is ~20-40 min on a 2-core VM)::

    nice -n 15 python benchmarks/mutation.py                       # every target in TARGETS
    nice -n 15 python benchmarks/mutation.py --only mapping,stats  # some targets
    nice -n 15 python benchmarks/mutation.py --list                # the mutants, without running them
    nice -n 15 python benchmarks/mutation.py --json out.json -j 2  # save the results, 2 mutants at once

Options: ``--tests-root DIR`` runs the test files found under DIR (a checkout of another revision's
``tests/``) against this tree's library code.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import marshal
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Top-level folders that install under another package name (pyproject.toml's package-dir).
PACKAGE_DIRS = {"envs": "metacurr.envs", "agents": "metacurr.agents"}


@dataclass(frozen=True)
class Target:
    """One module to mutate.

    Attributes:
        name: short name in the report.
        path: the source file, relative to the repository root.
        tests: test files (or node ids) run against each mutant, fastest killers first (``-x`` stops at
            the first failure).
        scope: qualified names of the functions / classes to mutate (``"Class.method"``); empty = the
            whole module.
    """

    name: str
    path: str
    tests: tuple[str, ...]
    scope: tuple[str, ...] = field(default=())

    @property
    def module(self) -> str:
        parts = list(Path(self.path).with_suffix("").parts)
        if parts[0] in PACKAGE_DIRS:
            parts = PACKAGE_DIRS[parts[0]].split(".") + parts[1:]
        return ".".join(parts)


#: The modules under measurement and their tests. Update paths here when a module moves.
TARGETS: tuple[Target, ...] = (
    Target("mapping", "metacurr/weights.py", (
        "tests/controllers/test_mapping_values.py",
        "tests/controllers/test_heuristic_and_core.py",
        "tests/reliability/test_properties.py",
    )),
    Target("mapping-batched", "metacurr/weights.py", (
        "tests/controllers/test_mapping_values.py",
        "tests/envs/test_batched.py::test_map_weights_and_build_batch_are_exact",
        "tests/envs/test_batched.py::test_matches_unbatched_env",
    ), scope=("map_weights", "normalize_rows")),
    Target("stats", "metacurr/evaluation/stats.py", (
        "tests/evaluation/test_stats_stratified.py",
        "tests/evaluation/test_stats_known_values.py",
    )),
    Target("bundle", "agents/bundle.py", (
        "tests/agents/test_bundle_trust.py",
        "tests/reliability/test_atomic_writes.py::test_bundle_swap_failure_restores_previous_bundle",
        "tests/reliability/test_atomic_writes.py::test_bundle_lost_mid_swap_is_named_in_the_error",
    )),
    Target("env-step-reward", "envs/rebalance.py", (
        "tests/envs/test_env_contract.py",
        "tests/envs/test_env.py",
        "tests/controllers/test_mapping_values.py::test_env_weights_follow_the_formula_in_both_forms",
    ), scope=("RebalanceEnv.reset", "RebalanceEnv.step", "RebalanceEnv._potential", "RebalanceEnv._info")),
    Target("seeds", "metacurr/seeds.py", (
        "tests/evaluation/test_seed_streams.py",
        "tests/evaluation/test_specs_seeds_task_sets.py",
    )),
    Target("derive-seeds", "metacurr/inner_run.py", (
        "tests/evaluation/test_seed_streams.py",
        "tests/reliability/test_determinism.py",
    ), scope=("derive_seeds",)),
)

_SCIPY_AXIS = "scipy.stats.bootstrap (and the point estimate) always pass axis=-1: the default is never used"
_DURABLE = "durability only (data reaches the disk before the rename): no test short of a power cut observes it"
_TIE = "at |delta| == max_step the scale factor is max_step / |delta| = 1: the same step either way"

#: Survivors judged equivalent (same behaviour for every input the code can receive) or unobservable by a
#: test (fsync: durability across a power cut), keyed by
#: (target, enclosing function, original code, mutated code, n-th such mutant in the function), with the reason.
EQUIVALENT: dict[tuple[str, str, str, str, int], str] = {
    ("mapping", "WeightMapping.smooth", "biggest > self.max_step", "biggest >= self.max_step", 1): _TIE,
    ("mapping", "sanitize_action", "1", "2", 1): "reshape(-2) = reshape(-1): numpy reads any negative size as 'the rest'",
    ("mapping-batched", "map_weights", "biggest > mapping.max_step", "biggest >= mapping.max_step", 1): _TIE,
    ("mapping-batched", "map_weights", "1.0", "2.0", 1): "nan_to_num(posinf=2.0) is clipped to 1.0 on the same line",
    ("mapping-batched", "map_weights", "1.0", "2.0", 2): "nan_to_num(neginf=-2.0) is clipped to -1.0 on the same line",
    ("mapping-batched", "normalize_rows", "1.0", "2.0", 1):
        "the divisor of a degenerate row; the next line overwrites that row with uniform weights",
    ("stats", "_concat_stat.stat", "1", "2", 1): _SCIPY_AXIS,
    ("stats", "_concat_stat.stat", "-1", "1", 1): _SCIPY_AXIS,
    ("stats", "probability_of_improvement.stat", "1", "2", 1): _SCIPY_AXIS,
    ("stats", "probability_of_improvement.stat", "-1", "1", 1): _SCIPY_AXIS,
    ("env-step-reward", "RebalanceEnv.step", "1", "2", 1): "reshape(-2) = reshape(-1): numpy reads any negative size as 'the rest'",
    ("bundle", "sha256", "1", "2", 1): "the read chunk size (2 MiB instead of 1 MiB) does not change the hash",
    ("bundle", "sha256", "20", "21", 1): "the read chunk size (2 MiB instead of 1 MiB) does not change the hash",
    ("bundle", "save_bundle", "_fsync_file(f)", "pass", 1): _DURABLE,
    ("bundle", "save_bundle", "fsync_dir(tmp)", "pass", 1): _DURABLE,
    ("bundle", "save_bundle", "fsync_dir(path.parent)", "pass", 1): _DURABLE,
    ("bundle", "_fsync_file", "os.fsync(fd)", "pass", 1): _DURABLE,
    ("bundle", "_fsync_file", "os.close(fd)", "pass", 1): "a leaked read-only descriptor of a closed file; nothing reads it",
    ("bundle", "save_bundle", "2", "3", 1): "the manifest's JSON indentation: the same JSON",
    ("bundle", "save_bundle", "True", "False", 3): "the manifest's key order (sort_keys): the same JSON",
    ("bundle", "save_bundle", "True", "False", 4):
        "rmtree of the temp folder on the failure path: it fails only if another process removes it first",
    ("bundle", "save_bundle", "True", "False", 5):
        "rmtree of the folder this call just renamed aside: it fails only if another process removes it first",
    ("seeds", "eval_seeds", "check_eval_seeds(seeds)", "pass", 1):
        "a defensive re-check: n > 0 and offset >= 0 are checked above, so the seeds are always >= EVAL_SEED_BASE",
    ("derive-seeds", "derive_seeds", "4", "5", 1):
        "SeedSequence.spawn(5)'s first four children are spawn(4)'s; zip keeps four",
    ("derive-seeds", "derive_seeds", "1", "2", 1):
        "generate_state(2)[0] is generate_state(1)[0]: the first word of a SeedSequence's state does not depend on n",
    ("env-step-reward", "RebalanceEnv.reset", "self.obs_spec.check_stages(spec.n_stages)", "pass", 1):
        "ObservationSpec.build runs the same check before reset returns: the same ConfigError",
    ("stats", "normalize_scores", "span > 0", "span >= 0", 1):
        "a zero span gives 0 / 0 = NaN either way, and NaN becomes 0.5 on the same line",
}

PRELOAD = ("numpy", "torch", "scipy.stats", "pandas", "gymnasium", "stable_baselines3", "yaml", "pytest", "hypothesis",
           "sklearn.datasets", "matplotlib")

# --------------------------------------------------------------------------------------------- mutants

_BINOP_SWAPS = {
    ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Div], ast.Div: [ast.Mult],
    ast.FloorDiv: [ast.Div], ast.Mod: [ast.Div], ast.Pow: [ast.Mult],
    ast.BitAnd: [ast.BitOr], ast.BitOr: [ast.BitAnd],
}
_CMP_SWAPS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}
_NAME_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}


@dataclass
class Mutant:
    target: str
    index: int
    line: int
    where: str
    before: str
    after: str
    nth: int = 1
    """1 for the first mutant with this (function, before, after) in the function, 2 for the second, ..."""

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.target, self.where, self.before, self.after, self.nth)

    def describe(self) -> str:
        nth = f" (#{self.nth} of its kind here)" if self.nth > 1 else ""
        return f"{self.target}:{self.line} in {self.where or '<module>'}: `{self.before}` -> `{self.after}`{nth}"


class _Mutator(ast.NodeTransformer):
    """Walks a module in a fixed order; mutation site number ``pick`` is applied (None: only count)."""

    def __init__(self, scope: tuple[str, ...], pick: int | None = None):
        self.scope = scope
        self.pick = pick
        self.count = 0
        self.stack: list[str] = []
        self.sites: list[tuple[int, str, str, str]] = []  # (line, where, before, after)

    # -- bookkeeping
    def _where(self) -> str:
        return ".".join(self.stack)

    def _in_scope(self) -> bool:
        if not self.scope:
            return True
        w = self._where()
        return any(w == s or w.startswith(s + ".") for s in self.scope)

    def _offer(self, node: ast.AST, alternatives: list[ast.AST]) -> ast.AST:
        if not self._in_scope():
            return node
        out = node
        for alt in alternatives:
            ast.copy_location(alt, node)
            ast.fix_missing_locations(alt)
            before, after = _src(node), _src(alt)
            self.sites.append((getattr(node, "lineno", 0), self._where(), before, after))
            if self.count == self.pick:
                out = alt
            self.count += 1
        return out

    # -- structure: docstrings, annotations, raise messages and f-strings are not mutated
    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        start = 1 if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str) else 0
        out = body[:start]
        for stmt in body[start:]:
            new = self.visit(stmt)
            out.extend(new if isinstance(new, list) else [new])
        return out

    def visit_Module(self, node):
        node.body = self._body(node.body)
        return node

    def _visit_def(self, node):
        self.stack.append(node.name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.args.defaults = [self.visit(d) for d in node.args.defaults]
            node.args.kw_defaults = [self.visit(d) if d is not None else None for d in node.args.kw_defaults]
        node.body = self._body(node.body)
        self.stack.pop()
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_def

    def visit_Raise(self, node):
        return node

    def visit_JoinedStr(self, node):
        return node

    def visit_AnnAssign(self, node):
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_Import(self, node):
        return node

    visit_ImportFrom = visit_Import

    # -- statements
    def visit_Expr(self, node):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return node  # an attribute docstring
        self.generic_visit(node)
        if isinstance(node.value, ast.Call):
            return self._offer(node, [ast.Pass()])
        return node

    def visit_Assign(self, node):
        self.generic_visit(node)
        if all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets):
            return self._offer(node, [ast.Pass()])
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        alts = [ast.AugAssign(target=copy.deepcopy(node.target), op=op(), value=copy.deepcopy(node.value))
                for op in _BINOP_SWAPS.get(type(node.op), [])]
        return self._offer(node, alts + [ast.Pass()])

    # -- expressions
    def visit_BinOp(self, node):
        self.generic_visit(node)
        alts = [ast.BinOp(left=copy.deepcopy(node.left), op=op(), right=copy.deepcopy(node.right))
                for op in _BINOP_SWAPS.get(type(node.op), [])]
        if isinstance(node.op, ast.Mult):  # a factor removed (e.g. the smoothing factor)
            alts += [copy.deepcopy(node.left), copy.deepcopy(node.right)]
        return self._offer(node, alts)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, (ast.USub, ast.Not, ast.Invert)):
            return self._offer(node, [copy.deepcopy(node.operand)])
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        return self._offer(node, [ast.BoolOp(op=other(), values=copy.deepcopy(node.values))])

    def visit_Compare(self, node):
        self.generic_visit(node)
        alts = []
        for i, op in enumerate(node.ops):
            if type(op) in _CMP_SWAPS:
                ops = [copy.deepcopy(o) for o in node.ops]
                ops[i] = _CMP_SWAPS[type(op)]()
                alts.append(ast.Compare(left=copy.deepcopy(node.left), ops=ops, comparators=copy.deepcopy(node.comparators)))
        return self._offer(node, alts)

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        if name in _NAME_SWAPS:
            new = copy.deepcopy(node)
            if isinstance(new.func, ast.Name):
                new.func.id = _NAME_SWAPS[name]
            else:
                new.func.attr = _NAME_SWAPS[name]
            return self._offer(node, [new])
        return node

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            return self._offer(node, [ast.Constant(not v)])
        if isinstance(v, (int, float)):
            return self._offer(node, [ast.Constant(v + 1)])
        if isinstance(v, str):
            return self._offer(node, [ast.Constant(f"XX{v}XX")])
        return node


def _src(node: ast.AST) -> str:
    text = ast.unparse(node) if not isinstance(node, ast.Pass) else "pass"
    text = " ".join(text.split())
    return text if len(text) <= 90 else text[:87] + "..."


def mutants(target: Target) -> list[Mutant]:
    tree = ast.parse((REPO / target.path).read_text(), filename=target.path)
    m = _Mutator(target.scope)
    m.visit(tree)
    seen: dict[tuple[str, str, str], int] = {}
    out = []
    for i, (line, where, b, a) in enumerate(m.sites):
        seen[(where, b, a)] = seen.get((where, b, a), 0) + 1
        out.append(Mutant(target.name, i, line, where, b, a, seen[(where, b, a)]))
    return out


def mutated_code(target: Target, index: int):
    path = REPO / target.path
    tree = ast.parse(path.read_text(), filename=str(path))
    m = _Mutator(target.scope, pick=index)
    tree = ast.fix_missing_locations(m.visit(tree))
    return compile(tree, str(path), "exec", dont_inherit=True)


# ------------------------------------------------------------------------------------------ the hook

_SITECUSTOMIZE = '''
import os, sys
if os.environ.get("METACURR_MUTANT_CODE"):
    sys.path.insert(0, {here!r})
    import mutation_hook
    mutation_hook.install(os.environ["METACURR_MUTANT_MODULE"], os.environ["METACURR_MUTANT_CODE"])
'''

_HOOK = '''
import importlib.abc, importlib.util, marshal, sys

class _Loader(importlib.abc.Loader):
    def __init__(self, code):
        self.code = code
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        exec(self.code, module.__dict__)

class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, name, code_file):
        self.name, self.code_file = name, code_file
    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        with open(self.code_file, "rb") as f:
            code = marshal.load(f)
        return importlib.util.spec_from_loader(fullname, _Loader(code), origin=code.co_filename)

def install(name, code_file):
    sys.meta_path.insert(0, _Finder(name, code_file))
'''


def _hook_dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="metacurr-mutation-"))
    (d / "mutation_hook.py").write_text(_HOOK)
    (d / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(here=str(d)))
    return d


# ---------------------------------------------------------------------------------------------- runs


def _pytest_args(target: Target, tests_root: Path) -> list[str]:
    files = [t for t in target.tests if (tests_root / t.split("::")[0]).exists()]
    return files + ["-x", "-q", "-p", "no:cacheprovider", "-m", "not expensive", "-o", "addopts=",
                    "--no-header", "-W", "ignore"]


def _start(args: list[str], env: dict, cwd: Path, log: Path) -> int:
    """Fork a child that runs pytest.main(args) in ``cwd`` with ``env``; return its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:  # the child
        os.setpgid(0, 0)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(cwd)
        os.environ.update(env)
        sys.path.insert(0, env["PYTHONPATH"].split(os.pathsep)[0])
        if env.get("METACURR_MUTANT_CODE"):
            import mutation_hook

            mutation_hook.install(env["METACURR_MUTANT_MODULE"], env["METACURR_MUTANT_CODE"])
        import pytest

        code = pytest.main(args)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    except BaseException:
        os._exit(99)


def _reap(pid: int, deadline: float) -> tuple[int | None, bool]:
    """Wait for ``pid`` until ``deadline``; kill its process group past it. Returns (exit code, timed out)."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return None, True
        time.sleep(0.05)


def _env(hook: Path, module: str = "", code_file: str = "") -> dict:
    pp = os.pathsep.join([str(hook)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    return {"PYTHONPATH": pp, "METACURR_MUTANT_MODULE": module, "METACURR_MUTANT_CODE": code_file,
            "WANDB_MODE": "disabled", "WANDB_SILENT": "true", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


def run_target(target: Target, tests_root: Path, hook: Path, jobs: int, work: Path, sample: int = 1,
               indices: set[int] | None = None, log=print) -> dict:
    args = _pytest_args(target, tests_root)
    t0 = time.monotonic()
    pid = _start(args, _env(hook), tests_root, work / f"{target.name}-baseline.log")
    code, _ = _reap(pid, t0 + 1800)
    base = time.monotonic() - t0
    if code != 0:
        raise RuntimeError(f"{target.name}: the tests fail without any mutation (see {work / (target.name + '-baseline.log')})")
    limit = 3 * base + 30
    log(f"# {target.name}: {target.module} ({target.path}{', ' + ', '.join(target.scope) if target.scope else ''}); "
        f"tests {' '.join(a for a in args if a.startswith('tests/'))}; baseline {base:.1f} s, limit {limit:.0f} s")
    todo = [m for m in mutants(target)[::sample] if indices is None or m.index in indices]
    results: dict[int, str] = {}
    running: dict[int, tuple[Mutant, float]] = {}
    queue = list(todo)
    while queue or running:
        while queue and len(running) < jobs:
            m = queue.pop(0)
            code_file = work / f"{target.name}-{m.index}.code"
            with open(code_file, "wb") as f:
                marshal.dump(mutated_code(target, m.index), f)
            pid = _start(args, _env(hook, target.module, str(code_file)), tests_root, work / f"{target.name}-{m.index}.log")
            running[pid] = (m, time.monotonic() + limit)
        for pid, (m, deadline) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                verdict = "survived" if code == 0 else "killed" if code == 1 else "killed (error)" if code in (2, 3, 4, 99) \
                    else "survived (no tests)" if code == 5 else f"killed (exit {code})"
            elif time.monotonic() > deadline:
                _reap(pid, 0)
                verdict = "killed (timeout)"
            else:
                continue
            del running[pid]
            results[m.index] = verdict
            if verdict.startswith("survived"):
                note = EQUIVALENT.get(m.key)
                log(f"  SURVIVED {m.describe()}" + (f"  [equivalent: {note}]" if note else ""))
        time.sleep(0.05)
    killed = sum(v.startswith("killed") for v in results.values())
    equivalent = [m for m in todo if results[m.index].startswith("survived") and m.key in EQUIVALENT]
    n = len(todo)
    out = {
        "target": target.name, "module": target.module, "path": target.path, "scope": list(target.scope),
        "tests": [a for a in args if a.startswith("tests/")], "baseline_s": round(base, 1),
        "sample": sample, "mutants": n, "killed": killed, "equivalent": len(equivalent),
        "kill_rate": killed / n if n else float("nan"),
        "kill_rate_excl_equivalent": killed / (n - len(equivalent)) if n > len(equivalent) else float("nan"),
        "wall_s": round(time.monotonic() - t0, 1),
        "survivors": [{**m.__dict__, "verdict": results[m.index], "equivalent": EQUIVALENT.get(m.key)}
                      for m in todo if results[m.index].startswith("survived")],
        "timeouts": [m.describe() for m in todo if results[m.index] == "killed (timeout)"],
    }
    log(f"  {target.name}: {killed}/{n} killed ({100 * out['kill_rate']:.1f}%), {len(equivalent)} survivors judged "
        f"equivalent -> {100 * out['kill_rate_excl_equivalent']:.1f}% of the rest; {out['wall_s']:.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma-separated target names (default: all): "
                   + ", ".join(t.name for t in TARGETS))
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("-j", "--jobs", type=int, default=1, help="mutants run at once (default 1)")
    p.add_argument("--tests-root", type=Path, default=REPO, help="folder holding the tests/ to run (default: this repo)")
    p.add_argument("--sample", type=int, default=1, help="run every K-th mutant only (a quick estimate; default 1 = all)")
    p.add_argument("--index", default="", help="comma-separated mutant numbers (as --list counts them) to run only those")
    p.add_argument("--json", type=Path, help="write the results here")
    a = p.parse_args(argv)
    names = [n for n in a.only.split(",") if n]
    unknown = [n for n in names if n not in {t.name for t in TARGETS}]
    if unknown:
        p.error(f"unknown target {unknown[0]!r}; valid choices: {', '.join(t.name for t in TARGETS)}")
    targets = [t for t in TARGETS if not names or t.name in names]
    if a.list:
        for t in targets:
            for m in mutants(t):
                print(f"#{m.index} {m.describe()}")
        return 0
    for mod in PRELOAD:
        __import__(mod)
    hook = _hook_dir()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# metacurr mutation testing, {started}; {os.cpu_count()} CPUs; library at {rev}; tests from {a.tests_root}"
          + (f"; every {a.sample}th mutant" if a.sample > 1 else "") + f"; logs in {hook}")
    report = []
    for t in targets:
        indices = {int(i) for i in a.index.split(",") if i} or None
        report.append(run_target(t, a.tests_root.resolve(), hook, a.jobs, hook, a.sample, indices, log=lambda s: print(s, flush=True)))
    print("\n| module | mutants | killed | kill rate | judged equivalent | kill rate of the rest |")
    print("|---|---|---|---|---|---|")
    for r in report:
        print(f"| {r['target']} ({r['path']}) | {r['mutants']} | {r['killed']} | {100 * r['kill_rate']:.1f}% | "
              f"{r['equivalent']} | {100 * r['kill_rate_excl_equivalent']:.1f}% |")
    if a.json:
        a.json.write_text(json.dumps({"started": started, "revision": rev, "tests_root": str(a.tests_root),
                                      "cpus": os.cpu_count(), "results": report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
