"""The load generator's clients: one request out, one reply in, classified.

:class:`StreamClient` (TCP, Unix stream) and :class:`DatagramClient` (UDP,
Unix datagram) each make one exchange per ``exchange(payload, deadline)``
call and raise on failure; :func:`classify` names the outcome of the
exception (one of :data:`sockserve.load.OUTCOMES`). Every socket operation
is bounded by the request's deadline (a ``time.perf_counter()`` value).

Thread safety: a client belongs to one thread (one per simulated client).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import tempfile
import time
from typing import Any, Protocol

__all__ = ["Client", "StreamClient", "DatagramClient", "classify", "ClosedEarly", "BadReply", "MAX_REPLY"]

#: Longest reply line read before the reply counts as an error (the
#: workloads' own line bound).
MAX_REPLY = 64 * 1024


class ClosedEarly(ConnectionResetError):
    """The server closed the connection before a whole reply line came."""


class BadReply(Exception):
    """The reply was an ``ERR ...`` line or longer than MAX_REPLY."""


def classify(exc: BaseException) -> str:
    """The outcome name for an exception raised by an exchange."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, OSError) and exc.errno == errno.ENOTCONN:
        # The connection is gone before this call (the server reset it while
        # the client was still writing, seen under load): a reset too.
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "error"


def _left(deadline: float) -> float:
    """Seconds until *deadline*; TimeoutError once it has passed."""
    left = deadline - time.perf_counter()
    if left <= 0:
        raise TimeoutError("no reply within the request timeout")
    return left


class Client(Protocol):
    def exchange(self, payload: bytes, deadline: float) -> None: ...
    def close(self) -> None: ...


def _connect(sock: socket.socket, address: Any, deadline: float) -> None:
    """connect() within the deadline. A missing Unix socket file counts as
    refused; a full Unix listen backlog (EAGAIN) is waited out, as a blocking
    connect would."""
    pause = 0.001
    while True:
        sock.settimeout(_left(deadline))
        try:
            sock.connect(address)
            return
        except FileNotFoundError as exc:
            raise ConnectionRefusedError(exc.errno, f"no socket file at {address!r}") from None
        except BlockingIOError:
            time.sleep(min(pause, max(0.0, deadline - time.perf_counter())))
            pause = min(pause * 2, 0.05)


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO / SO_SNDTIMEO."""
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


def _closed_early(before_reply: bool) -> ClosedEarly:
    exc = ClosedEarly("the server closed the connection before replying")
    exc.before_reply = before_reply  # type: ignore[attr-defined]
    return exc


class StreamClient:
    """A TCP or Unix stream client: one request line out, one reply line in.

    ``persistent=False`` makes a connection per request and half-closes it
    after the request (the server sees EOF, as with socketserver's one-shot
    clients); ``persistent=True`` keeps it for the next request, and if a
    reused connection turns out to be closed by the server before any reply
    byte came, reconnects once and resends. ``trickle_s > 0`` sends the
    request one byte at a time with that pause between bytes.
    """

    def __init__(self, family: int, address: Any, persistent: bool, trickle_s: float) -> None:
        self.family = family
        self.address = address
        self.persistent = persistent
        self.trickle_s = trickle_s
        self.sock: socket.socket | None = None
        self.connections = 0

    def _open(self, deadline: float) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            if (self.persistent or self.trickle_s) and self.family in (socket.AF_INET, socket.AF_INET6):
                # Trickled bytes, and the small requests of a reused
                # connection, must leave at once, not wait for an ACK.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _connect(sock, self.address, deadline)
            # The generator's CPU per request limits the rates it can drive,
            # so each socket sets its timeout once. A one-request socket keeps
            # the connect's (Python's: a poll() before each call); a reused
            # one blocks, bounded by the kernel (SO_RCVTIMEO/SO_SNDTIMEO:
            # one request's timeout per send or receive), which costs no
            # extra system call per request.
            if self.persistent:
                sock.settimeout(None)
                bound = _timeval(max(deadline - time.perf_counter(), 0.001))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, bound)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, bound)
        except BaseException:
            sock.close()
            raise
        self.connections += 1
        return sock

    def exchange(self, payload: bytes, deadline: float) -> None:
        reused = self.sock is not None
        if self.sock is None:
            self.sock = self._open(deadline)
        try:
            self._send_and_read(self.sock, payload, deadline)
        except (ClosedEarly, ConnectionResetError, BrokenPipeError) as exc:
            self.close()
            if not (reused and getattr(exc, "before_reply", True)):
                raise
            self.sock = self._open(deadline)
            try:
                self._send_and_read(self.sock, payload, deadline)
            except BaseException:
                self.close()
                raise
        except BaseException:
            self.close()
            raise
        if not self.persistent:
            self.close()

    def _send_and_read(self, sock: socket.socket, payload: bytes, deadline: float) -> None:
        try:
            if self.trickle_s > 0:
                for i in range(len(payload)):
                    if i:
                        time.sleep(min(self.trickle_s, _left(deadline)))
                    sock.sendall(payload[i : i + 1])
            else:
                sock.sendall(payload)
            if not self.persistent:
                sock.shutdown(socket.SHUT_WR)
            reply = sock.recv(65536)
            while not reply.endswith(b"\n"):
                if not reply:
                    raise _closed_early(True)
                if b"\n" in reply:
                    break
                if len(reply) > MAX_REPLY:
                    raise BadReply(f"reply longer than {MAX_REPLY} bytes")
                _left(deadline)
                chunk = sock.recv(65536)
                if not chunk:
                    raise _closed_early(False)
                reply += chunk
        except BlockingIOError:  # SO_RCVTIMEO or SO_SNDTIMEO ran out
            raise TimeoutError("no reply within the request timeout") from None
        if time.perf_counter() > deadline:
            raise TimeoutError("no reply within the request timeout")
        if reply.startswith(b"ERR"):
            raise BadReply(reply.decode("ascii", "replace").strip())

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class DatagramClient:
    """A UDP or Unix datagram client: one socket per client, connected to the
    server (so a closed UDP port shows up as refused), each request one
    datagram and its reply awaited until the deadline. After any failure the
    socket is replaced, so a late reply cannot be taken for the next one.
    Unix datagram clients bind a path in *bind_dir*, removed on close.
    A datagram arrives whole, so there is nothing to trickle: the ``slow``
    workload sends its datagrams at once."""

    def __init__(self, family: int, address: Any, bind_dir: str | None) -> None:
        self.family = family
        self.address = address
        self.bind_dir = bind_dir
        self.sock: socket.socket | None = None
        self.path: str | None = None

    def _open(self, deadline: float) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            if self.bind_dir is not None:
                self.path = tempfile.mktemp(prefix="c", suffix=".sock", dir=self.bind_dir)
                sock.bind(self.path)
            _connect(sock, self.address, deadline)
        except BaseException:
            sock.close()
            self._unlink()
            raise
        return sock

    def exchange(self, payload: bytes, deadline: float) -> None:
        try:
            if self.sock is None:
                self.sock = self._open(deadline)
            sock = self.sock
            sock.settimeout(_left(deadline))
            sock.send(payload)
            sock.settimeout(_left(deadline))
            reply = sock.recv(65536)
        except BaseException:
            self.close()
            raise
        if reply.startswith(b"ERR"):
            raise BadReply(reply.decode("ascii", "replace").strip())

    def _unlink(self) -> None:
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._unlink()
