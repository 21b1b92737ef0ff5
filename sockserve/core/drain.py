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

This module holds :class:`DrainReport` and :func:`drain_server`, the
algorithm, written against a few server hooks; the requests in flight are
the server's :class:`~sockserve.core.ledger.Ledger`.
"""

from __future__ import annotations

import socket
import time

from .records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DrainReport", "drain_server", "abort_socket"]


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
    ``_wait_stopped(seconds)`` (wait for the loop to return), ``_ledger``
    (the requests in flight), ``_drain_wait(seconds)`` (wait a little for
    requests to end: reap children, read reports, start parked requests) and
    ``_abort_inflight(items)`` (cut those requests off)."""
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout!r}")
    ledger = server._ledger
    with ledger.watch() as watch:
        deadline = watch.began + timeout
        if server._loop_running():
            if server._request_stop():
                raise RuntimeError("drain() from the serving thread would wait for itself")
            server._wait_stopped(max(deadline - time.monotonic(), 0.0))
        while len(ledger) and time.monotonic() < deadline:
            server._drain_wait(min(deadline - time.monotonic(), 0.05))
        for _ in range(2):
            # Twice: the loop may hand over one more request it had accepted
            # before it saw the stop.
            items = ledger.abort_all()
            if items:
                server._abort_inflight(items)
            server._wait_stopped(0.05 if server._loop_running() else 0.0)
        completed, aborted = watch.counts()
        return DrainReport(completed, aborted, time.monotonic() - watch.began)
