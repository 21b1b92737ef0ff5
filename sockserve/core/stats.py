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
errors              the handler raised (a bug, ``SystemExit``, a child that
                    crashed or was killed by a signal), or the request could
                    not be served (its thread or child could not start, its
                    worker lost it)
disconnects         the client reset the connection or closed it early
timeouts            a read or write hit ``StreamRequestHandler.timeout``, or
                    the request outlived the server's ``request_timeout``
aborted             the request was cut off by ``drain()``
overflows           closed unserved because too many waited: a thread pool's
                    queue was full, or more than ``max_waiting`` requests
                    waited for a child, worker or thread under a deadline
accept_errors       accept() failed for lack of descriptors or memory
truncated           a datagram was longer than ``max_packet_size``
active / peak       handlers running now / at most so far
threads             handler threads alive now (threading mixins)
children            child processes alive now (forking mixins)
peak_children       most child processes alive at once so far
==================  ==========================================================

:meth:`ServerStats.take_peaks` gives the most threads and children alive at
once *since its previous call*: a sampler that calls it a few times a second
sees a thread that lived a millisecond, which an instantaneous count would
miss. ``timeline`` (off by default) records when and where each request ran
(see :mod:`sockserve.core.timeline`).

Cost. Counting runs on every request, so the writers are built to cost
almost nothing while nobody reads:

* a request that completes normally only appends its handler time to a
  queue (a ``collections.deque``: one atomic C call, no lock); readers fold
  the queue into ``completed`` and the histogram when they look, and the
  server folds it every 4,096 accepted requests so it stays bounded;
* counters written only by the serving thread (``accepted``, ``rejected``,
  ``truncated``, ``children``...) are plain integers without a lock;
* rarer events (errors, timeouts, gauges, requests started in handler
  threads) take the lock.

``benchmarks/bench_callgrind.py`` counts what this costs per request. A
server class can switch counting off with ``collect_stats = False``.

Thread safety: every method may be called from any thread, except
``child_started``, which only the serving thread calls (a forking server
forks there), as it does the plain server's request starts
(``Ledger.run(here=True)``, which counts without the lock: the plain server
runs its handlers there, one at a time). A snapshot never sees a request counted as
started but in neither ``active`` nor a final outcome. Forking servers'
children leave their results in shared memory (see ``ForkingMixIn`` and
``sockserve.core.reportboard``), so the parent's statistics include the
children's requests.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

from .histogram import Histogram
from .timeline import DEFAULT_CAP, Timeline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Outcome",
    "ServerStats",
    "Subscription",
    "outcome_of",
    "CLIENT_GONE",
    "OUTCOME_NAMES",
]

#: Exceptions that mean the client went away, not that the handler is wrong.
CLIENT_GONE: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class Outcome(enum.IntEnum):
    """How one request ended (an int so a forked child can send it cheaply).

    The hot paths compare with the plain ints (``outcome == 0``) rather
    than build members: making an IntEnum member costs more than the rest
    of the counting together."""

    OK = 0
    ERROR = 1
    DISCONNECT = 2
    TIMEOUT = 3
    ABORTED = 4


#: Outcome value -> the counter it moves.
OUTCOME_NAMES: tuple[str, ...] = ("completed", "errors", "disconnects", "timeouts", "aborted")


def outcome_of(exc: BaseException | None) -> Outcome:
    """Classify the exception a handler raised (None: it returned normally)."""
    if exc is None:
        return Outcome.OK
    if isinstance(exc, CLIENT_GONE):
        return Outcome.DISCONNECT
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT
    return Outcome.ERROR


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

