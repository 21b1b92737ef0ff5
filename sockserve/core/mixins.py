"""Concurrency mixins: each overrides one hook, ``process_request``.

Put the mixin first so its ``process_request`` wins::

    class ThreadingTCPServer(ThreadingMixIn, TCPServer): pass

``ThreadingMixIn`` runs each request in a new thread; ``ForkingMixIn`` in a
new child process. Everything else (accepting, verifying, the handler's
``setup/handle/finish``) is the server's own. The bounded pools
(``ThreadPoolMixIn``, ``PreForkMixIn``) live in :mod:`sockserve.core.threadpool`
and :mod:`sockserve.core.prefork`.
"""

from __future__ import annotations

import collections
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

from . import logs
from .deadlines import arm_alarm
from .drain import abort_socket
from .errors import format_address
from .processes import (
    _CHILD_STDERR,
    _CHILD_STDOUT,
    OPENED,
    describe_status,
    flush_std_streams,
    outcome_of_status,
    prime_lookups,
    report_escape,
)
from .reportboard import ReportBoard
from .stats import outcome_of

__all__ = ["ThreadingMixIn", "ForkingMixIn"]

_monotonic = time.monotonic
_ABORTED = 4


class HandlerThreads(list):  # type: ignore[type-arg]
    """The non-daemon handler threads a server must join on close.

    Finished threads are dropped whenever a new one is added, so a
    long-running server does not keep every thread it ever started.
    """

    def append(self, thread: threading.Thread) -> None:
        self.reap()
        if not thread.daemon:
            super().append(thread)

    def pop_all(self) -> list[threading.Thread]:
        """Remove and return every thread, atomically enough for one writer."""
        taken, self[:] = self[:], []
        return taken

    def join(self) -> None:
        """Wait for every recorded thread to end."""
        for thread in self.pop_all():
            thread.join()

    def reap(self) -> None:
        """Forget threads that have ended."""
        self[:] = [thread for thread in self if thread.is_alive()]


class NoThreads:
    """Null object used when the server need not wait for its threads."""

    def append(self, thread: threading.Thread) -> None:
        pass

    def join(self) -> None:
        pass

    def __len__(self) -> int:
        return 0


class ThreadingMixIn:
    """Handle each request in a new thread.

    Class attributes that tune it:

    ``daemon_threads`` (False)
        make handler threads daemons: the interpreter may exit while they
        run, and ``server_close()`` does not wait for them.
    ``block_on_close`` (True)
        ``server_close()`` waits for all non-daemon handler threads.

    Callers may use ``process_request_thread`` as a thread target (from a
    pool of their own, say); it runs ``finish_request`` and always ends with
    ``shutdown_request``, and it keeps ``stats`` and ``drain()`` right by
    itself: the thread counts itself in ``stats.threads`` and enters the
    request in the in-flight ledger if ``process_request`` did not.

    As in the standard library, ``handle_error`` gets the ``Exception`` s a
    handler raises; ``SystemExit`` and ``KeyboardInterrupt`` end the
    handler's thread (only that one: the server goes on), are logged in one
    line and counted as errors.
    """

    daemon_threads: bool = False
    block_on_close: bool = True
    _threads: HandlerThreads | NoThreads = NoThreads()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Body of a handler thread: finish, report errors, shut down."""
        server: Any = self
        key = id(request)
        ledger = server._inflight
        if key not in ledger:
            ledger.add(key, request)  # called from someone else's thread pool
        stats = server.stats
        stats.thread_started()
        try:
            began = _monotonic()
            try:
                server.finish_request(request, client_address)
            except Exception as exc:
                server._request_ended(key, outcome_of(exc), began)
                server.handle_error(request, client_address)
            except BaseException as exc:
                server._request_ended(key, 1, began)
                report_escape(server, client_address, exc)
                raise  # as in the standard library: it ends this thread only
            else:
                server._request_ended(key, 0, began)
        finally:
            try:
                server.shutdown_request(request)
            finally:
                stats.thread_ended()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread that runs ``process_request_thread``."""
        if self.block_on_close:
            vars(self).setdefault("_threads", HandlerThreads())
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=_thread_name(type(self)),
        )
        thread.daemon = self.daemon_threads
        self._threads.append(thread)
        ledger = getattr(self, "_inflight")
        ledger.add(id(request), request)
        try:
            thread.start()
        except BaseException:
            ledger.discard(id(request))
            raise

    def server_close(self) -> None:
        """Close the server, then wait for handler threads (see block_on_close)."""
        super().server_close()  # type: ignore[misc]
        self._threads.join()


