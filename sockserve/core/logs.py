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

What a handler's failure looks like is said here too: :func:`handler_failed`
(what ``BaseServer.handle_error`` prints) and :func:`report_escape` (one
line when a handler raises ``SystemExit`` or ``KeyboardInterrupt``, which
the standard library's mixins do not pass to ``handle_error``, and neither
does sockserve; the request is still reported once, with its cause).
"""

from __future__ import annotations

import sys
import time

from .errors import format_address
from .stats import CLIENT_GONE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["warning", "debug", "Throttled", "print_exception", "handler_failed", "report_escape", "LOGGER_NAME"]

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


class Throttled:
    """At most one line per *interval* seconds about one kind of event that
    can come in floods (children that die one after another, each logged
    with its cause): the first is said at once; those held back meanwhile
    are counted, and their number said with the next line, or by
    :meth:`flush` (when the server closes). Nothing is lost from the
    server's counts: this only keeps the log (and the time spent writing
    it) proportional to time, not to the flood.

    Use: ``if throttled.due(): throttled.warning(message, *args)``, so that
    the arguments are only worked out for a line that is said.

    Thread safety: one thread (the serving thread)."""

    __slots__ = ("what", "interval", "next_at", "held")

    def __init__(self, what: str, interval: float = 1.0) -> None:
        self.what = what
        self.interval = interval
        self.next_at = 0.0
        self.held = 0

    def due(self) -> bool:
        """True if a line may be said now (say it with :meth:`warning`);
        False: this event is counted as held back."""
        now = time.monotonic()
        if now < self.next_at:
            self.held += 1
            return False
        self.next_at = now + self.interval
        return True

    def warning(self, message: str, *args: object) -> None:
        """Say *message* % *args* at WARNING level, with the number of
        events held back since the last line, if any."""
        held, self.held = self.held, 0
        if held:
            message += " (and %d more %s since the last such line, counted but not logged)"
            args = (*args, held, self.what)
        warning(message, *args)

    def flush(self) -> None:
        """Say how many events were held back since the last line, if any."""
        held, self.held = self.held, 0
        if held:
            warning("%d more %s, counted but not logged (at most one line every %g s)",
                    held, self.what, self.interval)


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


def handler_failed(server: Any, client_address: Any) -> None:
    """Report the exception being handled (``sys.exc_info()``), raised by
    *server*'s handler: a client that went away (reset, broken pipe, a
    timeout) as one debug line, anything else with its traceback on stderr."""
    exc = sys.exc_info()[1]
    if isinstance(exc, CLIENT_GONE + (TimeoutError,)):
        debug("client %s went away: %s: %s", format_address(client_address), type(exc).__name__, exc)
        return
    handler_class = getattr(server, "RequestHandlerClass", None)  # None: a server whose __init__ never ran
    handler = "its handler" if handler_class is None else getattr(handler_class, "__name__", repr(handler_class))
    rule = "-" * 60
    print(rule, file=sys.stderr)
    print(
        f"{type(server).__name__}: {handler} failed on the request from "
        f"{format_address(client_address)}; the server goes on serving.",
        file=sys.stderr,
    )
    print_exception()
    print(rule, file=sys.stderr)


def report_escape(server: Any, client_address: Any, exc: BaseException) -> None:
    """Say, in one line, that a handler raised *exc* (``SystemExit``,
    ``KeyboardInterrupt``: what ``handle_error`` is not given)."""
    warning(
        "%s: the handler raised %s%s on the request from %s; the request counts "
        "as an error and the server goes on serving",
        type(server).__name__,
        type(exc).__name__,
        f"({exc})" if str(exc) else "",
        format_address(client_address),
    )
