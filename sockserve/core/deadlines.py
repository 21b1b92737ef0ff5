"""Per-request deadlines: ``request_timeout``, the total time a request may take.

``StreamRequestHandler.timeout`` bounds each read or write, so a client that
drips one byte a second never trips it and holds its worker for ever.
``BaseServer.request_timeout`` (None by default, as in the standard library,
which has no such thing) bounds the whole request instead: from the moment
``get_request`` returned to the end of the handler, time spent waiting in a
thread pool's queue or for a free child included. When it passes:

* in a thread (the plain, threading and thread-pool servers) the request's
  socket is shut down both ways by the server's :class:`Watchdog`, so a handler
  blocked in a read sees EOF and one writing gets an error; the request
  counts as a timeout whatever the handler does next (a handler busy in pure
  Python is not interrupted: nothing can stop a thread from outside, so it
  notices only when it next touches the socket);
* in a forked child or a prefork worker a ``SIGALRM`` raises
  :class:`RequestTimeout` (a ``TimeoutError``) inside the handler; a handler
  that swallows it is ended by the default ``SIGALRM`` action ``abort_grace``
  seconds later;
* a request still waiting for a worker when its deadline passes is closed
  without running (a thread pool's queue, a forking server's parked
  requests, a prefork worker that receives it too late).

Datagram requests have nothing to shut down: their deadline is checked
before the handler runs and the outcome is counted, but a running datagram
handler is never interrupted.

This module holds the watchdog (one thread per server, started on the first
request that has a deadline) and the alarm helpers the process models use.
"""

from __future__ import annotations

import math
import signal
import threading
import time

from .stats import Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["RequestTimeout", "Watchdog", "arm_alarm", "disarm_alarm"]


class RequestTimeout(TimeoutError):
    """Raised in a forked child or prefork worker when ``request_timeout``
    passes (a ``TimeoutError``, so it is counted as a timeout)."""


class Watchdog:
    """Ends the requests of one server that outlive their deadline.

    The server's ledger records when each request was accepted (its
    ``accepted``: key -> monotonic time) while ``request_timeout`` is set; the
    watchdog thread looks every *tick* seconds for entries older than the
    timeout, marks them expired in the in-flight ledger (so their owner
    counts a timeout) and shuts their sockets down. Scanning the live
    requests (bounded by the server's concurrency) costs nothing per request,
    unlike a heap entry per request.

    Thread safety: ``start``/``close`` from any thread; the scan reads the
    dict with a copy, which is atomic.
    """

    def __init__(self, server: Any, tick: float = 0.05) -> None:
        self._server = server
        self._tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run,
                    name=f"{type(self._server).__name__} request_timeout watchdog",
                    daemon=True,
                )
                self._thread.start()

    def _run(self) -> None:
        server = self._server
        while not self._stop.wait(self._tick):
            limit = server.request_timeout
            if limit is None:
                continue
            self.expire_older_than(time.monotonic() - limit)

    def expire_older_than(self, cutoff: float) -> int:
        """Expire every live request accepted before *cutoff*; how many."""
        server = self._server
        ledger = server._ledger
        expired = 0
        for key, accepted in list(ledger.accepted.items()):
            if accepted < cutoff:
                item = ledger.expire(key, Outcome.TIMEOUT)
                if item is not None:
                    expired += 1
                    server._end_expired(item)
        return expired

    def close(self) -> None:
        """Stop the thread; safe to call twice, from any thread."""
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._tick * 4 + 1.0)


class _Alarm:
    """State of the SIGALRM deadline in this (child) process."""

    hard_after: float | None = None


def _raise_timeout(signum: int, frame: Any) -> None:
    # The soft deadline: raise in the handler, then give it abort_grace
    # seconds to unwind before the default action ends the process.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    if _Alarm.hard_after is not None:
        signal.setitimer(signal.ITIMER_REAL, _Alarm.hard_after)
    raise RequestTimeout("request_timeout passed")


def arm_alarm(soft: float | None, hard: float | None, grace: float) -> None:
    """In a child process: raise :class:`RequestTimeout` after *soft*
    seconds (then end the process *grace* seconds later if the handler
    swallowed it) and end the process outright after *hard* seconds
    (``child_timeout``). Either may be None."""
    if soft is not None and (hard is None or soft < hard):
        _Alarm.hard_after = grace if hard is None else max(min(grace, hard - soft), 0.001)
        signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, max(soft, 0.001))
    elif hard is not None:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, max(math.ceil(hard * 1000) / 1000, 0.001))


def disarm_alarm() -> None:
    """Cancel a pending alarm (a prefork worker between requests)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
