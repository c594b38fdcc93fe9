"""Shared helpers of the compare / sweep tests: the CLI in-process, tiny grids, the tables.

Every number a test compares comes from computation (a direct ``gradcheck run`` of the same
spec, the same grid on another backend, an uninterrupted sweep), never from a literal.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pandas as pd
import pytest
from cli_capture import ERROR_PREFIX, arena, one_error_line, run_cli  # noqa: F401 - re-exported

#: tiny cells: a few hundredths of a second each on 2 cores
TINY = ["--width", "8", "--batch", "8", "--spectra-inputs", "2"]


def tables(d: Path) -> dict[str, bytes]:
    """The bytes of a sweep directory's three tables (Parquet or CSV)."""
    out = {}
    for stem in ("layers", "checks", "summary"):
        [p] = [q for q in Path(d).glob(f"{stem}.*") if q.suffix in (".parquet", ".csv")]
        out[p.name] = p.read_bytes()
    return out


def read(d: Path, stem: str) -> pd.DataFrame:
    from gradcheck.sweep.tables import read_table

    [p] = [q for q in Path(d).glob(f"{stem}.*") if q.suffix in (".parquet", ".csv")]
    return read_table(p)


def snapshot(d: Path) -> dict[str, bytes]:
    d = Path(d)
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(d.rglob("*"))}


@pytest.fixture(scope="session")
def dask_cluster():
    """A 2-process LocalCluster (one thread each) for the session; skipped without dask."""
    distributed = pytest.importorskip("distributed")
    with contextlib.redirect_stderr(io.StringIO()):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    try:
        yield cluster
    finally:
        with contextlib.redirect_stderr(io.StringIO()):
            cluster.close()


def cell_files(d: Path) -> list[Path]:
    return sorted(p for p in (Path(d) / "cells").glob("*.json") if not p.name.startswith("."))


def env_with_repo() -> dict:
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    return env
