"""The console script and ``python -m gradcheck``: exit codes that mean one thing.

This module imports nothing heavy before it has installed the signal handlers, so Ctrl-C or
SIGTERM at any moment — even while torch is still importing — ends with one line and exit 130.

Exit codes: 0 every asserted claim holds; 1 a claim is violated; 2 usage or input error (one
line); 3 internal error (one line naming the log file that holds the traceback); 130
interrupted (SIGINT or SIGTERM).
"""
from __future__ import annotations

import os
import signal
import sys

EXIT_OK, EXIT_VIOLATED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _interrupt(signum, frame):           # SIGTERM behaves like Ctrl-C: unwind, clean up, 130
    raise KeyboardInterrupt


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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with every outcome mapped onto the exit codes above."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pending: list[int] = []
    # while numpy / scipy / torch import, a KeyboardInterrupt can leave a half-initialised
    # module behind (seen: RecursionError in numpy's __getattr__): defer signals until then
    defer = lambda signum, frame: pending.append(signum)  # noqa: E731
    old = {s: signal.signal(s, defer) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            from .cli import main as cli_main
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler
                          if old[signal.SIGINT] is not signal.SIG_IGN else signal.SIG_IGN)
            signal.signal(signal.SIGTERM, _interrupt)
        if pending:
            raise KeyboardInterrupt
        return cli_main(argv)
    except KeyboardInterrupt:
        _say("gradcheck: interrupted")
        return EXIT_INTERRUPTED
    except MemoryError as e:
        return internal_error(e, argv)
    except Exception as e:  # noqa: BLE001 - the last line of defence: exit 3, never 1
        return internal_error(e, argv)


def run() -> None:
    """Console-script entry: exit with :func:`main`'s code (quietly on a closed stdout)."""
    code = main()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass
    sys.exit(code)
