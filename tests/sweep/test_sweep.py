"""``gradcheck sweep``: cells equal direct runs, resume after a kill, backends bit-identical."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from .conftest import TINY, cell_files, env_with_repo, read, run_cli, tables

GRID = ["--init", "lecun,sn", "--depth", "2,3", *TINY]


def test_cell_rows_equal_a_direct_run(arena):
    """A sweep cell's layer and check rows are those of `gradcheck run` with the same spec."""
    code, out, err = run_cli(["sweep", *GRID, "--seeds", "1", "--workers", "1", "--out", "sw"])
    assert code == 0, err
    assert "verdict" in out and "4 cells" in out
    code, _, err = run_cli(["run", "--init", "sn", "--depth", "3", *TINY, "--seeds", "1",
                            "--no-plots", "--quiet", "--out", "r"])
    assert code == 0, err
    direct = pd.read_csv(arena / "r" / "layers.csv")
    sweep = read(arena / "sw", "layers")
    cell = sweep[(sweep.init == "sn") & (sweep.depth == 3)].reset_index(drop=True)
    assert len(cell) == len(direct) == 3
    for col in direct.columns:
        a, b = cell[col].to_numpy(), direct[col].to_numpy()
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            np.testing.assert_array_equal(a.astype(float), b.astype(float), err_msg=col)
        else:
            text = lambda v: "" if pd.isna(v) else str(v)  # noqa: E731 - CSV reads '' as NaN
            assert [text(v) for v in a] == [text(v) for v in b], col
    dchecks = pd.read_csv(arena / "r" / "checks.csv")
    schecks = read(arena / "sw", "checks")
    schecks = schecks[(schecks.init == "sn") & (schecks.depth == 3)].reset_index(drop=True)
    assert list(schecks.claim) == list(dchecks.claim)
    np.testing.assert_array_equal(schecks.ratio.to_numpy(float), dchecks.ratio.to_numpy(float))
    summary = read(arena / "sw", "summary")
    assert len(summary) == 4 and set(summary.verdict) == {"all asserted claims hold"}
    assert (arena / "sw" / "sweep.png").stat().st_size > 0
    meta = json.loads((arena / "sw" / "gradcheck.json").read_text())
    assert meta["kind"] == "sweep"


def test_kill_mid_sweep_then_resume(arena):
    """SIGKILL a sweep once two cells are stored: no torn cell file; the rerun skips the
    stored cells (a truncated one is recomputed) and its tables equal an uninterrupted run's."""
    grid = ["--init", "lecun,sn,bsn", "--depth", "2,3", "--width", "24", "--batch", "16",
            "--spectra-inputs", "4", "--seeds", "0-1", "--workers", "1"]
    assert run_cli(["sweep", *grid, "--out", "whole", "--no-plots", "--quiet"])[0] == 0
    proc = subprocess.Popen([sys.executable, "-m", "gradcheck", "sweep", *grid, "--out",
                             "killed", "--no-plots", "--quiet"], cwd=arena,
                            env=env_with_repo(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(cell_files(arena / "killed")) < 2 and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it was killed"
    assert not (arena / "killed" / "sweep.json").exists()
    stored = cell_files(arena / "killed")
    assert 2 <= len(stored) < 12
    for p in stored:                                     # every stored result is whole
        assert json.loads(p.read_text())["ok"] is True
    torn = stored[0]
    torn.write_text(torn.read_text()[: len(torn.read_text()) // 2])   # a torn result
    (arena / "killed" / "cells" / f".{torn.name}.tmp-999999999").write_text("{")
    code, _, err = run_cli(["sweep", *grid, "--out", "killed", "--no-plots"])
    assert code == 0, err
    assert f"{len(stored) - 1} already done" in err
    timing = json.loads((arena / "killed" / "timings.json").read_text())["seconds"]
    assert timing["skipped"] == len(stored) - 1 and timing["computed"] == 12 - len(stored) + 1
    assert tables(arena / "killed") == tables(arena / "whole")
    assert not [p for p in (arena / "killed" / "cells").iterdir() if p.name.startswith(".")]


def test_changed_grid_reuses_shared_cells(arena):
    assert run_cli(["sweep", *GRID, "--workers", "1", "--out", "sw", "--quiet"])[0] == 0
    code, _, err = run_cli(["sweep", "--init", "lecun,sn,bsn", "--depth", "3", *TINY,
                            "--workers", "1", "--out", "sw"])
    assert code == 0, err
    timing = json.loads((arena / "sw" / "timings.json").read_text())["seconds"]
    assert (timing["skipped"], timing["computed"]) == (2, 1)       # lecun/sn at depth 3
    assert len(read(arena / "sw", "summary")) == 3
    assert len(cell_files(arena / "sw")) == 5                      # the cache keeps all


def test_serial_workers_and_dask_are_bit_identical(arena, dask_cluster):
    grid = [*GRID, "--seeds", "0-1", "--no-plots", "--quiet"]
    assert run_cli(["sweep", *grid, "--workers", "1", "--out", "serial"])[0] == 0
    assert run_cli(["sweep", *grid, "--workers", "2", "--out", "local"])[0] == 0
    code, _, err = run_cli(["sweep", *grid, "--dask", dask_cluster.scheduler_address,
                            "--out", "dask"])
    assert code == 0, err
    want = tables(arena / "serial")
    assert tables(arena / "local") == want
    assert tables(arena / "dask") == want
    for stem in ("layers", "checks"):
        pd.testing.assert_frame_equal(read(arena / "local", stem), read(arena / "serial", stem),
                                      check_exact=True)


def test_without_pyarrow_the_tables_are_csv(arena):
    """pyarrow blocked from process start (pandas then keeps Python strings): CSV tables
    holding the same numbers as the Parquet ones."""
    pytest.importorskip("pyarrow")
    assert run_cli(["sweep", *GRID, "--workers", "1", "--out", "pq", "--quiet",
                    "--no-plots"])[0] == 0
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from gradcheck.cli import main\n"
            f"sys.exit(main({['sweep', *GRID, '--workers', '1', '--out', 'csv', '--quiet']!r}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=arena, env=env_with_repo(),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(tables(arena / "csv")) == ["checks.csv", "layers.csv", "summary.csv"]
    a, b = read(arena / "csv", "layers"), read(arena / "pq", "layers")
    num = [c for c in b.columns if b[c].dtype.kind == "f"]
    assert num and list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(a[num].to_numpy(), b[num].to_numpy())
