"""A fixed pool of worker processes: ``PreForkMixIn``.

``ForkingMixIn`` forks a process for every request. This mixin forks
``workers`` processes once, when ``serve_forever`` starts, and hands each
accepted connection to whichever worker is free::

    class PreForkTCPServer(PreForkMixIn, TCPServer): pass

The parent accepts and verifies each connection, then passes its descriptor
to a worker over a channel that is the pool's queue (see
:mod:`sockserve.core.workers`). When the channel is full the parent stops
accepting and the kernel's listen backlog holds the rest, as for any
socketserver; with ``request_timeout`` set it keeps accepting instead and
parks the surplus until each one's own deadline (up to ``max_waiting``;
beyond that the oldest is closed unserved and counted in
``stats.overflows``), so that every request's deadline counts from its real
arrival. Because the parent
accepts, ``get_request`` and ``verify_request`` run in the parent and the
handler in a worker, as with ``ForkingMixIn``.

Stream servers only (TCP, Unix stream); POSIX only.
"""

from __future__ import annotations

import os
import socket
import time

from .drain import abort_socket
from .loop import Loop
from .processes import MAX_WAITING, end_processes
from .workers import Pool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from .servers import BaseServer as _Server
else:
    _Server = object

__all__ = ["PreForkMixIn"]

#: The parent looks at its workers at least this often (a worker that dies
#: wakes nobody).
_SUPERVISE_MS = 200


class PreForkMixIn(_Server):
    """Serve from ``workers`` processes forked once, at the start of
    ``serve_forever`` (POSIX, stream servers only).

    Overrides ``process_request`` (pass the connection to a worker),
    ``server_close``, the loop's ``_loop_opened`` and ``_loop_closing``
    (fork the workers and supervise them after each wait of the loop, tell
    them to stop), and for ``drain()``, ``_drain_wait`` and
    ``_abort_inflight``.

    The parent supervises: it replaces a worker that dies (a request it was
    serving is logged with the cause and counted as an error, or a timeout
    if SIGALRM ended it) and feeds the workers' reports into
    ``server.stats``. ``handle_request()`` is not pooled: it serves one
    request in the calling process as TCPServer does.

    Class attributes that tune it:

    ``workers`` (4)
        worker processes kept alive while serving; no handler outcome
        (``SystemExit``, ``KeyboardInterrupt``, a crash) lowers the count.
    ``block_on_close`` (True)
        ``server_close()`` waits for the workers to finish their current
        and queued requests; False: it returns at once.
    ``abort_grace`` (1.0)
        seconds between SIGTERM and SIGKILL when ``drain()`` aborts workers.
    ``max_waiting`` (512)
        with ``request_timeout`` set, at most this many accepted requests
        wait for room on the channel (parked).

    ``shutdown()`` returns at once: the workers are told to stop, serve what
    they hold and what is queued, and exit; ``drain(timeout)`` bounds that,
    ``server_close()`` waits for it (see ``block_on_close``). A handler
    that calls ``shutdown()`` in a worker stops the parent.
    ``worker_pids`` is the set of live worker PIDs; ``stats.children``
    counts them. Workers ignore SIGINT (Ctrl-C reaches the parent, which
    stops them). A worker keeps none of the sockets it inherits but the
    channel (and the parent's wake-up socket, to pass on ``shutdown()``).
    """

    workers: int = 4
    max_waiting: int = MAX_WAITING
    block_on_close: bool = True
    _pool: Pool | None = None
    _retired: tuple[Pool, ...] = ()  # pools of earlier loops still finishing

    @property
    def worker_pids(self) -> frozenset[int]:
        """PIDs of the live workers of the current (or last) loop."""
        return frozenset(self._pool.pids) if self._pool is not None else frozenset()

    def _count_children(self) -> None:
        alive = sum(len(pool.pids) for pool in (*self._retired, self._pool) if pool is not None)
        self.stats.set_children(alive)

    # -- the parent ----------------------------------------------------------

    def _loop_opened(self, loop: Loop) -> None:
        """Fork the workers, watch their reports, supervise them after each
        wait (at least every 0.2 s: a worker that dies wakes nobody)."""
        super()._loop_opened(loop)
        if getattr(self, "socket_type", None) != socket.SOCK_STREAM:
            raise TypeError("PreForkMixIn serves stream sockets only")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        self._finish_workers(wait=False)  # what a previous loop left
        if self._pool is not None:  # still finishing: let it, beside the new one
            self._retired = (*self._retired, self._pool)
        pool = self._pool = Pool(self, loop.waker_fd)
        for _ in range(self.workers):
            pool.spawn()
        loop.watch(pool.reports[0], pool.read_events)
        loop.tick = self._supervise
        loop.wait_ms = _SUPERVISE_MS if loop.wait_ms is None else min(loop.wait_ms, _SUPERVISE_MS)

    def _supervise(self) -> None:
        """After each wait of the loop: replace dead workers, move parked
        connections to the channel, and while it is full (and nothing has a
        deadline) leave new connections in the kernel's backlog."""
        pool = self._pool
        if pool is None:
            return
        pool.reap(respawn=True)
        if pool.parked:
            pool.send_parked()
        if self._retired:
            self._finish_retired(wait=False)
        loop = self._loop
        want = not pool.parked or self.request_timeout is not None
        if loop is not None and want != loop.accepting:
            loop.accept(want)

    def _loop_closing(self) -> None:
        """Tell the workers to stop (they serve what is queued first)."""
        pool = self._pool
        if pool is not None:
            pool.stopping = True
            os.write(pool.stop[1], b"x")  # never read: stays readable for every worker
        super()._loop_closing()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Pass the connection to a worker (park it if the channel is full),
        then close the parent's copy."""
        pool = self._pool
        if pool is None or pool.stopping:
            # handle_request() without a pool: serve it here, as TCPServer does.
            return super().process_request(request, client_address)
        key = id(request)
        ledger = self._ledger
        ledger.enter(key, request)
        accepted = ledger.accepted.pop(key, None) if ledger.accepted else None
        if accepted is None:
            accepted = time.monotonic()
        if pool.parked or not pool.send(key, request, client_address, accepted):
            pool.parked.park(request, client_address, accepted)
            return
        self.close_request(request)

    def _finish_workers(self, wait: bool) -> None:
        """After the loop: read reports and reap the workers, waiting for
        them if *wait*; release the pool once they are all gone."""
        self._finish_retired(wait)
        pool = self._pool
        if pool is not None and pool.finish(wait):
            self._pool = None

    def _finish_retired(self, wait: bool) -> None:
        self._retired = tuple(pool for pool in self._retired if not pool.finish(wait))

    # -- drain and close ---------------------------------------------------

    def _drain_wait(self, seconds: float) -> None:
        if self._pool is None:
            time.sleep(min(max(seconds, 0.0), 0.01))
        else:
            self._pool.wait(seconds)

    def _abort_inflight(self, items: list[Any]) -> None:
        """drain(): end every worker (a queued request must not start after
        it was aborted): SIGTERM, then SIGKILL after abort_grace."""
        for item in items:
            abort_socket(item)  # a parked connection (a sent one is closed here)
        pool = self._pool
        if pool is None:
            return
        pool.send_parked()  # closes the parked ones just cut off
        end_processes(tuple(pool.pids), lambda: pool.pids, self._drain_wait, self.abort_grace)
        self._finish_workers(wait=False)

    def server_close(self) -> None:
        """Stop serving if a loop still runs, close the listening socket,
        then let the workers finish (waiting for them if block_on_close)."""
        if self._loop_running():
            self.shutdown()
        super().server_close()
        self._finish_workers(wait=self.block_on_close)
