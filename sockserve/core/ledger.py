"""The ledger: the requests a server holds, and the one place where each
request's start and end are recorded.

Every concurrency model records a request through the same few calls of
its server's :class:`Ledger` (``server._ledger``), at the same points of the
request's life::

    enter(key, item)        accepted and kept: queued, parked, or handed to
                            a thread, a child process or a prefork worker
    start*()                its handler is about to run (``stats.started``)
    run(key, finish, ...)   its handler runs in this thread (timed), then
                            ``end``: the one place a handler runs in a thread
    end(key, outcome, ...)  it ended: outcome and handler time counted, its
                            span recorded on the timeline (if one is)
    drop(key, outcome)      it ended without running (cut off or past its
                            deadline while it waited, its thread or child
                            could not start, its worker lost it): started
                            and ended at once
    forget(key)             it leaves uncounted as a request (refused by
                            verify_request or shed by a full queue: counted
                            in ``rejected`` or ``overflows`` instead)

==============  =========================  ===================  ============================
model           enter                      start                end
==============  =========================  ===================  ============================
plain           ``run(here=True)`` (both, in the serving thread) ``end`` (by ``run``)
threading       serving thread             ``start_thread``     ``end`` (by ``run``)
thread pool     serving thread             ``start_queued``     ``end``; ``drop`` if cut off
forking         at the fork or the park    ``start_child``      ``end``: the child's report
                                                                or its exit status
prefork         at the send or the park    ``start`` (the       ``end``: the worker's report
                                           worker's report)     or its death
asyncio,        ``begin`` (when the connection opens)           ``end`` (when it closes)
from scratch
==============  =========================  ===================  ============================

(A parked request of a process model that never runs ends by ``drop``.)

**One identity.** A request is known by one key from accept to end:
``id(request)``, the request being what ``get_request`` returned. Its
owner (the thread running it, a pool's queue, the children's or workers'
table) holds the request object until it ends, so no other request can get
that id meanwhile. The *item* is what a drain cuts off: the request itself
(:func:`~sockserve.core.drain.abort_socket` shuts a socket down; a process
model also ends the process running it).

**Cut off.** A request is ended exactly once: by its owner's :meth:`end`,
or first by :meth:`abort_all` (a drain) or :meth:`expire` (its deadline);
then ``end`` counts it under the outcome it was cut off with. Whoever pops
the key from the live table wins, and a dict pop is atomic.

**Accept times.** ``accepted`` maps a key to the monotonic time
``get_request`` returned, kept while a timeline is recorded or
``request_timeout`` is set: the start of the request's span and of its
deadline (the :class:`~sockserve.core.deadlines.Watchdog` scans it). A model
that hands a request to another process takes its time out of ``accepted``
(that process keeps the deadline) and passes it back to :meth:`end`.

Cost: every request passes through ``enter`` (or ``run(here=True)``) and
``end``; they take no lock on the common path (a dict store, a dict pop)
and wake a waiter only when :meth:`wait_empty` has one. What a drain
reports is tallied only while a drain watches (:meth:`watch`).

Thread safety: every method may be called from any thread, except
``run(here=True)`` (the serving thread only: it counts without the lock).
"""

from __future__ import annotations

import os
import threading
import time

from .stats import Outcome, ServerStats, outcome_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Ledger", "Watch"]

_MISSING: Any = object()
_monotonic = time.monotonic
_getpid = os.getpid
_native_id = threading.get_native_id


