"""Run the whole benchmark suite; write ``results.csv`` and ``results.md`` under ``--out``.

``python benchmarks/run_all.py [--quick] [--only grads,spectra,conv,opnorm,runs,growth]
[--out benchmarks/out] [--threads 1]``

Each benchmark runs in its own fresh Python process (``benchmarks/bench_<name>.py --json``),
so one benchmark's memory or threads cannot leak into the next and a crash is one error row,
not the end of the suite. Tables are printed as they are measured. ``ratio`` is always
``baseline_s / engine_s`` (> 1: the engine is faster); goals are printed, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common as C  # noqa: E402

BENCHMARKS = {
    "grads": ("bench_grad_norms.py", "per-sample gradient norms"),
    "spectra": ("bench_spectra.py", "MLP Jacobian spectra"),
    "conv": ("bench_conv.py", "conv Jacobian top-k"),
    "opnorm": ("bench_opnorm.py", "conv operator norms"),
    "runs": ("bench_runs.py", "whole gradcheck run"),
    "growth": ("bench_growth.py", "cost growth"),
}
#: wall-clock limit of one benchmark process (the runs benchmark has its own per-case limits)
TIMEOUT = {True: 900.0, False: 3600.0}


def _header(quick: bool, threads: int, elapsed: float, only) -> str:
    import torch

    return "\n".join([
        f"# gradcheck benchmarks ({'--quick' if quick else 'full'})", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S')}; suite wall time {elapsed:.0f} s; "
        f"benchmarks: {', '.join(only)}",
        f"- python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} "
        f"CPUs, torch threads per benchmark process: {threads or 'torch default'}; load "
        f"average at the end {os.getloadavg()[0]:.1f}",
        "- `ratio` = baseline_s / engine_s, both measured in the same process (> 1: the engine "
        "is faster); `runs`: baseline_s is the goal's time budget, ratio = goal / measured.",
        "- times: best of a few calls (first call included); `peak_MiB`: see `mem_basis` "
        "(in-process: extra resident memory at the call's peak, high-water mark reset before "
        "the call; runs: the child process's whole peak RSS).",
        "- `agreement`: max relative difference of the baseline's answer from the engine's.",
        "- goals are the engine's targets, printed beside the measurement and never asserted.",
        ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, tiny whole runs (~3 min)")
    ap.add_argument("--only", default=",".join(BENCHMARKS),
                    help=f"comma list of {', '.join(BENCHMARKS)}")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in each benchmark process (0: torch's default)")
    a = ap.parse_args(argv)
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    bad = [s for s in only if s not in BENCHMARKS]
    if bad:
        ap.error(f"--only: unknown {', '.join(bad)}; choose from {', '.join(BENCHMARKS)}")
    raw = a.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    t0, rows, sections = time.perf_counter(), [], []
    for name in only:
        script, title = BENCHMARKS[name]
        js = raw / f"{name}.json"
        js.unlink(missing_ok=True)
        cmd = [sys.executable, str(HERE / script), "--json", str(js), "--threads",
               str(a.threads)] + (["--quick"] if a.quick else [])
        print(f"\n=== {name}: {title} ({' '.join(cmd[1:])})", flush=True)
        ts = time.perf_counter()
        try:
            rc = subprocess.run(cmd, timeout=TIMEOUT[a.quick]).returncode
            err = None if rc == 0 else f"exit code {rc}"
        except subprocess.TimeoutExpired:
            err = f"timeout after {TIMEOUT[a.quick]:g} s"
        part = json.loads(js.read_text()) if js.exists() else []
        if err:
            part.append(C.row(name, "(benchmark failed)", notes=err))
        print(f"=== {name}: {time.perf_counter() - ts:.0f} s", flush=True)
        rows += part
        sections.append((title, name, part))
    elapsed = time.perf_counter() - t0
    C.write_csv(rows, a.out / "results.csv")
    md = [_header(a.quick, a.threads, elapsed, only)]
    for title, name, part in sections:
        md += [f"## {name}: {title}", "", C.markdown(part) if part else "(no rows)", ""]
    (a.out / "results.md").write_text("\n".join(md))
    print(f"\nsuite: {elapsed:.0f} s; wrote {a.out / 'results.csv'} and {a.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
