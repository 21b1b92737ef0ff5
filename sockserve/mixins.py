"""Concurrency mixins: each overrides one hook, ``process_request``.

Put the mixin first so its ``process_request`` wins::

    class ThreadingTCPServer(ThreadingMixIn, TCPServer): pass

``ThreadingMixIn`` runs each request in a new thread; ``ForkingMixIn`` in a
new child process. Everything else (accepting, verifying, the handler's
``setup/handle/finish``) is the server's own.
"""

from __future__ import annotations

import math
import os
import select
import signal
import struct
import sys
import threading
import time
from typing import Any

from .stats import Outcome, outcome_of

__all__ = ["ThreadingMixIn", "ForkingMixIn"]


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

    Callers may use ``process_request_thread`` as a thread target; it runs
    ``finish_request`` and always ends with ``shutdown_request``.
    """

    daemon_threads: bool = False
    block_on_close: bool = True
    _threads: HandlerThreads | NoThreads = NoThreads()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Body of a handler thread: finish, report errors, shut down."""
        server: Any = self
        try:
            server._finish_counted(request, client_address)
        except Exception:
            server.handle_error(request, client_address)
        finally:
            server.shutdown_request(request)
            server._inflight.discard(id(request))
            server.stats.set_threads(-1)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread that runs ``process_request_thread``."""
        if self.block_on_close:
            vars(self).setdefault("_threads", HandlerThreads())
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{type(self).__name__} handler",
        )
        thread.daemon = self.daemon_threads
        self._threads.append(thread)
        stats = getattr(self, "stats")
        inflight = getattr(self, "_inflight")
        stats.set_threads(+1)
        inflight.add(id(request), request)
        try:
            thread.start()
        except BaseException:
            inflight.discard(id(request))
            stats.set_threads(-1)
            raise

    def server_close(self) -> None:
        """Close the server, then wait for handler threads (see block_on_close)."""
        super().server_close()  # type: ignore[misc]
        self._threads.join()


class _ForkedStdStream:
    """What a forked child gets as ``sys.stdout``/``sys.stderr``.

    The inherited stream objects may hold a lock that another thread of the
    parent owned at the moment of fork() (a buffered file's lock, Jupyter's
    OutStream buffer lock): the child would wait for it forever. This
    stand-in opens a fresh file on the same descriptor (1 or 2) the first
    time the child writes, so output still goes where the parent's
    descriptors point (a terminal, or the pipe ipykernel forwards to the
    notebook), and a child that prints nothing pays nothing for it.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._stream: Any = None

    def _open(self) -> Any:
        if self._stream is None:
            try:
                self._stream = open(
                    self._fd, "w", buffering=1, errors="backslashreplace", closefd=False
                )
            except OSError:
                self._stream = open(os.devnull, "w")
        return self._stream

    def write(self, text: str) -> int:
        return int(self._open().write(text))

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)


def _own_std_streams() -> None:
    """Give a newly forked child its own ``sys.stdout``/``sys.stderr``
    (see :class:`_ForkedStdStream`)."""
    sys.stdout = _ForkedStdStream(1)
    sys.stderr = _ForkedStdStream(2)


# A child reports (pid, outcome, seconds) in one write of 13 bytes: far below
# PIPE_BUF, so reports from many children never interleave.
_REPORT = struct.Struct("=iBd")


