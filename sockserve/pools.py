"""Bounded concurrency: a thread pool and a prefork process pool.

The standard library's mixins pay per request: ``ThreadingMixIn`` starts a
thread for every request, with no bound, and ``ForkingMixIn`` forks a process
for every request. The two mixins here start their workers once:

``ThreadPoolMixIn``
    overrides ``process_request``: the serving loop still accepts, then puts
    the request in a bounded queue that ``pool_size`` worker threads take
    from. When the queue is full, ``overflow`` decides: ``"block"`` (stop
    accepting until a worker frees a slot) or ``"reject"`` (close the
    connection at once and count it in ``stats.overflows``).
``PreForkMixIn``
    overrides ``serve_forever``: ``workers`` processes are forked at start and
    each runs its own accept loop on the inherited listening socket; the
    parent only supervises (replaces a worker that dies, stops them all on
    ``shutdown()``) and feeds the workers' results into ``server.stats``.
    Stream servers only (TCP, Unix stream).

Put the mixin first, as with the standard ones::

    class ThreadPoolTCPServer(ThreadPoolMixIn, TCPServer): pass

Both support ``drain(timeout)`` (see :mod:`sockserve.drain`).
"""

from __future__ import annotations

import errno
import os
import queue
import select
import selectors
import signal
import socket
import stat
import struct
import sys
import threading
import time
from typing import Any

from .drain import DrainReport, report_between
from .lifecycle import ServerState
from .mixins import _own_std_streams
from .stats import Outcome, outcome_of

__all__ = ["ThreadPoolMixIn", "PreForkMixIn", "OVERFLOW_POLICIES"]

OVERFLOW_POLICIES: tuple[str, ...] = ("block", "reject")


