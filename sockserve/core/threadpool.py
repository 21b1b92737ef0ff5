"""A fixed pool of worker threads: ``ThreadPoolMixIn``.

``ThreadingMixIn`` starts a thread for every request, with no bound. This
mixin starts ``pool_size`` workers once and feeds them from a bounded queue::

    class ThreadPoolTCPServer(ThreadPoolMixIn, TCPServer): pass

It overrides ``process_request``: the serving loop still accepts (and runs
``verify_request``), then queues the request for a worker. What happens when
the queue is full is the ``overflow`` policy (:data:`OVERFLOW_POLICIES`).
Supports ``drain(timeout)`` (see :mod:`sockserve.core.drain`).
"""

from __future__ import annotations

import collections
import threading

from . import logs
from .processes import MAX_WAITING
from .stats import Outcome
from .threads import serve_in_thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from .servers import BaseServer as _Server
else:
    _Server = object

__all__ = ["ThreadPoolMixIn", "OVERFLOW_POLICIES"]

#: What a full queue does with a new request: wait for room (``"block"``),
#: close the new one (``"reject"``) or close the oldest one waiting and
#: queue the new one (``"drop-oldest"``).
OVERFLOW_POLICIES: tuple[str, ...] = ("block", "reject", "drop-oldest")


class WorkQueue:
    """A bounded FIFO of requests for the workers, that never traps the
    serving loop: a producer blocked on a full queue is released by
    :meth:`interrupt` (a stop was asked for) and then queues anyway, one past
    the bound, so the request it holds is not lost; :meth:`close` never
    blocks. Items are ``(request, client_address)``; ``get`` returns None
    once the queue is closed and, unless the close said to drop them, empty.

    Thread safety: any number of producers and consumers.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._interrupted = False
        self._closed = False

    def put(self, item: Any, policy: str, size: int = 0) -> Any:
        """Queue *item*, with room for *size* items (0: ``size``). Returns
        None, or the item that did not fit (the new one under "reject", the
        oldest waiting under "drop-oldest")."""
        with self._cond:
            items = self._items
            if len(items) >= (size or self.size) and not self._interrupted:
                if policy == "reject":
                    return item
                if policy == "drop-oldest":
                    dropped = items.popleft()
                    items.append(item)
                    self._cond.notify()
                    return dropped
                while len(items) >= self.size and not self._interrupted and not self._closed:
                    self._cond.wait()
            items.append(item)
            self._cond.notify()
            return None

    def get(self) -> Any:
        """The next item; None when closed (and drained, or told to drop)."""
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                self._cond.wait()
            item = self._items.popleft()
            self._cond.notify_all()  # room for a blocked producer
            return item

    def interrupt(self) -> None:
        """Release a producer waiting for room (a stop was asked for)."""
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def resume(self) -> None:
        """Apply the bound again (the loop serves anew)."""
        with self._cond:
            self._interrupted = False

    def close(self) -> None:
        """Stop taking work: the workers end once the queue is empty. Never
        blocks."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class ThreadPoolMixIn(_Server):
    """Handle requests in a fixed pool of worker threads.

    Overrides ``process_request`` (queue the request), ``server_close``
    (stop the workers), the loop's ``_loop_opened`` and ``_request_stop``
    (a full queue never traps the loop).

    Class attributes that tune it:

    ``pool_size`` (8)
        worker threads, started on the first request and kept until
        ``server_close()``; never more, whatever the load, and never fewer:
        no handler outcome (an exception, ``SystemExit``,
        ``KeyboardInterrupt``) ends a worker.
    ``queue_size`` (32, at least 1)
        accepted requests that may wait for a free worker.
    ``overflow`` ("block")
        what to do with a request when the queue is full: ``"block"`` stops
        the serving loop (and so accepting) until a worker frees a slot;
        ``"reject"`` closes the new connection (a datagram is dropped);
        ``"drop-oldest"`` closes the request that waited longest and queues
        the new one. Both count in ``stats.overflows``. With
        ``request_timeout`` set, ``"block"`` keeps accepting instead and
        lets the queue grow to ``max_waiting``, then drops the oldest: a
        request left waiting in the kernel's backlog would start its
        deadline only once accepted, so floods of slow clients would starve
        everyone; accepting at once keeps every age known. A burst is
        served as long as each request starts within its own deadline; one
        that waits past it is closed unhandled and counted as a timeout.
    ``max_waiting`` (512)
        with ``request_timeout`` set and ``overflow = "block"``, at most
        this many requests wait in the queue (at least ``queue_size``).
    ``block_on_close`` (True)
        ``server_close()`` lets the workers finish every queued request and
        waits for them; False: it asks them to stop and returns at once.

    ``shutdown()`` returns at once even while the loop waits for room in a
    full queue (the request it holds is queued one past the bound and will
    be served, or cut off by ``drain()``). Workers are daemon threads, so a
    server that is never closed cannot keep the interpreter alive.
    ``stats.threads`` counts the live workers.

    Thread safety: ``process_request`` runs in the serving thread only;
    ``server_close`` and ``drain`` may run in any other.
    """

    pool_size: int = 8
    queue_size: int = 32
    overflow: str = "block"
    max_waiting: int = MAX_WAITING
    block_on_close: bool = True

    _work: WorkQueue | None = None
    _workers: list[threading.Thread] | None = None

    def _start_pool(self) -> WorkQueue:
        if self.pool_size < 1 or self.queue_size < 1:
            raise ValueError(
                f"pool_size and queue_size must be >= 1, got {self.pool_size}, {self.queue_size}"
            )
        if self.overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {self.overflow!r}")
        work = WorkQueue(self.queue_size)
        workers: list[threading.Thread] = []
        name = f"{type(self).__name__} worker"
        for number in range(self.pool_size):
            thread = threading.Thread(
                target=self._pool_worker, args=(work,), name=f"{name} {number}", daemon=True
            )
            self.stats.set_threads(+1)
            try:
                thread.start()
            except BaseException as exc:
                # (RuntimeError "can't start new thread": RLIMIT_NPROC, memory.)
                self.stats.set_threads(-1)
                if not workers:
                    raise
                logs.warning(
                    "%s could start only %d of its %d workers (%s); it serves with those",
                    type(self).__name__, len(workers), self.pool_size, exc,
                )
                break
            workers.append(thread)
        self._work, self._workers = work, workers
        return work

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the request for a worker (starting the pool the first time);
        apply ``overflow`` when the queue is full."""
        key = id(request)
        ledger = self._ledger
        ledger.enter(key, request)
        work = self._work
        try:
            if work is None:
                work = self._start_pool()
            policy, size = self.overflow, 0
            if policy == "block" and self.request_timeout is not None:
                policy, size = "drop-oldest", max(self.max_waiting, work.size)
            left_out = work.put((request, client_address), policy, size)
        except BaseException:
            # No worker could start (the next request tries again), or a
            # bad setting: the request ends here, an error.
            ledger.drop(key, Outcome.ERROR)
            raise
        if left_out is not None:
            # Closed unhandled: counted as an overflow, not as a request.
            self._ledger.forget(id(left_out[0]))
            self.stats.note_overflow()
            self.shutdown_request(left_out[0])

    def _request_stop(self) -> bool:
        work = self._work
        if work is not None:
            work.interrupt()
        return super()._request_stop()

    def _loop_opened(self, loop: Any) -> None:
        super()._loop_opened(loop)
        if self._work is not None:
            self._work.resume()

    def _pool_worker(self, work: WorkQueue) -> None:
        """Body of a worker thread: serve queued requests until the queue
        closes. Nothing a handler does ends it."""
        ledger = self._ledger
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                request, client_address = item
                key = id(request)
                try:
                    if ledger.start_queued(key):
                        serve_in_thread(self, request, client_address, key)
                    else:
                        # Cut off while it waited (a drain, or its deadline):
                        # counted under that outcome, never run.
                        ledger.drop(key, Outcome.ABORTED)
                        self.shutdown_request(request)
                except BaseException:
                    pass  # said by serve_in_thread; the worker must live on
        finally:
            self.stats.set_threads(-1)

    def server_close(self) -> None:
        """Close the server, then stop the workers (see block_on_close).
        Requests already queued are still served before the workers stop."""
        super().server_close()
        work, workers = self._work, self._workers or []
        self._work = self._workers = None
        if work is None:
            return
        work.close()
        if self.block_on_close:
            for thread in workers:
                thread.join()
