"""Where one batched-env shard spends its time (issue 5: what limits the batched env).

    python benchmarks/profile_shard.py [--arch mlp] [--n-envs 8] [--eager] [--steps 20]

One `BatchedRebalanceVecEnv` shard as a worker of ``ShardedBatchedVecEnv(16, processes=2)`` runs it
(8 runs, 1 thread, compiled unless ``--eager``), default task (mnist1d, 3 stages, batch 64 per stage,
10 inner steps per control step). Prints the first control step's time (the compile time with a cold
inductor cache: ``TORCHINDUCTOR_CACHE_DIR=$(mktemp -d)``), then, after a warm-up:

1. the shard's rate and its split between training and the probe pass;
2. the torch profiler's top ops by self time, with inductor's fused kernels named
   (``torch._inductor.config.cpp.enable_kernel_profile``);
3. every matmul shape with its time per call and achieved GFLOP/s;
4. the time to build one curriculum of the training distribution ``default-mlp`` (what each episode
   reset costs in a PPO run, outside the benchmark's in-episode windows);
5. for the MLP, a check of the profiler against direct timing: the probe forward's first-layer
   ``baddbmm`` timed inside the loop (eager env) next to what the profiler attributes to its bias copy;
6. one core's single-precision matmul rate at 1024^3 through torch (MKL) and through numpy (its BLAS,
   OpenBLAS in numpy's wheels), for scale: the ceiling the matmul shapes above run against.

The shard runs with the allocator settings of a worker process (`metacurr.envs.worker.keep_freed_memory`);
``--glibc-defaults`` leaves glibc's defaults.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="mlp", choices=["mlp", "cnn", "gru", "transformer"])
    ap.add_argument("--n-envs", type=int, default=8)
    ap.add_argument("--eager", action="store_true", help="profile the eager env (default: compiled)")
    ap.add_argument("--steps", type=int, default=20, help="control steps profiled (the rate uses 5x as many)")
    ap.add_argument("--glibc-defaults", action="store_true", help="leave glibc's allocator thresholds as they are")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from metacurr.envs.worker import keep_freed_memory

    if not args.glibc_defaults:
        keep_freed_memory()
    import torch._inductor.config as inductor_config

    inductor_config.cpp.enable_kernel_profile = True
    from torch.profiler import ProfilerActivity, profile

    from metacurr.envs.batched import BatchedRebalanceVecEnv

    n = args.n_envs
    task = {"family": "mnist1d", "arch": args.arch, "n_stages": 3, "batch_size": 64, "inner_steps": 10}
    env = BatchedRebalanceVecEnv(n, task=task, control_steps=10**5, inner_steps=10, threads=1, compile=not args.eager)
    env.seed(0)
    env.reset()
    a = np.zeros((n, 3), dtype=np.float32)
    t0 = time.perf_counter()
    env.step(a)
    print(f"first control step (compiles unless the inductor cache has this shape): {time.perf_counter() - t0:.1f} s")
    for _ in range(2):
        env.step(a)
    g = env.groups[0]
    g.train_seconds = g.monitor_seconds = 0.0
    k = 5 * args.steps
    t0 = time.perf_counter()
    for _ in range(k):
        env.step(a)
    dt = time.perf_counter() - t0
    print(f"{args.arch}, {n} runs, 1 thread, {'eager' if args.eager else 'compiled'}: {n * k / dt:.0f} env-steps/s; "
          f"{dt / k * 1e3:.2f} ms per control step = train {g.train_seconds / k * 1e3:.2f} + probe pass "
          f"{g.monitor_seconds / k * 1e3:.2f} + env glue {(dt - g.train_seconds - g.monitor_seconds) / k * 1e3:.2f}")  # fmt: skip
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            env.step(a)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=70))
    print("matmul shapes (per call, achieved GFLOP/s):")
    for e in sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total):
        if e.key not in ("aten::bmm", "aten::baddbmm") or not e.input_shapes:
            continue
        shp = e.input_shapes
        (b, m, kk), (_, _, nn) = (shp[0], shp[1]) if e.key == "aten::bmm" else (shp[1], shp[2])
        us = e.self_cpu_time_total / e.count
        print(f"  {e.key:14s} ({b},{m},{kk})x({b},{kk},{nn}) x{e.count // args.steps}/step {us:8.1f} us {2 * b * m * kk * nn / us / 1e3:6.1f} GFLOP/s")
    env.close()
    if args.arch == "mlp":
        _probe_matmul_check(task, n)

    from metacurr.envs.task_distribution import get_distribution
    from metacurr.tasks import build_curriculum

    rng = np.random.default_rng(0)
    specs = [get_distribution("default-mlp").sample(rng) for _ in range(20)]
    t0 = time.perf_counter()
    for s in specs:
        build_curriculum(s.family, s.n_stages, s.seed, s.params)
    print(f"curriculum build (default-mlp, mean of 20): {(time.perf_counter() - t0) / 20 * 1e3:.1f} ms")
    _gemm_peaks()


def _probe_matmul_check(task: dict, n: int) -> None:
    """The profiler attributes ~1.1-1.2 ms per control step to the bias copy (``aten::copy_``) inside the
    probe forward's first ``baddbmm``; timing that call directly inside the same loop says otherwise."""
    from torch.profiler import ProfilerActivity, profile

    import metacurr.batched.forwards as forwards
    import metacurr.envs.batched as batched

    times: dict[str, list[float]] = {"baddbmm (bias copy + matmul)": [], "plain bmm, same operands, right after": []}
    orig = forwards.mlp_probe_forward

    def timed(p, x):
        xf, wt = x.flatten(2), p["body.1.weight"].transpose(1, 2)
        t0 = time.perf_counter()
        torch.baddbmm(p["body.1.bias"][:, None, :], xf, wt)
        t1 = time.perf_counter()
        torch.bmm(xf, wt)
        t2 = time.perf_counter()
        times["baddbmm (bias copy + matmul)"].append(t1 - t0)
        times["plain bmm, same operands, right after"].append(t2 - t1)
        return orig(p, x)

    env = batched.BatchedRebalanceVecEnv(n, task=task, control_steps=10**5, inner_steps=10, threads=1, compile=False)
    env.seed(0)
    env.reset()
    a = np.zeros((n, 3), dtype=np.float32)
    for _ in range(3):
        env.step(a)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(10):
            env.step(a)
    copy = [e for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::copy_" and e.input_shapes
            and len(e.input_shapes[0]) == 3 and e.input_shapes[0][1] > 512]  # fmt: skip
    forwards.mlp_probe_forward = timed
    try:
        for _ in range(30):
            env.step(a)
    finally:
        forwards.mlp_probe_forward = orig
        env.close()
    print("probe forward, first layer (eager env, 1 thread):")
    if copy:
        c = max(copy, key=lambda e: e.self_cpu_time_total)
        print(f"  profiler: aten::copy_ {c.input_shapes[0]} (the bias broadcast) {c.self_cpu_time_total / c.count:8.1f} us per call")
    for k, v in times.items():
        print(f"  direct:   {k:40s} {np.median(v) * 1e6:8.1f} us (median of {len(v)})")


_GEMM = """
import os, sys, time
import numpy as np
a, b = np.random.rand(1024, 1024).astype(np.float32), np.random.rand(1024, 1024).astype(np.float32)
if sys.argv[1] == "torch":
    import torch
    torch.set_num_threads(1)
    a, b = torch.from_numpy(a), torch.from_numpy(b)
for _ in range(3):
    a @ b
t = time.perf_counter()
for _ in range(20):
    a @ b
print(2 * 1024**3 * 20 / (time.perf_counter() - t) / 1e9)
"""


def _gemm_peaks() -> None:
    """One core's sgemm rate at 1024^3, torch vs numpy, each in a fresh 1-thread interpreter."""
    import os
    import subprocess
    import sys

    env = {**os.environ, **{k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    rates = {}
    for lib in ("torch", "numpy"):
        out = subprocess.run([sys.executable, "-c", _GEMM, lib], capture_output=True, text=True, env=env, timeout=300)
        rates[lib] = float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else float("nan")
    print(f"one core, sgemm 1024^3: torch {rates['torch']:.0f} GFLOP/s, numpy {rates['numpy']:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
