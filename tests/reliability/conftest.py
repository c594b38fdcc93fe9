"""Shared helpers of the reliability catalogue (issue 9).

Every case runs the CLI on bad input or under a fault and asserts the contract:

* exit codes: 0 asserted claims hold, 1 a claim is violated, 2 usage or input error (stderr is
  exactly one line starting ``gradcheck: error: `` naming the argument or file), 3 internal
  error (one line ``gradcheck: internal error: ...`` naming a log file that holds the traceback,
  under ``$GRADCHECK_LOG_DIR``), 130 interrupted (one line ``gradcheck: interrupted``);
* never a traceback on stdout or stderr;
* nothing written or damaged: each test works in an *arena* directory (the current directory
  during the test) whose every file and folder is snapshotted before and compared after.

Cases run in-process through ``gradcheck.cli.main(argv)`` (:func:`run_cli`) where possible and as
subprocesses (:func:`run_sub`, :func:`spawn`) for signals and start-up.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

import pytest

# ------------------------------------------------------------------------------------------------
# Tiny sizes (the whole catalogue must stay fast on 2 cores)
# ------------------------------------------------------------------------------------------------

#: a tiny `gradcheck run` (flags given after these override them)
RUN_TINY = ["--width", "8", "--depth", "3", "--batch", "4", "--spectra-inputs", "0",
            "--no-plots", "--quiet"]
#: a tiny `gradcheck train` on the ring (2 steps, a checkpoint each step)
TRAIN_TINY = ["--data", "ring", "--depth", "3", "--width", "8", "--steps", "2", "--n-data", "64",
              "--batch", "8", "--log-every", "1", "--ckpt-every", "1", "--quiet"]
TRACK_TINY = ["--batch", "4", "--quiet"]
PROVE_TINY = ["--instances", "1", "--budget-seconds", "0.5", "--only", "C1", "--quiet"]
FIGURES_TINY = ["--tiny", "--only", "F3"]

ERROR_PREFIX = "gradcheck: error: "
INTERNAL_PREFIX = "gradcheck: internal error:"
INTERRUPTED = "gradcheck: interrupted"
KINDS = ("run", "train", "track", "prove", "figures")


# ------------------------------------------------------------------------------------------------
# Running the CLI
# ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _warnings_as_in_a_fresh_process():
    """Record warnings under Python's default filters (pytest's own filters would hide what a
    user sees on stderr); :func:`run_cli` appends them to stderr as Python would print them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for cat in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                    ResourceWarning):
            warnings.filterwarnings("ignore", category=cat)
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        yield caught


def run_cli(argv) -> tuple[int, str, str]:
    """``gradcheck.cli.main(argv)`` in-process: ``(exit code, stdout, stderr)``.

    An exception escaping ``main`` is what a user would see as a traceback and exit 1: it is
    returned that way (code 1, the traceback in stderr). Warnings raised during the call are
    appended to stderr (they would be printed there)."""
    from gradcheck.cli import main

    argv = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            _warnings_as_in_a_fresh_process() as caught:
        try:
            code = main(argv)
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                code = e.code or 0
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: BLE001 - a crash is part of what the catalogue records
            traceback.print_exc(file=err)
            code = 1
    text = err.getvalue()
    for w in caught:
        text += warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
    return code, out.getvalue(), text


def sub_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def gradcheck_cmd(argv) -> list[str]:
    return [sys.executable, "-m", "gradcheck", *[str(a) for a in argv]]


def run_sub(argv, timeout: float = 120, **kw) -> tuple[int, str, str]:
    """``python -m gradcheck ARGV`` as a subprocess (current directory: the arena)."""
    p = subprocess.run(gradcheck_cmd(argv), capture_output=True, text=True, timeout=timeout,
                       env=sub_env(), **kw)
    return p.returncode, p.stdout, p.stderr


