"""An asyncio server for the same workloads: what a user might pick instead.

:class:`AsyncioServer` serves the workload protocol (``sockserve.measure.workloads``)
with ``asyncio.start_server`` (or ``start_unix_server``): one event loop, one
coroutine per connection, no threads or processes per request. It has the
socketserver shape, so the command line, the kinds table and
``ServerProcess`` drive it like any other server::

    server = AsyncioServer(("127.0.0.1", 0), handler_for("io"))  # bound now
    threading.Thread(target=server.serve_forever).start()
    ...
    server.shutdown(); server.server_close()

The handler class only says *which* workload to serve (its ``workload`` name
and ``default_ms``); the logic is re-implemented here with async reads:
``echo``/``slow`` reply at once, ``io`` awaits ``asyncio.sleep`` (other
connections go on meanwhile), ``cpu``/``mixed`` compute *on the loop*, which
blocks every other connection for that long. That last one is the lesson.

Statistics: one request is one connection, as in socketserver's stream
servers; ``stats.threads`` and ``stats.children`` stay 0. A timeline
(``stats.record_timeline``) gets one span per connection, all in the loop's
one thread, overlapping. ``drain(timeout)``
stops accepting, waits for open connections and then aborts the rest.

A Unix socket path is bound as the Unix servers bind it
(:func:`sockserve.core.socketfiles.bind_path`: stale files, ``socket_mode``,
concurrent starts), and ``server_close()`` removes the file only if it is
still the socket file this server created. asyncio itself is told not to
remove it (``cleanup_socket=False`` on Python 3.13+), so the file stays as
long as the listening socket does, whatever the event loop does.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from typing import Any

from ..core import socketfiles
from ..core.drain import DrainReport
from ..core.errors import bind_explained
from ..core.ledger import Ledger
from ..core.stats import Outcome, ServerStats, outcome_of
from ..load.protocol import LINE_TOO_LONG, MAX_LINE, parse_ms
from .workloads import burn_cpu

__all__ = ["AsyncioServer"]

_AF_UNIX = getattr(socket, "AF_UNIX", None)


class AsyncioServer:
    """A stream server (TCP, or Unix if the address is a path) on asyncio.

    Callers use: ``serve_forever(poll_interval)`` (runs the event loop in the
    calling thread), ``shutdown()`` (from another thread), ``drain(timeout)``,
    ``server_close()`` (or ``with``), ``server_address``, ``stats``.
    ``RequestHandlerClass`` is a workload handler from
    :func:`sockserve.measure.workloads.handler_for`.

    Class attributes that tune it: ``request_queue_size``, and for a Unix
    socket path ``replace_stale_socket`` and ``socket_mode``, as on
    :class:`sockserve.UnixStreamServer`.
    """

    request_queue_size: int = socket.SOMAXCONN
    replace_stale_socket: bool = False
    socket_mode: int | None = None
    #: SO_REUSEADDR before binding (as TCPServer's): a restart binds even
    #: while connections of the last run are in TIME_WAIT.
    allow_reuse_address: bool = False

    def __init__(self, server_address: Any, RequestHandlerClass: Any) -> None:
        self.RequestHandlerClass = RequestHandlerClass
        self.workload: str = getattr(RequestHandlerClass, "workload", "echo")
        self.default_ms: float = float(getattr(RequestHandlerClass, "default_ms", 0.0))
        self.iterations_per_ms: float | None = getattr(RequestHandlerClass, "iterations_per_ms", None)
        self.stats = ServerStats()
        # The connections open now (each task under its id), and where each
        # one's start and end are recorded, as in every sockserve server.
        self._ledger = Ledger(self.stats)
        unix = isinstance(server_address, (str, bytes, os.PathLike))
        family = _AF_UNIX if unix else socket.AF_INET
        if not unix and ":" in str(server_address[0]):
            family = socket.AF_INET6
        assert family is not None
        self.address_family = family
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket_path = os.fspath(server_address) if unix else None
        self._socket_file: socketfiles.SocketFile | None = None
        try:
            if unix:
                self._socket_file = socketfiles.bind_path(
                    self.socket, server_address,
                    replace_stale=self.replace_stale_socket, mode=self.socket_mode,
                )
            else:
                if self.allow_reuse_address:
                    self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                bind_explained(self.socket, server_address, family)
            self.socket.listen(self.request_queue_size)
        except BaseException:
            self.server_close()
            raise
        self.server_address = self.socket.getsockname()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._done = threading.Event()
        self._done.set()
        self._writers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._aborted: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None

    def fileno(self) -> int:
        return self.socket.fileno()

    # -- running --------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Run the event loop in this thread until ``shutdown()``.
        *poll_interval* is accepted for the socketserver shape; unused."""
        self._done.clear()
        try:
            asyncio.run(self._main())
        finally:
            self._loop = None
            self._done.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # A duplicate, so the loop closing its listener leaves ours open.
        sock = self.socket.dup()
        if self._socket_path:
            # The file is ours to remove, in server_close(), not the loop's.
            extra: dict[str, Any] = {"cleanup_socket": False} if sys.version_info >= (3, 13) else {}
            server = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_LINE, **extra)
        else:
            server = await asyncio.start_server(self._client, sock=sock, limit=MAX_LINE)
        self._server = server
        try:
            await self._stop.wait()
        finally:
            server.close()
            tasks = self._ledger.items()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _call(self, coro: Any) -> Any:
        loop = self._loop
        if loop is None:
            coro.close()
            return None
        try:
            return asyncio.run_coroutine_threadsafe(coro, loop).result()
        except RuntimeError:  # the loop closed meanwhile
            return None

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait until it returned. Open
        connections are cancelled (use ``drain`` to give them time)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # already closed
        self._done.wait()

    def drain(self, timeout: float) -> DrainReport:
        """Stop accepting, wait up to *timeout* for open connections, abort
        the rest, then stop the loop. See :mod:`sockserve.core.drain`."""
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        began = time.monotonic()
        counts = self._call(self._drain(timeout)) or (0, 0)
        self.shutdown()
        return DrainReport(completed=counts[0], aborted=counts[1], waited=time.monotonic() - began)

    async def _drain(self, timeout: float) -> tuple[int, int]:
        if self._server is not None:
            self._server.close()  # stop accepting; the backlog waits for server_close
        pending = set(self._ledger.items())
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
        else:
            late = set()
        for task in late:
            self._aborted.add(task)
            writer = self._writers.get(task)
            if writer is not None:
                writer.transport.abort()
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        return len(pending) - len(late), len(late)

    def server_close(self) -> None:
        """Close the listening socket and remove the Unix socket file it
        created, if that file is still there (nothing else is removed)."""
        self.socket.close()
        created, self._socket_file = self._socket_file, None
        socketfiles.release_path(self._socket_path, created)

    def __enter__(self) -> AsyncioServer:
        return self

    def __exit__(self, *args: object) -> None:
        self.server_close()

    # -- one connection ---------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._writers[task] = writer
        self.stats.note_accepted()
        key = id(task)
        self._ledger.begin(key, task)
        began = time.monotonic()
        error: BaseException | None = None
        try:
            await self._serve_lines(reader, writer)
        except asyncio.CancelledError as exc:
            error = exc
        except OSError as exc:  # CLIENT_GONE among them
            error = exc
        finally:
            self._writers.pop(task, None)
            if task in self._aborted or isinstance(error, asyncio.CancelledError):
                self._aborted.discard(task)
                outcome = Outcome.ABORTED
            else:
                outcome = outcome_of(error)
            # One connection, from its accept to its close, on the loop's thread.
            self._ledger.end(key, outcome, began)
            if outcome is Outcome.ABORTED:
                writer.transport.abort()
            else:
                writer.close()

    async def _serve_lines(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than MAX_LINE
                writer.write(LINE_TOO_LONG)
                await writer.drain()
                return
            if not line:
                return
            writer.write(await self._respond(line))
            await writer.drain()

    async def _respond(self, line: bytes) -> bytes:
        if self.workload in ("io", "cpu", "mixed"):
            try:
                ms = parse_ms(line, self.default_ms)
            except ValueError as exc:
                return f"ERR bad request: {exc}\n".encode("ascii", "backslashreplace")
            if self.workload == "io":
                await asyncio.sleep(ms / 1000.0)
            else:
                burn_cpu(ms, self.iterations_per_ms)  # on the loop: every other connection waits
        return line if line.endswith(b"\n") else line + b"\n"

    def __repr__(self) -> str:
        return f"<AsyncioServer {self.server_address!r} {self.workload}>"
