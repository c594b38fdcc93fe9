"""The CLI in-process with its output captured, and the ``arena`` fixture, for the compare /
sweep / study tests (their conftests import them)."""
from __future__ import annotations

import contextlib
import io
import signal
from pathlib import Path

import pytest

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
    """The one non-empty line of ``err``, which must be a gradcheck error (no traceback)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), f"stderr: {err!r}"
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def arena(tmp_path, monkeypatch) -> Path:
    """The working directory of a test (relative outputs such as runs/ land here)."""
    a = tmp_path / "arena"
    a.mkdir()
    monkeypatch.chdir(a)
    monkeypatch.setenv("GRADCHECK_LOG_DIR", str(tmp_path / "logs"))
    return a
