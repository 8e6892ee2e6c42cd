"""Evaluation: controllers x held-out tasks x seeds, statistics and reports (`metacurr.evaluate`).

- `pipeline`: `evaluate()`, plan -> execute -> collect -> report, returning an `EvaluationResult`.
- `plan`, `execute`, `executors`, `collect`: the steps; `executors` is the seam where a backend
  (this process, a process pool, or any ``concurrent.futures.Executor``) runs the cells.
- `best_static_search`: the grid search that chooses best-static's weights on training seeds.
- `task_sets`: named held-out task sets (plain dicts).
- `specs`: controller variants from ``--controllers`` and ablation YAML.
- `incremental`: stages arriving in rounds; churn and forgetting.
- `masking`: masked / open-loop controllers (ablations).
- `stats`: IQM, bootstrap CIs, probability of improvement.
- `report`, `figures`: report.md and plots.
"""
