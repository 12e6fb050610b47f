"""Ending a command-line process without the interpreter's slow teardown.

A normal interpreter exit tears down every module and runs the C++ destructors of every extension it loaded;
with torch, SQLAlchemy and Optuna loaded, that takes about 0.5 s on this project's machines (torch alone
~0.4 s), after all the work is done. ``auxtune run`` pays it once per run and each worker process once more,
so for a short study it was a visible part of the whole run (``bench/overhead.py``).

``exit_now`` does what an exit must do for our processes — the ``atexit`` handlers (logging's flush among
them), then stdout and stderr flushed — and then ends the process with ``os._exit``. It falls back to a normal
exit while a thread that is not a daemon still runs, since the interpreter would wait for it. Callers close
their store first: its SQLite connections then checkpoint as on any close.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_code(code: object) -> int:
    """The process exit status for ``SystemExit(code)``: None is 0, an int itself, anything else is printed to
    stderr and gives 1 (as the interpreter does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_now(code: object) -> None:
    """End the process with ``code`` (as ``SystemExit(code)`` would), skipping the interpreter's teardown."""
    status = exit_code(code)
    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(status)  # the interpreter would wait for that thread: leave it to the normal exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken (a pipe whose reader went away): nothing to keep
            pass
    os._exit(status)
