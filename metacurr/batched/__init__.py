"""The batched engine: N inner training runs stepped as stacked torch programs (no Gymnasium here).

By job:

* `metacurr.batched.engine`: `BatchedEngine` (start, restart, step N runs; their states as arrays) and
  the group key that decides which runs can be stacked (its docstring says how mixed-architecture,
  mixed-stage-count workers would hold one group per key);
* `metacurr.batched.group`: `RunGroup`, one stacked torch program (parameters, optimiser, batches,
  probes) and `RunState`, one run's training bookkeeping;
* `metacurr.batched.forwards`: the forward passes of N stacked models;
* `metacurr.batched.compiled`: the ``torch.compile`` path of the inner step and the probe pass;
* `metacurr.batched.prefetch`: curricula built ahead in a background thread.

The optimiser is `metacurr.optim.StackedOptimizer`, the weight mapping `metacurr.weights`, the probe
indicators `metacurr.monitors.learning_monitor.probe_indicators` and the per-run seeding recipe
`metacurr.inner_run.seeded_parts`: the single-run pieces' maths. `metacurr.envs.batched` is the
Gymnasium / SB3 vector env over the engine.
"""

from metacurr.batched.engine import BatchedEngine, default_threads, group_key
from metacurr.batched.group import RunGroup, RunState
from metacurr.batched.prefetch import CurriculumPrefetch

__all__ = ["BatchedEngine", "CurriculumPrefetch", "RunGroup", "RunState", "default_threads", "group_key"]
