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
import time
from typing import Any

from .processes import report_escape
from .stats import outcome_of

__all__ = ["ThreadPoolMixIn", "OVERFLOW_POLICIES"]

#: What a full queue does with a new request: wait for room (``"block"``),
#: close the new one (``"reject"``) or close the oldest one waiting and
#: queue the new one (``"drop-oldest"``).
OVERFLOW_POLICIES: tuple[str, ...] = ("block", "reject", "drop-oldest")

_monotonic = time.monotonic


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

    def put(self, item: Any, policy: str) -> Any:
        """Queue *item*. Returns None, or the item that did not fit (the new
        one under "reject", the oldest waiting under "drop-oldest")."""
        with self._cond:
            items = self._items
            if len(items) >= self.size and not self._interrupted:
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


class ThreadPoolMixIn:
    """Handle requests in a fixed pool of worker threads.

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
        ``request_timeout`` set, ``"block"`` acts as ``"drop-oldest"``: a
        request left waiting in the kernel's backlog would start its
        deadline only once accepted, so floods of slow clients would starve
        everyone; accepting at once and dropping the oldest keeps every age
        known (a request that waits past its deadline is closed unhandled).
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
        workers = []
        name = f"{type(self).__name__} worker"
        for number in range(self.pool_size):
            thread = threading.Thread(
                target=self._pool_worker, args=(work,), name=f"{name} {number}", daemon=True
            )
            getattr(self, "stats").set_threads(+1)
            thread.start()
            workers.append(thread)
        self._work, self._workers = work, workers
        return work

    def _overflow_policy(self) -> str:
        if self.overflow == "block" and getattr(self, "request_timeout", None) is not None:
            return "drop-oldest"
        return self.overflow

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the request for a worker (starting the pool the first time);
        apply ``overflow`` when the queue is full."""
        server: Any = self
        work = self._work if self._work is not None else self._start_pool()
        server._inflight.add(id(request), request)
        try:
            left_out = work.put((request, client_address), self._overflow_policy())
        except BaseException:
            server._inflight.discard(id(request))
            raise
        if left_out is not None:
            self._overflowed(*left_out)

    def _overflowed(self, request: Any, client_address: Any) -> None:
        """A request the full queue left out: closed unhandled, counted."""
        server: Any = self
        key = id(request)
        server._accepted_at.pop(key, None)
        server._inflight.discard(key)
        server.stats.note_overflow()
        server.shutdown_request(request)

    def _request_stop(self) -> bool:
        work = self._work
        if work is not None:
            work.interrupt()
        return bool(super()._request_stop())  # type: ignore[misc]

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        if self._work is not None:
            self._work.resume()
        super().serve_forever(poll_interval)  # type: ignore[misc]

    def _pool_worker(self, work: WorkQueue) -> None:
        """Body of a worker thread: serve queued requests until the queue
        closes. Nothing a handler does ends it."""
        server: Any = self
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                request, client_address = item
                try:
                    self._serve_queued(server, request, client_address)
                except BaseException:
                    pass  # _serve_queued reports; the worker must live on
        finally:
            server.stats.set_threads(-1)

    @staticmethod
    def _serve_queued(server: Any, request: Any, client_address: Any) -> None:
        key = id(request)
        stats = server.stats
        try:
            if key not in server._inflight:
                # Cut off while it waited (a drain, or its deadline): count
                # it under that outcome, never run it.
                if stats.enabled:
                    stats.request_started()
                server._request_ended(key, 4, _monotonic())
                return
            if stats.enabled:
                stats.request_started()
            began = _monotonic()
            try:
                server.finish_request(request, client_address)
            except Exception as exc:
                server._request_ended(key, outcome_of(exc), began)
                server.handle_error(request, client_address)
            except BaseException as exc:
                server._request_ended(key, 1, began)
                report_escape(server, client_address, exc)
            else:
                server._request_ended(key, 0, began)
        finally:
            server.shutdown_request(request)

    def _drain_wait(self, seconds: float) -> None:
        getattr(self, "_inflight").wait_empty(seconds)

    def server_close(self) -> None:
        """Close the server, then stop the workers (see block_on_close).
        Requests already queued are still served before the workers stop."""
        super().server_close()  # type: ignore[misc]
        work, workers = self._work, self._workers or []
        self._work = self._workers = None
        if work is None:
            return
        work.close()
        if self.block_on_close:
            for thread in workers:
                thread.join()
