"""``gradcheck study``: train GANs over schemes x seeds x scales; THEORY C10 (a)-(f) per scheme.

``gradcheck.cli`` owns the train flags and the output-directory checks and hands them in
(``main(argv, train_flags, check_out_dir)``), so this package never imports the CLI module.
Every input error raises SpecError (exit 2, one line) before anything is written; the exit
code is 1 only when C1 (THEORY C10 b, an inequality) fails at a checkpoint of some cell.

Output directory (default ``runs/study``; an existing study directory is resumed):
``runs/<train_key>/`` one training run per cell (metrics.csv, ckpt_<step>.pt, track/),
``cells/<key>.json`` each finished cell, ``study.csv`` one row per cell, ``study.md`` the
per-scheme table, ``summary.json``, ``timings.json`` (wall-clock times: of the result files
the only one with them; the cell files also record seconds, host and pid) and ``study.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..spec import CAPS, DEVICES, SpecError
from ..sweep.grid import FieldTypes, parse_values
from .grid import DEFAULT_SEEDS, StudyCell, expand, read_study_grid, study_types

#: a study larger than this is refused (a typo such as --seeds 0-99999)
MAX_CELLS = 10_000


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # noqa: D102 - one line, no usage dump
        raise SpecError(message)


def build_parser(train_flags: dict) -> argparse.ArgumentParser:
    p = _Parser(prog="gradcheck study", description=(
        "Train one GAN per cell of a grid (every combination of the list- or range-valued "
        "train flags, or of a --grid file) and seed, track every checkpoint (THEORY C10 "
        "a-d), and report per scheme the final and best sample quality with its spread over "
        "seeds (C10 e) and the share of seeds that collapse or diverge (C10 f). Resumable: "
        "finished cells are reused and a killed training run continues from its last "
        "checkpoint. A --scale other than 1 applies to the schemes that take one (ssn, "
        "bssn); the others get one cell at scale 1. Exit code 1 only if C1 fails at some "
        "checkpoint."))
    for flag, (field, _, hlp) in train_flags.items():
        if field == "seed":
            continue
        p.add_argument(flag, dest=field, type=str, default=argparse.SUPPRESS,
                       help=hlp + " [a comma list; integers also as ranges A-B]")
    p.add_argument("--seeds", dest="seeds", type=str, default=argparse.SUPPRESS,
                   help=f"seeds of every cell: N, A-B or a comma list (default {DEFAULT_SEEDS})")
    p.add_argument("--grid", type=Path, help="a JSON or TOML file of train fields, each a value "
                   "or a list (flags given beside it override its entries)")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: "
                   "the cores on cpu, 1 on cuda; 1 = in this process)")
    p.add_argument("--dask", metavar="ADDRESS", help="run the cells on an existing Dask "
                   "cluster: tcp://host:port or a scheduler JSON file (needs gradcheck[dask]; "
                   "the run directories then live where the workers write --out)")
    p.add_argument("--dask-timeout", type=float, default=10.0,
                   help="seconds to wait for the Dask scheduler (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per cell "
                   "(default 1; results are bit-identical across backends for one value)")
    p.add_argument("--track-batch", type=int, default=64,
                   help="inputs per checkpoint for track (default 64)")
    p.add_argument("--no-track", action="store_true", help="train only: no C10 (a)-(d) and "
                   "no C1 check (quality and stability are still reported)")
    p.add_argument("--device", type=str, default="cpu",
                   help="cpu | cuda | auto (cuda if available; default cpu)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default "
                   "runs/study; an existing study directory is resumed, its cells reused)")
    p.add_argument("--no-plots", action="store_true",
                   help="skip study.png and each run's track/training.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    return p


# -- flags -> cells --------------------------------------------------------------------------
def _values(ns, types: FieldTypes) -> dict[str, list]:
    values = read_study_grid(ns.grid, types) if ns.grid is not None else {}
    for field in types.order:
        if hasattr(ns, field):
            values[field] = parse_values(field, getattr(ns, field), types)
    return values


def _options(ns) -> None:
    from ..sweep.cli import check_backend_options

    check_backend_options(ns)
    if not 1 <= ns.track_batch <= CAPS["batch"]:
        raise SpecError(f"argument --track-batch: must be an integer in [1, {CAPS['batch']}]; "
                        f"got {ns.track_batch}")
    if ns.device not in DEVICES:
        raise SpecError(f"argument --device: must be one of {', '.join(DEVICES)}; "
                        f"got {ns.device!r}")


def _device(name: str) -> str:
    if name == "cpu":
        return "cpu"
    from .._errors import preload

    preload()
    from ..build import resolve_device

    return resolve_device(name).type


def _distinct_specs(cells: list[StudyCell]) -> list[StudyCell]:
    """One cell per distinct spec, the seed aside."""
    seen, out = set(), []
    for c in cells:
        k = json.dumps({**c.spec, "seed": 0}, sort_keys=True)
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out


def _check_resources(cells: list[StudyCell]) -> None:
    from ..resources import check_train_resources
    from ..spec import TrainSpec

    for c in _distinct_specs(cells):
        check_train_resources(TrainSpec.from_dict(c.spec))


def _precheck(cells: list[StudyCell]) -> None:
    """Load each distinct data set and build D and G once per distinct spec, as ``train``
    does first: a file that cannot be read or an architecture that does not fit the data is
    answered (exit 2) before anything is written."""
    from ..spec import TrainSpec
    from ..train.data import DataError
    from ..train.gan import build_discriminator, build_generator, load_data

    data: dict = {}
    for c in _distinct_specs(cells):
        spec = TrainSpec.from_dict(c.spec)
        k = (spec.data, spec.n_data, spec.seed, spec.lift)
        try:
            if k not in data:
                data[k] = load_data(spec)[:2]
            build_discriminator(spec, data[k])
            build_generator(spec, data[k])
        except DataError as e:
            raise SpecError(f"argument --data: {e} (study cell {c.label()})") from None


def _backend(ns, device: str):
    from ..sweep.backends import Backend, connect_dask, cores

    if ns.dask:
        return Backend("dask", address=ns.dask, client=connect_dask(ns.dask, ns.dask_timeout))
    n = ns.workers if ns.workers is not None else (1 if device == "cuda" else cores())
    return Backend("local" if n > 1 else "serial", workers=n)


def cmd_study(ns, types: FieldTypes, check_out_dir) -> int:
    values = _values(ns, types)
    _options(ns)
    n = 1 if "seeds" in values else len(parse_values("seeds", DEFAULT_SEEDS, types))
    for v in values.values():
        n *= len(v)
    if n > MAX_CELLS:
        raise SpecError(f"gradcheck study: the grid has {n} cells; at most {MAX_CELLS}")
    device = _device(ns.device)
    track = None if ns.no_track else {"batch": int(ns.track_batch), "spectra_inputs": 0}
    cells = expand(values, types, ns.threads, device, track)
    out = ns.out if ns.out is not None else Path("runs/study")
    check_out_dir(out, False, kind="study", resume=True)
    _check_resources(cells)
    from .._errors import preload

    preload()
    _precheck(cells)
    backend = _backend(ns, device)
    try:
        return _study(ns, cells, out, backend, values)
    finally:
        backend.close()


def _bar(total: int, initial: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="cell", desc="study", file=sys.stderr,
                disable=quiet, dynamic_ncols=True, smoothing=0.1)


def _study(ns, cells: list[StudyCell], out: Path, backend, values) -> int:
    from ..report.io import MANIFEST, write_manifest
    from ..sweep.cells import CellStore
    from ..sweep.cli import checked_result
    from .cells import compute_study_cell

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST).exists():
        write_manifest(out, "study")
    (out / "summary.json").unlink(missing_ok=True)      # rewritten when the study completes
    _remove_stale_tmp(out)
    store = CellStore(out)
    store.remove_stale()
    results: dict[str, dict] = {}
    for c in cells:
        got = store.load(c.key)
        if got is not None:
            results[c.key] = got
    skipped = len(results)
    say = (lambda m: None) if ns.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    say(f"study: {len(cells)} cells, {skipped} already done in {out}, "
        f"{len(cells) - skipped} to train{'' if ns.no_track else ' and track'} on "
        f"{backend.describe()}")
    todo = [c.payload(out, plots=not ns.no_plots) for c in cells if c.key not in results]
    bar = _bar(len(cells), skipped, ns.quiet)

    def on_result(res: dict) -> None:
        res = checked_result(res)
        store.save(res)
        results[res["key"]] = res
        bar.update(1)
    try:
        backend.run(todo, on_result, worker=compute_study_cell)
    finally:
        bar.close()
    timing = dict(backend=backend.describe(), wall_seconds=round(time.perf_counter() - t0, 3),
                  computed=len(todo), skipped=skipped)
    return _write(ns, cells, out, results, values, timing)


def _remove_stale_tmp(out: Path) -> None:
    """Delete the temporary files ``.<name>.tmp-<pid>...`` of killed writers (see _atomic)."""
    import contextlib

    from .._proc import pid_alive

    for p in out.glob(".*.tmp-*"):
        pid = p.name.rsplit(".tmp-", 1)[-1].split("-")[0].split(".")[0]
        if p.is_file() and pid.isdigit() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                p.unlink()


def _atomic(path: Path, write) -> None:
    from ..report.io import atomic_path

    with atomic_path(path) as tmp:
        write(tmp)


def _grid_json(values: dict) -> dict:
    return {k: [list(x) if isinstance(x, tuple) else x for x in v] for k, v in values.items()}


def _verdict(cells_df) -> tuple[str, list[str]]:
    tracked = cells_df[cells_df.tracked.astype(bool)]
    if not len(tracked):
        return "C1 not checked (--no-track)", []
    applicable = tracked[tracked.c1_rows.astype(float) > 0]
    bad = applicable[applicable.c1_violated.astype(bool)]
    if len(bad):
        return (f"C1 VIOLATED at some checkpoint of {len(bad)} of {len(applicable)} cells",
                list(bad.cell))
    if not len(applicable):
        return "C1 not applicable to these discriminators (no asserted C1 rows)", []
    partial = applicable[applicable.c1_every_checkpoint != True]  # noqa: E712 - object column
    if len(partial):
        return (f"C1 holds wherever asserted; {len(partial)} of {len(applicable)} cells have "
                "checkpoints where it is not asserted (not applicable or overflow)"), []
    return (f"C1 holds at every checkpoint of every cell ({len(applicable)} cells, "
            f"{int(applicable.checkpoints.sum())} checkpoints)"), []


def _write(ns, cells: list[StudyCell], out: Path, results: dict, values: dict,
           timing: dict) -> int:
    import numpy as np

    from ..report.io import write_csv, write_json
    from .summary import (
        COLLAPSE_RULE,
        QUALITY,
        cell_table,
        console,
        group_axes,
    groups,
        markdown,
        scheme_table,
        table_text,
    )

    axes = [k for k, _ in cells[0].coords]
    cells_df = cell_table(cells, results)
    by = group_axes(cells_df, axes)
    table = scheme_table(cells_df, by)
    verdict, violated = _verdict(cells_df)
    train_s = {c.key: float(results[c.key]["seconds"]["train"]) for c in cells}
    parts = list(groups(cells_df, by))
    seconds = {i: float(np.mean([train_s[k] for k in g.cell])) for i, (_, g) in
               enumerate(parts)}
    head, body = table_text(table, by)
    metrics = [m for m in QUALITY if f"final_{m}" in cells_df]
    seeds = sorted({c.seed for c in cells})
    grid_text = "; ".join(f"{k}={','.join(map(str, v))}" for k, v in _grid_json(values).items()
                          if k != "seeds")
    track_text = ("not tracked (--no-track)" if ns.no_track else
                  f"track: {ns.track_batch} inputs per checkpoint")
    md = "\n".join([
        "# gradcheck study (THEORY C10)", "",
        f"{len(cells)} cells: {grid_text or 'defaults'}; seeds {','.join(map(str, seeds))}; "
        f"{track_text}.", "", markdown(head, body), "",
        "(e) final = the quality at the last metrics row, best = its best over training (max; "
        "min for the lower-is-better Frechet distances); final: mean ± sample std (ddof 1) "
        "over seeds [min..max] (a diverged seed has no final quality: '(k/n seeds)' says how "
        "many are in the mean); best: mean ± std.",
        f"(f) {COLLAPSE_RULE}; k/n seeds.",
        "(a)-(d): layers whose raw sigma increased / C1 bound factor drifted (>5%) / gradient "
        "rms went up or down / LeCun ratio moved (>5%) from the first to the last checkpoint, "
        "summed over seeds out of all layers of those seeds (median over seeds); (b) max C1 "
        "factor: the largest prod_{i!=t} ||W_i||_op over the layers at the first and the last "
        "checkpoint (median over seeds; 1 for an exact SN chain). The first "
        "checkpoint is step 0, before any training step: under --sn-mode power (the default) "
        "its SN divisors are one power step from a random vector and undershoot sigma, so an "
        "SN family's (b)-(d) moves include the estimator converging (per-step values in "
        "runs/<key>/track/c10.md).",
        f"(b) C1, asserted: {verdict}.", ""])
    names = ["study.csv", "study.md", "summary.json", "timings.json"]
    _atomic(out / "study.csv", lambda p: write_csv(cells_df, p))
    _atomic(out / "study.md", lambda p: p.write_text(md))
    png = out / "study.png"
    if not ns.no_plots:
        from ..sweep.cells import decode_rows
        from .plots import plot_study

        lines = []
        for key, g in parts:
            label = ", ".join(f"{a}={v}" for a, v in zip(by, key)) or "all cells"
            lines.append((label, [decode_rows(results[k]["metrics"]) for k in g.cell]))
        tmp = out / f".study.png.tmp-{os.getpid()}.png"
        title = (", ".join(f"{a}={','.join(map(str, dict.fromkeys(cells_df[a])))}" for a in by)
                 + f"; {len(seeds)} seeds")
        if plot_study(lines, tmp, title):
            os.replace(tmp, png)
            names.append("study.png")
    else:
        png.unlink(missing_ok=True)              # never leave a figure of another grid
    timings = dict(timing, cells={c.key: results[c.key]["seconds"] for c in cells},
                   resumed_from_step={c.key: results[c.key].get("resumed_from_step", 0)
                                      for c in cells},
                   train_seconds_mean_per_group=[seconds[i] for i in range(len(parts))])
    _atomic(out / "timings.json", lambda p: write_json(timings, p))
    summary = dict(
        complete=True, grid=_grid_json(values), axes=axes, group_by=by, cells=len(cells),
        seeds=seeds, quality_metrics=metrics, collapse_rule=COLLAPSE_RULE,
        track=None if ns.no_track else {"batch": int(ns.track_batch), "spectra_inputs": 0},
        threads=int(ns.threads), device=cells[0].device, verdict=verdict,
        c1_violated_cells=violated, schemes=table.to_dict("records"), files=names,
        cell_keys=[c.key for c in cells])
    _atomic(out / "summary.json", lambda p: write_json(summary, p))
    if not ns.quiet:
        print(f"\ngradcheck study: {len(cells)} cells ({grid_text or 'defaults'}; seeds "
              f"{','.join(map(str, seeds))}); {track_text}\n")
        h, b = table_text(table, by, seconds)
        print(console(h, b, left=len(by)))
        print(f"\n(f) {COLLAPSE_RULE}")
        print(f"verdict: {verdict}")
        print(f"{len(cells)} cells ({timing['computed']} computed, {timing['skipped']} reused) "
              f"in {timing['wall_seconds']:.1f} s  ->  {out}/ ({', '.join(names)})")
    return 1 if violated else 0


def main(argv: list[str], train_flags: dict, check_out_dir) -> int:
    """``gradcheck study ...`` (``argv`` after the subcommand)."""
    ns = build_parser(train_flags).parse_args(argv)
    return cmd_study(ns, study_types(train_flags), check_out_dir)


__all__ = ["main", "build_parser", "cmd_study", "MAX_CELLS"]
