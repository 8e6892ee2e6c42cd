"""`metacurr.sweep`: a W&B sweep file run on this machine, offline and resumable.

The library call behind ``metacurr sweep FILE --local``. Registering a sweep with W&B for agents on other
machines is `metacurr.sweeps.create_sweep`; one trial on its own is `metacurr.sweeps.run_trial`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from metacurr.errors import ConfigError
from metacurr.io import OutputFolder
from metacurr.sweeps.check import check_sweep
from metacurr.sweeps.local import LocalSweepReport, check_backend, run_local_sweep
from metacurr.sweeps.spec import SweepSpec, load_sweep
from metacurr.sweeps.trial import TrialResult
from metacurr.validation import check_out_dir

#: Where a local sweep goes when no folder is given: DEFAULT_SWEEP_ROOT / <sweep name>.
DEFAULT_SWEEP_ROOT = Path("runs") / "sweeps"


def sweep(
    spec: str | Path | SweepSpec,
    *,
    out: str | Path | None = None,
    workers: int = 1,
    count: int | None = None,
    seed: int = 0,
    source: str | None = None,
    on_start: Callable[[str, int, int, list[str]], None] | None = None,
    on_result: Callable[[TrialResult], None] | None = None,
    backend: str = "pool",
    address: str | None = None,
) -> LocalSweepReport:
    """Run a sweep's trials (grid / random; bayes runs as random search) here, ``workers`` at a time.

    Args:
        spec: a W&B sweep YAML path (see ``experiments/sweeps/``) or a loaded `SweepSpec`.
        out: the sweep folder (default ``runs/sweeps/<sweep name>``); rerun with it to resume.
        workers: worker processes of the process pool, one torch thread each (not used by ``backend="ray"``).
        count: at most this many trials (random: the number of draws; default the file's ``run_cap``).
        seed: seed of the random draws (same seed -> same trials).
        source: the sweep file's path recorded in ``sweep.json`` (default: ``spec`` when it is a path).
        on_start: called once the plan is known: (method used, number of trials, number already
            finished, notices).
        on_result: called with each trial as it finishes (and each resumed one).
        backend: ``"pool"`` (this machine, ``workers`` processes) or ``"ray"`` (one Ray task per trial:
            `metacurr.sweeps.local`).
        address: with ``backend="ray"``, a running Ray cluster to join (default: a local Ray instance).

    Returns:
        A `LocalSweepReport` (trials best first; ``out/results.csv`` holds the same table); its
        ``notices`` include those of the up-front check.

    Raises:
        ConfigError: a bad sweep file, trial config or ``metric.name`` (checked before any trial runs),
            ``out`` is not a writable folder, an unknown backend or Ray not installed.
        OSError: a failed write (full disk), after removing what this call added (finished trials stay).
    """
    check_backend(backend, address)
    if not isinstance(spec, SweepSpec):
        source = source or str(spec)
        spec = load_sweep(spec)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    notices = check_sweep(spec, seed=seed)
    out = check_out_dir(out if out is not None else DEFAULT_SWEEP_ROOT / spec.name)  # the CLI's line too

    def started(method: str, n: int, resumed: int, plan_notices: list[str]) -> None:
        if on_start is not None:
            on_start(method, n, resumed, notices + plan_notices)

    with OutputFolder(out):  # a failed write (full disk) removes what this call added; finished trials stay
        report = run_local_sweep(spec, out, workers=workers, count=count, seed=seed, source=source,
                                 on_start=started, on_result=on_result, backend=backend, address=address)
    report.notices = notices + report.notices
    return report
