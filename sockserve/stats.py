"""Live statistics that every sockserve server keeps in ``server.stats``.

The server calls the ``note_*`` and ``request_*`` methods at fixed points of
its lifecycle; readers call :meth:`ServerStats.snapshot` (a consistent,
JSON-able dict) or :meth:`ServerStats.subscribe` (a callback fed with
snapshots a few times a second, for live plots).

Where each counter moves:

==================  ==========================================================
accepted            ``get_request`` returned a connection or datagram
rejected            ``verify_request`` said no
started             the handler is about to run (``finish_request`` is called)
completed           the handler returned normally
errors              the handler raised (a bug, or SystemExit in a child)
disconnects         the client reset the connection or closed it early
timeouts            a read or write hit ``StreamRequestHandler.timeout``
aborted             the request was cut off by a drain timeout or its child died
overflows           a thread pool's queue was full and the connection was closed
accept_errors       accept() failed for lack of descriptors or memory
truncated           a datagram was longer than ``max_packet_size``
active / peak       handlers running now / at most so far
threads             handler threads alive now (threading mixins)
children            child processes alive now (forking mixins)
peak_children       most child processes alive at once so far
==================  ==========================================================

Thread safety: every method may be called from any thread; one lock guards
the counters, so a snapshot never sees a request counted as started but in
neither ``active`` nor a final outcome. Forking servers feed the results of
their children back through a pipe (see ``ForkingMixIn``), so the parent's
statistics include the children's requests.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import Any

from .histogram import Histogram

__all__ = ["Outcome", "ServerStats", "Subscription", "outcome_of", "CLIENT_GONE"]

#: Exceptions that mean the client went away, not that the handler is wrong.
CLIENT_GONE: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class Outcome(enum.IntEnum):
    """How one request ended (an int so a forked child can send it cheaply)."""

    OK = 0
    ERROR = 1
    DISCONNECT = 2
    TIMEOUT = 3
    ABORTED = 4


def outcome_of(exc: BaseException | None) -> Outcome:
    """Classify the exception a handler raised (None: it returned normally)."""
    if exc is None:
        return Outcome.OK
    if isinstance(exc, CLIENT_GONE):
        return Outcome.DISCONNECT
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT
    return Outcome.ERROR


_OUTCOME_FIELD = {
    Outcome.OK: "completed",
    Outcome.ERROR: "errors",
    Outcome.DISCONNECT: "disconnects",
    Outcome.TIMEOUT: "timeouts",
    Outcome.ABORTED: "aborted",
}

_COUNTERS = (
    "accepted",
    "rejected",
    "started",
    "completed",
    "errors",
    "disconnects",
    "timeouts",
    "aborted",
    "overflows",
    "accept_errors",
    "truncated",
)


class Subscription:
    """A running feed of snapshots; ``close()`` stops it (so does ``with``)."""

    def __init__(
        self, stats: ServerStats, callback: Callable[[dict[str, Any]], None], interval: float
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self._stats = stats
        self._callback = callback
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="sockserve-stats-feed", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._callback(self._stats.snapshot())

    def close(self) -> None:
        """Stop the feed and wait for its thread; safe to call twice."""
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def closed(self) -> bool:
        return self._stopped.is_set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ServerStats:
    """Counters, gauges and a handler-time histogram for one server.

    Readers use :meth:`snapshot`, :meth:`subscribe` and the attributes named
    in the module docstring. The server (and mixins) are the only writers.
    Set ``enabled = False`` before serving to turn counting off entirely.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.enabled = True
        self.created = time.time()
        self.accepted = 0
        self.rejected = 0
        self.started = 0
        self.completed = 0
        self.errors = 0
        self.disconnects = 0
        self.timeouts = 0
        self.aborted = 0
        self.overflows = 0
        self.accept_errors = 0
        self.truncated = 0
        self.active = 0
        self.peak_active = 0
        self.threads = 0
        self.children = 0
        self.peak_children = 0
        self.handler_time = Histogram()

    # -- writers (the server's side) ---------------------------------------

    def note_accepted(self) -> None:
        if self.enabled:
            with self._lock:
                self.accepted += 1

    def note_rejected(self) -> None:
        if self.enabled:
            with self._lock:
                self.rejected += 1

    def note_overflow(self) -> None:
        """A pool's queue was full: the request was closed unhandled."""
        with self._lock:
            self.overflows += 1

    def note_accept_error(self) -> None:
        with self._lock:
            self.accept_errors += 1

    def note_truncated(self) -> None:
        with self._lock:
            self.truncated += 1

    def request_started(self) -> None:
        """A handler is about to run."""
        if self.enabled:
            with self._lock:
                self.started += 1
                self.active += 1
                if self.active > self.peak_active:
                    self.peak_active = self.active

    def request_finished(self, outcome: Outcome, seconds: float) -> None:
        """A handler that was counted as started has ended."""
        if self.enabled:
            if not seconds > 0.0:
                seconds = 0.0  # a clock quirk or NaN must not poison the histogram
            with self._lock:
                self.active -= 1
                if outcome is Outcome.OK:  # the common case, without getattr/setattr
                    self.completed += 1
                else:
                    field = _OUTCOME_FIELD[outcome]
                    setattr(self, field, getattr(self, field) + 1)
                self.handler_time.add(seconds)

    def set_threads(self, delta: int) -> None:
        """Handler threads alive changed by *delta*."""
        with self._lock:
            self.threads += delta

    def set_children(self, alive: int) -> None:
        """Child processes alive is now *alive*."""
        with self._lock:
            self.children = alive
            self.peak_children = max(self.peak_children, alive)

    # -- readers ------------------------------------------------------------

    @property
    def finished(self) -> int:
        """Requests that ended, whatever the outcome."""
        return self.completed + self.errors + self.disconnects + self.timeouts + self.aborted

    def snapshot(self) -> dict[str, Any]:
        """All counters at one instant, as plain JSON-able data."""
        with self._lock:
            data: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
            data["active"] = self.active
            data["peak_active"] = self.peak_active
            data["threads"] = self.threads
            data["children"] = self.children
            data["peak_children"] = self.peak_children
            data["handler_time_ms"] = self.handler_time.summary_ms()
            data["handler_time"] = self.handler_time.to_dict()
        data["time"] = time.time()
        data["uptime"] = data["time"] - self.created
        return data

    def subscribe(
        self, callback: Callable[[dict[str, Any]], None], interval: float = 0.25
    ) -> Subscription:
        """Call *callback(snapshot)* every *interval* seconds from a daemon
        thread until the returned :class:`Subscription` is closed."""
        return Subscription(self, callback, interval)

    def reset(self) -> None:
        """Zero the counters and the histogram (gauges keep their values)."""
        with self._lock:
            for name in _COUNTERS:
                setattr(self, name, 0)
            self.peak_active = self.active
            self.peak_children = self.children
            self.handler_time = Histogram()
            self.created = time.time()

    def __repr__(self) -> str:
        return (
            f"<ServerStats accepted={self.accepted} completed={self.completed} "
            f"errors={self.errors} active={self.active} peak={self.peak_active}>"
        )
