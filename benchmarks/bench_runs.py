"""Whole ``gradcheck run`` commands in a subprocess: wall time and the child's peak RSS.

Each case runs ``python -m gradcheck run ... --out <temp dir> --force`` (plots included, as a
user gets them) with stdout/stderr sent to ``<out>/logs/<case>.log``. Peak memory is the child's
own ``ru_maxrss`` from ``os.wait4`` (the whole process: interpreter, torch, the probe). A case
that runs past its timeout (600 s; 120 s with ``--quick``) is killed and recorded as
``timeout``, a non-zero exit as ``rc=N``; the suite goes on.

There is no baseline: ``baseline_s`` is the goal's time budget and ``ratio = goal / measured``
(> 1: within the goal). ``--quick`` runs the small cases as they are and tiny versions of the
big ones (marked ``tiny``; their goals do not apply). Run
``python benchmarks/bench_runs.py [--quick]``.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

try:
    from . import common as C
except ImportError:
    import common as C

OUT = Path(__file__).resolve().parent / "out"

#: (case, flags, goal seconds, goal MiB, flags for --quick: None = the same, "" = skipped)
CASES = [
    ("quick start: mlp d20 w128", "--init lecun --depth 20", 3.0, None, None),
    ("mlp d50 w1024 b256", "--depth 50 --width 1024 --batch 256", 60.0, 4096.0,
     "--depth 50 --width 128 --batch 32"),
    ("conv d20", "--arch conv --depth 20", None, None, "--arch conv --depth 8 --batch 16"),
    ("sngan sn", "--arch sngan --init sn", 10.0, 1024.0, ""),
    ("resnet sn", "--arch resnet --init sn", 15.0, None, None),
]


def _goal(s, mib) -> str:
    parts = ([f"<= {s:g} s"] if s else []) + ([f"<= {mib / 1024:g} GiB"] if mib else [])
    return ", ".join(parts)


def bench_case(case, flags, goal_s, goal_mib, timeout_s, tiny=False, logdir=OUT / "logs"):
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / (case.split(":")[0].replace(" ", "_") + ".log")
    with tempfile.TemporaryDirectory(prefix="gcbench-") as tmp:
        cmd = [sys.executable, "-m", "gradcheck", "run", *flags.split(), "--out",
               str(Path(tmp) / "run"), "--force"]
        r = C.run_process(cmd, timeout_s, cwd=tmp, log=log)
    label = f"gradcheck run {flags}" + (" (tiny)" if tiny else "")
    goal = "" if tiny else _goal(goal_s, goal_mib)
    if r["timeout"]:
        note = f"timeout after {timeout_s:g} s"
    elif r["rc"] != 0:
        note = f"rc={r['rc']} (see {log.name})"
    else:
        note = ""
        if goal_mib and not tiny:
            note = "memory goal met" if r["peak_MiB"] <= goal_mib else "memory goal missed"
    wall = None if r["timeout"] else r["wall_s"]
    base = goal_s if (goal_s and not tiny) else None
    return C.row("runs", label, wall, "goal" if base else "", base, goal=goal,
                 peak_MiB=r["peak_MiB"], mem_basis="child ru_maxrss (whole process)",
                 notes=note)


def run(quick: bool = False) -> list[dict]:
    print(f"whole gradcheck runs; {C.env_line()}", flush=True)
    rows = []
    for case, flags, goal_s, goal_mib, tiny in CASES:
        if quick and tiny == "":
            rows.append(C.row("runs", f"gradcheck run {flags}", goal=_goal(goal_s, goal_mib),
                              notes="skipped with --quick (minutes on a loaded 2-core machine)"))
            continue
        use_tiny = quick and tiny is not None
        r = C.guarded("runs", case, lambda *a, **k: [bench_case(*a, **k)], case,
                      tiny if use_tiny else flags, goal_s, goal_mib,
                      timeout_s=120.0 if quick else 600.0, tiny=use_tiny)[0]
        t = r.get("engine_s")
        print(f"  {r['case']}: {f'{t:.1f} s' if t else '-'}, {r.get('peak_MiB') or 0:.0f} MiB "
              f"{r['notes']}", flush=True)
        rows.append(r)
    C.print_table("runs: whole gradcheck run", rows)
    return rows


if __name__ == "__main__":
    raise SystemExit(C.cli(__doc__, run))
