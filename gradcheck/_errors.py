"""Internal errors: the traceback goes to a log file, the terminal gets one line (exit 3)."""
from __future__ import annotations

import os
import signal
import sys

EXIT_INTERNAL = 3


def log_dir() -> str:
    """Where internal-error tracebacks go: ``$GRADCHECK_LOG_DIR``, else a temp subdirectory."""
    import tempfile

    return os.environ.get("GRADCHECK_LOG_DIR") or os.path.join(tempfile.gettempdir(),
                                                               "gradcheck-logs")


def internal_error(exc: BaseException, argv: list[str]) -> int:
    """Write the traceback to a log file; print one line naming it; return 3."""
    import time
    import traceback

    path = None
    try:
        d = log_dir()
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"gradcheck-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
        with open(path, "w") as f:
            f.write("gradcheck " + " ".join(argv) + "\n\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=f)
    except OSError:
        path = None
    msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    where = f"(traceback in {path})" if path else "(the traceback could not be written)"
    _say(f"gradcheck: internal error: {type(exc).__name__}: {msg} {where}")
    return EXIT_INTERNAL


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


_PENDING: list[int] = []
_DEFERRING = False


def _defer(signum, frame):
    _PENDING.append(signum)


def _interrupt(signum, frame):           # SIGTERM behaves like Ctrl-C: unwind, clean up, 130
    raise KeyboardInterrupt


def defer_signals() -> None:
    """From process start until :func:`preload`: SIGINT / SIGTERM are recorded, not raised
    (a KeyboardInterrupt inside numpy's, scipy's or torch's import can leave a half-initialised
    module behind: seen, a RecursionError in numpy's ``__getattr__`` instead of exit 130)."""
    global _DEFERRING
    _DEFERRING = True
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _defer)


def arm_signals() -> None:
    """Real handlers from now on (SIGINT even where the parent left it ignored: a shell's
    background job, a CI runner); a signal that arrived while deferred is raised now."""
    global _DEFERRING
    _DEFERRING = False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    if _PENDING:
        _PENDING.clear()
        raise KeyboardInterrupt


def deferring() -> bool:
    return _DEFERRING


def preload() -> None:
    """Import the heavy libraries with SIGINT / SIGTERM deferred, then honour a deferred one.

    Commands call this once their flags are validated (bad flags are answered in
    milliseconds) and before their long work; in-process callers (tests) get the same
    protection around the imports with their own handlers restored afterwards.
    """
    outer = _DEFERRING
    saved = {} if outer else {s: signal.signal(s, _defer)
                              for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        import numpy  # noqa: F401
        import pandas  # noqa: F401
        import scipy.sparse.linalg  # noqa: F401
        import torch  # noqa: F401
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    if outer:
        arm_signals()
    elif _PENDING:
        _PENDING.clear()
        raise KeyboardInterrupt
