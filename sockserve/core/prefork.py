"""A fixed pool of worker processes: ``PreForkMixIn``.

``ForkingMixIn`` forks a process for every request. This mixin forks
``workers`` processes once, when ``serve_forever`` starts, and hands each
accepted connection to whichever worker is free::

    class PreForkTCPServer(PreForkMixIn, TCPServer): pass

How a connection travels::

    parent (serve_forever)                       workers (forked once)
      get_request() -> accept                      recvmsg on the channel
      verify_request()                             -> the connection's descriptor
      process_request(): sendmsg(SCM_RIGHTS)  ==>  finish_request() -> handler
      close_request()  (the parent's copy)         shutdown_request()
      read the workers' reports  <== a pipe ====  report started / finished

The channel is a ``SOCK_SEQPACKET`` socket pair shared by all workers: each
message (the descriptor, its accept time and the client's address) goes to
exactly one worker, the first one free, so the channel is the pool's queue
(a few hundred deep, the kernel's limit). When it is full the parent stops
accepting and the kernel's listen backlog holds the rest, as for any
socketserver; with ``request_timeout`` set it keeps accepting instead and
parks the surplus (up to ``workers * 16``, dropping the oldest), so that
every request's deadline counts from its real arrival. Because the parent
accepts, ``get_request`` and ``verify_request`` run in the parent and the
handler in a worker, as with ``ForkingMixIn``.

Stream servers only (TCP, Unix stream); POSIX only.
"""

from __future__ import annotations

import collections
import itertools
import os
import select
import selectors
import signal
import socket
import stat
import struct
import time
from typing import Any

from . import logs
from .deadlines import RequestTimeout, arm_alarm, disarm_alarm
from .drain import DrainReport, abort_socket, drain_server
from .errors import format_address
from .lifecycle import ServerState
from .processes import (
    describe_status,
    flush_std_streams,
    outcome_of_status,
    own_std_streams,
    report_escape,
)
from .servers import BaseServer
from .stats import outcome_of

__all__ = ["PreForkMixIn"]

_monotonic = time.monotonic
# A message on the channel: request key, accept time; then the client's
# address (see _encode_address) and, as ancillary data, the connection's descriptor.
_HEADER = struct.Struct("=qd")
# A worker reports each event as (pid, event, key, outcome, began, ended) in
# one write of 30 bytes, far below PIPE_BUF, so reports never interleave.
_EVENT = struct.Struct("=iBqBdd")
_STARTED, _FINISHED = 0, 1
_POLLIN = select.POLLIN


def _blank_inherited_sockets(keep: set[int]) -> None:
    """In a new worker: point every socket descriptor it inherited, except
    those in *keep*, at /dev/null.

    The parent may hold client connections, its listening socket or other
    servers' sockets; a copy kept open here would stop the other end from
    ever seeing EOF (or keep a port bound after the parent closed it). The
    numbers stay taken (dup2, not close), so a socket object that is
    collected later closes only its /dev/null stand-in, never a descriptor
    reused since. The standard descriptors 0-2 are never touched, whatever
    they are (the systemd journal's socket, say): what a worker prints goes
    where the parent's output goes.
    """
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            if fd in keep or fd == null or fd <= 2:
                continue
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.dup2(null, fd, inheritable=False)
            except OSError:
                pass  # closed meanwhile (the listdir descriptor itself)
    finally:
        os.close(null)


def _encode_address(address: Any) -> bytes:
    """A client address as bytes: an IP address tuple (host, port[, flow
    info, scope id]) as its fields joined by NULs, a Unix address (a path,
    or empty for an unnamed client) as itself after a tag. Plain data only:
    nothing that could rebuild arbitrary objects."""
    if isinstance(address, tuple):
        return b"t" + b"\0".join(str(field).encode() for field in address)
    if isinstance(address, bytes):
        return b"b" + address
    return b"s" + os.fsencode(address)


