"""``gradcheck figures``: regenerate the paper figures F1-F8 with progress output.

``main(argv) -> int``: 0 every requested figure was written, 1 some figure failed (the others
are still made; the error is printed), 2 usage error (one line on stderr). For embedding in
another argparse CLI use :func:`add_arguments` and :func:`run`.

Each figure writes ``OUT/fN.csv`` (the table it is drawn from), ``OUT/fN.png`` and
``OUT/fN.pdf``; the toy GAN runs of F5-F7 are cached under ``OUT/runs`` and reused.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from . import FIGURES
from ._common import DEFAULT_OUT

TITLES = {
    "F1": "gradient norm vs layer index, 8 schemes (C7)",
    "F2": "C1 gradient bound over random nets",
    "F3": "SN_w vs strict SN on the CIFAR-10 discriminator (C8, C6b)",
    "F4": "random matrices: C5 bounds and the SN shrink (C6b)",
    "F5": "raw spectral norms over GAN training (C10a)",
    "F6": "gradient norms and sample quality over training (C10c)",
    "F7": "SSN / BSSN scale sweep",
    "F8": "Jacobian spectra vs depth, Fuss-Catalan (§5)",
}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump (exit code 2 in main)
        raise UsageError(message)


def parse_only(text: str | None) -> list[str]:
    """'F3,F5' (case-insensitive, spaces allowed) -> ['F3', 'F5'] in F1..F8 order."""
    if not text:
        return list(FIGURES)
    want = [t.strip().upper() for t in text.split(",") if t.strip()]
    bad = [t for t in want if t not in FIGURES]
    if bad or not want:
        raise UsageError(f"argument --only: unknown figure(s) {', '.join(bad) or repr(text)}; "
                         f"allowed: {', '.join(FIGURES)} (comma-separated)")
    return [f for f in FIGURES if f in want]


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of ``gradcheck figures`` (also used by ``gradcheck.cli``)."""
    p.add_argument("--quick", action="store_true",
                   help="small settings: seconds to a few minutes per figure on 2 CPU "
                        "cores (F5-F7 train toy GANs, about 5 minutes together); default: "
                        "paper-scale settings")
    p.add_argument("--only", metavar="F3,F5", default=None,
                   help="comma-separated figure IDs to make (default: all of F1-F8)")
    p.add_argument("--out", metavar="DIR", type=Path, default=DEFAULT_OUT,
                   help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--tiny", action="store_true",
                   help="smoke-test settings (seconds per figure; used by the tests)")
    p.add_argument("--draw-only", action="store_true",
                   help="redraw from the CSVs already in --out without recomputing")
    p.add_argument("--force", action="store_true",
                   help="write into an --out that already holds figures (its cached training "
                        "runs are reused)")
    return p


def check_out(args: argparse.Namespace, ids: list[str]) -> None:
    """Before any work: --draw-only needs the CSVs; otherwise the output-directory rules of every
    subcommand (:func:`gradcheck.cli.check_out_dir`, kind ``figures``; cached training runs
    inside are reused)."""
    from gradcheck.cli import check_out_dir
    from gradcheck.spec import SpecError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"argument --out: {out} exists and is not a directory")
    if args.draw_only:
        missing = [f for f in ids if not (out / f"{f.lower()}.csv").is_file()]
        if missing:
            names = ", ".join(m.lower() + ".csv" for m in missing)
            raise UsageError(f"argument --draw-only: no {names} in {out}; run without "
                             "--draw-only first")
        return
    try:
        check_out_dir(out, args.force, kind="figures")
    except SpecError as e:
        raise UsageError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(_Parser(prog="gradcheck figures",
                                 description="Regenerate the figures F1-F8 (PNG, PDF, CSV)."))


def run(args: argparse.Namespace) -> int:
    """Make the figures selected by parsed ``args``; progress lines on stdout."""
    ids = parse_only(args.only)
    out = Path(args.out)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    print(f"gradcheck figures: {', '.join(ids)} ({mode} mode) -> {out}", flush=True)
    failed, times, logs = [], {}, []
    t_all = time.perf_counter()
    if not args.draw_only:
        from gradcheck.report.io import write_manifest

        out.mkdir(parents=True, exist_ok=True)
        write_manifest(out, "figures")
    for k, fid in enumerate(ids, 1):
        print(f"[{k}/{len(ids)}] {fid}: {TITLES[fid]}", flush=True)
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(FIGURES[fid])
            name = fid.lower()
            if args.draw_only:
                from ._common import read_table
                df = read_table(out, name)
            else:
                df = mod.compute(args.quick, args.tiny, out)
            mod.draw(df, out)
        except Exception as e:  # noqa: BLE001 - report, go on with the other figures
            failed.append(fid)
            log = _log_traceback(e, fid)
            logs.append(log)
            for ext in ("csv", "png", "pdf"):     # no half-made figure is left behind
                if not args.draw_only:
                    (out / f"{fid.lower()}.{ext}").unlink(missing_ok=True)
            print(f"[{k}/{len(ids)}] {fid} FAILED after {time.perf_counter() - t0:.1f} s: "
                  f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                  f"(traceback in {log})", flush=True)
            continue
        times[fid] = time.perf_counter() - t0
        print(f"[{k}/{len(ids)}] {fid} done in {times[fid]:.1f} s: {out / fid.lower()}"
              ".{png,pdf,csv}", flush=True)
    total = time.perf_counter() - t_all
    print(f"{len(times)}/{len(ids)} figures in {total:.1f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    if failed:
        print(f"gradcheck: internal error: figure(s) {', '.join(failed)} failed (traceback "
              f"in {', '.join(logs)})", file=sys.stderr)
    return 3 if failed else 0      # a failed figure is an internal error, never 'violated'


def _log_traceback(exc: BaseException, fid: str) -> str:
    import os

    from gradcheck._errors import log_dir

    d = log_dir()
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"gradcheck-figures-{fid}-{time.strftime('%Y%m%d-%H%M%S')}-"
                           f"{os.getpid()}.log")
    with open(path, "w") as f:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=f)
    return path


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        check_out(args, parse_only(args.only))
    except UsageError as e:
        print(f"gradcheck: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    fresh = not out.exists()
    try:
        code = run(args)
        if code and fresh and out.exists() and not any(out.glob("f[1-8].csv")):
            import shutil

            shutil.rmtree(out, ignore_errors=True)   # nothing made: leave nothing behind
        return code
    except KeyboardInterrupt:
        if fresh and out.exists():        # an interrupted first run leaves nothing behind
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise


if __name__ == "__main__":
    raise SystemExit(main())
