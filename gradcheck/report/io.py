"""Atomic, deterministic writes of a run directory.

A run directory is staged in a hidden sibling and renamed into place only when complete, so an
error never leaves a half-written output directory. Files are byte-identical for the same spec
and seed (CSV floats with 17 significant digits, zip entries with a fixed timestamp); only
``timings.json`` records wall-clock time.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd


@contextlib.contextmanager
def staged_dir(final: Path, overwrite: bool = False):
    """Yield a temporary directory that becomes ``final`` when the block exits cleanly."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} exists")
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, float_format="%.17g", lineterminator="\n")


def write_json(obj, path: Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def write_npz(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Like ``np.savez`` but with fixed zip timestamps (byte-identical across runs)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, buf.getvalue())


def unique_dir(base: Path) -> Path:
    """``base`` if free, else ``base-2``, ``base-3``, ..."""
    if not base.exists():
        return base
    k = 2
    while Path(f"{base}-{k}").exists():
        k += 1
    return Path(f"{base}-{k}")