def _decode_address(data: bytes) -> Any:
    tag, body = data[:1], data[1:]
    if tag == b"t":
        host, *numbers = body.split(b"\0")
        return (host.decode(), *(int(n) for n in numbers))
    if tag == b"b":
        return body
    return os.fsdecode(body)


_ANCILLARY = socket.CMSG_LEN(struct.calcsize("i"))


def _receive(channel: socket.socket) -> tuple[bytes, list[int]]:
    """One message from the channel, without waiting: (payload, fds).
    (``socket.recv_fds`` drops its *flags* argument on some versions.)"""
    message, ancillary, _flags, _address = channel.recvmsg(4096, _ANCILLARY, socket.MSG_DONTWAIT)
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", data[:usable]))
    return message, fds


class _Pool:
    """What one ``serve_forever`` of a prefork server holds."""

    def __init__(self) -> None:
        self.parent_end, self.worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.parent_end.setblocking(False)
        self.reports = os.pipe()
        os.set_blocking(self.reports[0], False)
        self.stop = os.pipe()
        self.busy: dict[int, int] = {}  # worker pid -> key of its request
        # key -> (accept time, client address, started?) until it finishes
        self.queued: dict[int, tuple[float, Any]] = {}
        self.parked: collections.deque[tuple[Any, Any, float]] = collections.deque()
        self.pids: set[int] = set()  # its live workers
        self.stopping = False

    def close(self) -> None:
        for sock in (self.parent_end, self.worker_end):
            sock.close()
        for fd in (*self.reports, *self.stop):
            try:
                os.close(fd)
            except OSError:
                pass


