"""The worker function of a study: train one cell, track it, return plain data.

:func:`compute_study_cell` is what every backend runs (this process, a spawned local worker,
a Dask worker). It trains into the payload's ``run_dir`` (``OUT/runs/<train_key>/``) with
:func:`gradcheck.train.gan.train`, which resumes from the last checkpoint there, so a study
killed mid-run continues that run where its last checkpoint left it and ends with the
metrics and weights of an uninterrupted run; then (unless ``--no-track``) it runs
:func:`gradcheck.track.track` on every checkpoint. It returns the metrics rows and the C10
report as strict JSON (``encode_rows``: floats exact, non-finite values recorded), never
tensors; the client alone writes ``OUT/cells/<key>.json`` (:class:`~gradcheck.sweep.cells.
CellStore`). torch and the BLAS are pinned to the payload's thread count while it computes,
which makes serial, local and Dask results bit-identical.
"""
from __future__ import annotations

import csv
import json
import os
import socket
import time
from pathlib import Path

from ..report.io import strict_json
from ..spec import SpecError
from ..sweep.cells import encode_rows, pinned_threads

#: the C10 report's per-layer entries, flattened: (report key, column stem)
C10_FIELDS = (("a_raw_sigma", "a_raw_sigma"), ("b_c1_factor", "b_c1_factor"),
              ("c_grad_rms", "c_grad_rms"), ("d_lecun_ratio", "d_lecun_ratio"))


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)                     # repr of a float: exact; 'nan' / 'inf' too
    except ValueError:
        return text


def read_metrics(path: Path) -> tuple[list[str], list[dict]]:
    """``(columns, rows)`` of a training run's metrics.csv, numbers parsed exactly."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    head = rows[0]
    return head, [dict(zip(head, map(_number, r))) for r in rows[1:] if len(r) == len(head)]


def c10_layer_rows(report: dict) -> list[dict]:
    """The report's per-layer (a)-(d) entries as flat rows: ``layer``, ``<stem>_first``,
    ``<stem>_last``, ``<stem>_dir`` per quantity."""
    rows = []
    for p in report["layers"]:
        row = {"layer": int(p["layer"])}
        for key, stem in C10_FIELDS:
            first, last, direction = p[key]
            row[f"{stem}_first"], row[f"{stem}_last"] = float(first), float(last)
            row[f"{stem}_dir"] = str(direction)
        rows.append(row)
    return rows


def _compute(payload: dict) -> dict:
    from ..build import resolve_device
    from ..spec import TrainSpec
    from ..train.checkpoint import checkpoint_files
    from ..train.gan import train

    spec = TrainSpec.from_dict(payload["spec"])
    run_dir = Path(payload["run_dir"])
    done = checkpoint_files(run_dir) if run_dir.is_dir() else []
    resumed_from = int(done[-1].stem.split("_")[1]) if done else 0
    t0 = time.perf_counter()
    trainer = train(spec, run_dir, resume=True, progress=False,
                    device=resolve_device(payload["device"]))
    train_s = time.perf_counter() - t0
    columns, rows = read_metrics(run_dir / "metrics.csv")
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        summary = {}
    diverged = trainer.diverged if getattr(trainer, "diverged", None) else None
    out = {"metrics": encode_rows(rows, columns), "resumed_from_step": resumed_from,
           "diverged": bool(diverged or summary.get("diverged")),
           "diverged_at": strict_json(diverged) if diverged else None,
           "track": None, "seconds": {"train": train_s, "track": 0.0}}
    if payload["track"] is not None:
        from ..track import track

        t1 = time.perf_counter()
        report = track(run_dir, int(payload["track"]["batch"]),
                       int(payload["track"]["spectra_inputs"]), None, out=run_dir / "track",
                       overwrite=True, plots=bool(payload.get("plots", False)))
        out["seconds"]["track"] = time.perf_counter() - t1
        head = {k: v for k, v in report.items() if k != "layers"}
        out["track"] = {"report": strict_json(head), "layers": encode_rows(c10_layer_rows(report))}
    return out


def compute_study_cell(payload: dict) -> dict:
    """Train and track one study cell (see the module docstring); errors come back as data.

    Returns ``{"key", "ok": True, "identity", "train_key", "metrics", "diverged",
    "diverged_at", "resumed_from_step", "track", "seconds" {"train", "track", "total"},
    "host", "pid"}`` or ``{"key", "ok": False, "usage": bool, "message", "traceback"}``
    (``usage``: an input error, exit 2; anything else is internal, exit 3).
    """
    import traceback

    from ..probe import ProbeError
    from ..train.checkpoint import CheckpointError
    from ..train.data import DataError

    t0 = time.perf_counter()
    try:
        with pinned_threads(payload.get("threads", 1)):
            out = _compute(payload)
    except (SpecError, ProbeError, DataError, CheckpointError) as e:
        msg = (str(e) if isinstance(e, SpecError) else
               f"run directory {payload.get('run_dir', '?')}: {e}" if isinstance(e, CheckpointError)
               else f"argument --data/--out: {e}")
        return {"key": payload["key"], "ok": False, "usage": True, "message": msg,
                "traceback": ""}
    except (NotADirectoryError, FileExistsError, IsADirectoryError, PermissionError) as e:
        # the cell's run directory was replaced or made unwritable by hand: the user's input
        run = Path(payload.get("run_dir", "?"))
        why = "is not a directory" if run.exists() and not run.is_dir() else e.strerror or e
        return {"key": payload["key"], "ok": False, "usage": True,
                "message": f"run directory {run}: {why} (remove it to retrain the cell)",
                "traceback": ""}
    except Exception as e:  # noqa: BLE001 - reported by the client as an internal error
        return {"key": payload["key"], "ok": False, "usage": False,
                "message": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out["seconds"]["total"] = time.perf_counter() - t0
    ident = {k: payload[k] for k in ("format", "gradcheck", "spec", "threads", "device",
                                       "track")}
    return {"key": payload["key"], "ok": True, "identity": ident,
            "train_key": payload["train_key"], **out, "host": socket.gethostname(),
            "pid": os.getpid()}


__all__ = ["compute_study_cell", "read_metrics", "c10_layer_rows", "C10_FIELDS"]
