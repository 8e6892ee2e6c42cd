"""A W&B sweep file, read and checked: method, metric, parameters and the metacurr command it runs.

The file is W&B's own sweep YAML, sent unchanged to ``wandb.sweep``. metacurr reads one convention
from it: ``command`` runs ``metacurr sweep-run TARGET MACRO [--config BASE.yaml] [--out-root DIR]``,
where TARGET is the metacurr subcommand being swept (``train``, ``train-agent``), BASE.yaml the
config the parameters override (dotted names: ``ppo.learning_rate``) and MACRO how W&B hands over
the parameters (``${args_json}``; ``${args_json_file}`` and ``${args_no_hyphens}`` work too)::

    program: metacurr
    command: ["${env}", "${program}", sweep-run, train, --config, experiments/sweeps/base/heuristic.yaml, "${args_json}"]

Paths in ``command`` are relative to the folder the agent runs in, as for any W&B sweep.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metacurr.config import load_yaml
from metacurr.errors import ConfigError, choices_error

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
#: Top-level keys of a W&B sweep config (anything else is most likely a typo).
TOP_LEVEL_KEYS = (
    "program", "command", "method", "metric", "parameters", "name", "description", "project", "entity",
    "early_terminate", "run_cap", "job", "image_uri", "controller", "scheduler",
)
#: W&B distributions run locally -> the fields each needs.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "categorical": ("values",),
    "int_uniform": ("min", "max"),
    "uniform": ("min", "max"),
    "q_uniform": ("min", "max"),
    "log_uniform": ("min", "max"),
    "log_uniform_values": ("min", "max"),
    "q_log_uniform": ("min", "max"),
    "q_log_uniform_values": ("min", "max"),
    "normal": ("mu", "sigma"),
    "q_normal": ("mu", "sigma"),
    "log_normal": ("mu", "sigma"),
    "q_log_normal": ("mu", "sigma"),
    "beta": ("a", "b"),
    "q_beta": ("a", "b"),
}
PARAM_KEYS = ("value", "values", "probabilities", "distribution", "min", "max", "mu", "sigma", "q", "a", "b",
              "parameters")
#: Macros of W&B's ``command`` that hand the parameters to ``metacurr sweep-run``.
PARAM_MACROS = ("${args_json}", "${args_json_file}", "${args_no_hyphens}")
TRIAL_ENTRY = "sweep-run"


@dataclass(frozen=True)
class ParamSpec:
    """One swept parameter: a dotted config key and its W&B distribution."""

    name: str
    distribution: str
    fields: dict = field(default_factory=dict)
    """The distribution's fields (value, values, probabilities, min, max, mu, sigma, q, a, b)."""

    @property
    def categorical(self) -> bool:
        return self.distribution in ("constant", "categorical")

    def choices(self) -> list:
        """The values of a categorical / constant parameter."""
        return [self.fields["value"]] if self.distribution == "constant" else list(self.fields["values"])


@dataclass(frozen=True)
class TrialCommand:
    """What one trial runs: ``metacurr TARGET --config <BASE + params> --out <run folder>``."""

    target: str
    """The metacurr subcommand (``train``, ``train-agent``, ...)."""
    config: str | None = None
    """Base config YAML the parameters override (None: the target's defaults)."""
    out_root: str | None = None
    """Root of the trial folders when run by ``wandb agent`` (default ``runs/sweeps``)."""

    def base_config(self) -> dict:
        """The base config mapping (``{}`` without one).

        Raises:
            ConfigError: the file is missing or malformed.
        """
        if self.config is None:
            return {}
        if not Path(self.config).is_file():
            raise ConfigError(
                f"base config {self.config} not found (paths in a sweep's command are relative to the folder "
                "the sweep runs in: run it from the repository root)"
            )
        return load_yaml(self.config)