class Spawned:
    """A running ``python -m gradcheck`` whose stdout and stderr lines are collected by threads
    (so that a test can wait for a progress line, then signal the process)."""

    def __init__(self, argv):
        self.p = subprocess.Popen(gradcheck_cmd(argv), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1, env=sub_env())
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(s, buf), daemon=True)
                         for s, buf in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, buf):
        for line in stream:
            buf.append(line)

    def wait_for(self, predicate, timeout: float = 120.0) -> bool:
        """Poll ``predicate()`` until true; False if the process ended or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.p.poll() is not None:
                return bool(predicate())
            time.sleep(0.01)
        return False

    def signal(self, signum) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signum)

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        """Wait for the end (kill it after ``timeout``: it ignored the signal)."""
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            self.err.append(f"[test: still running {timeout:g} s after the signal; killed]\n")
        for t in self._threads:
            t.join(10)
        return self.p.returncode, "".join(self.out), "".join(self.err)


def spawn(argv) -> Spawned:
    return Spawned(argv)


# ------------------------------------------------------------------------------------------------
# Assertions
# ------------------------------------------------------------------------------------------------

def lines_of(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def last_line(text: str) -> str:
    ls = lines_of(text)
    return ls[-1].strip()[:300] if ls else "<empty>"


def what_it_did(code, out: str, err: str) -> str:
    """The one-line account of a CLI outcome used in every failure message."""
    tb = " [Traceback on " + ("stderr" if "Traceback" in err else "stdout") + "]" \
        if "Traceback" in err + out else ""
    return f"exit {code}, stderr last line: {last_line(err)!r}{tb}"


def assert_no_traceback(code, out: str, err: str) -> None:
    assert "Traceback" not in out and "Traceback" not in err, \
        f"traceback printed: {what_it_did(code, out, err)}"


def assert_one_line_error(err: str, must_contain=(), any_of=(), prefix: str = ERROR_PREFIX,
                          code=None, out: str = "") -> str:
    """stderr is exactly one non-blank line starting with ``prefix`` that contains every string
    of ``must_contain`` and, if given, at least one of ``any_of``; returns the line."""
    if isinstance(must_contain, str):
        must_contain = (must_contain,)
    where = what_it_did(code, out, err)
    assert "Traceback" not in err, f"traceback on stderr: {where}"
    ls = lines_of(err)
    assert len(ls) == 1, f"stderr has {len(ls)} lines, not 1: {where}"
    line = ls[0]
    assert line.startswith(prefix), f"stderr line does not start with {prefix!r}: {where}"
    for s in must_contain:
        assert s in line, f"stderr line does not name {s!r}: {where}"
    if any_of:
        assert any(s in line for s in any_of), \
            f"stderr line names none of {list(any_of)}: {where}"
    return line


def assert_internal_error(code, out: str, err: str, log_dir: Path) -> Path:
    """Exit 3, one line ``gradcheck: internal error: ...`` naming an existing log file under
    ``log_dir`` that holds the traceback; returns that path."""
    where = what_it_did(code, out, err)
    assert code == 3, f"expected exit 3 (internal error): {where}"
    line = assert_one_line_error(err, prefix=INTERNAL_PREFIX, code=code, out=out)
    assert_no_traceback(code, out, err)
    logs = [p for p in Path(log_dir).rglob("*") if p.is_file()] if Path(log_dir).exists() else []
    named = [p for p in logs if str(p) in line]
    assert named, f"the line names no log file under {log_dir} (files there: " \
                  f"{[p.name for p in logs]}): {where}"
    assert "Traceback" in named[0].read_text(errors="replace"), \
        f"log file {named[0]} holds no traceback: {where}"
    return named[0]


def assert_interrupted(code, out: str, err: str, allow=None) -> None:
    """Exit 130 and ``gradcheck: interrupted`` as the only stderr line (``allow``: a regex of
    progress lines that may precede it)."""
    where = what_it_did(code, out, err)
    assert "Traceback" not in err + out, f"traceback printed: {where}"
    assert code == 130, f"expected exit 130 (interrupted): {where}"
    ls = [ln for ln in lines_of(err) if not (allow and re.match(allow, ln))]
    assert [ln.strip() for ln in ls] == [INTERRUPTED], \
        f"stderr is not the one line {INTERRUPTED!r} ({len(ls)} other lines): {where}"


# ------------------------------------------------------------------------------------------------
# Nothing written, nothing damaged
# ------------------------------------------------------------------------------------------------

def snapshot(d) -> dict[str, bytes]:
    """``{relpath: bytes}`` of every file under ``d`` (folders as ``relpath/`` -> b'<dir>', so an
    empty leftover folder shows); ``{}`` if ``d`` does not exist."""
    d = Path(d)
    if not d.exists():
        return {}
    snap: dict[str, bytes] = {}
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d).as_posix()
        if p.is_symlink():
            snap[rel + "@"] = os.readlink(p).encode()
        elif p.is_dir():
            snap[rel + "/"] = b"<dir>"
        else:
            snap[rel] = p.read_bytes()
    return snap


def diff_snapshots(before: dict, after: dict) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = []
    for name, items in (("added", added), ("removed", removed), ("changed", changed)):
        if items:
            parts.append(f"{name} {items[:6]}" + (f" (+{len(items) - 6})" if len(items) > 6
                                                   else ""))
    return "; ".join(parts)


def assert_unchanged(before: dict, d, code=None, out: str = "", err: str = "") -> None:
    delta = diff_snapshots(before, snapshot(d))
    assert not delta, f"files written or damaged ({delta}): {what_it_did(code, out, err)}"


def staging_leftovers(parent) -> list[str]:
    """Hidden staging or temporary entries (``.<name>.tmp*``, ``.ckpt_*.pt.*``, ...) in
    ``parent``."""
    parent = Path(parent)
    if not parent.exists():
        return []
    return sorted(p.name for p in parent.iterdir()
                  if p.name.startswith(".") or ".tmp" in p.name or p.name.endswith(".tmp"))


def refuse(argv, arena: Path, must_contain=(), any_of=(), code: int = 2):
    """The common case: ``gradcheck ARGV`` exits ``code`` with one ``gradcheck: error:`` line
    naming ``must_contain``, no traceback, and the arena is byte-for-byte as before."""
    before = snapshot(arena)
    got, out, err = run_cli(argv)
    assert got == code, f"expected exit {code}: {what_it_did(got, out, err)}"
    assert_no_traceback(got, out, err)
    line = assert_one_line_error(err, must_contain, any_of, code=got, out=out)
    assert_unchanged(before, arena, got, out, err)
    return line


def strict_json(text: str):
    """``json.loads`` that refuses bare NaN / Infinity / -Infinity."""
    def no_constant(name):
        raise ValueError(f"bare {name} in JSON")
    return json.loads(text, parse_constant=no_constant)


def manifest_kind(d: Path):
    """The ``kind`` of ``d/gradcheck.json`` (None if absent or unreadable)."""
    try:
        return strict_json((Path(d) / "gradcheck.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def clone(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def log_dir(tmp_path) -> Path:
    return tmp_path / "logs"


@pytest.fixture(autouse=True)
def arena(tmp_path, monkeypatch, log_dir) -> Path:
    """The test's working directory (everything a case may touch lives here); the internal-error
    logs go to ``$GRADCHECK_LOG_DIR`` = ``tmp_path/logs``, outside it."""
    a = tmp_path / "arena"
    a.mkdir()
    monkeypatch.chdir(a)
    monkeypatch.setenv("GRADCHECK_LOG_DIR", str(log_dir))
    return a


class Artifacts:
    """Output directories made once per session by the CLI itself, one of each kind (tests copy
    them into their arena before touching them)."""

    def __init__(self, base: Path):
        self.base = base
        self.run = base / "run"
        self.train = base / "train"
        self.tracked = base / "tracked"          # a training run with its track/ folder
        self.prove = base / "prove"
        self.figures = base / "figures"
        self.long_train = base / "long_train"    # many checkpoints (track is slow on it)


def _make(argv):
    code, out, err = run_cli(argv)
    assert code == 0, f"building a session artifact failed: gradcheck {' '.join(map(str, argv))}" \
                      f": {what_it_did(code, out, err)}"


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Artifacts:
    base = tmp_path_factory.mktemp("artifacts")
    a = Artifacts(base)
    old = os.environ.get("GRADCHECK_LOG_DIR")
    os.environ["GRADCHECK_LOG_DIR"] = str(base / "logs")
    try:
        _make(["run", *RUN_TINY, "--out", a.run])
        _make(["train", *TRAIN_TINY, "--out", a.train])
        _make(["train", *TRAIN_TINY, "--out", a.tracked])
        _make(["track", a.tracked, *TRACK_TINY])
        _make(["prove", *PROVE_TINY, "--out", a.prove])
        _make(["figures", *FIGURES_TINY, "--out", a.figures])
        _make(["train", *TRAIN_TINY, "--steps", "24", "--out", a.long_train])
    finally:
        if old is None:
            os.environ.pop("GRADCHECK_LOG_DIR", None)
        else:
            os.environ["GRADCHECK_LOG_DIR"] = old
    return a


@pytest.fixture
def kind_dirs(artifacts, arena) -> dict[str, Path]:
    """Fresh copies, in the arena, of one output directory of each kind."""
    return {"run": clone(artifacts.run, arena / "a_run"),
            "train": clone(artifacts.train, arena / "a_train"),
            "track": clone(artifacts.tracked / "track", arena / "a_track"),
            "prove": clone(artifacts.prove, arena / "a_prove"),
            "figures": clone(artifacts.figures, arena / "a_figures")}


class WorkStarted(BaseException):
    """Raised by a guard patched onto the heavy work: the CLI began the work before refusing."""


@pytest.fixture
def guard(monkeypatch):
    """``guard(module, name)``: replace ``module.name`` so that calling it records the call and
    aborts the command (for 'checked up front' cases: the refusal must come before the work)."""
    import importlib

    calls: list[str] = []

    def install(module: str, name: str):
        mod = importlib.import_module(module)

        def tripped(*a, **k):
            calls.append(f"{module}.{name}")
            raise WorkStarted(f"{module}.{name} was called before the command refused")
        monkeypatch.setattr(mod, name, tripped)
    install.calls = calls
    return install


def in_arena(arena: Path, name: str = "out") -> Path:
    return arena / name


__all__ = [n for n in dir() if not n.startswith("_")]
