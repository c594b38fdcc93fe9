"""Timing, memory and table helpers shared by the benchmarks (no gradcheck import here).

Timing: best of ``repeat`` calls (``min`` is the least noisy estimator on a shared machine),
after one untimed warm-up call, stopping early once ``budget_s`` seconds have been spent.

Memory, in-process (``peak_rss``): free heap memory is handed back to the OS first
(``malloc_trim``), the kernel's high-water mark of this process is reset to the current RSS
(``echo 5 > /proc/self/clear_refs``, Linux >= 4.0), the call runs, and the reported figure is
``VmHWM - VmRSS(before)``: the *extra* resident memory the call needed at its peak. It counts
every allocator (torch, numpy, scipy/ARPACK), unlike ``tracemalloc`` which sees none of torch's.
Where ``clear_refs`` is not writable the whole-process ``ru_maxrss`` is reported instead and
the basis column says so. Subprocesses (``run_process``) report the child's own peak RSS from
``os.wait4`` (its ``ru_maxrss``), i.e. the whole process including the interpreter and torch.
"""
from __future__ import annotations

import csv
import ctypes
import gc
import json
import math
import os
import re
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

COLUMNS = ("benchmark", "case", "engine_s", "baseline", "baseline_s", "ratio", "goal",
           "peak_MiB", "mem_basis", "agreement", "notes")

try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # pragma: no cover - not glibc
    _LIBC = None


def layer_inputs(seq, idx, x):
    """The input of module ``seq[j]`` for every ``j`` in ``idx`` (a flat model), no grad."""
    import torch

    hs, h = [], x
    with torch.no_grad():
        for j, m in enumerate(seq):
            if j in idx:
                hs.append(h)
            h = m(h)
    return hs


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def trim() -> None:
    """Collect garbage and give free heap pages back to the OS."""
    gc.collect()
    if _LIBC is not None:
        try:
            _LIBC.malloc_trim(0)
        except AttributeError:  # pragma: no cover
            pass


MEM_BASIS = "extra RSS at peak (VmHWM reset)"
MEM_BASIS_FALLBACK = "process ru_maxrss (not resettable)"


def peak_rss(fn, timed: bool = False):
    """Run ``fn()`` once; return ``(result, peak MiB, basis)`` (module docstring: the basis),
    with the call's wall seconds appended if ``timed``."""
    trim()
    reset = _reset_hwm()
    before = _status_kib("VmRSS") or 0
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    if reset:
        res = (out, max(0.0, ((_status_kib("VmHWM") or 0) - before) / 1024), MEM_BASIS)
    else:
        res = (out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               MEM_BASIS_FALLBACK)
    return (*res, dt) if timed else res


def best_time(fn, repeat: int = 3, budget_s: float = 30.0, warmup: bool = True) -> float:
    """Best wall time of ``fn()`` over at most ``repeat`` calls (stops once ``budget_s`` spent)."""
    if warmup:
        fn()
    best, spent, n = math.inf, 0.0, 0
    while n < repeat and (n == 0 or spent < budget_s):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, n = min(best, dt), spent + dt, n + 1
    return best


def measure(fn, repeat: int = 3, budget_s: float = 30.0):
    """``(result, best seconds, peak MiB, basis)``: the first call measures memory and is timed
    too; more calls (``repeat`` in all) while less than ``budget_s`` has been spent."""
    out, mib, basis, first = peak_rss(fn, timed=True)
    if repeat <= 1 or first >= budget_s:
        return out, first, mib, basis
    rest = best_time(fn, repeat - 1, budget_s - first, warmup=False)
    return out, min(first, rest), mib, basis


def max_rel_diff(a, b, scale=None) -> float:
    """``max |a - b| / scale`` with ``scale = max |b|`` unless given (NaN entries skipped)."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return math.nan
    s = float(np.max(np.abs(b[ok]))) if scale is None else float(scale)
    return float(np.max(np.abs(a[ok] - b[ok]))) / (s if s > 0 else 1.0)


def run_process(cmd: list[str], timeout_s: float, cwd=None, env=None, log=None) -> dict:
    """Run ``cmd``; ``{'wall_s', 'peak_MiB', 'rc', 'timeout'}`` with the child's own peak RSS
    (``os.wait4`` rusage). Past ``timeout_s`` the child's process group is killed."""
    out = open(log, "w") if log else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True)
    fired = threading.Event()

    def kill():
        fired.set()
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:  # pragma: no cover
            pass

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
        if log:
            out.close()
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "peak_MiB": ru.ru_maxrss / 1024, "rc": p.returncode,
            "timeout": fired.is_set()}


def row(benchmark, case, engine_s=None, baseline="", baseline_s=None, goal="", peak_MiB=None,
        mem_basis="", agreement=None, notes="", ratio=None) -> dict:
    """One result row; ``ratio = baseline_s / engine_s`` (> 1: the engine is faster)."""
    if ratio is None and engine_s and baseline_s:
        ratio = baseline_s / engine_s
    return dict(benchmark=benchmark, case=case, engine_s=engine_s, baseline=baseline,
                baseline_s=baseline_s, ratio=ratio, goal=goal, peak_MiB=peak_MiB,
                mem_basis=mem_basis, agreement=agreement, notes=notes)


def guarded(benchmark: str, label: str, fn, *args, **kwargs) -> list[dict]:
    """``fn(*args, **kwargs)`` (a list of rows), or one error row if it raises."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure is one row of the table
        msg = " ".join(str(e).split())[:160]
        print(f"  {label}: FAILED {type(e).__name__}: {msg}", flush=True)
        return [row(benchmark, label, notes=f"error: {type(e).__name__}: {msg}")]


def _fmt(key, v) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if key == "ratio":
            return f"x{v:.2f}" if v < 10 else f"x{v:.0f}"
        if key == "agreement":
            return f"{v:.1e}"
        if key == "peak_MiB":
            return f"{v:.0f}" if v >= 10 else f"{v:.1f}"
        return f"{v:.4f}" if v < 1 else f"{v:.2f}"
    return str(v)


def markdown(rows: list[dict], columns=COLUMNS) -> str:
    """A markdown table of ``rows`` (empty columns dropped)."""
    cols = [c for c in columns if any(r.get(c) not in (None, "") for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(c, r.get(c)).replace("|", "/") for c in cols)
                     + " |")
    return "\n".join(lines)


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n### {title}\n", flush=True)
    print(markdown(rows), flush=True)


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})


def set_threads(n: int) -> None:
    """``torch.set_num_threads(n)``; 0 leaves torch's default."""
    if n > 0:
        import torch

        torch.set_num_threads(n)


def cli(description: str, run, argv=None) -> int:
    """Shared ``main`` of the benchmark modules: ``[--quick] [--threads N] [--json FILE]``;
    the module's ``run`` prints its tables."""
    import argparse

    ap = argparse.ArgumentParser(description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in this process (default 1: stable ratios on a shared "
                         "machine; 0: torch's default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    rows = run(quick=a.quick)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, default=float))
    return 0


def env_line() -> str:
    import platform

    import torch

    return (f"python {platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f}")


__all__ = ["COLUMNS", "MEM_BASIS", "best_time", "cli", "env_line", "guarded", "markdown",
           "max_rel_diff",
           "measure", "peak_rss", "print_table", "row", "run_process", "trim", "write_csv"]
