"""`ShardedBatchedVecEnv`: a `BatchedRebalanceVecEnv` split over worker processes.

The batched env steps its N runs as stacked torch programs; inside one process, its worker threads
share the GIL, so the Python between two small kernels serialises them: on 2 cores two threads ran
the MLP task 1.44x one (810 vs 563.5 env-steps/s, ``benchmarks/results/throughput-2026-11-25.json``),
two processes 1.12x the two threads (853 vs 759, ``throughput-2026-11-25-sharded.json``). Here the N runs are split into ``processes`` shards,
each a `BatchedRebalanceVecEnv` with one thread in its own process (spawned, one torch thread each),
stepped in parallel and joined once per control step, like SB3's ``SubprocVecEnv`` but with a batched
env instead of one env per process.

Slot i is the same run as slot i of one `BatchedRebalanceVecEnv(N)` with the same seeds and actions,
bit for bit with one worker thread per shard (tested): SB3 ``seed(s)`` gives slot i the seed ``s + i`` here too, and the (family,
arch, n_stages) that the batch trains is drawn by slot 0 (shard 0) at an explicit ``reset()`` and
handed to the other shards, whose slots then sample the restricted distribution as any slot but
the first does. Errors raised in a worker (a `ConfigError`, say) are raised again in the caller.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import traceback
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from metacurr.envs.batched import BatchedRebalanceVecEnv
from metacurr.envs.worker import init_worker_process
from metacurr.errors import ConfigError
from metacurr.validation import check_action_range

__all__ = ["ShardedBatchedVecEnv"]


def _worker(conn, n: int, offset: int, kwargs: dict) -> None:
    init_worker_process()  # 1 torch thread, SIGINT left to the parent, glibc keeps freed buffers
    env = None
    try:
        env = BatchedRebalanceVecEnv(n_envs=n, threads=1, **kwargs)
        env.slot_offset = offset  # messages name global slots
        conn.send(("ok", None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", _portable(exc)))
        conn.close()
        return
    while True:
        try:
            cmd, arg = conn.recv()
        except EOFError:
            break
        try:
            if cmd == "step":
                obs, rews, dones, infos = env.step(arg)
                out = (obs, rews, dones, infos, env.reset_infos if dones.any() else None)
            elif cmd == "reset":
                seeds, options, key = arg
                env._seeds, env._options = list(seeds), list(options)
                env.forced_key = key
                obs = env.reset()
                out = (obs, env.reset_infos, env.key)
            elif cmd == "get_attr":
                out = env.get_attr(*arg)
            elif cmd == "set_attr":
                out = env.set_attr(*arg)
            elif cmd == "env_method":
                name, args, kw, idx = arg
                out = env.env_method(name, *args, indices=idx, **kw)
            elif cmd == "timing":
                out = (env.train_seconds, env.monitor_seconds, env.reset_seconds)
            elif cmd == "wait_prefetch":
                out = env.wait_prefetch()
            elif cmd == "run_params":
                out = {k: v.cpu() for k, v in env.run_params(arg).items()}
            elif cmd == "close":
                env.close()
                conn.send(("ok", None))
                break
            else:
                raise ValueError(f"unknown command {cmd!r}")
            conn.send(("ok", out))
        except BaseException as exc:  # noqa: BLE001
            conn.send(("error", _portable(exc)))
    conn.close()


def _portable(exc: BaseException) -> BaseException:
    """The exception if it pickles (ConfigError does), else a RuntimeError with its traceback."""
    try:
        pickle.dumps(exc)
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError("".join(traceback.format_exception(exc)))


class ShardedBatchedVecEnv(VecEnv):
    """N slots trained by ``processes`` `BatchedRebalanceVecEnv` shards in worker processes.

    Args:
        n_envs: number of inner runs N.
        processes: worker processes (shards of about N / processes runs each), 1 <= processes <= N.
        **kwargs: `BatchedRebalanceVecEnv` arguments (task, distribution, control_steps, inner_steps,
            monitor, mapping, reward, divergence_penalty, device, hide_features, prefetch, compile);
            ``threads`` is 1 in every worker.
    """

    def __init__(self, n_envs: int, processes: int = 2, **kwargs: Any):
        if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
            raise ConfigError(f"n_envs must be a positive integer, got {n_envs!r}")
        if not isinstance(processes, int) or isinstance(processes, bool) or not 1 <= processes <= n_envs:
            raise ConfigError(f"processes must be an integer in [1, n_envs={n_envs}], got {processes!r}")
        if "threads" in kwargs:
            raise ConfigError("threads is 1 in every worker of a sharded batched env; leave it out")
        # Validates the arguments (one-line errors here, not in a worker) and owns the spaces.
        probe = BatchedRebalanceVecEnv(n_envs=1, threads=1, **{**kwargs, "prefetch": False})
        self.obs_spec, self.mapping, self.feature_names = probe.obs_spec, probe.mapping, probe.feature_names
        spaces = (probe.observation_space, probe.action_space)
        probe.close()
        bounds = np.linspace(0, n_envs, processes + 1).round().astype(int)
        self.bounds = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
        ctx = mp.get_context("spawn")
        self.remotes, self.processes = [], []
        for a, b in self.bounds:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, b - a, a, kwargs), daemon=True)
            proc.start()
            child.close()
            self.remotes.append(parent)
            self.processes.append(proc)
        self.closed = False
        for r in self.remotes:
            self._recv(r)
        self.key: tuple | None = None
        super().__init__(n_envs, *spaces)  # asks the workers for render_mode

    # ---- plumbing ----

    def _dead(self, remote) -> RuntimeError:
        k = self.remotes.index(remote)
        proc = self.processes[k]
        proc.join(timeout=1)
        return RuntimeError(
            f"batched env worker {k} (pid {proc.pid}) died with exit code {proc.exitcode} "
            "(out of memory? killed?); its runs are lost"
        )

    def _send(self, remote, msg) -> None:
        try:
            remote.send(msg)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            raise self._dead(remote) from None

    def _recv(self, remote):
        try:
            status, out = remote.recv()
        except (EOFError, ConnectionResetError):
            raise self._dead(remote) from None
        if status == "error":
            raise out
        return out

    def _gather(self, remotes: list) -> list:
        """The replies of ``remotes`` in order. Every reply is read before the first error is raised,
        so that no stale reply is left in a pipe for the next command to read."""
        outs, err = [], None
        for r in remotes:
            try:
                outs.append(self._recv(r))
            except Exception as exc:  # noqa: BLE001 - re-raised below
                err = err or exc
                outs.append(None)
        if err is not None:
            raise err
        return outs

    def _all(self, cmd: str, args: list) -> list:
        for r, a in zip(self.remotes, args):
            self._send(r, (cmd, a))
        return self._gather(self.remotes)

    def _local(self, indices) -> list[tuple[int, list[int]]]:
        """(shard, local indices) for global ``indices``, in the order given."""
        out: list[tuple[int, list[int]]] = []
        for i in self._get_indices(indices):
            s = next(k for k, (a, b) in enumerate(self.bounds) if a <= i < b)
            if out and out[-1][0] == s:
                out[-1][1].append(i - self.bounds[s][0])
            else:
                out.append((s, [i - self.bounds[s][0]]))
        return out

    # ---- VecEnv API ----

    def reset(self):
        seeds, options = self._seeds, self._options
        (a0, b0), r0 = self.bounds[0], self.remotes[0]
        self._send(r0, ("reset", (seeds[a0:b0], options[a0:b0], None)))
        obs0, infos0, self.key = self._recv(r0)  # shard 0's slot 0 draws the batch's task key
        for (a, b), r in zip(self.bounds[1:], self.remotes[1:]):
            self._send(r, ("reset", (seeds[a:b], options[a:b], self.key)))
        rest = self._gather(self.remotes[1:])
        self.reset_infos = list(infos0) + [i for _, infos, _ in rest for i in infos]
        self._reset_seeds()
        self._reset_options()
        return np.concatenate([obs0] + [o for o, _, _ in rest])

    def step_async(self, actions: np.ndarray) -> None:
        if self.key is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions).reshape(self.num_envs, -1)
        check_action_range(actions)  # NaN / inf / out of [-1, 1]: refused before any shard steps
        if actions.shape[1] < self.key[2]:  # checked here so that no shard steps when another refuses
            raise ConfigError(f"action has {actions.shape[1]} entries for {self.key[2]} stages")
        for (a, b), r in zip(self.bounds, self.remotes):
            self._send(r, ("step", actions[a:b]))

    def step_wait(self):
        outs = self._gather(self.remotes)
        infos = [i for o in outs for i in o[3]]
        for (a, b), o in zip(self.bounds, outs):
            if o[4] is not None:  # the worker auto-reset some of its slots
                self.reset_infos[a:b] = o[4]
        return (
            np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs]),
            np.concatenate([o[2] for o in outs]), infos,
        )  # fmt: skip

    def close(self) -> None:
        if self.closed:
            return
        for r in self.remotes:
            try:
                r.send(("close", None))
            except (BrokenPipeError, EOFError, ConnectionResetError, OSError):
                pass
        for r in self.remotes:
            try:
                if r.poll(10):  # a worker stuck in a step does not hang close(): it is terminated below
                    r.recv()
            except (EOFError, ConnectionResetError, OSError):
                pass
            r.close()
        for p in self.processes:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        self.closed = True

    def _per_shard(self, cmd: str, make_arg, indices) -> list:
        parts = self._local(indices)
        for s, local in parts:
            self._send(self.remotes[s], (cmd, make_arg(local)))
        return [x for out in self._gather([self.remotes[s] for s, _ in parts]) for x in out]

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return self._per_shard("get_attr", lambda local: (attr_name, local), indices)

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        parts = self._local(indices)
        for s, local in parts:
            self._send(self.remotes[s], ("set_attr", (attr_name, value, local)))
        self._gather([self.remotes[s] for s, _ in parts])

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return self._per_shard("env_method", lambda local: (method_name, method_args, method_kwargs, local), indices)

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def get_images(self):
        raise NotImplementedError("the sharded batched env does not render")

    # ---- diagnostics (the batched env's, summed over shards) ----

    def _timing(self) -> np.ndarray:
        return np.array(self._all("timing", [None] * len(self.remotes)))

    @property
    def train_seconds(self) -> float:
        return float(self._timing()[:, 0].sum())

    @property
    def monitor_seconds(self) -> float:
        return float(self._timing()[:, 1].sum())

    @property
    def reset_seconds(self) -> float:
        return float(self._timing()[:, 2].sum())

    @property
    def monitor_time_fraction(self) -> float:
        t = self._timing()
        total = t[:, 0].sum() + t[:, 1].sum()
        return float(t[:, 1].sum() / total) if total > 0 else 0.0

    def wait_prefetch(self) -> None:
        self._all("wait_prefetch", [None] * len(self.remotes))

    def run_params(self, i: int) -> dict:
        (s, (j,)), = self._local([i])
        self._send(self.remotes[s], ("run_params", j))
        return self._recv(self.remotes[s])

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
