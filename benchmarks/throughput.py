"""Throughput of the inner loop, the env, and the vector envs, measured side by side in one run.

For the default task (mnist1d, 3 stages, batch 64 per stage, 10 inner steps per control step) and each
architecture, four configurations (plus two diagnostics) run interleaved, ``--reps`` times each, and
the median of each is reported, so that load from other processes hits all of them alike:

  (a) bare      a plain PyTorch loop: same model, same per-stage gather + weighted loss, torch.optim
                step (``metacurr.trainer.make_optimizer``); no monitors, no env. The reference.
  (a') trainer  `InnerTrainer.run` alone (the env's training code without monitors): diagnostic.
  (b) env       one `RebalanceEnv` stepping (1 torch thread).
  (c) subproc   SB3 `SubprocVecEnv` with N envs, 1 torch thread per subprocess.
  (d) batched   the batched env as ``train.vec_env: batched`` runs it with ``batched_processes`` =
                ``--batched-processes`` (default: the cores) and ``batched_compile`` = ``--compile``
                (default on): `ShardedBatchedVecEnv` (one `BatchedRebalanceVecEnv` shard of N / P
                runs per process) or, with P = 1, `BatchedRebalanceVecEnv` itself.
  (d') in-process  `BatchedRebalanceVecEnv` with N runs in this process, eager, default worker
                threads, and (d'') sharded over the same processes as (d) but eager (diagnostics:
                what sharding and compiling each add).

Rates: inner steps/s (a, a', b) and env steps/s (b, c, d; one env step = ``inner_steps`` inner steps),
each also as a ratio to (a) in inner-step units. Vector-env rates are measured inside episodes (no
reset in the window); ``*_with_resets`` rates time whole episodes including the auto-reset, which
builds new curricula (numpy data generation). ``monitor_time_fraction`` = time in `LearningMonitor`
/ time of the env's steps.

Usage: python benchmarks/throughput.py [--quick] [--json FILE] [--archs mlp,cnn] [--n-envs 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ARCHS = ("mlp", "cnn", "gru", "transformer")
FAMILY = "mnist1d"
INNER_STEPS = 10
BATCH = 64
N_STAGES = 3

# Window sizes (control steps) per arch: (bare, env, vec-env stepping, 2-thread batched). A vec-env
# window of the MLP stays >= 10 steps even in --quick: 5 steps of the batched env last ~60 ms, short
# enough for one scheduler hiccup or a cold cache after the other configurations ran to move a rep's
# rate by 10-20% (quick runs of the same code read 2.9x and 3.7x).
WINDOWS = {"mlp": (30, 20, 15, 2), "cnn": (10, 10, 4, 1), "gru": (2, 2, 1, 1), "transformer": (2, 2, 1, 1)}
QUICK_WINDOWS = {"mlp": (10, 10, 10, 1), "cnn": (3, 3, 2, 1), "gru": (1, 1, 1, 1), "transformer": (1, 1, 1, 1)}
#: Windows of (a), (a') and (b) per rep (medians over reps x this).
SINGLE_PER_REP = 3


def _task(arch: str) -> dict:
    return {"family": FAMILY, "arch": arch, "n_stages": N_STAGES, "batch_size": BATCH, "inner_steps": INNER_STEPS}


def _env_kwargs(arch: str, control_steps: int, device: str) -> dict:
    return {"task": _task(arch), "control_steps": control_steps, "inner_steps": INNER_STEPS, "device": device}


class Bare:
    """(a): the limit. The loop a user would write for the same training."""

    def __init__(self, arch: str, device: str, seed: int = 123):
        from metacurr.config import TaskSpec
        from metacurr.models import build_model
        from metacurr.tasks import build_curriculum
        from metacurr.trainer import make_optimizer

        spec = TaskSpec(**_task(arch), seed=seed)
        cur = build_curriculum(FAMILY, N_STAGES, seed, {}).to(device)
        self.model = build_model(arch, layout=cur.layout, input_shape=cur.input_shape, n_classes=cur.n_classes, seed=seed).to(device)
        self.opt = make_optimizer(spec, self.model.parameters())
        self.pool_x = torch.cat([x for x, _ in cur.stages])
        self.pool_y = torch.cat([y for _, y in cur.stages])
        sizes = [len(y) for _, y in cur.stages]
        self.sizes = torch.tensor(sizes, dtype=torch.float64)
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), dtype=torch.long)
        self.w = torch.full((N_STAGES,), 1.0 / N_STAGES, device=device)
        self.gen = torch.Generator().manual_seed(seed)
        self.device = device

    def run(self, control_steps: int) -> int:
        s, b, k = N_STAGES, BATCH, INNER_STEPS
        for _ in range(control_steps):
            u = torch.rand(k, s, b, generator=self.gen, dtype=torch.float64)
            idx = (self.offsets.view(1, -1, 1) + (u * self.sizes.view(1, -1, 1)).long()).to(self.device)
            for i in range(k):
                flat = idx[i].reshape(-1)
                per_stage = F.cross_entropy(self.model(self.pool_x[flat]), self.pool_y[flat], reduction="none").view(s, b).mean(1)
                loss = (self.w * per_stage).sum()
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
        _sync(self.device)
        return control_steps * k


class TrainerOnly:
    """(a'): `InnerTrainer.run` without monitors or env (diagnostic)."""

    def __init__(self, arch: str, device: str, seed: int = 123):
        from metacurr.config import TaskSpec
        from metacurr.inner_run import InnerRun

        self.run_ = InnerRun(TaskSpec(**_task(arch), seed=seed, control_steps=10**9), device=device)
        self.run_.reset()
        self.w = np.full(N_STAGES, 1.0 / N_STAGES)
        self.device = device

    def run(self, control_steps: int) -> int:
        for _ in range(control_steps):
            self.run_.trainer.run(self.w, INNER_STEPS)
        _sync(self.device)
        return control_steps * INNER_STEPS


class SingleEnv:
    """(b): one RebalanceEnv."""

    def __init__(self, arch: str, device: str, control_steps: int):
        from metacurr.envs.rebalance import RebalanceEnv

        self.env = RebalanceEnv(**_env_kwargs(arch, control_steps, device))
        self.cs = control_steps
        self.env.reset(seed=0)
        self.t = 0
        self.rng = np.random.default_rng(0)
        self.resets: list[float] = []

    def run(self, steps: int) -> tuple[int, float, float]:
        """Step ``steps`` times inside one episode (a reset, if one is due, is timed separately);
        returns (steps, seconds, seconds in the monitor)."""
        steps = min(steps, self.cs)
        if self.t + steps > self.cs or self.env.run.done:
            t0 = time.perf_counter()
            self.env.reset()
            self.resets.append(time.perf_counter() - t0)
            self.t = 0
        m0 = self.env.run.monitor_seconds
        acts = self.rng.uniform(-1, 1, (steps, N_STAGES)).astype(np.float32)
        t0 = time.perf_counter()
        for a in acts:
            self.env.step(a)
        dt = time.perf_counter() - t0
        self.t += steps
        return steps, dt, self.env.run.monitor_seconds - m0


class Vec:
    """(c) / (d): a VecEnv stepped in windows that stay inside an episode, or over whole episodes.

    The batched env builds the next episode's curricula in a background thread; so that this work is
    neither hidden in another configuration's window nor lost, every window starts with no build
    pending (waited for outside the timing) and ends by waiting for the builds it started (timed).
    Over K whole episodes that charges K builds, K - 1 of them overlapped with training and the last
    one serially: slightly pessimistic for the batched env.
    """

    def __init__(self, venv, n: int, control_steps: int):
        self.venv, self.n, self.cs = venv, n, control_steps
        venv.seed(0)
        venv.reset()
        self.t = 0
        self.rng = np.random.default_rng(1)
        self.last = self.last_cpu = float("nan")

    def _step(self, steps: int) -> None:
        for _ in range(steps):
            self.venv.step(self.rng.uniform(-1, 1, (self.n, N_STAGES)).astype(np.float32))
        self.t = (self.t + steps) % self.cs

    def _drain(self) -> None:
        wait = getattr(self.venv, "wait_prefetch", None)
        if wait is not None:
            wait()

    def _timed(self, steps: int) -> None:
        self._drain()
        c0, t0 = _cpu_seconds(self.venv), time.perf_counter()
        self._step(steps)
        self._drain()
        self.last = time.perf_counter() - t0
        self.last_cpu = _cpu_seconds(self.venv) - c0

    def run(self, steps: int) -> int:
        """``steps`` env steps inside one episode (no reset in the window)."""
        steps = min(steps, self.cs - 1)
        if self.t + steps >= self.cs:  # finish the episode (and its auto-reset) outside the window
            self._step(self.cs - self.t)
        self._timed(steps)
        return steps * self.n

    def run_episodes(self, k: int) -> int:
        """``k`` whole episodes, each ending with the auto-reset of every env."""
        if self.t:
            self._step(self.cs - self.t)
        self._timed(k * self.cs)
        return k * self.cs * self.n


def _cpu_seconds(venv) -> float:
    """CPU time (user + system) of this process and of a SubprocVecEnv's workers."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for proc in getattr(venv, "processes", []):
        try:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):  # pragma: no cover - not Linux
            return float("nan")
    return total


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def _make_subproc(arch: str, n: int, device: str, control_steps: int):
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from metacurr.agents.train import _make_env  # sets 1 torch thread per subprocess

    kw = _env_kwargs(arch, control_steps, device)
    return SubprocVecEnv([functools.partial(_make_env, kw, True) for _ in range(n)], start_method="spawn")


def _retask(venv, arch: str, control_steps: int) -> None:
    """Point an existing SubprocVecEnv's workers at another architecture (saves re-spawning N processes)."""
    from metacurr.config import TaskSpec

    venv.set_attr("fixed_task", TaskSpec(**_task(arch), control_steps=control_steps))


def _make_batched(arch: str, n: int, processes: int, compile: bool, device: str, control_steps: int):
    """(d): the batched env as ``make_vec_env`` builds it for these ``batched_*`` settings."""
    from metacurr.envs.batched import BatchedRebalanceVecEnv
    from metacurr.envs.sharded import ShardedBatchedVecEnv

    kw = {**_env_kwargs(arch, control_steps, device), "compile": compile}
    if processes > 1:
        return ShardedBatchedVecEnv(n, processes=processes, **kw)
    return BatchedRebalanceVecEnv(n_envs=n, **kw)


def bench_arch(arch: str, args, subproc) -> dict:
    from metacurr.envs.batched import BatchedRebalanceVecEnv

    n, cs, dev = args.n_envs, args.control_steps, args.device
    w_bare, w_env, w_vec, w_vec2 = (QUICK_WINDOWS if args.quick else WINDOWS)[arch]
    torch.set_num_threads(1)
    bare, trainer, single = Bare(arch, dev), TrainerOnly(arch, dev), SingleEnv(arch, dev, cs)
    _retask(subproc, arch, cs)
    sub = Vec(subproc, n, cs)
    procs = args.batched_processes
    bvenv = _make_batched(arch, n, procs, args.compile, dev, cs)
    bvenv2 = None if args.no_variants else BatchedRebalanceVecEnv(n_envs=n, **_env_kwargs(arch, cs, dev))
    threads = None if bvenv2 is None else bvenv2.threads
    bvenv3 = None if (args.no_variants or procs == 1 or not args.compile) else _make_batched(arch, n, procs, False, dev, cs)
    torch.set_num_threads(1)
    bat = Vec(bvenv, n, cs)
    bat3 = None if bvenv3 is None else Vec(bvenv3, n, cs)
    bat2 = None if bvenv2 is None else Vec(bvenv2, n, cs)
    torch.set_num_threads(1)
    # Warm-up (allocator, lazy init) outside the timings.
    bare.run(1), trainer.run(1), single.run(1), sub.run(1), bat.run(1)
    if bat2 is not None:
        bat2.run(1)
    if bat3 is not None:
        bat3.run(1)
    r: dict[str, list[float]] = {k: [] for k in ("bare", "trainer", "env", "env_mon", "sub", "sub_cpu", "bat", "bat_cpu", "bat2", "bat3", "sub_ep", "bat_ep")}
    episode_reps = args.reps if (arch in ("mlp", "cnn") or args.full_episodes) else 0
    if args.quick:
        episode_reps = min(episode_reps, 2)
    for rep in range(args.reps):
        torch.set_num_threads(1)
        # The single-process configurations are cheap: several short interleaved windows per rep
        # (a, b, a', a, b, a', ...) so that load changes hit them alike.
        for _ in range(SINGLE_PER_REP):
            dt, units = _timed(bare.run, w_bare)
            r["bare"].append(units / dt)
            steps, dt, mon = single.run(w_env)
            r["env"].append(steps * INNER_STEPS / dt)
            r["env_mon"].append(mon / dt)
            dt, units = _timed(trainer.run, w_bare)
            r["trainer"].append(units / dt)
        units = sub.run(w_vec)
        r["sub"].append(units / sub.last)
        r["sub_cpu"].append(units / sub.last_cpu)
        units = bat.run(w_vec)
        r["bat"].append(units / bat.last)
        r["bat_cpu"].append(units / bat.last_cpu)
        if bat2 is not None:
            units = bat2.run(w_vec)
            r["bat2"].append(units / bat2.last)
        if bat3 is not None:
            units = bat3.run(w_vec)
            r["bat3"].append(units / bat3.last)
        if rep < episode_reps:
            units = sub.run_episodes(args.episodes)
            r["sub_ep"].append(units / sub.last)
            units = bat.run_episodes(args.episodes)
            r["bat_ep"].append(units / bat.last)
        print(f"  [{arch}] rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    med = {k: (statistics.median(v) if v else None) for k, v in r.items()}
    bat_mon = bvenv.monitor_time_fraction
    for v in (bvenv, bvenv2, bvenv3):
        if v is not None:
            v.close()
    # One shard's work (N / P runs, 1 thread, same compile setting) alone, timed and then profiled:
    # its share of time in matmul kernels bounds what removing everything else could give.
    shard_n = int(np.ceil(n / procs))
    shard = Vec(BatchedRebalanceVecEnv(n_envs=shard_n, threads=1, compile=args.compile, **_env_kwargs(arch, cs, dev)), shard_n, cs)
    shard.run(1)
    units = shard.run(w_vec)
    shard_rate = units / shard.last
    mm_frac = _matmul_fraction(shard, w_vec2)
    shard.venv.close()
    bare_rate = med["bare"]
    out = {
        "n_envs": n,
        "inner_steps_per_env_step": INNER_STEPS,
        "control_steps_per_episode": cs,
        "episodes_per_with_resets_window": args.episodes,
        "bare_inner_steps_per_s": bare_rate,
        "trainer_inner_steps_per_s": med["trainer"],
        "env_inner_steps_per_s": med["env"],
        "env_steps_per_s": med["env"] / INNER_STEPS,
        "env_reset_s": statistics.median(single.resets) if single.resets else None,
        "monitor_time_fraction": med["env_mon"],
        "subproc_env_steps_per_s": med["sub"],
        "batched_env_steps_per_s": med["bat"],
        "subproc_env_steps_per_cpu_s": med["sub_cpu"],
        "batched_env_steps_per_cpu_s": med["bat_cpu"],
        "batched_inprocess_threads": threads,
        "batched_inprocess_env_steps_per_s": med["bat2"],
        "batched_sharded_eager_env_steps_per_s": med["bat3"],
        "subproc_env_steps_per_s_with_resets": med["sub_ep"],
        "batched_env_steps_per_s_with_resets": med["bat_ep"],
        "batched_processes": procs,
        "batched_compile": args.compile,
        "batched_monitor_time_fraction": bat_mon,
        # One shard (N / P runs, 1 thread) alone: its rate and the share of its CPU time inside
        # matrix-multiply kernels (torch profiler); dividing by that share bounds the batched rate.
        "batched_shard_n_envs": shard_n,
        "batched_shard_env_steps_per_s": shard_rate,
        "batched_matmul_time_fraction": mm_frac,
        "reps": args.reps,
        "raw": r,
    }
    out["ratios_to_bare"] = {
        "trainer": med["trainer"] / bare_rate,
        "env": med["env"] / bare_rate,
        "subproc": med["sub"] * INNER_STEPS / bare_rate,
        "batched": med["bat"] * INNER_STEPS / bare_rate,
    }
    out["env_overhead_vs_bare"] = 1 - med["env"] / bare_rate
    out["batched_over_subproc"] = med["bat"] / med["sub"]
    if med["sub_ep"] and med["bat_ep"]:
        out["batched_over_subproc_with_resets"] = med["bat_ep"] / med["sub_ep"]
    return out


MATMUL_OPS = ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm")


def matmul_bound(r: dict) -> tuple[float, float] | None:
    """Upper bound of the batched env if everything but its matmul/conv kernels were free, from measured
    fields: one shard's 1-thread rate / its matmul share, times the processes (perfect scaling across
    cores). Returns (env-steps/s, ratio to subproc) or None."""
    mm, one = r.get("batched_matmul_time_fraction"), r.get("batched_shard_env_steps_per_s")
    if not mm or not one:
        return None
    bound = one / mm * r["batched_processes"]
    return bound, bound / r["subproc_env_steps_per_s"]


def _matmul_fraction(vec: Vec, steps: int) -> float | None:
    """Fraction of self CPU time spent in matmul / convolution kernels over ``steps`` env steps (1 thread)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        vec.run(steps)
    ev = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ev)
    mm = sum(e.self_cpu_time_total for e in ev if e.key in MATMUL_OPS or "conv" in e.key.lower())
    return mm / total if total > 0 else None


def _fmt(v, spec=".0f") -> str:
    return "-" if v is None else format(v, spec)


def table(results: dict, n: int) -> str:
    lines = [
        f"| arch | (a) bare inner/s | (a') trainer inner/s | (b) env inner/s | env overhead | monitor frac "
        f"| (c) subproc N={n} env-steps/s | (d) batched N={n} env-steps/s | (d)/(c) | with resets (c) / (d) / ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arch, r in results.items():
        q = r["ratios_to_bare"]
        wr = "-"
        if r.get("batched_over_subproc_with_resets"):
            wr = (f"{r['subproc_env_steps_per_s_with_resets']:.0f} / {r['batched_env_steps_per_s_with_resets']:.0f} / "
                  f"{r['batched_over_subproc_with_resets']:.1f}x")  # fmt: skip
        lines.append(
            f"| {arch} | {r['bare_inner_steps_per_s']:.0f} (1.00) | {r['trainer_inner_steps_per_s']:.0f} ({q['trainer']:.2f}) "
            f"| {r['env_inner_steps_per_s']:.0f} ({q['env']:.2f}) | {r['env_overhead_vs_bare']:+.0%} | {r['monitor_time_fraction']:.0%} "
            f"| {r['subproc_env_steps_per_s']:.1f} ({q['subproc']:.2f}) | {r['batched_env_steps_per_s']:.1f} ({q['batched']:.2f}) "
            f"| {r['batched_over_subproc']:.1f}x | {wr} |"
        )
    lines.append("")
    lines.append("Ratios in parentheses: inner steps/s relative to (a) (vector envs: env-steps/s x inner steps per env step).")
    lines.append(
        "Env steps per CPU-second (all processes, load-independent): "
        + ", ".join(f"{a}: subproc {_fmt(r['subproc_env_steps_per_cpu_s'])}, batched {_fmt(r['batched_env_steps_per_cpu_s'])}"
                    for a, r in results.items())
    )  # fmt: skip
    bound = [(a, r, matmul_bound(r)) for a, r in results.items() if matmul_bound(r)]
    if bound:
        lines.append(
            "One shard's work alone (N / P runs, 1 thread): its time in matmul/conv kernels (profiler) and the "
            "batched rate if all else were free (shard rate / that share x P): "
            + ", ".join(f"{a}: {r['batched_matmul_time_fraction']:.0%} -> {b[0]:.0f} env-steps/s = {b[1]:.1f}x subproc"
                        for a, r, b in bound)
        )  # fmt: skip
    other = [(a, r["batched_inprocess_env_steps_per_s"], r["batched_inprocess_threads"]) for a, r in results.items()]
    if any(v is not None for _, v, _ in other):
        first = next(iter(results.values()))
        lines.append(
            f"(d) = {first['batched_processes']} process(es), compile {'on' if first['batched_compile'] else 'off'}; "
            "(d') the batched env in this process, eager (worker threads): "
            + ", ".join(f"{a}: {_fmt(v, '.1f')} env-steps/s with {t} threads" for a, v, t in other)
        )
    eager = [(a, r.get("batched_sharded_eager_env_steps_per_s")) for a, r in results.items()]
    if any(v is not None for _, v in eager):
        lines.append("(d'') sharded as (d), eager: " + ", ".join(f"{a}: {_fmt(v, '.1f')} env-steps/s" for a, v in eager))
    return "\n".join(lines)


def readme_table(report: dict) -> str:
    """The README's Performance table, from a saved JSON report (``--markdown FILE``)."""
    m = report["machine"]
    archs = [a for a in ARCHS if a in report]
    n = report[archs[0]]["n_envs"]
    r0 = report[archs[0]]
    lines = [
        f"Measured {report['date'][:16].replace('T', ' ')} by `{report['command']}`: {m['cpu_count']} CPU cores, "
        f"torch {m['torch']}, device {m['device']}; load average {m['load_average_start'][0]:.1f} at the start, "
        f"{m['load_average_end'][0]:.1f} at the end; median of {r0['reps']} repeats; all configurations side by side. "
        f"(d): {r0['batched_processes']} worker process(es), torch.compile {'on' if r0['batched_compile'] else 'off'}.",
        "",
        f"| arch | (a) bare loop inner steps/s | (b) env inner steps/s (ratio to a) | env overhead | monitor time fraction "
        f"| (c) SubprocVecEnv N={n} env steps/s | (d) batched N={n} env steps/s | batched / subproc "
        f"| (d') batched in one process, eager | (d'') sharded, eager | batched time in matmuls | bound if only matmuls cost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in archs:
        r = report[a]
        mm = r.get("batched_matmul_time_fraction")
        b = matmul_bound(r)
        bound = b[1] if b else None
        lines.append(
            f"| {a} | {r['bare_inner_steps_per_s']:.0f} | {r['env_inner_steps_per_s']:.0f} ({r['ratios_to_bare']['env']:.2f}) "
            f"| {r['env_overhead_vs_bare']:.0%} | {r['monitor_time_fraction']:.0%} | {r['subproc_env_steps_per_s']:.1f} "
            f"| {r['batched_env_steps_per_s']:.1f} | {r['batched_over_subproc']:.2f}x "
            f"| {_fmt(r.get('batched_inprocess_env_steps_per_s'), '.1f')} | {_fmt(r.get('batched_sharded_eager_env_steps_per_s'), '.1f')} "
            f"| {_fmt(mm, '.0%') if mm else '-'} "
            f"| {f'{bound:.1f}x subproc' if bound else '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", metavar="FILE", help="print the README table of a saved --json report and exit")
    ap.add_argument("--quick", action="store_true", help="short windows, 3 reps, mlp only unless --archs (under 2 minutes)")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--archs", help=f"comma-separated subset of {','.join(ARCHS)}")
    ap.add_argument("--n-envs", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, help="repetitions per configuration (median reported; default 5, quick 3)")
    ap.add_argument("--control-steps", type=int, default=20, help="episode length (agent training default: 20)")
    ap.add_argument("--batched-processes", type=int, help="(d): worker processes of the batched env (default: the "
                    "cores, at most N)")
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="(d): eager batched env (default: compiled)")
    ap.add_argument("--no-variants", action="store_true", help="skip (d') and (d''), the eager batched variants")
    ap.add_argument("--episodes", type=int, help="episodes per with-resets window (default 3, quick 2)")
    ap.add_argument("--full-episodes", action="store_true", help="also time whole episodes for gru/transformer (slow)")
    args = ap.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as f:
            print(readme_table(json.load(f)))
        return 0
    archs = args.archs.split(",") if args.archs else (["mlp"] if args.quick else list(ARCHS))
    bad = [a for a in archs if a not in ARCHS]
    if bad:
        ap.error(f"unknown arch {bad[0]!r}; valid choices: {', '.join(ARCHS)}")
    args.reps = args.reps or (3 if args.quick else 5)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    args.batched_processes = args.batched_processes or min(cores, args.n_envs)
    if not 1 <= args.batched_processes <= args.n_envs:
        ap.error(f"--batched-processes must be in [1, --n-envs={args.n_envs}], got {args.batched_processes}")
    args.episodes = args.episodes or (1 if args.quick else 3)
    os.environ.setdefault("WANDB_MODE", "disabled")
    torch.set_num_threads(1)
    started = datetime.datetime.now().astimezone()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    print(f"spawning {args.n_envs} env subprocesses ...", file=sys.stderr, flush=True)
    subproc = _make_subproc(archs[0], args.n_envs, args.device, args.control_steps)
    results = {}
    try:
        for arch in archs:
            print(f"benchmarking {arch} ...", file=sys.stderr, flush=True)
            results[arch] = bench_arch(arch, args, subproc)
    finally:
        subproc.close()
    machine = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": {"bare": 1, "trainer": 1, "env": 1, "subproc_per_process": 1,
                          "batched": "(d) 1 per shard process; (d') 1 intra-op thread per worker thread"},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": args.device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_start": load0,
        "load_average_end": os.getloadavg(),
        # Env worker processes (c, d) set glibc's mmap/trim thresholds unless this is set (envs/worker.py);
        # this process, where (a), (b), (d') and the one-shard reference run, keeps glibc's defaults.
        "METACURR_GLIBC_DEFAULTS": os.environ.get("METACURR_GLIBC_DEFAULTS", ""),
    }
    report = {
        "date": started.isoformat(timespec="seconds"),
        "command": "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine,
        "task": {**_task("*"), "control_steps": args.control_steps},
        "wall_s": time.perf_counter() - t0,
        **results,
    }
    print(f"# metacurr throughput, {started:%Y-%m-%d %H:%M %Z}; {machine['cpu_count']} CPUs ({machine['processor']}), "
          f"torch {torch.__version__}, device {args.device}; load avg {load0[0]:.1f} -> {machine['load_average_end'][0]:.1f}")  # fmt: skip
    print(f"# task: {FAMILY}, {N_STAGES} stages, batch {BATCH}/stage, {INNER_STEPS} inner steps per env step, "
          f"{args.control_steps} env steps per episode; median of {args.reps} reps; wall {report['wall_s']:.0f} s")  # fmt: skip
    print(table(results, args.n_envs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=_json_default)
    return 0


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    raise TypeError(type(o).__name__)


if __name__ == "__main__":
    sys.exit(main())
