"""The console script and ``python -m gradcheck``: exit codes that mean one thing.

This module imports nothing heavy before it has installed the signal handlers, so Ctrl-C or
SIGTERM at any moment — even while torch is still importing — ends with one line and exit 130.

Exit codes: 0 every asserted claim holds; 1 a claim is violated; 2 usage or input error (one
line); 3 internal error (one line naming the log file that holds the traceback); 130
interrupted (SIGINT or SIGTERM).
"""
from __future__ import annotations

import signal
import sys

from ._errors import _say, internal_error

EXIT_OK, EXIT_VIOLATED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with every outcome mapped onto the exit codes above."""
    from ._errors import arm_signals, defer_signals, deferring
    from ._threads import configure_openmp

    configure_openmp()                 # before torch loads OpenMP (see gradcheck._threads)
    argv = list(sys.argv[1:] if argv is None else argv)
    defer_signals()                    # until the heavy imports are done (see _errors.preload)
    try:
        from .cli import main as cli_main

        code = cli_main(argv)
        if deferring():                # never reached preload (e.g. a usage error)
            arm_signals()
        return code
    except KeyboardInterrupt:
        for s in (signal.SIGINT, signal.SIGTERM):      # a second Ctrl-C: ignored from here on
            signal.signal(s, signal.SIG_IGN)
        _say("gradcheck: interrupted")
        return EXIT_INTERRUPTED
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
