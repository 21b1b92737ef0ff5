"""Run a serve loop written from scratch as if it were a sockserve server.

Lesson 08 has the learner write a server with nothing but the ``socket``
and ``selectors`` modules: a function ``loop(listener, server)`` that
accepts connections on *listener* and answers each request line with
``server.respond(line)``, until ``server.stopping``. :class:`ScratchServer`
gives such a loop the socketserver shape, so the comparison harness, the
load generator and the timeline treat it like any other server::

    server = ScratchServer(("127.0.0.1", 0), handler_for("io"), my_loop)
    threading.Thread(target=server.serve_forever).start()
    ...
    server.shutdown(); server.server_close()

and :func:`scratch_kind` registers the loop as a server kind
(``compare("io", servers=("plain", scratch_kind("mine", my_loop)))``) that
runs in this process (:mod:`sockserve.measure.localserver`).

What the loop gets:

``listener``
    the bound, listening socket, wrapped: ``accept()`` returns a connection
    wrapped the same way; both behave as sockets (``fileno``,
    ``setblocking``, ``recv``, ``sendall``, ``makefile``, ``close``, ``with``;
    ``selectors`` and ``select`` take them). The wrappers only note the
    time: a connection is a request (as in socketserver's stream servers),
    *accepted* when ``accept()`` returned it, *started* when the loop first
    read from it, *ended* when the loop closed it; counted in ``stats`` and
    recorded on ``stats.timeline`` when one is recorded.
``server``
    ``respond(line)`` (the workload's reply to one request line: the line
    itself, after waiting or computing for as long as it asks; blocking),
    ``stopping`` (True once ``shutdown()`` was called: the loop should
    return), ``poll_interval`` (seconds the loop may block in ``select``
    before it looks at ``stopping`` again).

Resource handling: connections the loop left open when it returns are
closed (and counted as aborted); ``server_close()`` closes the listener.
A loop that never looks at ``stopping`` cannot be stopped: ``shutdown()``
waits ``stop_timeout`` seconds for it, then raises ``TimeoutError`` saying
so.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..core.drain import DrainReport
from ..core.ledger import Ledger
from ..core.stats import Outcome, ServerStats

__all__ = ["ScratchServer", "ScratchConnection", "ScratchListener", "scratch_kind", "ScratchFactory",
           "ServeLoop"]

#: A serve loop written from scratch: ``loop(listener, server)``.
ServeLoop = Callable[[Any, Any], None]

_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class ScratchConnection:
    """An accepted socket that notes when it was first read and closed.

    Everything but ``recv``/``recv_into``/``makefile``/``send``/``sendall``/
    ``close`` goes straight to the socket."""

    def __init__(self, sock: socket.socket, server: ScratchServer, accepted: float) -> None:
        self._sock = sock
        self._server = server
        self.accepted = accepted
        self.started = 0.0
        self.outcome = Outcome.OK
        self.closed = False

    def _reading(self) -> None:
        if not self.started:
            self.started = time.monotonic()

    def recv(self, size: int, *flags: int) -> bytes:
        self._reading()
        try:
            return self._sock.recv(size, *flags)
        except _GONE:
            self.outcome = Outcome.DISCONNECT
            raise

    def recv_into(self, buffer: Any, *args: int) -> int:
        self._reading()
        return self._sock.recv_into(buffer, *args)

    def makefile(self, *args: Any, **kwargs: Any) -> Any:
        self._reading()
        return self._sock.makefile(*args, **kwargs)

    def send(self, data: Any, *flags: int) -> int:
        try:
            return self._sock.send(data, *flags)
        except _GONE:
            self.outcome = Outcome.DISCONNECT
            raise

    def sendall(self, data: Any, *flags: int) -> None:
        try:
            self._sock.sendall(data, *flags)
        except _GONE:
            self.outcome = Outcome.DISCONNECT
            raise

    def close(self) -> None:
        """Close the socket; the request ends here (once)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._sock.close()
        finally:
            self._server._ended(self)

    def __enter__(self) -> ScratchConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        return f"<ScratchConnection {self._sock!r}>"


class ScratchListener:
    """The listening socket, whose ``accept()`` returns a
    :class:`ScratchConnection`. ``close()`` is left to the server."""

    def __init__(self, sock: socket.socket, server: ScratchServer) -> None:
        self._sock = sock
        self._server = server

    def accept(self) -> tuple[ScratchConnection, Any]:
        sock, address = self._sock.accept()
        return self._server._accepted(sock), address

    def close(self) -> None:
        """Does nothing: the server closes its listener in ``server_close()``."""

    def __enter__(self) -> ScratchListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        return f"<ScratchListener {self._sock.getsockname()!r}>"


