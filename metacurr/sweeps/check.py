"""Check a sweep before any trial runs: its target exists and its parameters make valid configs."""

from __future__ import annotations

from metacurr.sweeps.overrides import apply_params
from metacurr.sweeps.sampling import grid_points, random_points
from metacurr.sweeps.spec import SweepSpec
from metacurr.sweeps.targets import check_config, check_metric, check_target


def check_sweep(spec: SweepSpec, seed: int = 0) -> list[str]:
    """Validate the target and the configs the sweep will produce.

    Checks the first point (first grid point, or the first random draw) and, for each categorical
    parameter, every one of its values on top of that point -- so an unknown parameter name or a bad
    categorical value fails here, in one line, instead of in every trial.

    Returns:
        Notices (none at present: every target's config is checked up front).

    Raises:
        ConfigError: unknown target, missing base config, invalid parameter name or value.
    """
    cmd = spec.command
    check_target(cmd.target)
    check_metric(cmd.target, spec.metric_name)  # a typo would otherwise surface after the first trial ran
    base = cmd.base_config()
    first = grid_points(spec.params)[0] if spec.method == "grid" else random_points(spec.params, 1, seed)[0]
    check_config(cmd.target, apply_params(base, first))
    for ps in spec.params:
        if ps.distribution != "categorical":
            continue
        for v in ps.choices():
            if v != first[ps.name]:
                check_config(cmd.target, apply_params(base, {**first, ps.name: v}))
    return []
