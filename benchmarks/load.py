"""Load benchmark of `metacurr evaluate`: many short runs through a worker pool, memory and process hygiene.

Runs ``metacurr evaluate`` in a subprocess (its own session) and samples, every ``--interval`` seconds,
the resident memory of the evaluation process and every process it started (fork server, resource
tracker, workers): RSS summed over the processes (counts pages they share once per process, as
``ps`` does) and, where Linux offers ``/proc/PID/smaps_rollup``, PSS (shared pages split between
sharers: the honest total). Reports wall time, runs/s, peak and final memory, the memory slope over the
second half of the run (a leak shows as a steady positive slope) and, after the evaluation exits,
whether any process it started is still alive (leaked workers, a stray fork server or resource tracker).

    python benchmarks/load.py                 # 8 workers x 200 runs (4 controllers x quick x 50 seeds)
    python benchmarks/load.py --quick         # 2 workers x 24 runs
    python benchmarks/load.py --json load.json --keep-out runs/load

Uses psutil when installed, else /proc (Linux). Exit status: 0 = evaluation finished with every row and
no leaked process; 1 = otherwise.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:  # optional
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CONTROLLERS = "uniform,heuristic,random,dwa"


# --------------------------------------------------------------------------- process table


def _proc_table() -> dict[int, dict]:
    """pid -> {ppid, sid, state, start, rss, cmd} for every process (psutil or /proc)."""
    table: dict[int, dict] = {}
    if psutil is not None:
        for p in psutil.process_iter(["pid", "ppid", "status", "create_time", "memory_info", "cmdline"]):
            info = p.info
            try:
                sid = os.getsid(info["pid"])
            except OSError:
                continue
            mem = info.get("memory_info")
            table[info["pid"]] = {"ppid": info["ppid"], "sid": sid, "state": "Z" if info["status"] == "zombie" else "R",
                                  "start": str(info["create_time"]), "rss": mem.rss if mem else 0,
                                  "cmd": " ".join(info.get("cmdline") or [])}
        return table
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        f = stat.rsplit(")", 1)[1].split()
        table[int(d)] = {"ppid": int(f[1]), "sid": int(f[3]), "state": f[0], "start": f[19],
                         "rss": int(f[21]) * PAGE, "cmd": cmd}
    return table


def _pss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _descendants(table: dict[int, dict], root: int, sid: int) -> set[int]:
    """The root, its descendants (by ppid) and anything else in its session."""
    out = {root} if root in table else set()
    children: dict[int, list[int]] = {}
    for pid, p in table.items():
        children.setdefault(p["ppid"], []).append(pid)
    stack = [root]
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in out:
                out.add(c)
                stack.append(c)
    out |= {pid for pid, p in table.items() if p["sid"] == sid}
    return {pid for pid in out if table[pid]["state"] not in ("Z", "X")}


# --------------------------------------------------------------------------- run


def _slope_mb_per_min(samples: list[dict], key: str, t_from: float, t_to: float = float("inf")) -> float | None:
    """Least-squares slope of ``key`` over samples in [t_from, t_to], in MiB per minute."""
    pts = [(s["t"], s[key]) for s in samples if t_from <= s["t"] <= t_to and s.get(key) is not None]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return None
    cov = sum((t - mt) * (v - mv) for t, v in pts)
    return cov / var / 2**20 * 60  # bytes/s -> MiB/min


def run(args: argparse.Namespace) -> dict:
    out_dir = Path(args.keep_out) if args.keep_out else Path(tempfile.mkdtemp(prefix="metacurr-load-"))
    if args.keep_out and out_dir.exists():
        shutil.rmtree(out_dir)  # a fresh evaluation, not a resumed one
    n_ctrl = len(args.controllers.split(","))
    expected = n_ctrl * args.seeds  # the quick task set has one task
    cmd = [sys.executable, "-m", "metacurr.cli", "evaluate", "--controllers", args.controllers, "--tasks", args.tasks,
           "--seeds", str(args.seeds), "--control-steps", str(args.control_steps), "--inner-steps", str(args.inner_steps),
           "--workers", str(args.workers), "--no-progress", "--out", str(out_dir)]
    env = {**os.environ, "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    root = sid = proc.pid
    seen: dict[int, dict] = {}
    samples: list[dict] = []
    try:
        while proc.poll() is None:
            t = time.perf_counter() - t0
            table = _proc_table()
            procs = _descendants(table, root, sid)
            for pid in procs:
                seen.setdefault(pid, {"start": table[pid]["start"], "cmd": table[pid]["cmd"][:160]})
            rss = sum(table[p]["rss"] for p in procs)
            pss_vals = [_pss(p) for p in procs] if args.pss else []
            pss = sum(v for v in pss_vals if v is not None) if pss_vals and None not in pss_vals else None
            runs_dir = out_dir / "runs"
            done = sum(1 for _ in runs_dir.glob("*.json")) if runs_dir.is_dir() else 0
            samples.append({"t": round(t, 3), "n_procs": len(procs), "rss": rss, "pss": pss, "cells": done})
            if t > args.timeout:
                os.killpg(sid, signal.SIGKILL)
                break
            time.sleep(args.interval)
        stdout, stderr = proc.communicate(timeout=60)
    except BaseException:
        os.killpg(sid, signal.SIGKILL)
        raise
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()

    # After the evaluation exits: does anything it started live on?
    time.sleep(args.grace)
    table = _proc_table()
    leaked = sorted(pid for pid, info in seen.items()
                    if pid != root and pid in table and table[pid]["start"] == info["start"]
                    and table[pid]["state"] not in ("Z", "X"))
    leaked += sorted(pid for pid, p in table.items() if p["sid"] == sid and pid not in leaked and p["state"] not in ("Z", "X"))
    orphans_of_parent = sorted(pid for pid, p in table.items() if p["ppid"] == root and p["state"] not in ("Z", "X"))
    stray_mp = sorted(pid for pid in leaked if "multiprocessing" in table[pid]["cmd"])
    leaked_info = [{"pid": pid, "cmd": table[pid]["cmd"][:160]} for pid in leaked]
    for pid in leaked:  # ours: do not leave them running
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    rows = 0
    if (out_dir / "results.csv").is_file():
        with open(out_dir / "results.csv", newline="") as f:
            rows = sum(1 for _ in csv.DictReader(f))
    diverged = 0
    if rows:
        with open(out_dir / "results.csv", newline="") as f:
            diverged = sum(1 for r in csv.DictReader(f) if r.get("diverged") == "True")
    if not args.keep_out:
        shutil.rmtree(out_dir, ignore_errors=True)

    rss_series = [s["rss"] for s in samples]
    pss_series = [s["pss"] for s in samples if s["pss"] is not None]
    half = wall / 2
    # The pool's steady state: samples after the first stored cell and before the last one (so neither the
    # start-up nor the pool's shutdown and the report are in it); the slope is fitted to its second half.
    cell_phase = [s["t"] for s in samples if 0 < s["cells"] < expected]
    t_last = cell_phase[-1] if cell_phase else None
    steady = (cell_phase[0] + cell_phase[-1]) / 2 if cell_phase else None
    res = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["metacurr", *cmd[3:]]),
        "machine": {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                    "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
                    "sampler": "psutil" if psutil is not None else "/proc"},
        "workers": args.workers,
        "runs_expected": expected,
        "runs_in_results": rows,
        "diverged_or_failed": diverged,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 2),
        "runs_per_s": round(rows / wall, 3) if wall > 0 else None,
        "samples": len(samples),
        "max_processes": max((s["n_procs"] for s in samples), default=0),
        "peak_rss_mib": round(max(rss_series, default=0) / 2**20, 1),
        "final_rss_mib": round(rss_series[-1] / 2**20, 1) if rss_series else None,
        "peak_pss_mib": round(max(pss_series) / 2**20, 1) if pss_series else None,
        "final_pss_mib": round(pss_series[-1] / 2**20, 1) if pss_series else None,
        "rss_slope_second_half_mib_per_min": _round(_slope_mb_per_min(samples, "rss", half)),
        "pss_slope_second_half_mib_per_min": _round(_slope_mb_per_min(samples, "pss", half)),
        "steady_window_s": [steady, t_last] if steady is not None else None,
        "rss_slope_steady_mib_per_min": _round(_slope_mb_per_min(samples, "rss", steady, t_last)) if steady is not None else None,
        "pss_slope_steady_mib_per_min": _round(_slope_mb_per_min(samples, "pss", steady, t_last)) if steady is not None else None,
        "rss_at_steady_start_end_mib": _window_ends(samples, "rss", steady, t_last),
        "leaked_processes": leaked_info,
        "children_of_parent_left": orphans_of_parent,
        "stray_multiprocessing": stray_mp,
        "stdout_tail": stdout.strip().splitlines()[-2:] if stdout else [],
        "stderr_tail": stderr.strip().splitlines()[-5:] if stderr else [],
        "series": samples if args.series else None,
    }
    res["ok"] = bool(proc.returncode == 0 and rows == expected and not leaked and not orphans_of_parent)
    return res


def _window_ends(samples: list[dict], key: str, t_from: float | None, t_to: float | None) -> list | None:
    pts = [s[key] for s in samples if t_from is not None and t_from <= s["t"] <= t_to and s.get(key) is not None]
    return [round(pts[0] / 2**20, 1), round(pts[-1] / 2**20, 1)] if pts else None


def _round(v: float | None, n: int = 2) -> float | None:
    return None if v is None else round(v, n)


def table(res: dict) -> str:
    rows = [
        ("command", res["command"]),
        ("machine", f"{res['machine']['cpus']} CPUs ({res['machine']['cpus_usable']} usable), {res['machine']['platform']}, "
                    f"Python {res['machine']['python']}, sampler {res['machine']['sampler']}"),
        ("load average before / after", f"{res['machine']['loadavg_before'][0]} / {res['machine']['loadavg_after'][0]} (1 min)"),
        ("workers", res["workers"]),
        ("runs (in results.csv / expected)", f"{res['runs_in_results']} / {res['runs_expected']}"),
        ("diverged or failed runs", res["diverged_or_failed"]),
        ("exit code", res["exit_code"]),
        ("wall time", f"{res['wall_s']:.1f} s"),
        ("throughput", f"{res['runs_per_s']:.2f} runs/s" if res["runs_per_s"] is not None else "-"),
        ("processes (max at once)", res["max_processes"]),
        ("total RSS peak / final", f"{res['peak_rss_mib']:.0f} / {res['final_rss_mib']:.0f} MiB"),
        ("total PSS peak / final", f"{res['peak_pss_mib']:.0f} / {res['final_pss_mib']:.0f} MiB"
         if res["peak_pss_mib"] is not None else "n/a"),
        ("RSS slope, second half of the run", _fmt_slope(res["rss_slope_second_half_mib_per_min"])),
        ("PSS slope, second half of the run", _fmt_slope(res["pss_slope_second_half_mib_per_min"])),
        ("RSS slope, 2nd half of the cell phase", _fmt_slope(res["rss_slope_steady_mib_per_min"])
         + (f" (RSS {res['rss_at_steady_start_end_mib'][0]:.0f} -> {res['rss_at_steady_start_end_mib'][1]:.0f} MiB)"
            if res["rss_at_steady_start_end_mib"] else "")),
        ("PSS slope, 2nd half of the cell phase", _fmt_slope(res["pss_slope_steady_mib_per_min"])),
        ("processes left after exit", len(res["leaked_processes"])),
        ("children of the parent left", len(res["children_of_parent_left"])),
        ("stray multiprocessing processes", len(res["stray_multiprocessing"])),
        ("verdict", "OK" if res["ok"] else "PROBLEM"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def _fmt_slope(v: float | None) -> str:
    return "n/a (too few samples)" if v is None else f"{v:+.1f} MiB/min"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 workers x 24 runs (4 controllers x 6 seeds)")
    p.add_argument("--workers", type=int, help="worker processes (default 8; --quick 2)")
    p.add_argument("--seeds", type=int, help="seeds per controller (default 50; --quick 6)")
    p.add_argument("--controllers", default=CONTROLLERS, help=f"default {CONTROLLERS}")
    p.add_argument("--tasks", default="quick", help="task set (default quick: one task)")
    p.add_argument("--control-steps", type=int, default=5)
    p.add_argument("--inner-steps", type=int, default=5)
    p.add_argument("--interval", type=float, default=0.5, help="sampling interval in seconds (default 0.5)")
    p.add_argument("--grace", type=float, default=3.0, help="seconds to wait after exit before looking for leftovers")
    p.add_argument("--timeout", type=float, default=1800, help="kill the evaluation after this many seconds")
    p.add_argument("--no-pss", dest="pss", action="store_false", help="skip PSS (smaps_rollup) sampling")
    p.add_argument("--series", action="store_true", help="include the sampled time series in the JSON")
    p.add_argument("--keep-out", help="evaluation folder to keep (default: a temp folder, removed)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    args.workers = args.workers or (2 if args.quick else 8)
    args.seeds = args.seeds or (6 if args.quick else 50)
    if args.tasks != "quick":
        p.error("only --tasks quick (one task) is supported: the expected run count assumes one task")
    res = run(args)
    print(table(res))
    if res["leaked_processes"]:
        print("left behind:", *(f"  {x['pid']}: {x['cmd']}" for x in res["leaked_processes"]), sep="\n")
    if res["stderr_tail"] and res["exit_code"] != 0:
        print("evaluate stderr:", *res["stderr_tail"], sep="\n  ")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
