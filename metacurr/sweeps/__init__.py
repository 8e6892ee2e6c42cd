"""Sweeps from W&B sweep YAML files: locally in a process pool (offline, resumable) or with W&B agents.

``load_sweep(path)`` reads and checks a file, ``check_sweep(spec)`` validates the configs it will
produce, ``run_local_sweep(spec, out, workers=N)`` runs grid / random sweeps here,
``create_sweep(spec)`` / ``run_agent(ref)`` use W&B's controller, and ``run_trial`` is the one
trial function all of them share. See ``experiments/sweeps/README.md``.
"""

from metacurr.sweeps.check import check_sweep
from metacurr.sweeps.local import LocalSweepReport, results_table, run_local_sweep
from metacurr.sweeps.online import create_sweep, parse_sweep_ref, run_agent
from metacurr.sweeps.overrides import apply_params, parse_param_tokens, set_dotted
from metacurr.sweeps.sampling import grid_points, plan, random_points
from metacurr.sweeps.spec import ParamSpec, SweepSpec, TrialCommand, load_sweep, parse_sweep
from metacurr.sweeps.trial import TrialResult, load_trial, read_metric, run_id, run_trial

__all__ = [
    "SweepSpec", "ParamSpec", "TrialCommand", "TrialResult", "LocalSweepReport",
    "load_sweep", "parse_sweep", "check_sweep", "plan", "grid_points", "random_points",
    "run_local_sweep", "results_table", "create_sweep", "run_agent", "parse_sweep_ref",
    "run_trial", "run_id", "load_trial", "read_metric", "apply_params", "set_dotted", "parse_param_tokens",
]
