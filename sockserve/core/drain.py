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

__all__ = ["DrainReport", "InFlight", "Watch", "drain_server", "abort_socket"]


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


_MISSING: Any = object()


class InFlight:
    """The requests a server has accepted and not yet finished.

    Each entry has a *key* (``id(request)`` for sockets, the PID for forked
    children, a sequence number for prefork) and an *item* (what
    :meth:`abort_all` hands back to be cut off). A request is *ended* exactly
    once: by its owner's :meth:`discard` (it finished), or by
    :meth:`abort_all` or :meth:`expire` (it was cut off; ``discard`` then
    tells the owner so, to count it under that outcome). Whoever pops the key
    from the live table wins, and a dict pop is atomic.

    Cost: every request passes through :meth:`add` and :meth:`discard`, so
    they take no lock (a dict store and a dict pop) and wake a waiter only
    when :meth:`wait_empty` has one. What a drain reports is tallied only
    while a drain watches (see :meth:`watch`).

    Thread safety: every method may be called from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters = 0
        self._live: dict[Any, Any] = {}
        self._cut: dict[Any, int] = {}  # key -> the outcome it was cut off with
        self._watching = 0
        self.added = 0  # requests added while a drain watched
        self.aborted = 0  # requests abort_all cut off, ever

    def add(self, key: Any, item: Any) -> None:
        """Record a request as live."""
        self._live[key] = item
        if self._watching:
            with self._lock:
                self.added += 1

    def discard(self, key: Any) -> int:
        """The request under *key* has ended. Returns 0 when it ended on its
        own, or the outcome it was cut off with (``Outcome.ABORTED`` by a
        drain, ``Outcome.TIMEOUT`` by a deadline)."""
        if self._live.pop(key, _MISSING) is _MISSING:
            if self._cut:
                with self._lock:
                    return self._cut.pop(key, 0)
            return 0
        if self._waiters and not self._live:
            with self._cond:
                self._cond.notify_all()
        return 0

    def __contains__(self, key: Any) -> bool:
        return key in self._live

    def cut_outcome(self, key: Any) -> int:
        """The outcome the request under *key* was cut off with (0: none).
        Its owner learns it again from :meth:`discard`."""
        if not self._cut:  # the common case; reading a dict's size is atomic
            return 0
        with self._lock:
            return self._cut.get(key, 0)

    def expire(self, key: Any, outcome: int) -> Any:
        """Cut one request off (its deadline passed): it has ended, with
        *outcome*. Returns its item, or None if it had ended already."""
        item = self._live.pop(key, _MISSING)
        if item is _MISSING:
            return None
        with self._cond:
            self._cut[key] = outcome
            if not self._live:
                self._cond.notify_all()
        return item

    def abort_all(self, outcome: int = 4) -> list[Any]:
        """Cut off every live request (``Outcome.ABORTED`` unless told) and
        return their items, so the caller can end them."""
        items = []
        with self._cond:
            for key in list(self._live):
                item = self._live.pop(key, _MISSING)
                if item is not _MISSING:
                    self._cut[key] = outcome
                    items.append(item)
            self.aborted += len(items)
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

    def watch(self) -> Watch:
        """Start tallying for a drain report (a context manager)."""
        return Watch(self)

    def items(self) -> list[Any]:
        """The items of the live requests (a copy)."""
        return list(self._live.values())

    def __len__(self) -> int:
        return len(self._live)


class Watch:
    """A drain's view of the ledger: the requests it must account for (live
    when it began, plus any added meanwhile) and how many were aborted."""

    def __init__(self, ledger: InFlight) -> None:
        self._ledger = ledger
        self.began = time.monotonic()
        with ledger._lock:
            ledger._watching += 1
            self._live_at_start = len(ledger._live)
            self._added_at_start = ledger.added
            self._aborted_at_start = ledger.aborted

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._ledger._lock:
            self._ledger._watching -= 1

    def report(self) -> DrainReport:
        """What happened since the watch began, as a DrainReport."""
        ledger = self._ledger
        with ledger._lock:
            in_flight = self._live_at_start + ledger.added - self._added_at_start
            aborted = ledger.aborted - self._aborted_at_start
            still_live = len(ledger._live)
        return DrainReport(
            completed=max(in_flight - aborted - still_live, 0),
            aborted=aborted,
            waited=time.monotonic() - self.began,
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
    """The drain algorithm, written against a few hooks every sockserve
    server has: ``_request_stop()`` (ask the loop to stop without waiting;
    True when called from the serving thread), ``_loop_running()``,
    ``_BaseServer__is_shut_down`` (set when the loop has returned),
    ``_inflight`` (the ledger), ``_drain_wait(seconds)`` (wait a little for
    requests to end: reap children, read reports, start parked requests) and
    ``_abort_inflight(items)`` (cut those requests off)."""
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout!r}")
    ledger: InFlight = server._inflight
    with ledger.watch() as watch:
        deadline = watch.began + timeout
        if server._loop_running():
            if server._request_stop():
                raise RuntimeError("drain() from the serving thread would wait for itself")
            server._BaseServer__is_shut_down.wait(max(deadline - time.monotonic(), 0.0))
        while len(ledger) and time.monotonic() < deadline:
            server._drain_wait(min(deadline - time.monotonic(), 0.05))
        for _ in range(2):
            # Twice: the loop may hand over one more request it had accepted
            # before it saw the stop.
            items = ledger.abort_all()
            if items:
                server._abort_inflight(items)
            server._BaseServer__is_shut_down.wait(0.05 if server._loop_running() else 0.0)
        return watch.report()
