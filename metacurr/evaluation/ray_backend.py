"""Ray as a backend: each evaluation cell (or best-static search candidate, or sweep trial) one Ray task.

``metacurr.evaluate(..., backend="ray")`` / ``metacurr evaluate --backend ray [--address ADDR]``. Without an
address a local Ray instance sized to this machine is started for the call and stopped afterwards; with
one, the driver joins that cluster (``ray start --head`` prints the address). A process already connected
to Ray (the caller ran ``ray.init``) is used as it is and left connected.

Each job is a Ray task declaring ``num_cpus=1`` and running with one torch thread, as a pool worker does.
A worker process that dies mid-job (killed, out of memory, its node lost) is retried by Ray up to
``max_retries`` times; if it dies again, the job's future raises and `metacurr.evaluation.execute` stores
the cell as failed with that error, marked so that a rerun runs it again.

What travels where, and why:

* Payloads (a few KB of JSON per job) go out with the task; results come back through Ray's object store.
  Only the driver writes into the run folder, with the same atomic writes as for the process pool, so
  resume and skip-finished behave identically and the run folder need not be visible to the workers.
* Data sets never travel: every task family is generated from its spec and seed (or ships inside an
  installed package), so a cell builds its curriculum where it runs, as a pool worker does.
* Policy bundles (``policy:PATH``) are read once by the driver, put into the object store and unpacked once
  per node into a local cache, so workers need neither a shared file system nor the driver's working
  directory (a relative PATH means the driver's). ``policy:default`` ships with the package.

Every node runs metacurr from its own Python environment: the cluster's nodes need the same metacurr and
torch installed (Ray does not ship the package). The driver's ``METACURR_*`` and ``WANDB_*`` environment
variables are set in the workers, as pool workers inherit them.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from metacurr.errors import ConfigError

#: The one line shown when Ray is missing.
RAY_MISSING = 'the Ray backend needs Ray: pip install "metacurr[ray]"'
#: Backends by name (``backend=`` of `metacurr.evaluate`, ``--backend`` of the CLI).
BACKENDS = ("pool", "ray")
#: Node-local cache of unpacked policy bundles, one folder per bundle digest.
BUNDLE_CACHE = Path(tempfile.gettempdir()) / "metacurr-ray-bundles"

#: Environment variables (by prefix) the workers get from the driver.
FORWARDED_ENV = ("METACURR_", "WANDB_")

_POLICY = "policy:"
_ready: set[str] = set()  # worker setups already run in this worker process


def import_ray():
    """The ``ray`` module, or a `ConfigError` naming the extra that installs it."""
    try:
        import ray  # optional extra: imported only when the Ray backend is asked for
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def _setup_worker(setup: Callable[[], None] | None) -> None:
    """Once per worker process: one torch thread, no warnings, then the caller's own setup."""
    key = "" if setup is None else f"{setup.__module__}.{setup.__qualname__}"
    if key in _ready:
        return
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    if setup is not None:
        setup()
    _ready.add(key)


def _unpack(digest: str, ref) -> str:
    """The local folder of a shipped bundle (unpacked on first use on this node)."""
    dest = BUNDLE_CACHE / digest
    if not dest.is_dir():
        import ray  # optional extra: imported only when the Ray backend is asked for

        BUNDLE_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=BUNDLE_CACHE))
        with tarfile.open(fileobj=io.BytesIO(ray.get(ref)), mode="r") as tar:
            try:
                tar.extractall(tmp, filter="data")
            except TypeError:  # Python without extraction filters; the archive is our own (_pack)
                tar.extractall(tmp)  # noqa: S202
        try:
            os.replace(tmp, dest)  # atomic: concurrent workers on one node see a whole bundle or none
        except OSError:  # another worker got there first
            shutil.rmtree(tmp, ignore_errors=True)
    return str(dest)


def _swap(value: Any, table: dict[str, str]) -> Any:
    """``value`` with every string found in ``table`` replaced (recursively through dicts and lists)."""
    if isinstance(value, str):
        return table.get(value, value)
    if isinstance(value, dict):
        return {k: _swap(v, table) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_swap(v, table) for v in value)
    return value


def run_job(fn: Callable, setup: Callable[[], None] | None, bundles: dict, args: tuple, kwargs: dict) -> Any:
    """The body of every Ray task: set the worker up, point ``policy:`` references at local copies of
    the shipped bundles, run ``fn`` and give the references back their original text in the result."""
    _setup_worker(setup)
    if not bundles:
        return fn(*args, **kwargs)
    local = {ref_text: _POLICY + _unpack(digest, obj) for ref_text, (digest, obj) in bundles.items()}
    back = {v: k for k, v in local.items()}
    return _swap(fn(*_swap(args, local), **_swap(kwargs, local)), back)


