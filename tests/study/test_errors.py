"""Bad input to ``gradcheck study``: one line on stderr, exit 2, nothing written."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import TINY, one_error_line, run_cli, snapshot


@pytest.mark.parametrize("argv,names", [
    (["--init", "lecun,nosuch"], "argument --init: must be one of"),
    (["--seeds", "4-1"], "argument --seeds"),
    (["--seeds", "x"], "argument --seeds"),
    (["--steps", "0"], "argument --steps: must be an integer >= 1"),
    (["--steps", "5-2"], "argument --steps: empty range"),
    (["--init", "bssn", "--scale", "-1"], "argument --scale: must be"),
    (["--init", "lecun,bssn", "--scale", "1,-1"], "argument --scale: must be"),
    (["--init", "sn", "--scale", "2"], "argument --scale: only"),
    (["--workers", "0"], "argument --workers"),
    (["--workers", "2", "--dask", "tcp://127.0.0.1:1"], "--workers and --dask"),
    (["--track-batch", "0"], "argument --track-batch"),
    (["--device", "tpu"], "argument --device"),
    (["--grid", "missing.toml"], "argument --grid: cannot read"),
    (["--data", "npy:missing.npy"], "argument --data"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_bad_input_is_one_line_exit_2(arena, argv, names):
    before = snapshot(arena)
    code, _, err = run_cli(["study", *TINY, "--steps", "5", *argv, "--out", "s"])
    assert code == 2, err
    assert names in one_error_line(err)
    assert snapshot(arena) == before


def test_out_is_a_file(arena):
    (arena / "f").write_text("mine")
    code, _, err = run_cli(["study", *TINY, "--out", "f"])
    assert code == 2 and "not a directory" in one_error_line(err)
    assert (arena / "f").read_text() == "mine"


@pytest.mark.parametrize("kind", ["train", "sweep", "run"])
def test_refuses_a_directory_of_another_kind(arena, kind):
    (arena / "d").mkdir()
    (arena / "d" / "gradcheck.json").write_text(f'{{"kind": "{kind}", "version": "0"}}')
    (arena / "d" / "metrics.csv").write_text("step\n")
    before = snapshot(arena)
    code, _, err = run_cli(["study", *TINY, "--out", "d"])
    assert code == 2 and f"gradcheck {kind} directory" in one_error_line(err)
    assert snapshot(arena) == before


def test_bad_grid_file(arena):
    (arena / "g.json").write_text('{"init": ["lecun"], "steps": "x"}')
    before = snapshot(arena)
    code, _, err = run_cli(["study", "--grid", "g.json", "--out", "s"])
    assert code == 2 and "argument --grid" in one_error_line(err)
    assert snapshot(arena) == before


def test_import_stays_free_of_matplotlib():
    code = ("import sys, gradcheck, gradcheck.cli, gradcheck.study, gradcheck.study.cli, "
            "gradcheck.study.grid, gradcheck.study.summary, gradcheck.study.cells; "
            "print('matplotlib' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ})
    assert p.stdout.strip() == "False", p.stderr


def test_a_run_directory_replaced_by_a_file_is_exit_2_naming_it(arena, base_study):
    """A cell whose run directory the user replaced by a file (and whose result was deleted)
    cannot retrain there: one line naming the directory, exit 2 (was: exit 3)."""
    import shutil

    from .conftest import BASE, copy_of

    out = copy_of(base_study, arena / "s")
    cell = sorted((out / "cells").glob("*.json"))[0]
    run = out / "runs" / json.loads(cell.read_text())["train_key"]
    cell.unlink()
    shutil.rmtree(run)
    run.write_text("not a directory")
    code, _, err = run_cli([*BASE, "--out", out])
    last = err.strip().splitlines()[-1]             # after the progress lines of the study
    assert code == 2 and last.startswith("gradcheck: error: run directory"), err
    assert run.name in last and "is not a directory" in last, err