class ForkingMixIn:
    """Handle each request in a new child process (POSIX only).

    Class attributes that tune it:

    ``max_children`` (40)
        at most this many children at once; the server waits for one to end
        before it forks another.
    ``timeout`` (300)
        ``handle_request()`` calls ``handle_timeout()`` (which reaps
        children) after this many idle seconds.
    ``block_on_close`` (True)
        ``server_close()`` waits for every child to end.
    ``child_timeout`` (None)
        sockserve only: seconds a child may run before it is ended with
        SIGALRM (a hung handler cannot pin a slot forever); None: no limit.

    ``active_children`` is the set of live child PIDs (None before the first
    fork). Children are reaped by ``collect_children()``, which runs after
    every request (``service_actions``) and on ``handle_timeout``; only this
    server's own children are ever waited for.

    Statistics: each child writes its outcome and handler time to a pipe
    that the parent reads when it reaps, so ``server.stats`` in the parent
    counts the children's requests and errors.
    """

    timeout: float | None = 300
    active_children: set[int] | None = None
    max_children: int = 40
    block_on_close: bool = True
    child_timeout: float | None = None

    _reports: tuple[int, int] | None = None
    _pending: dict[int, float] | None = None

    def collect_children(self, *, blocking: bool = False) -> None:
        """Reap finished children; with *blocking*, wait for all of them.

        While ``max_children`` or more are alive, waits until one ends.
        """
        if self.active_children is None:
            return
        while len(self.active_children) >= self.max_children:
            self._reap(wait=True)
        self._reap_some(0 if blocking else os.WNOHANG)

    def _reap_some(self, flags: int) -> bool:
        """waitpid each live child once (with *flags*); True if any ended.

        A child writes its report just before it exits, so the report pipe is
        read only when something was reaped: the reaped children's reports are
        then all there, and a reaped child without one died unfinished.
        """
        assert self.active_children is not None
        gone = []
        for pid in list(self.active_children):
            try:
                done, _ = os.waitpid(pid, flags)
            except ChildProcessError:
                done = pid  # already reaped elsewhere
            except InterruptedError:
                continue
            if done:
                self.active_children.discard(pid)
                gone.append(pid)
        if not gone:
            return False
        stats = getattr(self, "stats")
        stats.set_children(len(self.active_children))
        self._read_reports()
        pending = self._pending
        for pid in gone:
            if pending is not None and pid in pending:
                began = pending.pop(pid)
                getattr(self, "_inflight").discard(pid)
                stats.request_finished(Outcome.ABORTED, time.perf_counter() - began)
        return True

    def _reap(self, wait: bool) -> bool:
        """Reap children that have ended; if none had and *wait*, wait a
        little (on the report pipe) for one to end. True if any was reaped."""
        assert self.active_children is not None
        if self._reap_some(os.WNOHANG):
            return True
        if not wait or not self.active_children:
            return False
        # A readable pipe means a child is about to exit; the timeout covers
        # children that die without reporting (killed by a signal).
        if self._reports is not None:
            select.select([self._reports[0]], [], [], 0.05)
            self._read_reports()
        else:
            time.sleep(0.01)
        return False

    def _read_reports(self) -> None:
        if self._reports is None:
            return
        size = _REPORT.size * 512
        stats = getattr(self, "stats")
        pending = self._pending or {}
        inflight = getattr(self, "_inflight")
        while True:
            try:
                data = os.read(self._reports[0], size)
            except BlockingIOError:
                return
            usable = len(data) - len(data) % _REPORT.size
            for pid, outcome, seconds in _REPORT.iter_unpack(data[:usable]):
                if pending.pop(pid, None) is not None:
                    if inflight.discard(pid):
                        outcome = Outcome.ABORTED  # drain() cut it off
                    stats.request_finished(Outcome(outcome), seconds)
            if len(data) < size:
                return

    def handle_timeout(self) -> None:
        """Reap children while ``handle_request()`` is idle."""
        self.collect_children()

    def service_actions(self) -> None:
        """Reap children after each ``serve_forever`` iteration."""
        self.collect_children()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Fork; the child handles the request and exits, the parent closes
        its copy of the request and returns to the loop."""
        server: Any = self
        if self._reports is None:
            reader, writer = os.pipe()
            os.set_blocking(reader, False)
            self._reports = (reader, writer)
            self._pending = {}
        if self.active_children is not None and len(self.active_children) >= self.max_children:
            # Only service_actions() enforces the bound in the standard
            # library; check here too so handle_request() loops obey it.
            self.collect_children()
        began = time.perf_counter()
        pid = os.fork()
        if pid:
            if self.active_children is None:
                self.active_children = set()
            self.active_children.add(pid)
            assert self._pending is not None
            self._pending[pid] = began
            server._inflight.add(pid, pid)
            server.stats.request_started()
            server.stats.set_children(len(self.active_children))
            server.close_request(request)
            return
        self._run_child(request, client_address, began)

    def _run_child(self, request: Any, client_address: Any, began: float) -> None:
        """The child's whole life: handle, report, ``os._exit``. Never returns."""
        server: Any = self
        status = 1
        outcome = Outcome.ERROR
        try:
            if self.child_timeout is not None:
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.alarm(max(1, math.ceil(self.child_timeout)))
            _own_std_streams()
            try:
                server.finish_request(request, client_address)
                outcome, status = Outcome.OK, 0
            except Exception as exc:
                outcome = outcome_of(exc)
                server.handle_error(request, client_address)
        finally:
            try:
                server.shutdown_request(request)
            finally:
                try:
                    assert self._reports is not None
                    os.write(
                        self._reports[1],
                        _REPORT.pack(os.getpid(), outcome, time.perf_counter() - began),
                    )
                    sys.stdout.flush()
                    sys.stderr.flush()
                except BaseException:
                    pass  # reporting must never keep the child alive
                os._exit(status)

    def _drain_wait(self, seconds: float) -> None:
        """drain(): reap children that ended, waiting on the report pipe."""
        if self.active_children:
            self._reap_some(os.WNOHANG)
        if self._reports is not None:
            select.select([self._reports[0]], [], [], max(seconds, 0.0))
        self._read_reports()

    def _abort_inflight(self, pids: list[int]) -> None:
        """drain(): SIGTERM the children, SIGKILL them after abort_grace."""
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
        """Close the server, then reap children (waiting if block_on_close)."""
        super().server_close()  # type: ignore[misc]
        self.collect_children(blocking=self.block_on_close)
        if self._reports is not None:
            # Children still running (block_on_close=False) then fail to
            # report with EPIPE, which they ignore; they are counted aborted
            # if anyone reaps them later.
            for fd in self._reports:
                os.close(fd)
            self._reports = None
