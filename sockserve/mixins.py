"""Concurrency mixins: each overrides one hook, ``process_request``.

Put the mixin first so its ``process_request`` wins::

    class ThreadingTCPServer(ThreadingMixIn, TCPServer): pass

``ThreadingMixIn`` runs each request in a new thread; ``ForkingMixIn`` in a
new child process. Everything else (accepting, verifying, the handler's
``setup/handle/finish``) is the server's own. The bounded pools
(``ThreadPoolMixIn``, ``PreForkMixIn``) live in :mod:`sockserve.threadpool`
and :mod:`sockserve.prefork`.
"""

from __future__ import annotations

import collections
import os
import select
import signal
import struct
import threading
import time
from typing import Any

from . import logs
from .deadlines import arm_alarm
from .drain import abort_socket
from .errors import format_address
from .processes import (
    OPENED,
    describe_status,
    flush_std_streams,
    outcome_of_status,
    own_std_streams,
    report_escape,
)
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


# A child reports (pid, outcome, handler start, handler end) in one write of
# 21 bytes: far below PIPE_BUF, so reports from many children never
# interleave. The times are time.monotonic(), one clock for every process.
_REPORT = struct.Struct("=iBdd")
#: Reaps between looks at every child (for those that die without a report).
_SCAN_EVERY = 16


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

    With ``request_timeout`` set (see :class:`~sockserve.servers.BaseServer`),
    a request that finds ``max_children`` busy is *parked* instead: the loop
    goes on accepting (so every request's age is known), parked requests
    start as children end, and one that waited past its deadline is closed
    unhandled and counted as a timeout. At most ``max_children`` requests
    are parked; beyond that the oldest parked one is dropped.

    ``active_children`` is the set of live child PIDs (None before the first
    fork). Children are reaped by ``collect_children()``, which runs after
    every loop iteration (``service_actions``), when a child's report wakes
    the loop, and on ``handle_timeout``; only this server's own children are
    ever waited for.

    Statistics: each child writes its outcome and handler times to a pipe
    that the parent reads, so ``server.stats`` in the parent counts the
    children's requests. A child that dies before it reports (a crash, a
    signal, ``os._exit``) is logged with its cause and counted as an error
    (a timeout if SIGALRM ended it). A handler that calls ``shutdown()`` in
    the child stops the parent's loop.
    """

    timeout: float | None = 300
    active_children: set[int] | None = None
    max_children: int = 40
    block_on_close: bool = True
    child_timeout: float | None = None

    _reports: tuple[int, int] | None = None
    # pid -> (accepted, client address) of the request it runs (the ledger
    # knows it by the pid too)
    _pending: dict[int, tuple[float, Any]] | None = None
    _parked: collections.deque[tuple[Any, Any, float]] | None = None
    _finishing: set[int] | None = None  # reported, not yet reaped
    _scan_countdown: int = 0
    _closing: bool = False
    _report_poll: Any = None

    # -- reaping ---------------------------------------------------------------

    def collect_children(self, *, blocking: bool = False) -> None:
        """Reap finished children; with *blocking*, wait for all of them.

        While ``max_children`` or more are alive, waits until one ends
        (unless a stop was asked for, or ``request_timeout`` is set: then
        requests are parked instead).
        """
        children = self.active_children
        if children is None:
            return
        if len(children) >= self.max_children and not self._closing:
            server: Any = self
            if server.request_timeout is None:
                while len(children) >= self.max_children:
                    if server._BaseServer__shutdown_request or self._wait_for_a_child(0.05):
                        break
        poll = self._report_poll
        if poll is not None and poll.poll(0):  # a poll, not a read that may fail: cheaper
            self._read_reports()
        self._scan_countdown -= 1
        if blocking or self._finishing or self._scan_countdown <= 0 or self._parked:
            self._reap(blocking)
        if self._parked:
            self._start_parked()

    def _wait_for_a_child(self, seconds: float) -> bool:
        """Wait up to *seconds* for a child to end (its report arrives) or
        for a stop request; reap. True when a stop was asked for."""
        server: Any = self
        watch = [] if self._reports is None else [self._reports[0]]
        pair = server._wakeup
        if pair is not None:
            watch.append(pair[0])
        try:
            readable, _, _ = select.select(watch, [], [], seconds)
        except InterruptedError:
            readable = []
        if pair is not None and pair[0] in readable:
            server._take_wakeup(pair[0])
        if self._reports is not None and self._reports[0] in readable:
            self._read_reports()
        self._reap(False)
        return bool(server._BaseServer__shutdown_request)

    def _reap(self, blocking: bool = False) -> bool:
        """Reap the children that ended; True if any was.

        A child reports just before it exits, so the children whose report
        was read are waited for first. Every live child is polled only every
        ``_SCAN_EVERY`` calls (for children that die without a report),
        every call while the bound is reached or requests are parked, and
        all of them, waiting for each, with *blocking*."""
        children = self.active_children
        if not children:
            return False
        if blocking:
            self._read_reports()
            candidates: Any = list(children)
        elif self._scan_countdown <= 0 or self._parked or len(children) >= self.max_children:
            self._scan_countdown = _SCAN_EVERY
            candidates = list(children)
        elif self._finishing:
            candidates = list(self._finishing)
        else:
            return False
        flags = 0 if blocking else os.WNOHANG
        ended = False
        for pid in candidates:
            try:
                done, status = os.waitpid(pid, flags)
            except ChildProcessError:
                done, status = pid, 0  # already reaped elsewhere
            except InterruptedError:
                continue
            if done:
                ended = True
                children.discard(pid)
                if self._finishing:
                    self._finishing.discard(pid)
                if self._pending and pid in self._pending:
                    self._child_ended(pid, status)
        if ended:
            getattr(self, "stats").children_here(len(children))
        return ended

    def _child_ended(self, pid: int, status: int) -> None:
        """A child was reaped. If its report never came, say why and count
        its request under its true outcome."""
        pending = self._pending
        assert pending is not None
        self._read_reports()  # its report may have arrived since
        if pid not in pending:
            return
        accepted, client_address = pending.pop(pid)
        server: Any = self
        outcome = outcome_of_status(status)
        if not server._inflight.cut_outcome(pid):  # a drain's abort is not news
            logs.warning(
                "%s: the child %d handling the request from %s %s before it finished%s",
                type(self).__name__, pid, format_address(client_address), describe_status(status),
                " (its time was up: request_timeout or child_timeout)" if outcome == 3 else "",
            )
        now = _monotonic()
        self._count(server, pid, outcome, accepted, accepted, now, pid)

    def _count(
        self, server: Any, key: int, outcome: int, accepted: float, began: float,
        ended: float, pid: int,
    ) -> None:
        cut = server._inflight.discard(key)
        stats = server.stats
        if stats.enabled:
            stats.request_finished(cut or outcome, max(ended - began, 0.0))
            timeline = stats.timeline
            if timeline is not None:
                timeline.record(accepted, began, ended, pid, pid, cut or outcome)

    def _read_reports(self) -> None:
        """Count the requests whose children reported (the children are
        then reaped by ``_reap``, which waits for those first)."""
        if self._reports is None:
            return
        size = _REPORT.size * 512
        pending = self._pending or {}
        if self._finishing is None:
            self._finishing = set()
        finishing = self._finishing
        server: Any = self
        ledger = server._inflight
        stats = server.stats
        while True:
            try:
                data = os.read(self._reports[0], size)
            except BlockingIOError:
                return
            if len(data) % _REPORT.size:
                data = data[: len(data) - len(data) % _REPORT.size]  # never happens: writes are atomic
            for pid, outcome, began, ended in _REPORT.iter_unpack(data):
                entry = pending.pop(pid, None)
                if entry is None:
                    continue
                finishing.add(pid)
                cut = ledger.discard(pid)
                if stats.enabled:
                    stats.request_finished(cut or outcome, ended - began)
                    if stats.timeline is not None:
                        stats.timeline.record(entry[0], began, ended, pid, pid, cut or outcome)
            if len(data) < size:
                return

    def _on_reports(self) -> None:
        """The report pipe turned readable (watched while requests are
        parked, waiting for a child to end)."""
        self._read_reports()
        self._reap(False)
        if self._parked:
            self._start_parked()

    def handle_timeout(self) -> None:
        """Reap children while ``handle_request()`` is idle."""
        self.collect_children()

    def service_actions(self) -> None:
        """Reap children after each ``serve_forever`` iteration."""
        self.collect_children()

    # -- forking ----------------------------------------------------------------

    def _open_reports(self) -> None:
        if self._reports is None:
            reader, writer = os.pipe()
            os.set_blocking(reader, False)
            self._reports = (reader, writer)
            self._pending = {}
            self._report_poll = select.poll()
            self._report_poll.register(reader, select.POLLIN)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Fork; the child handles the request and exits, the parent closes
        its copy of the request and returns to the loop."""
        server: Any = self
        if self._reports is None:
            self._open_reports()
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
        if self._reports is not None:
            server._watch(self._reports[0], self._on_reports)  # wake when a child ends
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
        if not parked and self._reports is not None:
            server._watch(self._reports[0], None)

    def _fork(self, request: Any, client_address: Any, accepted: float | None) -> None:
        server: Any = self
        began = _monotonic()
        if accepted is None:
            accepted = began
        pid = os.fork()
        if pid:
            if self.active_children is None:
                self.active_children = set()
            self.active_children.add(pid)
            assert self._pending is not None
            self._pending[pid] = (accepted, client_address)
            server._inflight.add(pid, pid)
            server.stats.child_started(len(self.active_children))
            server.close_request(request)
            return
        self._run_child(request, client_address, accepted)

    def _run_child(self, request: Any, client_address: Any, accepted: float) -> None:
        """The child's whole life: handle, report, ``os._exit``. Never returns.

        Kept short on purpose: this code runs only in children, where it is
        always "cold" (never specialized by the interpreter), so every extra
        call or lookup costs about three times what it would in the parent."""
        server: Any = self
        status = outcome = 1
        own_std_streams()
        began = ended = _monotonic()
        try:
            if server.request_timeout is not None or self.child_timeout is not None:
                self._arm_child_alarm(accepted, began)
            try:
                server.finish_request(request, client_address)
                outcome = status = 0
            except Exception as exc:
                outcome = outcome_of(exc)
                server.handle_error(request, client_address)
            except BaseException as exc:
                # As in the standard library, not handle_error's; said once.
                report_escape(server, client_address, exc)
            ended = _monotonic()
        finally:
            try:
                server.shutdown_request(request)
                os.write(self._reports[1], _REPORT.pack(os.getpid(), outcome, began, ended))  # type: ignore[index]
            except BaseException:
                pass  # nothing may keep the child alive
            if OPENED:
                flush_std_streams()
            os._exit(status)

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
        waiting on the report pipe."""
        if self._reports is not None and (self.active_children or self._parked):
            try:
                select.select([self._reports[0]], [], [], max(seconds, 0.0))
            except InterruptedError:
                pass
        else:
            time.sleep(min(max(seconds, 0.0), 0.01))
        self._read_reports()
        self._reap(False)
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
        if self._reports is not None:
            # Children still running (block_on_close=False) then fail to
            # report with EPIPE, which they ignore; they are counted when
            # reaped, if anyone reaps them later.
            for fd in self._reports:
                os.close(fd)
            self._reports = None
            self._report_poll = None


