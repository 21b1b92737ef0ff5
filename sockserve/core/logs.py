"""The package's log lines, without importing ``logging`` to write them.

Importing ``logging`` registers an at-fork hook that runs in every forked
child (it re-makes the lock of every handler): a forking server would pay
for it on each request, about a tenth of the child's work, although it logs
nothing. So the core never imports it. Where the program uses ``logging``
(it is imported, so someone may have configured it), the lines go to the
``"sockserve"`` logger as usual; where it does not, a warning is written to
stderr, as ``logging``'s last-resort handler would, and a debug line is
dropped, as it would be. Writing to stderr also works when the process is
out of descriptors (no module file can be opened then), which is exactly
when the accept loop has a warning to give.
"""

from __future__ import annotations

import sys

__all__ = ["warning", "debug", "print_exception", "LOGGER_NAME"]

LOGGER_NAME = "sockserve"
_WARNING, _DEBUG = 30, 10


def warning(message: str, *args: object) -> None:
    """Log *message* % *args* at WARNING level."""
    _emit(_WARNING, message, args)


def debug(message: str, *args: object) -> None:
    """Log *message* % *args* at DEBUG level."""
    _emit(_DEBUG, message, args)


def _emit(level: int, message: str, args: tuple[object, ...]) -> None:
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(LOGGER_NAME).log(level, message, *args)
        return
    if level >= _WARNING:
        try:
            sys.stderr.write((message % args if args else message) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # no stderr left to complain to


def print_exception() -> None:
    """Print the exception being handled with its traceback, as the
    standard library does (importing traceback on first use, as it does);
    one line if even that fails (no descriptors left to read modules)."""
    try:
        import traceback

        traceback.print_exc()
    except (ImportError, OSError):
        exc = sys.exc_info()[1]
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
