"""Shared helpers of the study tests: the CLI in-process, a tiny ring study, snapshots.

Every number a test compares comes from computation (the cell's own metrics.csv, a direct
``gradcheck train`` / ``track`` of the same spec, the same study on another backend, an
uninterrupted study), never from a literal.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cli_capture import ERROR_PREFIX, arena, one_error_line, run_cli  # noqa: F401 - re-exported

#: a tiny ring GAN that still moves: about half a second of training per cell on 2 cores
TINY = ["--data", "ring", "--steps", "100", "--log-every", "10", "--ckpt-every", "50",
        "--n-data", "256", "--width", "32", "--batch", "64", "--lr", "3e-3"]
#: the study most tests read: 2 schemes x 2 seeds, serial
BASE = ["study", "--init", "lecun,sn", "--seeds", "0-1", *TINY, "--workers", "1"]


def snapshot(d: Path) -> dict[str, bytes]:
    d = Path(d)
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(d.rglob("*"))}


def env_with_repo() -> dict:
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


@pytest.fixture(scope="session")
def base_study(tmp_path_factory) -> Path:
    """:data:`BASE` computed once (plots on), read-only for the tests: copy it to change it."""
    out = tmp_path_factory.mktemp("study") / "base"
    code, stdout, err = run_cli([*BASE, "--out", out])
    assert code == 0, err
    assert "verdict: C1 holds" in stdout
    return out


def copy_of(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
