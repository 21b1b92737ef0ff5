"""``ForkingMixIn``: each request in a new child process (POSIX only).

Put the mixin first so its ``process_request`` wins::

    class ForkingTCPServer(ForkingMixIn, TCPServer): pass

The children, their reports, the requests they run and those that wait for
a free child are kept by :class:`~sockserve.core.children.Children`.
"""

from __future__ import annotations

import os
import time

from .children import Children
from .drain import abort_socket
from .processes import MAX_WAITING, REAPED_ELSEWHERE, end_processes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from .servers import BaseServer as _Server
else:
    _Server = object

__all__ = ["ForkingMixIn"]

#: The report board's size: this many slots at least, or twice max_children.
_MIN_SLOTS = 64
#: While waiting for a child to end, look again after this long even if no
#: wake-up came (a child that died without reporting sends none).
_WAIT_STEP = 0.05


class ForkingMixIn(_Server):
    """Handle each request in a new child process (POSIX only).

    Overrides ``process_request`` (fork), ``service_actions`` and
    ``handle_timeout`` (reap children), ``server_close`` (reap them all),
    and, for ``drain()``, ``_drain_wait`` and ``_abort_inflight`` (children
    get SIGTERM, then SIGKILL after ``abort_grace``).

    Class attributes that tune it:

    ``max_children`` (40)
        at most this many children at once; the server waits for one to end
        before it forks another (sockserve: the wait ends at once on
        ``shutdown()``).
    ``timeout`` (300)
        ``handle_request()`` calls ``handle_timeout()`` (which reaps
        children) after this many idle seconds.
    ``block_on_close`` (True)
        ``server_close()`` waits for every child to end.
    ``child_timeout`` (None)
        sockserve only: seconds a child may run before it is ended by
        SIGALRM (a hung handler cannot pin a slot forever); None: no limit.

    ``max_waiting`` (512)
        with ``request_timeout`` set, at most this many requests are parked
        (see below).

    With ``request_timeout`` set (see :class:`~sockserve.core.servers.BaseServer`),
    a request that finds ``max_children`` busy is *parked* instead: the loop
    goes on accepting (so every request's age is known), parked requests
    start as children end, in order, and a burst is served as long as each
    request starts within its own deadline; one that waited past it is
    closed unhandled and counted as a timeout. Beyond ``max_waiting``
    parked requests, the oldest is closed unserved and counted in
    ``stats.overflows``.

    ``active_children`` is the set of live child PIDs (None before the first
    fork). Children are reaped by ``collect_children()``, which runs after
    every loop iteration (``service_actions``) and on ``handle_timeout``.

    Statistics: each child leaves its outcome and handler times in shared
    memory, which the parent reads when it reaps the child, so
    ``server.stats`` in the parent counts the children's requests. A child
    that dies before it reports (a crash, a signal, ``os._exit``) is logged
    with its cause and counted as an error (a timeout if SIGALRM ended it);
    at most one such line a second, the next line (or ``server_close()``)
    saying how many more died meanwhile.
    A handler that calls ``shutdown()`` in the child stops the parent's loop.
    """

    timeout: float | None = 300
    active_children: set[int] | None = None
    max_children: int = 40
    max_waiting: int = MAX_WAITING
    block_on_close: bool = True
    child_timeout: float | None = None

    _children: Children | None = None
    _closing: bool = False

    def collect_children(self, *, blocking: bool = False) -> None:
        """Reap finished children; with *blocking*, wait for all of them.

        While ``max_children`` or more are alive, waits until one ends
        (unless a stop was asked for, or ``request_timeout`` is set: then
        requests are parked instead).
        """
        children = self._children
        if children is None:
            return
        alive = children.alive
        if alive:
            limit = self.max_children
            if len(alive) >= limit and not self._closing and self.request_timeout is None:
                loop = self._loop
                wakeup = None if loop is None else loop.wakeup_fd
                while len(alive) >= self.max_children and not self._stopping():
                    if children.wait(_WAIT_STEP, wakeup):
                        self._woken()
            # Reap the children that reported (those still exiting are
            # reaped on a later call). Inlined: it runs every iteration.
            board = children.board
            flags = board.map
            slot = flags.find(b"\x01", 0, board.slots)
            if slot < 0 and children.running and not children.watch_exits():
                # No report, and no pidfd to tell when a child ends: poll.
                children.scan_countdown = 0
            while slot >= 0:
                pid = board.owners[slot]
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = pid, REAPED_ELSEWHERE  # by other code: the board has its outcome
                except InterruptedError:
                    done = 0
                if done:
                    children.reaped(pid, status)
                slot = flags.find(b"\x01", slot + 1, board.slots)
            # Every now and then, poll every child anyway.
            countdown = children.scan_countdown = children.scan_countdown - 1
            if blocking or countdown <= 0 or children.parked or len(alive) >= limit:
                children.reap_all(blocking)
        if children.parked:
            children.start_parked()

    def handle_timeout(self) -> None:
        """Reap children while ``handle_request()`` is idle."""
        self.collect_children()

    def service_actions(self) -> None:
        """Reap children after each ``serve_forever`` iteration."""
        self.collect_children()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Fork; the child handles the request and exits, the parent closes
        its copy of the request and returns to the loop."""
        key = id(request)
        ledger = self._ledger
        ledger.enter(key, request)
        children = self._children or self._new_children()
        if len(children.alive) >= self.max_children:
            if self.request_timeout is None:
                # Only service_actions() enforces the bound in the standard
                # library; check here too so handle_request() loops obey it.
                self.collect_children()
            if len(children.alive) >= self.max_children:
                children.park(request, client_address)
                return
        children.fork(key, request, client_address, ledger.accepted.pop(key, None) if ledger.accepted else None)

    def _new_children(self) -> Children:
        if self.active_children is None:
            self.active_children = set()
        self._closing = self._closing  # an instance attribute from now on (read per iteration)
        children = self._children = Children(self, self.active_children, max(_MIN_SLOTS, 2 * self.max_children))
        return children

    def _drain_wait(self, seconds: float) -> None:
        """drain(): reap children that ended and start parked requests,
        waiting for a child's wake-up at most *seconds*."""
        children = self._children
        if children is None or not (children.alive or children.parked):
            time.sleep(min(max(seconds, 0.0), 0.01))
            return
        children.wait(min(seconds, _WAIT_STEP))
        children.start_parked()

    def _abort_inflight(self, items: list[Any]) -> None:
        """drain(): parked requests are closed; children get SIGTERM, then
        SIGKILL after abort_grace."""
        for item in items:
            abort_socket(item)  # a parked request (a child's is closed here)
        children = self._children
        if children is not None:
            children.start_parked()  # closes the aborted ones
            end_processes(children.cut_off(), lambda: children.alive, self._drain_wait, self.abort_grace)

    def server_close(self) -> None:
        """Close the server, then reap children (waiting if block_on_close).
        Requests still parked are closed unhandled and counted aborted."""
        super().server_close()
        children = self._children
        if children is not None:
            children.parked.drop_all()
        self._closing = True  # never wait for a free slot now
        try:
            self.collect_children(blocking=self.block_on_close)
        finally:
            self._closing = False
        self._children = None
        if children is not None:
            children.close()