class Ledger:
    """The requests one server has accepted and not yet finished, with the
    calls that record their start and end in ``stats`` (see the module
    docstring). ``live`` maps each key to its item; ``accepted`` keeps
    accept times; ``stats`` is the server's :class:`ServerStats`."""

    __slots__ = (
        "stats", "live", "accepted", "_cut", "_lock", "_cond", "_waiters", "_watching", "added",
        "aborted",
    )

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats
        self.live: dict[int, Any] = {}
        self.accepted: dict[int, float] = {}
        self._cut: dict[int, int] = {}  # key -> the outcome it was cut off with
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters = 0
        self._watching = 0
        self.added = 0  # requests entered while a drain watched
        self.aborted = 0  # requests abort_all cut off, ever

    # -- a request's life ------------------------------------------------------

    def enter(self, key: int, item: Any) -> None:
        """The request under *key* is in the server's care (not running yet)."""
        self.live[key] = item
        if self._watching:
            with self._lock:
                self.added += 1

    def run(
        self, key: int, finish: Any, request: Any, client_address: Any, here: bool = False
    ) -> None:
        """Run the handler of the request under *key*: call
        ``finish(request, client_address)`` (the server's
        ``finish_request``), timed, then :meth:`end` it with the outcome of
        what it raised (re-raised). *here*: the request is also entered and
        started now, in the serving thread (the plain server, which runs
        its handlers there one at a time: ``enter`` and what
        ``ServerStats.request_started`` does, inline, without the lock and
        the peak search; this runs for every request of the plain server)."""
        stats = self.stats
        if here:
            self.live[key] = request
            if self._watching:
                with self._lock:
                    self.added += 1
            if stats.enabled:
                stats.started += 1
                if not stats.peak_active:
                    stats.peak_active = 1
        began = _monotonic()
        try:
            finish(request, client_address)
        except BaseException as exc:
            self.end(key, outcome_of(exc), began)
            raise
        # end(key, 0, began), with its common case inline (a call less).
        ended = _monotonic()
        if self.live.pop(key, _MISSING) is _MISSING:
            self.end(key, 0, began, ended)  # cut off while it ran: end finds how
            return
        if self._waiters and not self.live:
            with self._cond:
                self._cond.notify_all()
        if self.accepted or stats.timeline is not None:
            self._count(key, 0, began, ended, None, 0)
        elif stats.enabled:
            stats.note_completed(ended - began)

    def begin(self, key: int, item: Any) -> None:
        """``enter`` and start at once, from any thread."""
        self.enter(key, item)
        self.start()

    def start(self) -> None:
        """A handler is about to run (any thread)."""
        self.stats.request_started()

    def start_queued(self, key: int) -> bool:
        """The request under *key* waited (a pool's queue) and its handler
        is about to run: counted as started, True; or it was cut off while
        it waited: False, and nothing counted (end it with :meth:`drop`)."""
        if key not in self.live:
            return False
        self.stats.request_started()
        return True

    def start_thread(self, key: int, item: Any) -> None:
        """A handler thread began, and its request with it (one lock for
        both); entered now if whoever started the thread did not (a pool of
        the caller's own)."""
        if key not in self.live:
            self.enter(key, item)
        self.stats.thread_started()

    def start_child(self, alive: int, running: int) -> None:
        """A child was forked for a request: *alive* children now, *running*
        of them with a request not yet ended (serving thread only)."""
        self.stats.child_started(alive, running)

    def end(
        self, key: int, outcome: int, began: float, ended: float | None = None,
        accepted: float | None = None, pid: int = 0,
    ) -> int:
        """The request under *key* ended with *outcome* (an ``Outcome``
        value), its handler having run from *began* to *ended* (None: now).
        Counts it, under the outcome it was cut off with if it was, and
        records its span: from *accepted* (or the time in ``accepted``) in
        process *pid* (0: this process and thread). Returns the cut-off
        outcome, 0 if it ended on its own. Every model ends a request here."""
        if ended is None:
            ended = _monotonic()
        cut = 0
        if self.live.pop(key, _MISSING) is not _MISSING:
            if self._waiters and not self.live:
                with self._cond:
                    self._cond.notify_all()
        elif self._cut:
            with self._lock:
                cut = self._cut.pop(key, 0)
        self._count(key, cut or outcome, began, ended, accepted, pid)
        return cut

    def _count(
        self, key: int, outcome: int, began: float, ended: float, accepted: float | None, pid: int
    ) -> None:
        """``end``'s second half: the request under *key*, out of ``live``,
        counted with *outcome* and its span recorded."""
        if self.accepted:
            stamped = self.accepted.pop(key, None)
            if accepted is None:
                accepted = stamped
        stats = self.stats
        if stats.enabled:
            if outcome == 0:
                stats.note_completed(ended - began)  # request_finished's common case, one C call
            else:
                stats.request_finished(outcome, ended - began)
            timeline = stats.timeline
            if timeline is not None:
                timeline.record(
                    began if accepted is None else accepted, began, ended,
                    pid or _getpid(), pid or _native_id(), outcome,
                )

    def drop(self, key: int, outcome: int, accepted: float | None = None) -> int:
        """The request under *key* ends without running (closed while it
        waited): counted as started and ended now with *outcome* (or the
        outcome it was cut off with, which is returned)."""
        self.stats.request_started()
        now = _monotonic()
        return self.end(key, outcome, now, now, accepted)

    def forget(self, key: int) -> None:
        """The request under *key* leaves without being counted."""
        if self.live.pop(key, _MISSING) is _MISSING:
            if self._cut:
                with self._lock:
                    self._cut.pop(key, None)
        elif self._waiters and not self.live:
            with self._cond:
                self._cond.notify_all()
        if self.accepted:
            self.accepted.pop(key, None)

    # -- cutting requests off (drains, deadlines) ----------------------------------

    def __contains__(self, key: int) -> bool:
        return key in self.live

    def __len__(self) -> int:
        return len(self.live)

    def items(self) -> list[Any]:
        """The items of the live requests (a copy)."""
        return list(self.live.values())

    def expire(self, key: int, outcome: int) -> Any:
        """Cut one request off (its deadline passed): it has ended, with
        *outcome*. Returns its item, or None if it had ended already."""
        item = self.live.pop(key, _MISSING)
        if item is _MISSING:
            return None
        with self._cond:
            self._cut[key] = outcome
            if not self.live:
                self._cond.notify_all()
        return item

    def abort_all(self, outcome: int = Outcome.ABORTED) -> list[Any]:
        """Cut off every live request (a drain) and return their items, so
        the caller can end them."""
        items = []
        with self._cond:
            for key in list(self.live):
                item = self.live.pop(key, _MISSING)
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
                return self._cond.wait_for(lambda: not self.live, max(timeout, 0.0))
            finally:
                self._waiters -= 1

    def watch(self) -> Watch:
        """Start tallying for a drain report (a context manager)."""
        return Watch(self)


class Watch:
    """A drain's view of the ledger: the requests it must account for (live
    when it began, plus any entered meanwhile) and how many were aborted."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.began = time.monotonic()
        with ledger._lock:
            ledger._watching += 1
            self._live_at_start = len(ledger.live)
            self._added_at_start = ledger.added
            self._aborted_at_start = ledger.aborted

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._ledger._lock:
            self._ledger._watching -= 1

    def counts(self) -> tuple[int, int]:
        """(completed, aborted) since the watch began."""
        ledger = self._ledger
        with ledger._lock:
            in_flight = self._live_at_start + ledger.added - self._added_at_start
            aborted = ledger.aborted - self._aborted_at_start
            still_live = len(ledger.live)
        return max(in_flight - aborted - still_live, 0), aborted
