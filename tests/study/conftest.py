"""Shared helpers of the study tests: the CLI in-process, a tiny ring study, snapshots.

Every number a test compares comes from computation (the cell's own metrics.csv, a direct
``gradcheck train`` / ``track`` of the same spec, the same study on another backend, an
uninterrupted study), never from a literal.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
from pathlib import Path

import pytest

#: a tiny ring GAN that still moves: about half a second of training per cell on 2 cores
TINY = ["--data", "ring", "--steps", "100", "--log-every", "10", "--ckpt-every", "50",
        "--n-data", "256", "--width", "32", "--batch", "64", "--lr", "3e-3"]
#: the study most tests read: 2 schemes x 2 seeds, serial
BASE = ["study", "--init", "lecun,sn", "--seeds", "0-1", *TINY, "--workers", "1"]
ERROR_PREFIX = "gradcheck: error: "


def run_cli(argv) -> tuple[int, str, str]:
    """``gradcheck.cli.main(argv)`` in-process: ``(exit code, stdout, stderr)``."""
    from gradcheck.cli import main

    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        for s, h in handlers.items():          # main() ignores signals after an interrupt
            signal.signal(s, h)
    return code, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), f"stderr: {err!r}"
    assert "Traceback" not in err
    return lines[0]


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


@pytest.fixture
def arena(tmp_path, monkeypatch) -> Path:
    """The working directory of a test (relative outputs such as runs/ land here)."""
    a = tmp_path / "arena"
    a.mkdir()
    monkeypatch.chdir(a)
    monkeypatch.setenv("GRADCHECK_LOG_DIR", str(tmp_path / "logs"))
    return a


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