class PreForkMixIn:
    """Serve from ``workers`` processes forked once, at the start of
    ``serve_forever`` (POSIX, stream servers only).

    The parent accepts and verifies each connection, then passes it to the
    first free worker (see the module docstring), which runs
    ``finish_request`` and ``shutdown_request``. The parent also supervises:
    it replaces a worker that dies (a request it was serving is logged with
    the cause and counted as an error, or a timeout if SIGALRM ended it) and
    feeds the workers' reports into ``server.stats``. ``handle_request()``
    is not pooled: it serves one request in the calling process as TCPServer
    does.

    Class attributes that tune it:

    ``workers`` (4)
        worker processes kept alive while serving; no handler outcome
        (``SystemExit``, ``KeyboardInterrupt``, a crash) lowers the count.
    ``block_on_close`` (True)
        ``server_close()`` waits for the workers to finish their current
        and queued requests; False: it returns at once.
    ``abort_grace`` (1.0)
        seconds between SIGTERM and SIGKILL when ``drain()`` aborts workers.

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
    block_on_close: bool = True
    _pool: _Pool | None = None
    _retired: tuple[_Pool, ...] = ()  # pools of earlier loops still finishing
    _keys = itertools.count(1)

    @property
    def worker_pids(self) -> frozenset[int]:
        """PIDs of the live workers of the current (or last) loop."""
        return frozenset(self._pool.pids) if self._pool is not None else frozenset()

    def _count_children(self) -> None:
        alive = sum(len(pool.pids) for pool in (*self._retired, self._pool) if pool is not None)
        getattr(self, "stats").set_children(alive)

    # -- the parent ----------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Fork the workers and supervise them until ``shutdown()``."""
        server: Any = self
        if server.socket_type != socket.SOCK_STREAM:
            raise TypeError("PreForkMixIn serves stream sockets only")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        self._finish_workers(wait=False)  # what a previous loop left
        if self._pool is not None:  # still finishing: let it, beside the new one
            self._retired = (*self._retired, self._pool)
        server._BaseServer__is_shut_down.clear()
        pool = self._pool = _Pool()
        try:
            wake = server._open_wakeup()
            for _ in range(self.workers):
                self._spawn_worker(pool)
            listening = server.fileno()
            poller = select.poll()
            poller.register(listening, _POLLIN)
            poller.register(wake.fileno(), _POLLIN)
            poller.register(pool.reports[0], _POLLIN)
            accepting = True
            wait_ms = max(0, int(min(poll_interval, 0.2) * 1000))
            server._set_state(ServerState.SERVING)
            while not server._BaseServer__shutdown_request:
                ready = poller.poll(wait_ms)
                if server._BaseServer__shutdown_request:
                    break
                for fd, _events in ready:
                    if fd == listening:
                        server._handle_request_noblock()
                    elif fd == pool.reports[0]:
                        self._read_events(pool)
                    else:
                        server._take_wakeup(wake)
                self._reap_workers(pool, respawn=True)
                self._send_parked(pool)
                if self._retired:
                    self._finish_retired(wait=False)
                # While the channel is full (and nothing has a deadline),
                # leave new connections in the kernel's backlog.
                want = not pool.parked or server.request_timeout is not None
                if want != accepting:
                    poller.modify(listening, _POLLIN if want else 0)
                    accepting = want
                server.service_actions()
        finally:
            pool.stopping = True
            os.write(pool.stop[1], b"x")  # never read: stays readable for every worker
            server._BaseServer__shutdown_request = False
            server._close_wakeup()
            if server.state is not ServerState.CLOSED:
                server.state = ServerState.LISTENING
            server._BaseServer__is_shut_down.set()

    def _spawn_worker(self, pool: _Pool) -> None:
        pid = os.fork()
        if pid:
            pool.pids.add(pid)
            self._count_children()
            return
        self._worker_main(pool)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Pass the connection to a worker (park it if the channel is full),
        then close the parent's copy."""
        server: Any = self
        pool = self._pool
        if pool is None or pool.stopping:
            # handle_request() without a pool: serve it here, as TCPServer does.
            return server._serve_in_process(request, client_address)  # type: ignore[no-any-return]
        accepted = server._accepted_at.pop(id(request), None)
        if accepted is None:
            accepted = _monotonic()
        if pool.parked or not self._send(pool, request, client_address, accepted):
            pool.parked.append((request, client_address, accepted))
            server._inflight.add(id(request), request)
            if len(pool.parked) > self.workers * 16:
                self._drop_parked(pool.parked.popleft(), 3)
            return
        server.close_request(request)

    def _send(self, pool: _Pool, request: Any, client_address: Any, accepted: float) -> bool:
        """Put one connection on the channel; False if it is full."""
        server: Any = self
        key = next(self._keys)
        payload = _HEADER.pack(key, accepted) + _encode_address(client_address)
        try:
            socket.send_fds(pool.parent_end, [payload], [request.fileno()])
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in (105, 109):  # ENOBUFS, ETOOMANYREFS
                return False
            raise
        pool.queued[key] = (accepted, client_address)
        server._inflight.add(key, key)
        return True

    def _send_parked(self, pool: _Pool) -> None:
        """Move parked connections to the channel while it has room; close
        those whose deadline passed or that a drain cut off."""
        server: Any = self
        limit = server.request_timeout
        parked = pool.parked
        while parked:
            request, client_address, accepted = parked[0]
            key = id(request)
            if key not in server._inflight:
                self._drop_parked(parked.popleft(), 4)
            elif limit is not None and _monotonic() - accepted > limit:
                self._drop_parked(parked.popleft(), 3)
            elif self._send(pool, request, client_address, accepted):
                parked.popleft()
                server._inflight.discard(key)
                server.close_request(request)
            else:
                return

    def _drop_parked(self, entry: tuple[Any, Any, float], outcome: int) -> None:
        request, _address, _accepted = entry
        server: Any = self
        cut = server._inflight.discard(id(request))
        stats = server.stats
        if stats.enabled:
            stats.request_started()
            stats.request_finished(cut or outcome, 0.0)
        server.shutdown_request(request)

    def _read_events(self, pool: _Pool) -> None:
        server: Any = self
        stats = server.stats
        ledger = server._inflight
        size = _EVENT.size * 256
        while True:
            try:
                data = os.read(pool.reports[0], size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed
            usable = len(data) - len(data) % _EVENT.size
            for pid, event, key, outcome, began, ended in _EVENT.iter_unpack(data[:usable]):
                if event == _STARTED:
                    pool.busy[pid] = key
                    if stats.enabled:
                        stats.request_started()
                    continue
                started = pool.busy.get(pid) == key
                if started:
                    del pool.busy[pid]
                elif stats.enabled:
                    stats.request_started()  # ended before it ran (its deadline passed)
                entry = pool.queued.pop(key, None)
                cut = ledger.discard(key)
                if stats.enabled:
                    stats.request_finished(cut or outcome, max(ended - began, 0.0))
                    timeline = stats.timeline
                    if timeline is not None and entry is not None:
                        timeline.record(entry[0], began, ended, pid, pid, cut or outcome)
            if len(data) < size:
                return

    def _reap_workers(self, pool: _Pool, respawn: bool, block: bool = False) -> None:
        """waitpid the workers; report and count a request a dead worker
        held; fork a replacement if *respawn*."""
        server: Any = self
        stats = server.stats
        for pid in list(pool.pids):
            try:
                done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            except InterruptedError:
                continue
            if not done:
                continue
            self._read_events(pool)  # its last report, if any, is in the pipe
            pool.pids.discard(pid)
            self._count_children()
            key = pool.busy.pop(pid, None)
            if key is not None:
                entry = pool.queued.pop(key, None)
                cut = server._inflight.discard(key)
                outcome = outcome_of_status(status)
                if not cut:
                    logs.warning(
                        "%s: worker %d %s while handling the request from %s%s",
                        type(self).__name__, pid, describe_status(status),
                        format_address(entry[1]) if entry else "?",
                        "; a new worker replaces it" if respawn else "",
                    )
                if stats.enabled:
                    accepted = entry[0] if entry else _monotonic()
                    stats.request_finished(cut or outcome, _monotonic() - accepted)
            if respawn and not pool.stopping:
                self._spawn_worker(pool)

    def _finish_workers(self, wait: bool) -> None:
        """After the loop: read reports and reap the workers, waiting for
        them if *wait*; release the pool once they are all gone."""
        self._finish_retired(wait)
        pool = self._pool
        if pool is not None and self._finish_pool(pool, wait):
            self._pool = None

    def _finish_retired(self, wait: bool) -> None:
        self._retired = tuple(pool for pool in self._retired if not self._finish_pool(pool, wait))

    def _finish_pool(self, pool: _Pool, wait: bool) -> bool:
        """Reap *pool*'s workers (all of them, if *wait*); True once none is
        left and the pool is closed."""
        while True:
            self._read_events(pool)
            self._reap_workers(pool, respawn=False)
            self._send_parked(pool)
            if not pool.pids or not wait:
                break
            select.select([pool.reports[0]], [], [], 0.05)
        if pool.pids:
            return False
        while pool.parked:  # nobody is left to serve them
            self._drop_parked(pool.parked.popleft(), 4)
        pool.close()
        return True

    def _serve_in_process(self, request: Any, client_address: Any) -> None:
        BaseServer.process_request(self, request, client_address)  # type: ignore[arg-type]

    # -- drain and close ---------------------------------------------------

    def drain(self, timeout: float) -> DrainReport:
        """Stop accepting, let the workers finish their current and queued
        requests for up to *timeout* seconds, then end the workers still
        busy (SIGTERM, then SIGKILL after ``abort_grace``). See
        :mod:`sockserve.core.drain`."""
        return drain_server(self, timeout)

    def _drain_wait(self, seconds: float) -> None:
        pool = self._pool
        if pool is None:
            time.sleep(min(max(seconds, 0.0), 0.01))
            return
        select.select([pool.reports[0]], [], [], max(seconds, 0.0))
        self._read_events(pool)
        self._reap_workers(pool, respawn=False)
        self._send_parked(pool)

    def _abort_inflight(self, items: list[Any]) -> None:
        """drain(): end every worker (a queued request must not start after
        it was aborted): SIGTERM, then SIGKILL after abort_grace."""
        pool = self._pool
        for item in items:
            if not isinstance(item, int):
                abort_socket(item)  # a parked connection
        if pool is None:
            return
        self._send_parked(pool)  # closes the parked ones just cut off
        grace = float(getattr(self, "abort_grace", 1.0))
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            for pid in pool.pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            until = time.monotonic() + wait
            while pool.pids and time.monotonic() < until:
                self._drain_wait(0.02)
            if not pool.pids:
                break
        self._finish_workers(wait=False)

    def server_close(self) -> None:
        """Stop serving if a loop still runs, close the listening socket,
        then let the workers finish (waiting for them if block_on_close)."""
        server: Any = self
        if server._loop_running() and not server._request_stop():
            server._BaseServer__is_shut_down.wait()
        super().server_close()  # type: ignore[misc]
        self._finish_workers(wait=self.block_on_close)

    # -- a worker ------------------------------------------------------------

    def _worker_main(self, pool: _Pool) -> None:
        """A worker's whole life: take connections from the channel and serve
        them until told to stop, then ``os._exit``. Never returns."""
        server: Any = self
        status = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(pool.reports[0])
            os.close(pool.stop[1])
            keep = {pool.worker_end.fileno()}
            if server._wakeup is not None:
                keep.add(server._wakeup[1].fileno())
            _blank_inherited_sockets(keep)
            own_std_streams()
            channel = pool.worker_end
            report = pool.reports[1]
            stop = pool.stop[0]
            with selectors.DefaultSelector() as selector:
                selector.register(channel, selectors.EVENT_READ)
                selector.register(stop, selectors.EVENT_READ)
                stopping = False
                while True:
                    try:
                        message, fds = _receive(channel)
                    except (BlockingIOError, InterruptedError):
                        if stopping:
                            break  # told to stop, and nothing is queued
                        for key, _ in selector.select():
                            if key.fileobj == stop:
                                stopping = True
                        continue
                    if not fds:
                        break  # the channel closed
                    self._serve_message(message, fds, report)
            status = 0
        finally:
            flush_std_streams()
            os._exit(status)

    def _serve_message(self, message: bytes, fds: list[int], report: int) -> None:
        server: Any = self
        for extra in fds[1:]:
            os.close(extra)
        key, accepted = _HEADER.unpack_from(message)
        client_address = _decode_address(message[_HEADER.size:])
        request = socket.socket(server.address_family, server.socket_type, 0, fds[0])
        pid = os.getpid()
        limit = server.request_timeout
        began = _monotonic()
        if limit is not None and began - accepted > limit:
            os.write(report, _EVENT.pack(pid, _FINISHED, key, 3, began, began))
            self._quietly(server.shutdown_request, request)
            return
        os.write(report, _EVENT.pack(pid, _STARTED, key, 0, began, 0.0))
        outcome = 0
        try:
            if limit is not None:
                arm_alarm(accepted + limit - began, None, float(getattr(server, "abort_grace", 1.0)))
            try:
                server.finish_request(request, client_address)
            except Exception as exc:
                outcome = outcome_of(exc)
                server.handle_error(request, client_address)
            except BaseException as exc:
                outcome = 1
                report_escape(server, client_address, exc)
            finally:
                if limit is not None:
                    disarm_alarm()
        except RequestTimeout:
            outcome = 3  # the alarm went off between the handler and disarming it
        finally:
            ended = _monotonic()
            self._quietly(server.shutdown_request, request)
            os.write(report, _EVENT.pack(pid, _FINISHED, key, outcome, began, ended))

    @staticmethod
    def _quietly(call: Any, *args: Any) -> None:
        try:
            call(*args)
        except Exception:
            pass

