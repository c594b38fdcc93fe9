"""Internal errors: the traceback goes to a log file, the terminal gets one line (exit 3)."""
from __future__ import annotations

import os
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
