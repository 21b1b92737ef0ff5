"""Graceful drain: stop accepting, wait for what is in flight, abort the rest.

Every sockserve server has ``drain(timeout) -> DrainReport`` (threads, pool
workers, child processes and prefork workers alike). The order of events:

1. accepting stops (``serve_forever`` is asked to return, as by
   ``shutdown()``; a prefork server tells its workers to stop accepting);
2. requests already accepted (running, or waiting in a pool's queue) are
   given until *timeout* seconds to finish;
3. whatever is left is aborted: its socket is shut down, so a handler blocked
   in a read or write wakes with EOF or an error, and a child or worker
   process gets SIGTERM, then SIGKILL after ``abort_grace`` seconds;
4. the report says how many ended on their own (``completed``) and how many
   were cut off (``aborted``); ``server.stats.aborted`` counts the latter too.

Call it from any thread but the serving one, while ``serve_forever`` runs or
after ``shutdown()``; call ``server_close()`` afterwards as usual. A request
that was accepted is always either completed or aborted and counted, never
dropped silently. Connections still waiting in the listen backlog were never
accepted: they are refused when ``server_close()`` closes the socket.

This module holds the plain-data pieces: :class:`DrainReport` and the
:class:`InFlight` ledger the servers keep their live requests in, and
:func:`drain_server`, the algorithm, written against a few server hooks.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, NamedTuple

__all__ = ["DrainReport", "InFlight", "drain_server", "abort_socket"]


class DrainReport(NamedTuple):
    """What one ``drain()`` did (immutable, compares and prints by value).

    A NamedTuple rather than a dataclass because this module is imported by
    the core: ``dataclasses`` (with ``inspect`` and ``ast``) would add about
    1.4 MB to every server process, and a forking server pays for its size
    on every fork.

    ``completed``: requests in flight (or accepted during the stop) that ended
    on their own before the timeout; ``aborted``: those that were cut off;
    ``waited``: seconds the drain took, abort included.
    """

    completed: int
    aborted: int
    waited: float

    @property
    def in_flight(self) -> int:
        """Requests the drain had to account for."""
        return self.completed + self.aborted

    @property
    def clean(self) -> bool:
        """True when nothing had to be aborted."""
        return self.aborted == 0


class InFlight:
    """The requests a server has accepted and not yet finished.

    Each entry has a *key* (``id(request)`` for sockets, the PID for
    processes) and an *item* (what ``abort_all`` hands back to be cut off).
    ``aborted`` keys stay marked until their owner calls ``discard``, so the
    owner can record the request as aborted whatever its handler did next.

    Thread safety: every method may be called from any thread. Cost: every
    request passes through ``add`` and ``discard``, so they take the plain
    lock (no Python-level Condition calls) and wake a waiter only when
    ``wait_empty`` has one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters = 0
        self._live: dict[Any, Any] = {}
        self._cut: dict[Any, Any] = {}
        self.started = 0
        self.ended = 0
        self.aborted = 0

    def add(self, key: Any, item: Any) -> None:
        with self._lock:
            self._live[key] = item
            self.started += 1

    def discard(self, key: Any) -> bool:
        """The request under *key* has ended; True if it had been aborted."""
        with self._lock:
            if self._cut and self._cut.pop(key, None) is not None:
                return True
            if key in self._live:
                del self._live[key]
                self.ended += 1
                if self._waiters and not self._live:
                    self._cond.notify_all()
            return False

    def is_aborted(self, key: Any) -> bool:
        if not self._cut:  # the common case; reading a dict's size is atomic
            return False
        with self._lock:
            return key in self._cut

    def abort_all(self) -> list[Any]:
        """Mark every live request aborted (counted as ended) and return
        their items so the caller can cut them off."""
        with self._cond:
            items = list(self._live.values())
            self._cut.update(self._live)
            self.ended += len(self._live)
            self.aborted += len(self._live)
            self._live.clear()
            self._cond.notify_all()
            return items

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for no request to be live."""
        with self._cond:
            self._waiters += 1
            try:
                return self._cond.wait_for(lambda: not self._live, max(timeout, 0.0))
            finally:
                self._waiters -= 1

    def counts(self) -> tuple[int, int, int]:
        """(started, ended, aborted) so far, at one instant."""
        with self._lock:
            return self.started, self.ended, self.aborted

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)


def report_between(
    before: tuple[int, int, int], after: tuple[int, int, int], began: float
) -> DrainReport:
    """The DrainReport for the ledger moving from *before* to *after*."""
    ended = after[1] - before[1]
    aborted = after[2] - before[2]
    return DrainReport(
        completed=ended - aborted, aborted=aborted, waited=time.monotonic() - began
    )


def abort_socket(item: Any) -> None:
    """Shut a request's socket down both ways, so a handler blocked in a
    read sees EOF and one writing gets an error. Datagram requests (a
    ``(data, server_socket)`` tuple) have nothing of their own to shut."""
    if isinstance(item, socket.socket):
        try:
            item.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed, or the client is gone


def drain_server(server: Any, timeout: float) -> DrainReport:
    """The drain algorithm for servers whose serving loop accepts (plain,
    threading, forking, thread pool). Hooks it uses on *server*:
    ``_request_stop()`` (ask the loop to stop without waiting), ``_loop_lock``
    and ``_serving_thread`` (is a loop running), ``_is_shut_down``, ``_inflight``, ``_drain_wait(seconds)``
    (wait for requests to end, reaping children if any) and
    ``_abort_inflight(items)`` (cut those requests off)."""
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout!r}")
    began = time.monotonic()
    deadline = began + timeout
    ledger: InFlight = server._inflight
    before = ledger.counts()
    with server._loop_lock:
        running = server._serving_thread is not None
    if running:
        if server._request_stop():
            raise RuntimeError("drain() from the serving thread would wait for itself")
        server._is_shut_down.wait(max(deadline - time.monotonic(), 0.0))
    while len(ledger) and time.monotonic() < deadline:
        server._drain_wait(min(deadline - time.monotonic(), 0.05))
    grace = float(getattr(server, "abort_grace", 1.0))
    for _ in range(2):
        # Twice: a loop blocked handing a request to a full pool may take
        # one more after the first pass, before it sees the stop.
        items = ledger.abort_all()
        if items:
            server._abort_inflight(items)
        if running:
            server._is_shut_down.wait(grace)
    return report_between(before, ledger.counts(), began)