class ScratchServer:
    """A serve loop from scratch with the socketserver shape.

    Callers use ``serve_forever(poll_interval)`` (runs the loop in this
    thread), ``shutdown()`` (from another thread), ``drain(timeout)``,
    ``server_close()`` (or ``with``), ``server_address``, ``stats``. The
    loop uses ``respond(line)``, ``stopping`` and ``poll_interval``.

    Class attributes: ``request_queue_size`` (the listen backlog),
    ``stop_timeout`` (seconds ``shutdown()`` waits for the loop to return).
    """

    request_queue_size: int = socket.SOMAXCONN
    stop_timeout: float = 5.0
    allow_reuse_address: bool = False

    def __init__(self, server_address: Any, RequestHandlerClass: Any, loop: ServeLoop) -> None:
        self.RequestHandlerClass = RequestHandlerClass
        self.loop = loop
        self.stats = ServerStats()
        self.poll_interval = 0.5
        # The handler class gives the workload; its respond() needs no
        # connection, so one instance made without __init__ answers lines.
        self._responder = object.__new__(RequestHandlerClass)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        # The connections open now, and where each one's start and end are
        # recorded, as in every sockserve server.
        self._ledger = Ledger(self.stats)
        self._aborted_on_return = 0
        self.socket = socket.socket(socket.AF_INET6 if ":" in str(server_address[0]) else socket.AF_INET,
                                    socket.SOCK_STREAM)
        try:
            if self.allow_reuse_address:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(server_address)
            self.socket.listen(self.request_queue_size)
        except BaseException:
            self.socket.close()
            raise
        self.server_address = self.socket.getsockname()
        self.listener = ScratchListener(self.socket, self)

    # -- what the loop uses ---------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True once ``shutdown()`` asked the loop to return."""
        return self._stop.is_set()

    def respond(self, line: bytes) -> bytes:
        """The workload's reply to one request line (blocks for io and cpu)."""
        return bytes(self._responder.respond(line))

    # -- running ----------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Run the loop in this thread until it returns (after ``shutdown()``)."""
        self.poll_interval = poll_interval
        self._stop.clear()
        self._done.clear()
        try:
            self.loop(self.listener, self)
        finally:
            left = self._ledger.items()
            self._aborted_on_return = len(left)
            for conn in left:  # the loop forgot them: cut off
                conn.outcome = Outcome.ABORTED
                conn.close()
            self._done.set()

    def shutdown(self) -> None:
        """Ask the loop to stop and wait until it returned."""
        self._stop.set()
        if not self._done.wait(self.stop_timeout):
            raise TimeoutError(
                f"the serve loop did not return within {self.stop_timeout:g} s of shutdown(): "
                "it must look at server.stopping at least every server.poll_interval seconds "
                "(block in select() with that timeout, not in accept())")

    def drain(self, timeout: float) -> DrainReport:
        """Stop the loop (connections it still held are closed, counted as aborted)."""
        began = time.monotonic()
        open_before = len(self._ledger)
        self.shutdown()
        aborted = self._aborted_on_return
        return DrainReport(completed=max(0, open_before - aborted), aborted=aborted,
                           waited=time.monotonic() - began)

    def server_close(self) -> None:
        self.socket.close()

    def __enter__(self) -> ScratchServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server_close()

    # -- bookkeeping (called by the wrappers) -------------------------------------

    def _accepted(self, sock: socket.socket) -> ScratchConnection:
        conn = ScratchConnection(sock, self, time.monotonic())
        self.stats.note_accepted()
        self._ledger.begin(id(conn), conn)
        return conn

    def _ended(self, conn: ScratchConnection) -> None:
        ended = time.monotonic()
        self._ledger.end(id(conn), conn.outcome, conn.started or ended, ended, conn.accepted)

    def __repr__(self) -> str:
        name = getattr(self.loop, "__name__", "loop")
        return f"<ScratchServer {name} {self.server_address!r}>"


class ScratchFactory:
    """A kind's factory: ``(address, handler) -> ScratchServer`` running *loop*.
    Runs in this process (``in_process``): the loop lives here."""

    in_process = True

    def __init__(self, loop: ServeLoop) -> None:
        self.loop = loop

    def __call__(self, address: Any, handler: type) -> ScratchServer:
        return ScratchServer(address, handler, self.loop)


def scratch_kind(name: str, loop: ServeLoop, concurrency: str = "plain") -> str:
    """Register *loop* as the server kind *name* (TCP; *concurrency* is how
    it serves: "plain" one at a time, "asyncio" for an event loop) and return
    the name, for :func:`sockserve.measure.experiment.compare`."""
    from ..measure.kinds import register_kind

    register_kind(name, None, transport="tcp", concurrency=concurrency, factory=ScratchFactory(loop),
                  description=f"{getattr(loop, '__name__', 'a loop')}: written from scratch ({concurrency})")
    return name