class ThreadPoolMixIn:
    """Handle requests in a fixed pool of worker threads.

    Class attributes that tune it:

    ``pool_size`` (8)
        worker threads, started on the first request and kept until
        ``server_close()``; never more, whatever the load.
    ``queue_size`` (32, at least 1)
        accepted requests that may wait for a free worker.
    ``overflow`` ("block")
        what to do with a request when the queue is full: ``"block"`` stops
        the serving loop (and so accepting) until a worker frees a slot;
        ``"reject"`` closes the connection (a datagram is dropped) at once
        and counts it in ``stats.overflows``.
    ``block_on_close`` (True)
        ``server_close()`` lets the workers finish every queued request and
        waits for them; False: it asks them to stop and returns.

    Workers are daemon threads, so a server that is never closed cannot keep
    the interpreter alive. ``stats.threads`` counts the live workers.
    With ``"block"``, ``shutdown()`` returns once the serving loop has handed
    its last request to the queue, i.e. after a worker freed a slot;
    ``drain(timeout)`` bounds that wait.

    Thread safety: ``process_request`` runs in the serving thread only;
    ``server_close`` and ``drain`` may run in any other.
    """

    pool_size: int = 8
    queue_size: int = 32
    overflow: str = "block"
    block_on_close: bool = True

    _work: queue.Queue[Any] | None = None
    _workers: list[threading.Thread] | None = None

    def _start_pool(self) -> queue.Queue[Any]:
        if self.pool_size < 1 or self.queue_size < 1:
            raise ValueError(
                f"pool_size and queue_size must be >= 1, got {self.pool_size}, {self.queue_size}"
            )
        if self.overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {self.overflow!r}")
        work: queue.Queue[Any] = queue.Queue(maxsize=self.queue_size)
        workers = []
        for number in range(self.pool_size):
            thread = threading.Thread(
                target=self._pool_worker,
                args=(work,),
                name=f"{type(self).__name__} worker {number}",
                daemon=True,
            )
            getattr(self, "stats").set_threads(+1)
            thread.start()
            workers.append(thread)
        self._work, self._workers = work, workers
        return work

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the request for a worker (starting the pool the first time);
        apply ``overflow`` when the queue is full."""
        server: Any = self
        work = self._work if self._work is not None else self._start_pool()
        server._inflight.add(id(request), request)
        try:
            work.put((request, client_address), block=self.overflow == "block")
        except queue.Full:
            server._inflight.discard(id(request))
            server.stats.note_overflow()
            server.shutdown_request(request)
        except BaseException:
            server._inflight.discard(id(request))
            raise

    def _pool_worker(self, work: queue.Queue[Any]) -> None:
        """Body of a worker thread: serve queued requests until a None."""
        server: Any = self
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                request, client_address = item
                try:
                    if server._inflight.is_aborted(id(request)):
                        # drain() cut it off while it waited: count, do not run.
                        server.stats.request_started()
                        server.stats.request_finished(Outcome.ABORTED, 0.0)
                    else:
                        server._finish_counted(request, client_address)
                except Exception:
                    server.handle_error(request, client_address)
                finally:
                    server.shutdown_request(request)
                    server._inflight.discard(id(request))
        finally:
            server.stats.set_threads(-1)

    def server_close(self) -> None:
        """Close the server, then stop the workers (see block_on_close).
        Requests already queued are still served before the workers stop."""
        super().server_close()  # type: ignore[misc]
        work, workers = self._work, self._workers or []
        self._work = self._workers = None
        if work is None:
            return
        for _ in workers:
            work.put(None)  # after every queued request: nothing is dropped
        if self.block_on_close:
            for thread in workers:
                thread.join()


# A prefork worker reports each event as (pid, event, outcome, seconds) in one
# write of 14 bytes, far below PIPE_BUF, so reports never interleave.
_EVENT = struct.Struct("=iBBd")
_STARTED, _FINISHED, _REJECTED = 0, 1, 2
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def _blank_inherited_sockets(keep: int) -> None:
    """In a new worker: point every socket descriptor it inherited, except
    *keep* (the listening socket), at /dev/null.

    The parent may hold client connections or other servers' sockets; a copy
    kept open here would stop the other end from ever seeing EOF. The numbers
    stay taken (dup2, not close), so a socket object that is collected later
    closes only its /dev/null stand-in, never a descriptor reused since.
    """
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            if fd in (keep, null):
                continue
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.dup2(null, fd, inheritable=False)
            except OSError:
                pass  # closed meanwhile (the listdir descriptor itself)
    finally:
        os.close(null)


class PreForkMixIn:
    """Serve from ``workers`` processes forked once, at the start of
    ``serve_forever`` (POSIX, stream servers only).

    Each worker waits on the shared listening socket, accepts, and runs the
    handler itself (one request at a time per worker), exactly through the
    usual hooks (``get_request``, ``verify_request``, ``finish_request``,
    ``shutdown_request``). The parent's ``serve_forever`` supervises: it
    replaces a worker that dies (a request it was serving is counted
    aborted) and, on ``shutdown()``, tells every worker to stop accepting and
    waits for their current requests. ``handle_request()`` is not pooled: it
    serves one request in the calling process as TCPServer does.

    Class attributes that tune it:

    ``workers`` (4)
        worker processes kept alive while serving.
    ``abort_grace`` (1.0)
        seconds between SIGTERM and SIGKILL when ``drain()`` aborts workers.

    ``worker_pids`` is the set of live worker PIDs. Statistics: workers
    report each request's start and outcome through a pipe, so the parent's
    ``server.stats`` counts them; ``stats.children`` is the live workers.
    Workers ignore SIGINT (Ctrl-C reaches the parent, which stops them).

    Resource handling: a worker keeps only the listening socket of the
    sockets it inherits; the others (say, client connections the parent
    process holds) are pointed at /dev/null, so that closing them in the
    parent really closes them.
    """

    workers: int = 4
    _worker_pids: set[int] = set()  # replaced per serve_forever; never shared

    @property
    def worker_pids(self) -> frozenset[int]:
        """PIDs of the live workers (empty when not serving)."""
        return frozenset(self._worker_pids)
    _stop_deadline: float | None = None

    # -- the supervisor (parent) -------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Fork the workers and supervise them until ``shutdown()``."""
        server: Any = self
        if server.socket_type != socket.SOCK_STREAM:
            raise TypeError("PreForkMixIn serves stream sockets only")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        server._is_shut_down.clear()
        self._worker_pids = set()
        self._busy: dict[int, float] = {}
        reports = os.pipe()
        stop = os.pipe()
        os.set_blocking(reports[0], False)
        self._pipes = (reports, stop)
        try:
            wake = server._open_wakeup()
            with selectors.DefaultSelector() as selector:
                selector.register(wake, selectors.EVENT_READ)
                selector.register(reports[0], selectors.EVENT_READ)
                for _ in range(self.workers):
                    self._spawn_worker()
                server._set_state(ServerState.SERVING)
                while not server._shutdown_request:
                    selector.select(poll_interval)
                    self._read_events()
                    self._reap_workers(respawn=not server._shutdown_request)
                    server.service_actions()
        finally:
            try:
                self._stop_workers()
            finally:
                for fd in (*reports, stop[0]):
                    os.close(fd)
                server.socket.setblocking(True)  # the workers made it non-blocking
                server._shutdown_request = False
                server._close_wakeup()
                if server.state is not ServerState.CLOSED:
                    server.state = ServerState.LISTENING
                server._is_shut_down.set()

    def _spawn_worker(self) -> None:
        pid = os.fork()
        if pid:
            self._worker_pids.add(pid)
            getattr(self, "stats").set_children(len(self._worker_pids))
            return
        self._worker_main()

    def _read_events(self) -> None:
        stats = getattr(self, "stats")
        inflight = getattr(self, "_inflight")
        while True:
            try:
                data = os.read(self._pipes[0][0], _EVENT.size * 256)
            except BlockingIOError:
                return
            for pid, event, outcome, seconds in _EVENT.iter_unpack(data):
                if event == _STARTED:
                    stats.note_accepted()
                    stats.request_started()
                    self._busy[pid] = time.perf_counter()
                    inflight.add(pid, pid)
                elif event == _FINISHED:
                    self._busy.pop(pid, None)
                    if inflight.discard(pid):
                        outcome = Outcome.ABORTED
                    stats.request_finished(Outcome(outcome), seconds)
                else:
                    stats.note_accepted()
                    stats.note_rejected()
            if len(data) < _EVENT.size * 256:
                return

    def _reap_workers(self, respawn: bool, block: bool = False) -> None:
        """waitpid the workers; count a request a dead worker held as
        aborted; fork a replacement if *respawn*."""
        stats = getattr(self, "stats")
        for pid in list(self._worker_pids):
            try:
                done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done = pid
            if not done:
                continue
            self._read_events()  # its last report, if any, is in the pipe
            self._worker_pids.discard(pid)
            stats.set_children(len(self._worker_pids))
            began = self._busy.pop(pid, None)
            if began is not None:
                getattr(self, "_inflight").discard(pid)
                stats.request_finished(Outcome.ABORTED, time.perf_counter() - began)
            if respawn:
                self._spawn_worker()

    def _stop_workers(self) -> None:
        """Tell workers to stop accepting (the stop pipe turns readable), wait for
        their current requests until ``_stop_deadline`` (None: for as long as
        they take), then SIGTERM and SIGKILL what is left."""
        reports, stop = self._pipes
        # A byte nobody reads keeps the pipe readable for every worker; EOF
        # alone never comes while any other fork of this process (another
        # server's worker or child) holds a copy of the write end.
        os.write(stop[1], b"x")
        os.close(stop[1])
        deadline = self._stop_deadline
        while self._worker_pids and (deadline is None or time.monotonic() < deadline):
            wait = 0.05 if deadline is None else min(0.05, max(deadline - time.monotonic(), 0))
            select.select([reports[0]], [], [], wait)
            self._read_events()
            self._reap_workers(respawn=False)
        if not self._worker_pids:
            return
        getattr(self, "_inflight").abort_all()
        grace = float(getattr(self, "abort_grace", 1.0))
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            for pid in self._worker_pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            until = time.monotonic() + wait
            while self._worker_pids and time.monotonic() < until:
                time.sleep(0.01)
                self._read_events()
                self._reap_workers(respawn=False)
        self._reap_workers(respawn=False, block=True)

    def server_close(self) -> None:
        """Stop the workers if a loop is still serving, then close."""
        server: Any = self
        with server._loop_lock:
            running = server._serving_thread is not None
        if running and not server._request_stop():
            server._is_shut_down.wait()
        super().server_close()  # type: ignore[misc]

    def drain(self, timeout: float) -> DrainReport:
        """Stop accepting, let workers finish their current requests for up
        to *timeout* seconds, then end the workers still busy (SIGTERM, then
        SIGKILL after ``abort_grace``). See :mod:`sockserve.drain`."""
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        server: Any = self
        began = time.monotonic()
        before = server._inflight.counts()
        with server._loop_lock:
            running = server._serving_thread is not None
        if running:
            self._stop_deadline = began + timeout
            try:
                if server._request_stop():
                    raise RuntimeError("drain() from the serving thread would wait for itself")
                server._is_shut_down.wait()
            finally:
                self._stop_deadline = None
        return report_between(before, server._inflight.counts(), began)

    # -- a worker (child) ----------------------------------------------------

    def _worker_main(self) -> None:
        """A worker's whole life: accept and serve until the stop pipe
        closes, then ``os._exit``. Never returns."""
        server: Any = self
        status = 1
        try:
            reports, stop = self._pipes
            os.close(stop[1])  # else this worker would keep its own stop pipe open
            os.close(reports[0])
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _blank_inherited_sockets(keep=server.socket.fileno())
            _own_std_streams()
            listener = server.socket
            listener.setblocking(False)
            with selectors.DefaultSelector() as selector:
                selector.register(listener, selectors.EVENT_READ)
                selector.register(stop[0], selectors.EVENT_READ)
                while True:
                    ready = selector.select()
                    if any(key.fileobj == stop[0] for key, _ in ready):
                        break
                    self._serve_one(reports[1])
            status = 0
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)

    def _serve_one(self, report_fd: int) -> None:
        server: Any = self
        try:
            request, client_address = server.get_request()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRNOS:
                time.sleep(0.05)
            return
        pid = os.getpid()
        if not server.verify_request(request, client_address):
            os.write(report_fd, _EVENT.pack(pid, _REJECTED, 0, 0.0))
            server.shutdown_request(request)
            return
        os.write(report_fd, _EVENT.pack(pid, _STARTED, 0, 0.0))
        began = time.perf_counter()
        outcome = Outcome.OK
        try:
            server.finish_request(request, client_address)
        except Exception as exc:
            outcome = outcome_of(exc)
            server.handle_error(request, client_address)
        finally:
            server.shutdown_request(request)
            os.write(report_fd, _EVENT.pack(pid, _FINISHED, outcome, time.perf_counter() - began))