_thread_names: dict[type, str] = {}


def _thread_name(cls: type) -> str:
    """"ThreadingTCPServer handler": made once per class (a name given costs
    less than the one threading would make up)."""
    name = _thread_names.get(cls)
    if name is None:
        name = _thread_names[cls] = f"{cls.__name__} handler"
    return name


#: Loop iterations between polls of every child (for those that die
#: without reporting).
_SCAN_EVERY = 16
#: The report board's size: this many slots at least, or twice max_children.
_MIN_SLOTS = 64
#: While waiting for a child to end, look again after this long even if no
#: wake-up came (a child that died without reporting sends none).
_WAIT_STEP = 0.05
#: What servers and request handlers set on themselves (primed for
#: children: see _new_board).
_INSTANCE_ATTRIBUTES = (
    "server_address", "RequestHandlerClass", "socket",
    "request", "client_address", "server", "connection", "rfile", "wfile", "packet",
)


class ForkingMixIn:
    """Handle each request in a new child process (POSIX only).

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

    With ``request_timeout`` set (see :class:`~sockserve.core.servers.BaseServer`),
    a request that finds ``max_children`` busy is *parked* instead: the loop
    goes on accepting (so every request's age is known), parked requests
    start as children end, and one that waited past its deadline is closed
    unhandled and counted as a timeout. At most ``max_children`` requests
    are parked; beyond that the oldest parked one is dropped.

    ``active_children`` is the set of live child PIDs (None before the first
    fork). Children are reaped by ``collect_children()``, which runs after
    every loop iteration (``service_actions``) and on ``handle_timeout``;
    only this server's own children are ever waited for.

    Statistics: each child leaves its outcome and handler times in shared
    memory (:mod:`sockserve.core.reportboard`), which the parent reads when it
    reaps the child, so ``server.stats`` in the parent counts the children's
    requests. A child that dies before it reports (a crash, a signal,
    ``os._exit``) is logged with its cause and counted as an error (a
    timeout if SIGALRM ended it). A handler that calls ``shutdown()`` in the
    child stops the parent's loop.
    """

    timeout: float | None = 300
    active_children: set[int] | None = None
    max_children: int = 40
    block_on_close: bool = True
    child_timeout: float | None = None

    # BaseServer's, named here for the type checker only (no value: the
    # server's own attributes are found as usual).
    stats: Any
    _inflight: Any

    _board: ReportBoard | None = None
    # pid -> (accepted or None, client address, report slot) of the request
    # it runs (the in-flight ledger knows it by the pid too)
    _pending: dict[int, tuple[float | None, Any, int]] | None = None
    _parked: collections.deque[tuple[Any, Any, float]] | None = None
    _scan_countdown: int = 0
    _closing: bool = False

    # -- reaping ---------------------------------------------------------------

    def collect_children(self, *, blocking: bool = False) -> None:
        """Reap finished children; with *blocking*, wait for all of them.

        While ``max_children`` or more are alive, waits until one ends
        (unless a stop was asked for, or ``request_timeout`` is set: then
        requests are parked instead).
        """
        children = self.active_children
        parked = self._parked
        if children:
            limit = self.max_children
            if len(children) >= limit and not self._closing:
                server: Any = self
                if server.request_timeout is None:
                    while len(children) >= self.max_children:
                        if server._BaseServer__shutdown_request or self._wait_for_a_child(_WAIT_STEP):
                            break
            board = self._board
            if board is not None:
                # Reap the children that reported (the ones still exiting are
                # reaped on a later call). Inlined: it runs every iteration.
                flags = board.map
                slot = flags.find(b"\x01", 0, board.slots)
                while slot >= 0:
                    pid = board.owners[slot]
                    try:
                        done, status = os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        done, status = pid, 0  # already reaped elsewhere
                    except InterruptedError:
                        done = 0
                    if done:
                        self._reaped(pid, status)
                    slot = flags.find(b"\x01", slot + 1, board.slots)
            countdown = self._scan_countdown = self._scan_countdown - 1
            if blocking or countdown <= 0 or parked or len(children) >= limit:
                self._reap_all(blocking)
        if parked:
            self._start_parked()

    def _reap_all(self, blocking: bool = False) -> None:
        """Poll every live child (wait for each with *blocking*) and reap
        the ones that ended."""
        self._scan_countdown = _SCAN_EVERY
        children = self.active_children
        if not children:
            return
        flags = 0 if blocking else os.WNOHANG
        for pid in list(children):
            try:
                done, status = os.waitpid(pid, flags)
            except ChildProcessError:
                done, status = pid, 0  # already reaped elsewhere
            except InterruptedError:
                continue
            if done:
                self._reaped(pid, status)

    def _reaped(self, pid: int, status: int) -> None:
        """Child *pid* ended with *status*: count its request, from its
        report (its times on the board, its outcome as exit status), or
        from how it ended if it never reported."""
        children = self.active_children
        assert children is not None
        children.discard(pid)
        stats = self.stats
        stats.children = len(children)  # fewer: no peak to update
        entry = self._pending.pop(pid, None) if self._pending else None
        if entry is None:
            return
        slot = entry[2]
        board = self._board
        if slot < 0 or board is None or not board.map[slot]:
            self._died(pid, status, entry)
            return
        times = board.times
        began = times[slot + slot]
        ended = times[slot + slot + 1]
        board.map[slot] = 0  # board.release(), inlined (this runs per request)
        board.free.append(slot)
        cut = self._inflight.discard(pid)
        if stats.enabled:
            # It reported, so it exited with its outcome as status (unless a
            # signal ended it just after: count how it ended then).
            outcome = cut or (status >> 8 if not status & 0x7F else outcome_of_status(status))
            stats.request_finished(outcome, ended - began)
            if stats.timeline is not None:
                accepted = entry[0]
                stats.timeline.record(began if accepted is None else accepted, began, ended, pid, pid, outcome)

    def _died(self, pid: int, status: int, entry: tuple[float | None, Any, int]) -> None:
        """Child *pid* ended without a report: say why, count its request
        under the outcome its end implies."""
        accepted, client_address, slot = entry
        server: Any = self
        board = self._board
        if slot >= 0 and board is not None:
            board.release(slot)
        cut = server._inflight.discard(pid)
        if slot < 0 and os.WIFEXITED(status):
            # No slot (max_children grew past the board): it reports nothing,
            # and its exit status is its outcome.
            outcome = os.WEXITSTATUS(status)
        else:
            outcome = outcome_of_status(status)
            if not cut:  # a drain's abort is not news
                logs.warning(
                    "%s: the child %d handling the request from %s %s before it finished%s",
                    type(self).__name__, pid, format_address(client_address), describe_status(status),
                    " (its time was up: request_timeout or child_timeout)" if outcome == 3 else "",
                )
        ended = _monotonic()
        began = ended if accepted is None else accepted
        stats = server.stats
        if stats.enabled:
            stats.request_finished(cut or outcome, ended - began)
            if stats.timeline is not None:
                stats.timeline.record(began, began, ended, pid, pid, cut or outcome)

    def _wait_for_a_child(self, seconds: float) -> bool:
        """Wait up to *seconds* for a child to end (a child that reports
        while the board's ``want`` byte is set wakes this) or for a stop
        request; reap. True when a stop was asked for."""
        server: Any = self
        board = self._board
        watch = []
        if board is not None:
            board.waiting(True)
            watch.append(board.wake[0])
        pair = server._wakeup
        if pair is not None:
            watch.append(pair[0])
        if board is not None and board.map.find(b"\x01", 0, board.slots) >= 0:
            # A child reported (perhaps before ``want`` was set): it is
            # exiting, and sends no further wake-up.
            seconds = min(seconds, 0.001)
        try:
            readable, _, _ = select.select(watch, [], [], seconds)
        except InterruptedError:
            readable = []
        if board is not None:
            board.waiting(bool(self._parked))
            board.drain_wake()
        if pair is not None and pair[0] in readable:
            server._take_wakeup(pair[0])
        self._reap_all(False)
        return bool(server._BaseServer__shutdown_request)

    def _on_wake(self) -> None:
        """The wake-up pipe turned readable (watched while requests are
        parked, waiting for a child to end)."""
        board = self._board
        if board is not None:
            board.drain_wake()
        self._reap_all(False)
        if self._parked:
            self._start_parked()

    def handle_timeout(self) -> None:
        """Reap children while ``handle_request()`` is idle."""
        self.collect_children()

    def service_actions(self) -> None:
        """Reap children after each ``serve_forever`` iteration."""
        self.collect_children()

    # -- forking ----------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        """Fork; the child handles the request and exits, the parent closes
        its copy of the request and returns to the loop."""
        server: Any = self
        children = self.active_children
        if children is not None and len(children) >= self.max_children:
            if server.request_timeout is None:
                # Only service_actions() enforces the bound in the standard
                # library; check here too so handle_request() loops obey it.
                self.collect_children()
            if len(children) >= self.max_children:
                self._park(request, client_address)
                return
        accepted = server._accepted_at.pop(id(request), None) if server._accepted_at else None
        self._fork(request, client_address, accepted)

    def _park(self, request: Any, client_address: Any) -> None:
        """Hold a request until a child ends (the bound is busy)."""
        server: Any = self
        if self._parked is None:
            self._parked = collections.deque()
        accepted = server._accepted_at.get(id(request))
        if accepted is None:
            accepted = server._accepted_at[id(request)] = _monotonic()
        server._inflight.add(id(request), request)
        self._parked.append((request, client_address, accepted))
        board = self._board
        if board is not None:
            board.waiting(True)
            server._watch(board.wake[0], self._on_wake)  # wake when a child ends
        if len(self._parked) > self.max_children:
            self._drop_parked(self._parked.popleft(), 3)

    def _drop_parked(self, entry: tuple[Any, Any, float], outcome: int) -> None:
        """Close a parked request unhandled, counted under *outcome* (or
        under the outcome it was cut off with)."""
        request, client_address, accepted = entry
        server: Any = self
        server._accepted_at.pop(id(request), None)
        cut = server._inflight.discard(id(request))
        stats = server.stats
        if stats.enabled:
            stats.request_started()
            stats.request_finished(cut or outcome, 0.0)
        server.shutdown_request(request)

    def _start_parked(self) -> None:
        """Fork for parked requests while the bound allows; close the ones
        whose deadline passed or that a drain aborted."""
        parked = self._parked
        if not parked:
            return
        server: Any = self
        limit = server.request_timeout
        ledger = server._inflight
        while parked and len(self.active_children or ()) < self.max_children:
            entry = parked.popleft()
            request, client_address, accepted = entry
            key = id(request)
            if key not in ledger:
                self._drop_parked(entry, _ABORTED)  # cut off: discard says how
            elif limit is not None and _monotonic() - accepted > limit:
                self._drop_parked(entry, 3)
            elif ledger.discard(key):  # leaves as a socket, comes back by pid
                self._drop_parked(entry, _ABORTED)
            else:
                server._accepted_at.pop(key, None)
                self._fork(request, client_address, accepted)
        board = self._board
        if not parked and board is not None:
            board.waiting(False)
            server._watch(board.wake[0], None)

    def _fork(self, request: Any, client_address: Any, accepted: float | None) -> None:
        board = self._board or self._new_board()
        stats = self.stats
        free = board.free
        # No free slot only if max_children grew past the board: that child
        # reports nothing, and its exit status alone says how it went.
        slot = free.pop() if free else -1
        try:
            pid = os.fork()
        except BaseException:
            if slot >= 0:
                free.append(slot)
            raise
        if pid:
            children = self.active_children
            if children is None:
                children = self.active_children = set()
            children.add(pid)
            pending = self._pending
            assert pending is not None
            pending[pid] = (accepted, client_address, slot)
            if slot >= 0:
                board.owners[slot] = pid
            self._inflight.add(pid, pid)
            stats.child_started(len(children), len(pending))
            server: Any = self
            server.close_request(request)
            return
        self._run_child(request, client_address, accepted, board, slot, stats.enabled)

    def _new_board(self) -> ReportBoard:
        board = self._board = ReportBoard(max(_MIN_SLOTS, 2 * self.max_children))
        if self._pending is None:
            self._pending = {}
        # Instance attributes from now on (the class's defaults until now):
        # the interpreter specializes reads of an instance's own attributes
        # only, and collect_children reads these on every loop iteration.
        self._parked = self._parked
        self._closing = self._closing
        self._scan_countdown = self._scan_countdown
        # What every child will look up, looked up here once (see prime_lookups).
        server: Any = self
        # (Names only: vars(self) would give the instance a real __dict__,
        # and the interpreter reads such an instance's attributes slower.)
        prime_lookups(
            type(self), getattr(server, "RequestHandlerClass", object), socket.socket, socket.SocketIO,
            ReportBoard, instance_names=_INSTANCE_ATTRIBUTES,
        )
        return board

    def _run_child(
        self, request: Any, client_address: Any, accepted: float | None, board: ReportBoard, slot: int,
        timed: bool,
    ) -> None:
        """The child's whole life: handle, report, ``os._exit``. Never returns.

        It exits with its request's outcome (0: handled; 1: an error, as in
        the standard library; other ``Outcome`` values: a timeout, a
        disconnect) after leaving its times on the board.

        Kept short on purpose: this code runs only in children, where it is
        always "cold" (never specialized by the interpreter), so every extra
        call or lookup costs about three times what it would in the parent."""
        server: Any = self
        outcome = 1
        sys.stdout = _CHILD_STDOUT  # see processes.own_std_streams
        sys.stderr = _CHILD_STDERR
        began = ended = _monotonic() if timed else 0.0  # (times: for stats only)
        try:
            if server.request_timeout is not None or self.child_timeout is not None:
                now = began if timed else _monotonic()
                self._arm_child_alarm(now if accepted is None else accepted, now)
            try:
                server.finish_request(request, client_address)
                outcome = 0
            except Exception as exc:
                outcome = outcome_of(exc)
                server.handle_error(request, client_address)
            except BaseException as exc:
                # As in the standard library, not handle_error's; said once.
                report_escape(server, client_address, exc)
            if timed:
                ended = _monotonic()
        finally:
            try:
                server.shutdown_request(request)
                if slot >= 0:
                    if timed:
                        times = board.times
                        times[slot + slot] = began
                        times[slot + slot + 1] = ended
                    flags = board.map
                    flags[slot] = 1  # after the times: see reportboard
                    if flags[board.want]:
                        os.write(board.wake[1], b"\0")
            except BaseException:
                pass  # nothing may keep the child alive
            if OPENED:
                flush_std_streams()
            os._exit(outcome)

    def _arm_child_alarm(self, accepted: float, began: float) -> None:
        server: Any = self
        limit = server.request_timeout
        arm_alarm(
            None if limit is None else accepted + limit - began,
            self.child_timeout,
            float(getattr(server, "abort_grace", 1.0)),
        )

    # -- drain and close -----------------------------------------------------------

    def _drain_wait(self, seconds: float) -> None:
        """drain(): reap children that ended and start parked requests,
        waiting for a child's wake-up at most *seconds*."""
        board = self._board
        if board is not None and (self.active_children or self._parked):
            board.waiting(True)
            wait = min(max(seconds, 0.0), _WAIT_STEP)
            if board.map.find(b"\x01", 0, board.slots) >= 0:
                wait = min(wait, 0.001)  # a child reported and is exiting
            try:
                select.select([board.wake[0]], [], [], wait)
            except InterruptedError:
                pass
            board.waiting(bool(self._parked))
            board.drain_wake()
        else:
            time.sleep(min(max(seconds, 0.0), 0.01))
        self._reap_all(False)
        self._start_parked()

    def _abort_inflight(self, items: list[Any]) -> None:
        """drain(): parked requests are closed; children get SIGTERM, then
        SIGKILL after abort_grace."""
        pids = [item for item in items if isinstance(item, int)]
        for item in items:
            if not isinstance(item, int):
                abort_socket(item)
        if self._parked:
            self._start_parked()  # closes the aborted ones
        grace = float(getattr(self, "abort_grace", 1.0))
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            alive = [pid for pid in pids if pid in (self.active_children or ())]
            for pid in alive:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while alive and time.monotonic() < deadline:
                self._drain_wait(0.02)
                alive = [pid for pid in alive if pid in (self.active_children or ())]

    def server_close(self) -> None:
        """Close the server, then reap children (waiting if block_on_close).
        Requests still parked are closed unhandled and counted aborted."""
        super().server_close()  # type: ignore[misc]
        while self._parked:
            self._drop_parked(self._parked.popleft(), _ABORTED)
        self._closing = True  # never wait for a free slot now
        try:
            self.collect_children(blocking=self.block_on_close)
        finally:
            self._closing = False
        board, self._board = self._board, None
        if board is not None:
            board.close()