@dataclass(frozen=True)
class SweepSpec:
    """A parsed W&B sweep config."""

    name: str
    method: str
    metric: dict | None
    """``{"name": summary key, "goal": minimize|maximize}`` or None."""
    params: tuple[ParamSpec, ...]
    command: TrialCommand
    run_cap: int | None
    raw: dict
    """The mapping as read: what ``wandb.sweep`` receives."""

    @property
    def metric_name(self) -> str | None:
        return self.metric["name"] if self.metric else None

    @property
    def goal(self) -> str:
        return self.metric.get("goal", "minimize") if self.metric else "minimize"

    def fingerprint(self) -> str:
        """Hash of what decides the trials' results (parameters, command, base config contents)."""
        try:  # parsed, so an edited comment does not make it another sweep
            base = self.command.base_config()
        except ConfigError:
            base = None
        blob = json.dumps(
            {"method": self.method, "metric": self.metric, "parameters": self.raw.get("parameters"),
             "command": [str(c) for c in self.raw.get("command", [])], "base": base},
            sort_keys=True, default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep YAML file (syntax, method, metric, parameters, command).

    The target command's own config check is separate: `metacurr.sweeps.targets.check_target`.

    Raises:
        ConfigError: one line naming the problem.
    """
    p = Path(path)
    data = load_yaml(p)
    return parse_sweep(data, default_name=p.stem, where=str(p))


def parse_sweep(data: dict, default_name: str = "sweep", where: str = "sweep") -> SweepSpec:
    """Check a sweep config mapping (as from YAML or ``wandb.Api().sweep(...).config``).

    Raises:
        ConfigError: one line naming the problem.
    """
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{where}: empty sweep config; it needs method, parameters and command")
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown sweep key {unknown[0]!r}; valid choices: {', '.join(TOP_LEVEL_KEYS)}")
    method = data.get("method")
    if method is None:
        raise ConfigError(f"{where}: missing method; valid choices: {', '.join(METHODS)}")
    if method not in METHODS:
        raise choices_error("sweep method", method, METHODS)
    metric = _metric(data.get("metric"), where)
    if method == "bayes" and metric is None:
        raise ConfigError(f"{where}: a bayes sweep needs metric: {{name: ..., goal: minimize|maximize}}")
    params = tuple(_params(data.get("parameters"), where))
    if method == "grid":
        for ps in params:
            if not ps.categorical:
                raise ConfigError(
                    f"{where}: grid sweeps take value/values parameters only; {ps.name!r} has distribution "
                    f"{ps.distribution}"
                )
    run_cap = data.get("run_cap")
    if run_cap is not None and (isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap <= 0):
        raise ConfigError(f"{where}: run_cap must be a positive integer, got {run_cap!r}")
    command = parse_command(data.get("command"), data.get("program"), where)
    name = data.get("name") or default_name
    return SweepSpec(str(name), method, metric, params, command, run_cap, dict(data))


def _metric(m: Any, where: str) -> dict | None:
    if m is None:
        return None
    if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
        raise ConfigError(f"{where}: metric must be a mapping {{name: ..., goal: minimize|maximize}}, got {m!r}")
    goal = m.get("goal", "minimize")
    if goal not in GOALS:
        raise choices_error("metric goal", goal, GOALS)
    extra = [k for k in m if k not in ("name", "goal", "target")]
    if extra:
        raise ConfigError(f"{where}: unknown metric key {extra[0]!r}; valid choices: name, goal, target")
    return {"name": m["name"], "goal": goal}


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _params(params: Any, where: str, prefix: str = "") -> list[ParamSpec]:
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{where}: parameters must be a non-empty mapping of name -> {{values|value|min/max}}")
    out = []
    for name, spec in params.items():
        full = f"{prefix}{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: parameter {full!r} must be a mapping (value:, values: or min:/max:), got {spec!r}")
        bad = [k for k in spec if k not in PARAM_KEYS]
        if bad:
            raise ConfigError(f"{where}: parameter {full!r}: unknown key {bad[0]!r}; valid choices: {', '.join(PARAM_KEYS)}")
        if "parameters" in spec:  # W&B's nested form == dotted names
            out.extend(_params(spec["parameters"], where, f"{full}."))
            continue
        out.append(_param(full, spec, where))
    return out


def _param(name: str, spec: dict, where: str) -> ParamSpec:
    dist = spec.get("distribution")
    if dist is None:  # W&B's inference rules
        if "value" in spec:
            dist = "constant"
        elif "values" in spec:
            dist = "categorical"
        elif "min" in spec and "max" in spec:
            dist = "int_uniform" if all(isinstance(spec[k], int) and not isinstance(spec[k], bool)
                                        for k in ("min", "max")) else "uniform"
        else:
            raise ConfigError(f"{where}: parameter {name!r} needs value:, values: or min:/max:")
    if dist not in DISTRIBUTIONS:
        raise choices_error(f"distribution of parameter {name!r}:", dist, list(DISTRIBUTIONS))
    fields = {k: v for k, v in spec.items() if k != "distribution"}
    for k in DISTRIBUTIONS[dist]:
        if k not in fields and not (k in ("mu", "sigma") and dist.endswith("normal")):
            raise ConfigError(f"{where}: parameter {name!r} ({dist}) needs {k}:")
    if dist.endswith("normal"):
        fields.setdefault("mu", 0.0)
        fields.setdefault("sigma", 1.0)
    if dist == "categorical":
        vals = fields["values"]
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"{where}: parameter {name!r}: values must be a non-empty list, got {vals!r}")
        probs = fields.get("probabilities")
        if probs is not None and (not isinstance(probs, list) or len(probs) != len(vals)
                                  or not all(_number(x) and x >= 0 for x in probs) or abs(sum(probs) - 1) > 1e-6):
            raise ConfigError(f"{where}: parameter {name!r}: probabilities must be {len(vals)} non-negative numbers summing to 1")
    for k in ("min", "max", "mu", "sigma", "q", "a", "b"):
        if k in fields and not _number(fields[k]):
            raise ConfigError(f"{where}: parameter {name!r}: {k} must be a number, got {fields[k]!r}")
    if "min" in fields and "max" in fields and not fields["min"] < fields["max"]:
        raise ConfigError(f"{where}: parameter {name!r}: min must be < max, got {fields['min']} and {fields['max']}")
    if dist.endswith("log_uniform_values") and fields["min"] <= 0:
        raise ConfigError(f"{where}: parameter {name!r} ({dist}): min must be > 0, got {fields['min']}")
    for k in ("sigma", "q", "a", "b"):
        if k in fields and fields[k] <= 0:
            raise ConfigError(f"{where}: parameter {name!r}: {k} must be > 0, got {fields[k]}")
    return ParamSpec(name, dist, fields)


def parse_command(command: Any, program: Any, where: str = "sweep") -> TrialCommand:
    """Read ``[${env}] (${program}|metacurr) sweep-run TARGET MACRO [--config F] [--out-root D]``.

    Raises:
        ConfigError: the command does not run ``metacurr sweep-run`` with exactly one parameter macro.
    """
    example = f"[${{env}}, ${{program}}, {TRIAL_ENTRY}, train, ${{args_json}}, --config, BASE.yaml] with program: metacurr"
    if not isinstance(command, list) or not command:
        raise ConfigError(f"{where}: command must run metacurr, e.g. command: {example}")
    toks = [str(t) for t in command]
    i = 1 if toks[0] == "${env}" else 0
    head = toks[i:i + 3]
    if head[:1] == ["${program}"]:
        if program != "metacurr":
            raise ConfigError(f"{where}: command uses ${{program}}, so program must be metacurr, got {program!r}")
        i += 1
    elif head[:1] and Path(head[0]).name == "metacurr":
        i += 1
    elif len(head) == 3 and head[1:] == ["-m", "metacurr"]:
        i += 3
    else:
        raise ConfigError(f"{where}: command must run metacurr, e.g. command: {example}")
    if toks[i:i + 1] != [TRIAL_ENTRY]:
        raise ConfigError(f"{where}: command must run `metacurr {TRIAL_ENTRY} TARGET ...`, e.g. command: {example}")
    rest = toks[i + 1:]
    if not rest or rest[0].startswith("-") or rest[0].startswith("${"):
        raise ConfigError(f"{where}: `{TRIAL_ENTRY}` needs the metacurr subcommand to sweep first (train, train-agent)")
    target, rest = rest[0], rest[1:]
    if not rest or rest[0] not in PARAM_MACROS:
        raise ConfigError(
            f"{where}: in command, the parameter macro ({', '.join(PARAM_MACROS)}) must come right after "
            f"`{TRIAL_ENTRY} {target}`, e.g. command: {example}"
        )
    opts: dict[str, str] = {}
    macros = []
    j = 0
    while j < len(rest):
        t = rest[j]
        key, eq, val = t.partition("=")
        if key in ("--config", "--out-root"):
            if not eq:
                if j + 1 >= len(rest):
                    raise ConfigError(f"{where}: {key} in command needs a value")
                val, j = rest[j + 1], j + 1
            opts[key[2:].replace("-", "_")] = val
        elif t in PARAM_MACROS:
            macros.append(t)
        else:
            raise ConfigError(
                f"{where}: unexpected {t!r} in command after `{TRIAL_ENTRY} {target}`; put fixed settings in the base "
                "config or as value: parameters"
            )
        j += 1
    if len(macros) != 1:
        raise ConfigError(f"{where}: command needs exactly one parameter macro ({', '.join(PARAM_MACROS)}), got {len(macros)}")
    return TrialCommand(target, opts.get("config"), opts.get("out_root"))
