"""``gradcheck compare`` and ``gradcheck sweep``.

``gradcheck.cli`` owns the run flags and the output-directory checks and hands them in
(``main(argv, run_flags, check_out_dir)``), so this package never imports the CLI module.
Every input error raises SpecError (exit 2, one line) before any output exists.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..spec import RunSpec, SpecError, parse_seeds
from .grid import Cell, FieldTypes, expand, parse_values, read_grid_file

#: what compare compares when --init is not given (the issue's six)
DEFAULT_SCHEMES = "lecun,xavier,kaiming,sn,bsn,bssn"
#: a grid larger than this is refused (a typo such as --seeds 0-99999)
MAX_CELLS = 100_000


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # noqa: D102 - one line, no usage dump
        raise SpecError(message)


def build_parser(command: str, run_flags: dict) -> argparse.ArgumentParser:
    sweep = command == "sweep"
    desc = ("Run a grid of specs (every combination of the list- or range-valued run flags, or "
            "of a --grid file), one cell per spec and seed; resumable; write tidy tables of "
            "every layer and check row keyed by the grid coordinates, a per-cell summary and "
            "summary plots." if sweep else
            "Probe the same architecture under several schemes (--init a,b,c; with --model "
            "each scheme replaces your model's own normalisation) and print the per-layer "
            "numbers side by side with a verdict row per scheme; write the tables and one "
            "figure.")
    p = _Parser(prog=f"gradcheck {command}", description=desc)
    for flag, (field, _, hlp) in run_flags.items():
        if sweep:
            hlp += " [a comma list; integers also as ranges A-B]"
        elif field == "init":
            hlp = f"a comma list of schemes (default {DEFAULT_SCHEMES}): " + hlp
        p.add_argument(flag, dest=field, type=str, default=argparse.SUPPRESS, help=hlp)
    p.add_argument("--bias", action="store_true", default=argparse.SUPPRESS,
                   help="add biases (theory claims then report 'not applicable')")
    if sweep:
        p.add_argument("--grid", type=Path, help="a JSON or TOML file of spec fields, each a "
                       "value or a list (flags given beside it override its entries)")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: "
                   "the cores; 1 = in this process)")
    p.add_argument("--dask", metavar="ADDRESS", help="run the cells on an existing Dask "
                   "cluster: tcp://host:port or a scheduler JSON file (needs gradcheck[dask])")
    p.add_argument("--dask-timeout", type=float, default=10.0,
                   help="seconds to wait for the Dask scheduler (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per cell "
                   "(default 1; results are bit-identical across backends for one value)")
    p.add_argument("--light", action="store_true", help="skip the model-level claims (C2a, C3, "
                   "C4, C11-H) and C6a's LeCun twin: several times faster on deep nets")
    p.add_argument("--out", type=Path, help="output directory (default runs/sweep; an "
                   "existing sweep directory is resumed, its finished cells reused)" if sweep else
                   "output directory (default runs/compare-<arch>-d<L>-s<seeds>, a fresh name)")
    if not sweep:
        p.add_argument("--force", action="store_true", help="overwrite an existing --out")
        p.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figure")
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    return p


# -- flags -> cells --------------------------------------------------------------------------
def _given(ns, types: FieldTypes) -> list[str]:
    return [f for f in types.order if f != "bias" and hasattr(ns, f)]


def _sweep_values(ns, types: FieldTypes) -> dict[str, list]:
    values = read_grid_file(ns.grid, types) if ns.grid is not None else {}
    for field in _given(ns, types):
        values[field] = parse_values(field, getattr(ns, field), types)
    if getattr(ns, "bias", False):
        values["bias"] = [True]
    return values


def _compare_values(ns, types: FieldTypes) -> dict[str, list]:
    values: dict[str, list] = {}
    for field in _given(ns, types):
        text = getattr(ns, field)
        if field in ("init", "seeds"):
            values[field] = parse_values(field, text, types)
            continue
        got = parse_values(field, text, types)
        if len(got) != 1:
            raise SpecError(f"argument {types.flag_of[field]}: compare takes one value here "
                            f"(only --init and --seeds take lists; grids are for gradcheck "
                            f"sweep); got {text!r}")
        values[field] = got
    values.setdefault("init", parse_values("init", DEFAULT_SCHEMES, types))
    if getattr(ns, "bias", False):
        values["bias"] = [True]
    if "checkpoint" in values:
        raise SpecError("argument --checkpoint: compare applies each scheme to the raw weights "
                        "of a built-in or --model architecture; a checkpoint's trained weights "
                        "have no scheme to swap (probe it with gradcheck run)")
    return values


def check_backend_options(ns) -> None:
    """--threads, --workers, --dask, --dask-timeout (sweep, compare and study)."""
    if ns.threads < 1:
        raise SpecError(f"argument --threads: must be an integer >= 1; got {ns.threads}")
    if ns.workers is not None and ns.workers < 1:
        raise SpecError(f"argument --workers: must be an integer >= 1; got {ns.workers}")
    if ns.workers is not None and ns.dask:
        raise SpecError("arguments --workers and --dask: give one of them (the Dask cluster "
                        "has its own workers)")
    if not ns.dask_timeout > 0:
        raise SpecError(f"argument --dask-timeout: must be > 0; got {ns.dask_timeout}")


def _check_resources(cells: list[Cell]) -> None:
    from ..resources import check_resources

    seen = set()
    for c in cells:
        key = json.dumps({**c.spec, "seeds": [0]}, sort_keys=True)
        if key not in seen:
            seen.add(key)
            check_resources(RunSpec.from_dict(c.spec))


def _backend(ns):
    from .backends import Backend, connect_dask, cores

    if ns.dask:
        return Backend("dask", address=ns.dask, client=connect_dask(ns.dask, ns.dask_timeout))
    n = ns.workers if ns.workers is not None else cores()
    return Backend("local" if n > 1 else "serial", workers=n)


class CellFailed(RuntimeError):
    """A cell raised an internal error in a worker (its traceback is in the message)."""


def checked_result(res: dict) -> dict:
    """A worker's result as its cell file will hold it (strict JSON); a failed cell raised:
    SpecError (one line, exit 2) for an input error, :class:`CellFailed` (exit 3) else."""
    if not res.get("ok"):
        if res.get("usage"):
            raise SpecError(" ".join(str(res["message"]).split()))
        raise CellFailed(f"cell {res['key']} failed in a worker: {res['message']}\n"
                         f"worker traceback:\n{res.get('traceback', '')}")
    return json.loads(json.dumps(res, allow_nan=False))     # exactly what a file holds


def _collect(backend, cells: list[Cell], results: dict, on_saved=None) -> int:
    """Compute the cells not in ``results`` on ``backend``; return how many were computed."""
    todo, seen = [], set(results)
    cwd = os.getcwd()
    for c in cells:
        if c.key not in seen:
            seen.add(c.key)
            todo.append({**c.payload(), "cwd": cwd})

    def on_result(res: dict) -> None:
        res = checked_result(res)
        if on_saved is not None:
            on_saved(res)
        results[res["key"]] = res

    backend.run(todo, on_result)
    return len(todo)


def _bar(total: int, initial: int, quiet: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="cell", desc=desc, file=sys.stderr,
                disable=quiet, dynamic_ncols=True, smoothing=0.1)


# -- sweep -----------------------------------------------------------------------------------
def cmd_sweep(ns, types: FieldTypes, check_out_dir) -> int:
    values = _sweep_values(ns, types)
    check_backend_options(ns)
    if not values:
        raise SpecError("gradcheck sweep: give the grid (run flags with lists or ranges, e.g. "
                        "--init lecun,sn --depth 2,5 --seeds 0-2, or --grid FILE)")
    n = 1
    for v in values.values():
        n *= len(v)
    if n > MAX_CELLS:
        raise SpecError(f"gradcheck sweep: the grid has {n} cells; at most {MAX_CELLS}")
    cells = expand(values, types, ns.light, ns.threads, reschemed="model" in values)
    axes = [k for k, _ in cells[0].coords]
    out = ns.out if ns.out is not None else Path("runs/sweep")
    check_out_dir(out, False, kind="sweep", resume=True)
    _check_resources(cells)
    backend = _backend(ns)
    try:
        return _sweep(ns, cells, axes, out, backend, values)
    finally:
        backend.close()


def _sweep(ns, cells, axes, out: Path, backend, values) -> int:
    from .._errors import preload
    from ..report.io import MANIFEST, write_json, write_manifest
    from .cells import CellStore

    preload()
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST).exists():
        write_manifest(out, "sweep")
    store = CellStore(out)
    store.remove_stale()
    results: dict[str, dict] = {}
    for c in cells:
        if c.key not in results:
            got = store.load(c.key)
            if got is not None:
                results[c.key] = got
    unique = len({c.key for c in cells})
    skipped = len(results)
    say = (lambda m: None) if ns.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    say(f"sweep: {len(cells)} cells ({unique} distinct), {skipped} already done in {out}, "
        f"{unique - skipped} to compute on {backend.describe()}")
    bar = _bar(unique, skipped, ns.quiet, "sweep")
    seconds: dict[str, float] = {}

    def saved(res: dict) -> None:
        store.save(res)
        seconds[res["key"]] = res["seconds"]
        bar.update(1)
    try:
        computed = _collect(backend, cells, results, saved)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    return _write_sweep(ns, cells, axes, out, results, dict(
        backend=backend.describe(), wall_seconds=round(wall, 3), computed=computed,
        skipped=skipped, cell_seconds_sum=round(sum(seconds.values()), 3)), values,
        write_json)


def _write_sweep(ns, cells, axes, out, results, timing, values, write_json) -> int:
    from .tables import cell_summary, table_format, tidy, write_table

    layers, checks = tidy(cells, results)
    summary = cell_summary(cells, results)
    fmt = table_format()
    names = [write_table(layers, out / "layers", fmt), write_table(checks, out / "checks", fmt),
             write_table(summary, out / "summary", fmt)]
    grid = {k: [list(x) if isinstance(x, tuple) else x for x in v] for k, v in values.items()}
    write_json(dict(seconds=timing), out / "timings.json")
    if not ns.no_plots:
        from .plots import plot_sweep

        tmp = out / f".sweep.png.tmp-{os.getpid()}.png"
        if plot_sweep(summary, axes, tmp):
            os.replace(tmp, out / "sweep.png")
            names.append("sweep.png")
    bad = summary[summary.violated != ""]
    meta = dict(complete=True, grid=grid, axes=axes, cells=len(cells),
                distinct_cells=len({c.key for c in cells}), table_format=fmt,
                light=bool(ns.light), threads=int(ns.threads),
                violated_cells=[c for c in bad.cell], files=names + ["timings.json"],
                cell_keys=[c.key for c in cells])
    tmp = out / f".sweep.json.tmp-{os.getpid()}"
    write_json(meta, tmp)
    os.replace(tmp, out / "sweep.json")
    if not ns.quiet:
        _print_summary(summary, axes)
        print(f"\n{len(cells)} cells ({timing['computed']} computed, {timing['skipped']} "
              f"reused) in {timing['wall_seconds']:.1f} s; "
              f"{len(bad)} with a violated claim  ->  {out}/ ({', '.join(names)})")
    return 1 if len(bad) else 0


def _print_summary(summary, axes, limit: int = 200) -> None:
    cols = [a for a in axes] + ["verdict", "wgrad0_rms", "wgrad0_ratio", "c1_worst",
                                "c11_worst", "agrad_rate"]
    heads = {"wgrad0_rms": "|dD/dW_0|", "wgrad0_ratio": "C7 ratio L0", "c1_worst": "worst C1",
             "c11_worst": "worst C11", "agrad_rate": "|dD/dh| factor"}
    df = summary[cols]
    if len(df) > limit:
        print(f"(summary of the first {limit} of {len(df)} cells; all of them in summary.*)")
        df = df.head(limit)
    fmt = {"wgrad0_rms": ".3e", "wgrad0_ratio": ".3f", "c1_worst": ".4g", "c11_worst": ".4g",
           "agrad_rate": ".4f"}
    from .tables import _fmt, _grid_text

    body = [[_fmt(float(r[c]), fmt[c]) if c in fmt else str(r[c]) for c in cols]
            for _, r in df.iterrows()]
    print(_grid_text([heads.get(c, c) for c in cols], body, left=len(axes) + 1))


# -- compare ---------------------------------------------------------------------------------
def _labels(cells: list[Cell]) -> tuple[list[str], dict[str, str]]:
    from ..schemes.registry import SCHEMES

    columns, labels = [], {}
    for c in cells:
        name = dict(c.coords)["init"]
        if name in labels:
            continue
        columns.append(name)
        if name == "yours":
            labels[name] = "yours"
        else:
            rec = SCHEMES[name]
            c_ = c.scale if c.scheme else c.spec.get("scale", 1.0)
            labels[name] = rec.label + (f" c={rec.c(c_):g}" if rec.takes_scale else "")
    return columns, labels


def cmd_compare(ns, types: FieldTypes, check_out_dir) -> int:
    values = _compare_values(ns, types)
    check_backend_options(ns)
    model = "model" in values
    cells = expand(values, types, ns.light, ns.threads, reschemed=model)
    if model:                           # the user's model as given, first
        rest = {k: v for k, v in values.items() if k not in ("init", "scale")}
        yours = [replace(c, coords=(("init", "yours"),) + c.coords)
                 for c in expand(rest, types, ns.light, ns.threads)]
        cells = yours + cells
    _check_resources(cells)
    out, overwrite = _compare_out(ns, cells, check_out_dir)
    backend = _backend(ns)
    try:
        return _compare(ns, cells, out, overwrite, backend)
    finally:
        backend.close()


def _compare_out(ns, cells: list[Cell], check_out_dir) -> tuple[Path, bool]:
    from ..report.io import unique_dir

    if ns.out is not None:
        check_out_dir(ns.out, ns.force, kind="compare")
        return ns.out, bool(ns.force)
    spec = RunSpec.from_dict(cells[0].spec)
    seeds = sorted({c.seed for c in cells})
    s = f"-s{seeds[0]}" if len(seeds) == 1 else f"-s{seeds[0]}-{seeds[-1]}"
    name = ("model-" + spec.model.replace(":", "-").replace(".", "-")) if spec.model else \
        f"{spec.arch}-d{spec.n_layers}"
    return unique_dir(Path("runs") / f"compare-{name}{s}"), False


def _title(cells: list[Cell], subject: str) -> str:
    spec = RunSpec.from_dict(cells[-1].spec)
    if spec.source == "model":
        return subject.split(" under ")[0]
    size = f"width {spec.width}" if spec.arch == "mlp" else f"{spec.channels} channels"
    return f"{spec.arch}, {spec.n_layers} layers, {size}, {spec.resolved_activation}, " \
           f"batch {spec.batch}"


def _compare(ns, cells: list[Cell], out: Path, overwrite: bool, backend) -> int:
    from .._errors import preload
    from ..claims._base import verdict_line, violated_claims
    from ..report.io import staged_dir, strict_json, write_csv, write_json
    from ..report.tables import claim_summary
    from .tables import compare_console, tidy

    preload()
    t0 = time.perf_counter()
    results: dict[str, dict] = {}
    bar = _bar(len({c.key for c in cells}), 0, ns.quiet or ns.json, "compare")

    def saved(res: dict) -> None:
        bar.update(1)
    try:
        _collect(backend, cells, results, saved)
    finally:
        bar.close()
    layers, checks = tidy(cells, results)
    columns, labels = _labels(cells)
    per = {}
    for col in columns:
        K = checks[checks.init == col]
        bad = violated_claims(K)
        per[col] = dict(label=labels[col], verdict=verdict_line(bad), violated=list(bad),
                        claims=claim_summary(K))
    violated = [labels[c] for c in columns if per[c]["violated"]]
    subject = results[cells[-1].key]["subject"]
    notes = []
    for c in cells:
        notes += [n for n in results[c.key]["notes"] if n not in notes]
    summary = dict(verdict=verdict_line(tuple(violated)).replace("all asserted claims hold",
                                                                 "every scheme: all asserted "
                                                                 "claims hold"),
                   schemes=per, columns=columns, seeds=sorted({c.seed for c in cells}),
                   subject=subject, notes=notes)
    title = _title(cells, subject)
    with staged_dir(out, overwrite=overwrite, kind="compare") as tmp:
        write_csv(layers, tmp / "layers.csv")
        write_csv(checks, tmp / "checks.csv")
        write_json([{**c.identity(), "coords": [list(x) for x in c.coords], "key": c.key}
                    for c in cells], tmp / "cells.json")
        write_json(summary, tmp / "summary.json")
        write_json(dict(seconds=round(time.perf_counter() - t0, 3),
                        backend=backend.describe()), tmp / "timings.json")
        if not ns.no_plots:
            from .plots import plot_compare

            plot_compare(layers, checks, columns, labels, title, tmp / "compare.png")
    if ns.json:
        print(json.dumps(strict_json(summary), indent=2, sort_keys=True, allow_nan=False))
    elif not ns.quiet:
        print(f"\ncompare: {title}; ratio = measured/predicted\n")
        print(compare_console(layers, checks, columns, labels))
        for n in notes:
            print(f"note: {n}")
        print(f"\nverdict: {summary['verdict']}  ->  {out}")
    return 1 if violated else 0


def main(argv: list[str], run_flags: dict, check_out_dir) -> int:
    """``gradcheck compare ...`` / ``gradcheck sweep ...`` (argv[0] is the subcommand)."""
    command = argv[0]
    ns = build_parser(command, run_flags).parse_args(argv[1:])
    types = FieldTypes(run_flags)
    if command == "sweep":
        return cmd_sweep(ns, types, check_out_dir)
    return cmd_compare(ns, types, check_out_dir)


__all__ = ["main", "build_parser", "cmd_sweep", "cmd_compare", "parse_seeds"]
