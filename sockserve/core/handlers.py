"""Request handlers: the objects that own the *data* of one request.

A server makes one handler per request (``finish_request`` calls
``RequestHandlerClass(request, client_address, server)``) and the handler's
constructor runs the whole conversation::

    __init__ -> setup() -> handle() -> finish()

``finish()`` runs even when ``handle()`` raises. Subclass one of the classes
below and override ``handle()``; override ``setup()``/``finish()`` only to
change how the streams are made and cleaned up, and call ``super()`` there.
"""

from __future__ import annotations

import io
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from .servers import BaseServer

__all__ = [
    "BaseRequestHandler",
    "StreamRequestHandler",
    "DatagramRequestHandler",
]


class BaseRequestHandler:
    """Base class of all request handlers.

    Attributes set before ``setup()`` runs: ``request`` (a connected socket for
    stream servers, ``(data, server_socket)`` for datagram servers),
    ``client_address`` and ``server``.

    Override: ``handle()`` (the service itself); ``setup()`` and ``finish()``
    for per-request preparation and cleanup. The constructor calls them in
    that order and calls ``finish()`` even if ``handle()`` raised; an
    exception from ``handle()`` then reaches the server's ``handle_error``.
    """

    def __init__(self, request: Any, client_address: Any, server: BaseServer) -> None:
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self) -> None:
        """Prepare for ``handle()``. Does nothing here."""

    def handle(self) -> None:
        """Serve the request. Does nothing here: override it."""

    def finish(self) -> None:
        """Clean up after ``handle()``. Does nothing here."""


class SocketWriter(io.BufferedIOBase):
    """A write-only binary stream that sends each ``write()`` at once.

    ``StreamRequestHandler`` uses it for ``wfile`` when ``wbufsize == 0``:
    every write goes out with ``sendall()``, so nothing waits in a buffer and
    a write interrupted by a signal is completed rather than cut short.
    """

    def __init__(self, sock: socket.socket) -> None:
        # io.BufferedIOBase.__init__ does nothing a writer needs: not called.
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        if type(data) is bytes:
            return len(data)  # what the view below says, without making one
        with memoryview(data) as view:
            return view.nbytes

    def fileno(self) -> int:
        return self._sock.fileno()


_SocketIO = socket.SocketIO
_blocking_errnos = frozenset(getattr(socket, "_blocking_errnos", ()))


class SocketReader(socket.SocketIO):
    """The raw layer of ``rfile`` on a plain socket: a ``socket.SocketIO``
    opened "rb" (what ``makefile("rb")`` makes), whose ``readinto`` checks
    less while it is open and has not timed out.

    ``SocketIO.readinto`` asks, for every read, whether the object is
    closed and whether it is readable (a call of Python's ``readable()``,
    which asks ``closed`` again); for a reader that is open, neither can
    change. A closed reader has no socket (``SocketIO.close`` drops it):
    then, and after a timeout, the full checks run and raise as
    ``SocketIO``'s do."""

    _sock: socket.socket | None
    _timeout_occurred: bool

    def __init__(self, sock: socket.socket) -> None:
        _SocketIO.__init__(self, sock, "rb")

    def readinto(self, b: Any) -> int | None:
        sock = self._sock
        if sock is None or self._timeout_occurred:
            return _SocketIO.readinto(self, b)  # raises
        try:
            return sock.recv_into(b)
        except TimeoutError:
            self._timeout_occurred = True
            raise
        except OSError as exc:
            if exc.errno in _blocking_errnos:
                return None
            raise


def _reader(sock: socket.socket, size: int) -> Any:
    """``sock.makefile("rb", size)``, built directly for a plain socket (the
    same objects, without ``makefile``'s mode parsing: this runs for every
    connection); any other socket class is asked as usual."""
    if type(sock) is not socket.socket:
        return sock.makefile("rb", size)
    raw = SocketReader(sock)
    sock._io_refs += 1  # type: ignore[attr-defined]  # as makefile() does: close() waits for it
    if size == 0:
        return raw
    return io.BufferedReader(raw, size if size > 0 else io.DEFAULT_BUFFER_SIZE)


class StreamRequestHandler(BaseRequestHandler):
    """Handler for stream (TCP, Unix stream) servers, with file-like streams.

    In ``handle()`` read the client's bytes from ``self.rfile`` and write the
    reply to ``self.wfile``; ``self.connection`` is the socket itself.

    Class attributes that tune it:

    ``rbufsize`` (default -1)
        buffer size of ``rfile``; -1 means the io module's default.
    ``wbufsize`` (default 0)
        buffer size of ``wfile``; 0 means unbuffered: each ``write()`` is sent
        at once (see :class:`SocketWriter`).
    ``timeout`` (default None)
        seconds a read or write may block before ``TimeoutError``; None waits
        forever. Set it to protect a server from clients that never send.
    ``disable_nagle_algorithm`` (default False)
        set ``TCP_NODELAY`` so small replies are not held back.
    """

    rbufsize: int = -1
    wbufsize: int = 0
    timeout: float | None = None
    disable_nagle_algorithm: bool = False

    connection: socket.socket
    rfile: io.BufferedIOBase
    wfile: io.BufferedIOBase

    def setup(self) -> None:
        """Apply timeout and TCP_NODELAY, then make ``rfile`` and ``wfile``."""
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = _reader(self.connection, self.rbufsize)
        if self.wbufsize == 0:
            self.wfile = SocketWriter(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)  # type: ignore[assignment]

    def finish(self) -> None:
        """Flush what ``wfile`` still buffers, then close both streams."""
        wfile = self.wfile
        # (A SocketWriter holds nothing back: its flush() would do nothing.)
        if type(wfile) is not SocketWriter and not wfile.closed:
            try:
                wfile.flush()
            except OSError:
                # The client is gone; there is nobody left to flush to.
                pass
        wfile.close()
        self.rfile.close()


class DatagramRequestHandler(BaseRequestHandler):
    """Handler for datagram (UDP, Unix datagram) servers, with file-like streams.

    ``self.packet`` holds the datagram (at most the server's
    ``max_packet_size`` bytes: longer ones are cut), ``self.socket`` the
    server's socket. ``handle()`` reads from ``self.rfile`` and writes its
    reply to ``self.wfile``; ``finish()`` sends whatever was written back to
    the client in one datagram.
    """

    packet: bytes
    socket: socket.socket
    rfile: io.BytesIO
    wfile: io.BytesIO

    def setup(self) -> None:
        """Wrap the datagram in ``rfile`` and start an empty ``wfile``."""
        self.packet, self.socket = self.request
        self.rfile = io.BytesIO(self.packet)
        self.wfile = io.BytesIO()

    def finish(self) -> None:
        """Send the reply written to ``wfile`` back to the client."""
        self.socket.sendto(self.wfile.getvalue(), self.client_address)