#: The server folds the completion queue after this many accepted requests
#: (a power of two less one, tested with ``&``).
FOLD_MASK = 4095


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

    Readers use :meth:`snapshot`, :meth:`subscribe`, :meth:`take_peaks` and
    the attributes named in the module docstring. The server (and mixins)
    are the only writers. ``enabled = False`` (what a server class with
    ``collect_stats = False`` gets) turns counting off entirely.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._lock = threading.Lock()
        self.enabled = enabled
        self.created = time.time()
        # Counters with one writer each (the serving thread), or moved
        # under the lock; see the module docstring.
        self.accepted = 0
        self.rejected = 0
        self.started = 0
        self._completed = 0
        self.errors = 0
        self.disconnects = 0
        self.timeouts = 0
        self.aborted = 0
        self.overflows = 0
        self.accept_errors = 0
        self.truncated = 0
        self.peak_active = 0
        self.threads = 0
        self.children = 0
        self.peak_children = 0
        self._active_base = 0  # active requests carried over a reset()
        self._threads_window = 0
        self._children_window = 0
        self._histogram = Histogram()
        # Handler seconds of requests that completed normally, not yet folded.
        self._done: deque[float] = deque()
        #: ``request_finished(Outcome.OK, seconds)`` of an enabled instance,
        #: as one C call (the ledger's for every normal end): queue it.
        self.note_completed: Callable[[float], None] = self._done.append
        #: A :class:`~sockserve.core.timeline.Timeline` while one is recorded.
        self.timeline: Timeline | None = None

    # -- writers (the server's side) ---------------------------------------

    def note_accepted(self) -> None:
        """``get_request`` returned a request (serving thread only)."""
        if self.enabled:
            self.accepted += 1
            if not self.accepted & FOLD_MASK:
                self.fold()

    def note_rejected(self) -> None:
        """``verify_request`` refused a request (serving thread only)."""
        if self.enabled:
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
        """A handler is about to run (any thread)."""
        if self.enabled:
            with self._lock:
                self.started += 1
                active = self._active_locked()
                if active > self.peak_active:
                    self.peak_active = active

    def request_finished(self, outcome: int, seconds: float) -> None:
        """A handler that was counted as started has ended (any thread).

        *outcome* is an :class:`Outcome` value; *seconds* the handler's time."""
        if outcome == 0:
            if self.enabled:
                self._done.append(seconds)
            return
        if self.enabled:
            if not seconds > 0.0:
                seconds = 0.0  # a clock quirk or NaN must not poison the histogram
            with self._lock:
                # (An outcome from outside, out of range, is an error.)
                field = OUTCOME_NAMES[outcome] if 0 < outcome < len(OUTCOME_NAMES) else "errors"
                setattr(self, field, getattr(self, field) + 1)
                self._histogram.add(seconds)

    def thread_started(self) -> None:
        """A handler thread began, and its request with it (ThreadingMixIn:
        one lock for both)."""
        with self._lock:
            self.threads += 1
            if self.threads > self._threads_window:
                self._threads_window = self.threads
            if self.enabled:
                self.started += 1
                active = self._active_locked()
                if active > self.peak_active:
                    self.peak_active = active

    def thread_ended(self) -> None:
        """A handler thread is about to end (its request was counted)."""
        with self._lock:
            self.threads -= 1

    def child_started(self, alive: int, running: int) -> None:
        """A child process was forked for a request; *alive* children now,
        *running* of them still handling their request (not yet counted
        finished). Serving thread only (ForkingMixIn forks there): no lock.
        (A ``take_peaks`` running at that very instant may see this child
        only in the next window.)"""
        self.children = alive
        if alive > self.peak_children:
            self.peak_children = alive
        if alive > self._children_window:
            self._children_window = alive
        if self.enabled:
            self.started += 1
            if running > self.peak_active:
                self.peak_active = running

    def set_threads(self, delta: int) -> None:
        """Handler threads alive changed by *delta*."""
        with self._lock:
            self.threads += delta
            if self.threads > self._threads_window:
                self._threads_window = self.threads

    def set_children(self, alive: int) -> None:
        """Child processes alive is now *alive*."""
        with self._lock:
            self.children = alive
            if alive > self.peak_children:
                self.peak_children = alive
            if alive > self._children_window:
                self._children_window = alive

    def record_timeline(self, cap: int = DEFAULT_CAP) -> Timeline:
        """Start recording a :class:`~sockserve.core.timeline.Timeline` of the
        requests from now on (at most *cap* spans); return it. Call
        ``stop_timeline()`` to stop."""
        timeline = Timeline(cap)
        self.timeline = timeline
        return timeline

    def stop_timeline(self) -> Timeline | None:
        """Stop recording; return the timeline recorded (None if none was)."""
        timeline, self.timeline = self.timeline, None
        return timeline

    # -- folding ------------------------------------------------------------

    def fold(self) -> None:
        """Move the queued completions into ``completed`` and the histogram."""
        if self._done:
            with self._lock:
                self._fold_locked()

    def _fold_locked(self) -> None:
        done = self._done
        count = len(done)
        if count:
            # Take exactly `count` items with popleft, which is atomic: a
            # writer appending meanwhile is never lost (only folders pop,
            # and they hold the lock).
            values = list(itertools.islice(iter(done.popleft, None), count))
            self._completed += count
            self._histogram.add_many(values)

    def _active_locked(self) -> int:
        finished = (
            self._completed + len(self._done) + self.errors + self.disconnects
            + self.timeouts + self.aborted
        )
        return self.started - finished + self._active_base

    # -- readers ------------------------------------------------------------

    @property
    def completed(self) -> int:
        """Requests whose handler returned normally."""
        self.fold()
        return self._completed

    @property
    def handler_time(self) -> Histogram:
        """The histogram of handler times (every outcome)."""
        self.fold()
        return self._histogram

    @property
    def active(self) -> int:
        """Handlers running now."""
        with self._lock:
            return self._active_locked()

    @property
    def finished(self) -> int:
        """Requests that ended, whatever the outcome."""
        with self._lock:
            self._fold_locked()
            return (
                self._completed + self.errors + self.disconnects + self.timeouts + self.aborted
            )

    def take_peaks(self) -> tuple[int, int]:
        """(threads, children): the most alive at once since the previous
        call; the window then starts again from the current counts.

        Meant for one sampler per server (a live plot), which calls it every
        interval: a second caller would split the windows between them."""
        with self._lock:
            peaks = (max(self._threads_window, self.threads),
                     max(self._children_window, self.children))
            self._threads_window = self.threads
            self._children_window = self.children
            return peaks

    def snapshot(self) -> dict[str, Any]:
        """All counters at one instant, as plain JSON-able data."""
        with self._lock:
            self._fold_locked()
            data: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS if name != "completed"}
            data["completed"] = self._completed
            data["active"] = self._active_locked()
            data["peak_active"] = self.peak_active
            data["threads"] = self.threads
            data["children"] = self.children
            data["peak_children"] = self.peak_children
            data["handler_time_ms"] = self._histogram.summary_ms()
            data["handler_time"] = self._histogram.to_dict()
            data["enabled"] = self.enabled
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
            self._fold_locked()
            active = self._active_locked()
            for name in _COUNTERS:
                setattr(self, "_completed" if name == "completed" else name, 0)
            self._active_base = active
            self.peak_active = active
            self.peak_children = self.children
            self._histogram = Histogram()
            self.created = time.time()

    def __repr__(self) -> str:
        return (
            f"<ServerStats accepted={self.accepted} completed={self.completed} "
            f"errors={self.errors} active={self.active} peak={self.peak_active}>"
        )
