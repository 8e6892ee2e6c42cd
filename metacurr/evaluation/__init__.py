"""Evaluation: controllers x held-out tasks x seeds, statistics and reports (``metacurr evaluate``).

- `seeds`: evaluation seeds (>= 10000) kept apart from training seeds, enforced.
- `task_sets`: named held-out task sets (plain dicts).
- `specs`: controller variants from ``--controllers`` and ablation YAML.
- `harness`: the parallel, resumable runner and the results table.
- `incremental`: stages arriving in rounds; churn and forgetting.
- `masking`: masked / open-loop controllers (ablations).
- `metrics`: per-run trajectory metrics; `stats`: IQM, bootstrap CIs, probability of improvement.
- `report`, `figures`: report.md and plots.
"""
