"""Bad input to compare / sweep: one line, exit 2, nothing written; dask and pyarrow optional."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from .conftest import TINY, env_with_repo, one_error_line, run_cli, snapshot


@pytest.mark.parametrize("argv,names", [
    (["sweep", "--init", "lecun,nosuch", "--depth", "2"], "argument --init: must be one of"),
    (["sweep", "--depth", "5-2"], "argument --depth: empty range"),
    (["sweep", "--depth", "2,,3"], "argument --depth: empty element"),
    (["sweep", "--seeds", "4-1"], "argument --seeds"),
    (["sweep", "--arch", "sngan", "--depth", "3,4"], "grid cell"),
    (["sweep", "--depth", "2", "--workers", "0"], "argument --workers"),
    (["sweep", "--depth", "2", "--workers", "2", "--dask", "tcp://127.0.0.1:1"],
     "--workers and --dask"),
    (["sweep", "--depth", "2", "--dask", "not an address"], "argument --dask: must be"),
    (["sweep", "--depth", "2", "--dask", "missing-scheduler.json"], "does not exist"),
    (["sweep", "--depth", "2", "--grid", "missing.toml"], "argument --grid: cannot read"),
    (["compare", "--depth", "2,5"], "compare takes one value"),
    (["compare", "--init", "lecun,sn", "--checkpoint", "x.pt"], "argument --checkpoint"),
    (["compare", "--init", "lecun,bogus"], "argument --init"),
    (["sweep", "--depth", "2", "--frobnicate"], "unrecognized arguments"),
])
def test_bad_input_is_one_line_exit_2(arena, argv, names):
    before = snapshot(arena)
    code, out, err = run_cli([*argv, *TINY])
    assert code == 2, err
    assert names in one_error_line(err)
    assert snapshot(arena) == before


def test_sweep_without_a_grid(arena):
    code, _, err = run_cli(["sweep"])
    assert code == 2 and "give the grid" in one_error_line(err)
    assert not any(arena.iterdir())


def test_bad_grid_file_is_one_line(arena):
    (arena / "g.json").write_text('{"init": ["lecun"], "depth": "x"}')
    before = snapshot(arena)
    code, _, err = run_cli(["sweep", "--grid", "g.json"])
    assert code == 2 and "argument --grid" in one_error_line(err)
    assert snapshot(arena) == before


def test_refuses_to_write_into_another_kind_of_directory(arena):
    (arena / "r").mkdir()
    (arena / "r" / "gradcheck.json").write_text('{"kind": "run", "version": "0"}')
    before = snapshot(arena)
    code, _, err = run_cli(["sweep", "--depth", "2", *TINY, "--out", "r"])
    assert code == 2 and "gradcheck run directory" in one_error_line(err)
    code, _, err = run_cli(["compare", "--init", "lecun", "--depth", "2", *TINY, "--out", "r"])
    assert code == 2 and "gradcheck run directory" in one_error_line(err)
    assert snapshot(arena) == before


def test_unreachable_dask_scheduler(arena):
    pytest.importorskip("distributed")
    with socket.socket() as s:                   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = snapshot(arena)
    code, _, err = run_cli(["sweep", "--depth", "2", *TINY, "--dask",
                            f"tcp://127.0.0.1:{port}", "--dask-timeout", "1"])
    assert code == 2, err
    assert "cannot reach the Dask scheduler" in one_error_line(err)
    assert snapshot(arena) == before


def test_without_dask_installed(arena, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)      # import distributed fails
    code, _, err = run_cli(["sweep", "--depth", "2", *TINY, "--dask", "tcp://127.0.0.1:8786"])
    assert code == 2
    assert "not installed" in one_error_line(err) and "gradcheck[dask]" in err


def test_import_gradcheck_stays_light():
    code = ("import sys, gradcheck, gradcheck.sweep, gradcheck.sweep.grid\n"
            "heavy = {'dask', 'distributed', 'pyarrow', 'matplotlib', 'torch'}\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], env=env_with_repo(), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