def _policy_refs(value: Any) -> Iterator[str]:
    """Every ``policy:PATH`` string in a payload whose PATH is a folder here (``policy:default`` excluded)."""
    if isinstance(value, str):
        if value.startswith(_POLICY) and value != "policy:default" and Path(value[len(_POLICY):]).is_dir():
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _policy_refs(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _policy_refs(v)


def _pack(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                info = tar.gettarinfo(str(f), arcname=str(f.relative_to(folder)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(f, "rb") as fh:
                    tar.addfile(info, fh)
    return buf.getvalue()


class RayExecutor(cf.Executor):
    """A `concurrent.futures.Executor` whose jobs are Ray tasks (``num_cpus=1``, one torch thread).

    ``submit(fn, *args)`` needs ``fn`` importable on the workers (a module-level function of an installed
    package; local functions travel by value). Policy bundles named in the arguments travel through the
    object store (see the module docstring).

    Args:
        ray: the imported ``ray`` module, already connected.
        max_retries: Ray's retries of a job whose worker process died.
        setup: run once in each worker process before its first job (e.g. environment variables).
    """

    def __init__(self, ray, max_retries: int = 1, setup: Callable[[], None] | None = None):
        self._ray = ray
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
        opts = {"runtime_env": {"env_vars": env}} if env else {}
        self._task = ray.remote(num_cpus=1, max_retries=max_retries, **opts)(run_job)
        self._setup = setup
        self._bundles: dict[str, tuple[str, Any]] = {}
        self._pending: set = set()

    def _ship(self, args: tuple, kwargs: dict) -> dict:
        out = {}
        for text in _policy_refs([args, kwargs]):
            if text not in self._bundles:
                data = _pack(Path(text[len(_POLICY):]))
                self._bundles[text] = (hashlib.sha256(data).hexdigest()[:32], self._ray.put(data))
            out[text] = self._bundles[text]
        return out

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        ref = self._task.remote(fn, self._setup, self._ship(args, kwargs), args, kwargs)
        self._pending.add(ref)
        fut = ref.future()
        fut.add_done_callback(lambda _f, r=ref: self._pending.discard(r))
        return fut

    def cancel_all(self) -> None:
        """Stop every job not finished yet (their worker processes are killed)."""
        for ref in list(self._pending):
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)
        self._pending.clear()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self.cancel_all()


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to Ray for the duration of the block; yield the ``ray`` module.

    Already connected: used as it is and left connected. Else ``address`` joins a running cluster, and
    without one a local instance with ``num_cpus`` CPUs (default: this machine's) starts and is stopped
    at the end of the block.

    Raises:
        ConfigError: Ray is not installed, or the cluster at ``address`` cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
    except ConnectionError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {str(e).splitlines()[0][:200]} (a cluster "
                          "with token authentication also needs RAY_AUTH_MODE=token and its token here)") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def ray_backend(address: str | None = None, *, num_cpus: int | None = None, max_retries: int = 1,
                setup: Callable[[], None] | None = None):
    """A backend for `metacurr.evaluation.execute` running every job as a Ray task.

    The pool's ``workers`` does not apply: a Ray instance runs as many jobs at once as it has CPUs.

    Args:
        address: a running cluster (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``); None = a local instance.
        num_cpus: size of the local instance (default: this machine's CPUs); ignored with ``address``.
        max_retries: Ray's retries of a job whose worker process died, before it is recorded as failed.
        setup: run once in each worker process before its first job.

    Raises:
        ConfigError: Ray is not installed (checked here, before any work).
    """
    import_ray()

    @contextlib.contextmanager
    def backend(workers: int) -> Iterator[cf.Executor]:
        with ray_session(address, num_cpus) as ray:
            ex = RayExecutor(ray, max_retries, setup)
            try:
                yield ex
            except BaseException:
                ex.cancel_all()  # Ctrl-C or an error: stop the queued and running jobs
                raise

    return backend


def resolve_backend(backend, address: str | None = None):
    """``backend=`` of `metacurr.evaluate`: None / ``"pool"`` (the process pool), ``"ray"``, or a callable.

    Raises:
        ConfigError: an unknown name, an address without Ray, or Ray not installed.
    """
    if callable(backend):
        if address:
            raise ConfigError("address applies to backend='ray' only")
        return backend
    if backend not in (None, *BACKENDS):
        raise ConfigError(f"unknown backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    if backend == "ray":
        return ray_backend(address)
    if address:
        raise ConfigError("address applies to backend='ray' only")
    return None
