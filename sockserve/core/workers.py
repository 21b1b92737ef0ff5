"""A prefork server's pool: its worker processes, the channel that feeds
them and the reports they send back.

How a connection travels::

    parent (serve_forever)                       workers (forked once)
      get_request() -> accept                      recvmsg on the channel
      verify_request()                             -> the connection's descriptor
      process_request(): sendmsg(SCM_RIGHTS)  ==>  finish_request() -> handler
      close_request()  (the parent's copy)         shutdown_request()
      read the workers' reports  <== a pipe ====  report started / finished

The channel is a ``SOCK_SEQPACKET`` socket pair shared by all workers: each
message (the request's ticket, its accept time, the client's address, and the
connection's descriptor as ancillary data) goes to exactly one worker, the
first one free, so the channel is the pool's queue (a few hundred deep, the
kernel's limit). Each worker reports each request twice on a pipe, as it
starts (at once, as it takes the message) and as it ends, by the ticket
the parent gave it when it sent it (a number never used twice by a pool);
the parent records both in the server's ledger under the request's one key
(``id(request)``). A worker that dies while serving a request is replaced,
and that request's end recorded from how it died.

**No request is lost without a count.** A worker that takes a message whose
descriptor the kernel dropped (the worker is out of descriptors:
``MSG_CTRUNC``) reports that request as an error and exits (a new worker
replaces it). A request sent but never reported by any worker (its worker
was killed between taking it and reporting it) is found after a worker
died: off the channel and still unreported ``_LOST_AFTER`` seconds later,
it is counted as an error (:meth:`Pool.reconcile`), as is every request
still sent but unreported once all workers are gone; a report that comes
later for such a request is ignored (counted once).
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import signal
import socket
import stat
import struct
import termios
import time

from . import logs
from .errors import format_address
from .processes import (
    Parked,
    describe_status,
    flush_std_streams,
    outcome_of_status,
    own_std_streams,
    run_handler,
    wait_readable,
)
from .stats import Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Pool"]

_monotonic = time.monotonic
# A message on the channel: request ticket, accept time; then the client's
# address (see _encode_address) and, as ancillary data, the connection's descriptor.
_HEADER = struct.Struct("=Qd")
# A worker reports each event as (pid, event, ticket, outcome, began, ended) in
# one write of 30 bytes, far below PIPE_BUF, so reports never interleave.
_EVENT = struct.Struct("=iBQBdd")
_STARTED, _FINISHED = 0, 1
#: A request off the channel that no live worker has reported this long
#: after a worker died was lost with it (a live worker reports a request
#: a few microseconds after it takes it).
_LOST_AFTER = 0.5
_ANCILLARY = socket.CMSG_LEN(struct.calcsize("i"))
#: send errors that mean "the channel is full" (Linux says ETOOMANYREFS when
#: too many descriptors are in flight).
_FULL = (errno.ENOBUFS, errno.ETOOMANYREFS)


class Pool:
    """What one ``serve_forever`` of a prefork server holds: the channel,
    the report and stop pipes, its workers (``pids``), the requests sent to
    them (``queued``: ticket -> (key, request, accept time, client
    address), the parent's copy of the request kept until its end so the
    key stays unique; a ticket is never used twice, so a late report of a
    request counted already is known as such), which worker serves which
    (``busy``: pid -> (ticket, start time)) and the
    requests waiting for room on the channel (``parked``).

    Thread safety: the serving thread only (or a drain once the loop stopped).
    """

    def __init__(self, server: Any, keep: int | None) -> None:
        self.server = server
        self.keep = keep  # a descriptor workers keep open (the parent's wake-up socket)
        self.parent_end, self.worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.parent_end.setblocking(False)
        self.reports = os.pipe()
        os.set_blocking(self.reports[0], False)
        self.stop = os.pipe()
        self.busy: dict[int, tuple[int, float]] = {}
        self.queued: dict[int, tuple[int, Any, float, Any]] = {}
        self.tickets = 0  # the last ticket given
        self.parked = Parked(server, server.max_waiting)
        self.pids: set[int] = set()
        self.stopping = False
        self.suspect = False  # a worker died: a request it took may be lost
        self.unreported: dict[int, float] = {}  # ticket -> when first seen off the channel, unreported

    # -- the parent ------------------------------------------------------------

    def spawn(self) -> None:
        """Fork one worker."""
        pid = os.fork()
        if pid:
            self.pids.add(pid)
            self.server._count_children()
            return
        _worker_main(self.server, self)

    def send(self, key: int, request: Any, client_address: Any, accepted: float) -> bool:
        """Put one connection (in the ledger under *key*) on the channel;
        False if the channel is full."""
        ticket = self.tickets + 1
        payload = _HEADER.pack(ticket, accepted) + _encode_address(client_address)
        try:
            socket.send_fds(self.parent_end, [payload], [request.fileno()])
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in _FULL:
                return False
            raise
        self.tickets = ticket
        self.queued[ticket] = (key, request, accepted, client_address)
        return True

    def send_parked(self) -> None:
        """Move parked connections to the channel while it has room (closing
        those cut off or past their deadline)."""
        parked = self.parked
        if not parked:
            return
        entry = parked.next()
        while entry is not None and self.send(id(entry[0]), *entry):
            parked.popleft()
            self.server.close_request(entry[0])
            entry = parked.next()

    def read_events(self) -> None:
        """Record the workers' reports in the ledger."""
        ledger = self.server._ledger
        busy, queued = self.busy, self.queued
        size = _EVENT.size * 256
        while True:
            try:
                data = os.read(self.reports[0], size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed
            usable = len(data) - len(data) % _EVENT.size
            for pid, event, ticket, outcome, began, ended in _EVENT.iter_unpack(data[:usable]):
                if ticket not in queued:
                    continue  # counted already, as lost (see reconcile)
                if event == _STARTED:
                    busy[pid] = (ticket, began)
                    ledger.start()
                    continue
                serving = busy.get(pid)
                if serving is not None and serving[0] == ticket:
                    del busy[pid]
                else:
                    ledger.start()  # ended before it ran (its deadline passed)
                key, _request, accepted, _address = queued.pop(ticket)
                ledger.end(key, outcome, began, ended, accepted, pid)
            if len(data) < size:
                return

    def reap(self, respawn: bool, block: bool = False) -> None:
        """waitpid the workers; record the end of a request a dead worker
        held (logged with the cause); fork a replacement if *respawn*."""
        server = self.server
        for pid in list(self.pids):
            try:
                done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            except InterruptedError:
                continue
            if not done:
                continue
            self.read_events()  # its last report, if any, is in the pipe
            self.pids.discard(pid)
            self.suspect = True
            server._count_children()
            serving = self.busy.pop(pid, None)
            if serving is not None:
                ticket, began = serving
                key, _request, accepted, client_address = self.queued.pop(ticket)
                outcome = outcome_of_status(status)
                if key in server._ledger:  # a drain's abort is not news
                    logs.warning(
                        "%s: worker %d %s while handling the request from %s%s",
                        type(server).__name__, pid, describe_status(status),
                        format_address(client_address), "; a new worker replaces it" if respawn else "",
                    )
                server._ledger.end(key, outcome, began, None, accepted, pid)
            if respawn and not self.stopping:
                self.spawn()
        if self.suspect:
            self.reconcile()

    def reconcile(self) -> None:
        """After a worker died: a request sent, off the channel and not
        reported by any worker was taken by a worker that died before it
        could say so. With no worker left, every such request is lost; with
        workers left, one still unreported ``_LOST_AFTER`` seconds after it
        was first seen so (a live worker reports a request as it takes it).
        Each lost request is counted as an error; looked at again after each
        reap until none is in doubt."""
        if self.pids and _waiting_on(self.worker_end):
            return  # some are still on the channel: look again later
        self.read_events()
        serving = {ticket for ticket, _began in self.busy.values()}
        unreported = [ticket for ticket in self.queued if ticket not in serving]
        if self.pids:
            now = _monotonic()
            seen = self.unreported
            self.unreported = seen = {ticket: seen.get(ticket, now) for ticket in unreported}
            lost = [ticket for ticket, since in seen.items() if now - since >= _LOST_AFTER]
            for ticket in lost:
                del seen[ticket]
        else:
            lost, self.unreported = unreported, {}
        self.suspect = bool(self.unreported)
        if not lost:
            return
        server = self.server
        for ticket in lost:
            key, _request, accepted, client_address = self.queued.pop(ticket)
            if key in server._ledger:  # a drain's abort is not news
                logs.warning(
                    "%s: the request from %s was lost by a worker that ended before it reported it",
                    type(server).__name__, format_address(client_address),
                )
            server._ledger.drop(key, Outcome.ERROR, accepted)

    def finish(self, wait: bool) -> bool:
        """Read reports and reap the workers (all of them, if *wait*); True
        once none is left and the pool is closed (requests still parked
        then are closed unhandled and counted aborted)."""
        while True:
            self.read_events()
            self.reap(respawn=False)
            self.send_parked()
            if not self.pids or not wait:
                break
            wait_readable([self.reports[0]], 0.05)
        if self.pids:
            return False
        self.reconcile()  # sent, and no worker left to report them
        self.parked.drop_all()  # nobody is left to serve them
        self.close()
        return True

    def wait(self, seconds: float) -> None:
        """Wait up to *seconds* for a report, then read them and reap."""
        wait_readable([self.reports[0]], max(seconds, 0.0))
        self.read_events()
        self.reap(respawn=False)
        self.send_parked()

    def close(self) -> None:
        for sock in (self.parent_end, self.worker_end):
            sock.close()
        for fd in (*self.reports, *self.stop):
            try:
                os.close(fd)
            except OSError:
                pass


# -- a worker ----------------------------------------------------------------


def _worker_main(server: Any, pool: Pool) -> None:
    """A worker's whole life: take connections from the channel and serve
    them until told to stop, then ``os._exit``. Never returns."""
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.close(pool.reports[0])
        os.close(pool.stop[1])
        _blank_inherited_sockets({pool.worker_end.fileno()} | ({pool.keep} if pool.keep is not None else set()))
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
                    message, fds, truncated = _receive(channel)
                except (BlockingIOError, InterruptedError):
                    if stopping:
                        break  # told to stop, and nothing is queued
                    for key, _ in selector.select():
                        if key.fileobj == stop:
                            stopping = True
                    continue
                if len(message) < _HEADER.size:
                    break  # the channel closed
                if not fds or truncated:
                    # The kernel dropped the connection: this worker is out
                    # of descriptors. Count the request, and make way for a
                    # fresh worker.
                    for fd in fds:
                        os.close(fd)
                    now = _monotonic()
                    ticket = _HEADER.unpack_from(message)[0]
                    os.write(report, _EVENT.pack(os.getpid(), _FINISHED, ticket, Outcome.ERROR, now, now))
                    logs.warning(
                        "%s: worker %d could not take a connection (out of descriptors?); "
                        "it exits and a new worker replaces it", type(server).__name__, os.getpid(),
                    )
                    return  # (status 1)
                _serve_message(server, message, fds, report)
        status = 0
    finally:
        flush_std_streams()
        os._exit(status)


def _serve_message(server: Any, message: bytes, fds: list[int], report: int) -> None:
    """Serve one connection from the channel, reporting its start and end."""
    for extra in fds[1:]:
        os.close(extra)
    ticket, accepted = _HEADER.unpack_from(message)
    pid = os.getpid()
    began = _monotonic()
    os.write(report, _EVENT.pack(pid, _STARTED, ticket, 0, began, 0.0))  # first: see reconcile
    client_address = _decode_address(message[_HEADER.size:])
    request = socket.socket(server.address_family, server.socket_type, 0, fds[0])
    soft = server.request_timeout
    if soft is not None:
        soft += accepted - began  # what is left of it
        if soft < 0:
            os.write(report, _EVENT.pack(pid, _FINISHED, ticket, Outcome.TIMEOUT, began, began))
            _quietly(server.shutdown_request, request)
            return
    outcome = run_handler(server, request, client_address, soft, None)
    ended = _monotonic()
    _quietly(server.shutdown_request, request)
    os.write(report, _EVENT.pack(pid, _FINISHED, ticket, outcome, began, ended))


def _quietly(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except Exception:
        pass


def _waiting_on(channel: socket.socket) -> bool:
    """True if a message waits on the channel (``FIONREAD`` on a
    ``SOCK_SEQPACKET`` socket: the size of the first one)."""
    try:
        return bool(struct.unpack("i", fcntl.ioctl(channel.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0] > 0)
    except OSError:
        return True  # cannot tell: assume some wait


def _receive(channel: socket.socket) -> tuple[bytes, list[int], bool]:
    """One message from the channel, without waiting: (payload, fds,
    whether the kernel dropped descriptors: ``MSG_CTRUNC``).
    (``socket.recv_fds`` drops its *flags* argument on some versions.)"""
    message, ancillary, flags, _address = channel.recvmsg(4096, _ANCILLARY, socket.MSG_DONTWAIT)
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", data[:usable]))
    return message, fds, bool(flags & socket.MSG_CTRUNC)


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
