"""Computing one cell and storing its result: the worker function and ``cells/<key>.json``.

:func:`compute_cell` is what every backend runs (in this process, in a local worker process or
on a Dask worker): a payload of plain data (the resolved spec dict, the seed, the scheme for a
``--model``, options) in, plain rows out, never tensors. It pins torch and the BLAS to the
payload's thread count for the duration (default 1): torch's reductions and LAPACK's SVD
change in the last bits with the thread count (measured: sigma_op of a width-256 layer), so a
fixed count is what makes serial, local and Dask results bit-identical.

The client writes each returned result to ``cells/<key>.json`` atomically (a temporary file in
the same folder, then ``os.replace``): a sweep killed mid-cell leaves no torn result, and a
rerun loads the finished cells and computes the rest. A cell file that does not parse or names
another key is treated as missing (recomputed), never trusted.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from pathlib import Path

from .._proc import pid_alive
from ..claims._base import CHECK_COLUMNS
from ..spec import RunSpec, SpecError


# -- rows <-> strict JSON ---------------------------------------------------------------------
def _plain(v):
    import numpy as np

    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def encode_rows(rows: list[dict], columns: list[str] | None = None) -> dict:
    """Rows as ``{"columns", "data", "nonfinite"}``: strict JSON, floats exact (repr), NaN and
    +-inf stored as null with their (row, column, what) in ``nonfinite``."""
    if columns is None:
        columns = []
        for r in rows:
            columns += [c for c in r if c not in columns]
    data, nonfinite = [], []
    for i, r in enumerate(rows):
        line = []
        for j, c in enumerate(columns):
            v = _plain(r.get(c))
            if isinstance(v, float) and not math.isfinite(v):
                nonfinite.append([i, j, "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")])
                v = None
            line.append(v)
        data.append(line)
    return {"columns": list(columns), "data": data, "nonfinite": nonfinite}


def decode_rows(enc: dict):
    """The DataFrame of :func:`encode_rows`' output (non-finite floats restored)."""
    import pandas as pd

    data = [list(r) for r in enc["data"]]
    for i, j, what in enc["nonfinite"]:
        data[i][j] = float(what)
    return pd.DataFrame(data, columns=enc["columns"])


# -- the worker function ----------------------------------------------------------------------
def pinned_threads(n: int):
    """torch and the BLAS libraries at ``n`` threads inside the block, restored after."""
    from .._threads import limited_threads

    return limited_threads(n)


def _compute(payload: dict):
    from ..pipeline import check_subject, probe_options, run_seed

    spec = RunSpec.from_dict(payload["spec"])
    seed, model_level = int(payload["seed"]), not payload["light"]
    if payload["scheme"] is None:
        out = run_seed(spec, seed, model_level=model_level)
    else:
        from .rescheme import reschemed_subject, summarize_removed

        subj, removed = reschemed_subject(spec, seed, payload["scheme"], payload["scale"])
        out = check_subject(subj, probe_options(spec, seed), seed, model_level)
        if removed:
            return out.layers, out.checks, out.subject.describe(out.result), [
                "removed from your model before applying each scheme: "
                + summarize_removed(removed)] + list(out.notes)
    return out.layers, out.checks, out.subject.describe(out.result), list(out.notes)


def compute_cell(payload: dict) -> dict:
    """Compute one cell (see the module docstring); errors come back as data.

    Returns ``{"key", "ok": True, "layers", "checks", "subject", "notes", "seconds", "host",
    "pid"}``, or ``{"key", "ok": False, "usage": bool, "message", "traceback"}`` where
    ``usage`` marks an input error (exit 2) and anything else is internal (exit 3).
    """
    import sys
    import traceback

    t0 = time.perf_counter()
    cwd = payload.get("cwd")
    if cwd and os.path.isdir(cwd) and cwd not in sys.path:     # a --model's package
        sys.path.insert(0, cwd)
    try:
        from ..probe import ProbeError

        with pinned_threads(payload.get("threads", 1)):
            layers, checks, subject, notes = _compute(payload)
    except (SpecError, ProbeError) as e:
        return {"key": payload["key"], "ok": False, "usage": True, "message": str(e),
                "traceback": ""}
    except Exception as e:  # noqa: BLE001 - reported by the client as an internal error
        return {"key": payload["key"], "ok": False, "usage": False,
                "message": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    return {"key": payload["key"], "ok": True, "format": payload["format"],
            "identity": {k: payload[k] for k in ("format", "gradcheck", "spec", "scheme",
                                                 "scale", "light", "threads")},
            "layers": encode_rows(layers), "checks": encode_rows(checks, CHECK_COLUMNS),
            "subject": subject, "notes": notes, "seconds": time.perf_counter() - t0,
            "host": socket.gethostname(), "pid": os.getpid()}


# -- the store ------------------------------------------------------------------------------
class CellStore:
    """``DIR/cells/<key>.json``: one finished cell per file, written atomically."""

    def __init__(self, directory: Path):
        self.dir = Path(directory) / "cells"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def load(self, key: str) -> dict | None:
        """The stored result of ``key``, or None (absent, torn, or not this key's)."""
        try:
            res = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(res, dict) or res.get("key") != key or not res.get("ok"):
            return None
        return res

    def save(self, result: dict) -> None:
        """Write ``result`` as ``cells/<key>.json`` (temporary file + rename: never torn)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.path(result["key"])
        tmp = self.dir / f".{final.name}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(json.dumps(result, sort_keys=True, allow_nan=False,
                               separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)

    def remove_stale(self) -> None:
        """Delete temporary files of killed writers (``.<key>.json.tmp-<pid>``)."""
        if not self.dir.is_dir():
            return
        for p in self.dir.glob(".*.json.tmp-*"):
            pid = p.name.rsplit("-", 1)[-1]
            if pid.isdigit() and (int(pid) == os.getpid() or not pid_alive(int(pid))):
                with contextlib.suppress(OSError):
                    p.unlink()


__all__ = ["encode_rows", "decode_rows", "pinned_threads", "compute_cell", "CellStore"]
