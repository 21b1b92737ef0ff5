"""When things go wrong between a client and a server: each made to happen on loopback, and measured.

The lesson "When things go wrong" calls these; each builds one situation
with real sockets on ``127.0.0.1``, bounded in time (a few seconds at most),
cleans up, and returns plain data (named tuples and lists, no sockets):

* :func:`client_mishaps`: a client that resets (``SO_LINGER`` 0), one that
  closes with a reply unread, one that leaves before the reply: what the
  handler's read or write raises (ECONNRESET, EPIPE) and which call raised it.
* :func:`slow_client`: a silent or dripping client holding a plain server,
  and how long the next client waits, with ``StreamRequestHandler.timeout``
  and ``request_timeout`` (where the server class has it).
* :func:`slow_crowd`: many slow clients against a server class (threading,
  thread pool): when a quick client is answered, and how many threads ran.
* :func:`zombies`: a forking server's ended children before and after
  ``collect_children()``, read from ``/proc/PID/stat``.
* :func:`exchange_times`: request/reply round trips against a handler that
  writes its reply in two pieces, with and without Nagle's algorithm.
* :func:`half_close`: ``shutdown(SHUT_WR)`` versus ``close()`` for a client
  of a server that reads to end of file, and for a server whose handler
  leaves a second descriptor of the connection open.
* :func:`process_state`: the state letter of a process (``Z`` for a zombie).

Timings are returned as numbers for the learner to see; a lesson prints
them in cells whose output is not compared, and prints the facts computed
from them (who waited longer than what) as sentences.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import statistics
import struct
import threading
import time
from typing import Any, NamedTuple

from ..core.combined import ForkingTCPServer, ThreadingTCPServer
from ..core.handlers import StreamRequestHandler
from ..core.servers import TCPServer
from .helpers import background

__all__ = [
    "Seen",
    "client_mishaps",
    "SlowClientRun",
    "slow_client",
    "CrowdRun",
    "slow_crowd",
    "ZombieRun",
    "zombies",
    "process_state",
    "exchange_times",
    "HalfCloseRun",
    "half_close",
    "ReadToEof",
    "NO_EOF_REPLY",
    "reset",
]

HOST = "127.0.0.1"


def _quiet(cls: type) -> type:
    """A subclass of server class *cls* whose ``handle_error`` prints nothing: what the
    handler met is the lesson's to show."""
    return type(f"Quiet{cls.__name__}", (cls,), {"handle_error": lambda self, request, address: None})


def reset(sock: socket.socket) -> None:
    """Close *sock* with an RST instead of a FIN: ``SO_LINGER`` on, with a zero timeout."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- resets and broken pipes -------------------------------------------------------


class Seen(NamedTuple):
    """What one handler met: the client's deed, the call that failed and its exception."""

    client: str
    call: str
    exception: str
    errno_name: str
    message: str


class _Watched(StreamRequestHandler):
    """Greets, reads a line, then replies five times; records the first call that fails.

    Re-raises what it caught, so the server's ``handle_error`` sees it too.
    """

    def handle(self) -> None:
        server: Any = self.server
        call = "write(greeting)"
        try:
            self.wfile.write(b"hello\n")
            call = "readline()"
            line = self.rfile.readline()
            if not line:
                server.seen.append(("end of file", "readline()", "", 0, "read returned b''"))
                return
            time.sleep(0.1)  # the client is gone by now
            for number in range(1, 6):
                call = f"write #{number}"
                self.wfile.write(b"reply\n")
                time.sleep(0.02)
            server.seen.append(("no error", "", "", 0, "all five writes went through"))
        except OSError as exc:
            server.seen.append((call, call, type(exc).__name__, exc.errno or 0, exc.strerror or str(exc)))
            raise


def client_mishaps() -> list[Seen]:
    """Three clients misbehave against a ``ThreadingTCPServer``; what its handler met, one :class:`Seen` each.

    1. resets (``SO_LINGER`` 0, then ``close()``) while the handler waits in ``readline()``;
    2. closes normally but with the server's greeting still unread: the kernel resets instead of a FIN;
    3. sends its line and closes at once, reading the greeting first: the handler's first reply
       goes out (and is answered with a reset), a later one raises ``BrokenPipeError``.
    """
    deeds = ("reset (SO_LINGER 0) while the server reads",
             "closed with the server's greeting unread",
             "sent its line, read the greeting, closed before the reply")
    results: list[Seen] = []
    server: Any = _quiet(ThreadingTCPServer)((HOST, 0), _Watched)
    server.seen = []
    with background(server, 0.05):
        for number, deed in enumerate(deeds):
            before = len(server.seen)
            client = socket.create_connection(server.server_address, timeout=5)
            if number == 0:
                client.recv(16)
                time.sleep(0.05)  # the handler is in readline() now
                reset(client)
            elif number == 1:
                time.sleep(0.05)  # the greeting has arrived, unread
                client.close()
            else:
                client.recv(16)
                client.sendall(b"request\n")
                client.close()
            deadline = time.monotonic() + 3
            while len(server.seen) == before and time.monotonic() < deadline:
                time.sleep(0.01)
            if len(server.seen) > before:
                call, _, name, code, text = server.seen[before]
                results.append(Seen(deed, call, name, errno.errorcode.get(code, ""), text))
    return results


# -- slow clients ---------------------------------------------------------------------


class _Echo(StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class SlowClientRun(NamedTuple):
    """One slow client against a plain server, then a quick one."""

    how: str  # "silent" or "dripping"
    held: float  # seconds the slow client kept going (if not cut off)
    quick_waited: float  # seconds from the quick client's connect to its reply
    slow_cut_after: float | None  # when the server closed the slow client, if it did


def slow_client(how: str = "silent", hold: float = 1.0, timeout: float | None = None,
                request_timeout: float | None = None) -> SlowClientRun:
    """A *how* ("silent": sends nothing; "dripping": one byte every 0.05 s, never a newline)
    client holds a plain ``TCPServer`` (echo handler) for *hold* seconds, while a quick
    client asks for one line. *timeout* is the handler's ``timeout`` (idle, per read);
    *request_timeout* the server's (total), when the server class has it."""
    if how not in ("silent", "dripping"):
        raise ValueError(f"how is 'silent' or 'dripping', not {how!r}")
    handler = type("Echo", (_Echo,), {"timeout": timeout})
    attrs: dict[str, Any] = {"handle_error": lambda self, request, address: None}
    if request_timeout is not None:
        attrs["request_timeout"] = request_timeout
    server: Any = type("Plain", (TCPServer,), attrs)((HOST, 0), handler)
    cut: list[float] = []
    with background(server, 0.05):
        slow = socket.create_connection(server.server_address, timeout=5)
        began = time.monotonic()
        stop = threading.Event()

        def keep_going() -> None:
            with contextlib.suppress(OSError):
                while not stop.wait(0.05) and time.monotonic() - began < hold:
                    if how == "dripping":
                        slow.sendall(b".")
            with contextlib.suppress(OSError):
                slow.shutdown(socket.SHUT_WR)

        def watch_for_close() -> None:
            with contextlib.suppress(OSError):
                while slow.recv(1024):
                    pass
                cut.append(time.monotonic() - began)

        threads = [threading.Thread(target=keep_going, daemon=True),
                   threading.Thread(target=watch_for_close, daemon=True)]
        for thread in threads:
            thread.start()
        time.sleep(0.05)
        asked = time.monotonic()
        with socket.create_connection(server.server_address, timeout=hold + 5) as quick:
            quick.sendall(b"quick\n")
            quick.recv(64)
        waited = time.monotonic() - asked
        stop.set()
        for thread in threads:
            thread.join(hold + 5)
        slow.close()
    slow_cut = cut[0] if cut and cut[0] < hold - 0.02 else None
    return SlowClientRun(how, hold, waited, slow_cut)


class CrowdRun(NamedTuple):
    """Many slow clients, then a quick one, against one server class."""

    server: str
    slow_clients: int
    hold: float
    quick_waited: float
    peak_active: int  # the most requests in handlers at once


class _HoldThenEcho(StreamRequestHandler):
    """Echoes lines; a client that sends ``slow`` first is held by the server's pace."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


def slow_crowd(server_class: type, slow_clients: int = 8, hold: float = 0.5, **attrs: Any) -> CrowdRun:
    """*slow_clients* clients connect and stay silent for *hold* seconds, then a quick
    client asks for one line; *attrs* become class attributes of the server
    (``pool_size=4``, ``request_timeout=0.2``). Returns when the quick client
    was answered and the most requests that were in handlers at once."""
    namespace = {"handle_error": lambda self, request, address: None, **attrs}
    server: Any = type(server_class.__name__, (server_class,), namespace)((HOST, 0), _HoldThenEcho)
    socks: list[socket.socket] = []
    with background(server, 0.05):
        try:
            for _ in range(slow_clients):
                socks.append(socket.create_connection(server.server_address, timeout=5))
            deadline = time.monotonic() + 2
            while server.stats.snapshot()["accepted"] < slow_clients and time.monotonic() < deadline:
                time.sleep(0.01)
            began = time.monotonic()
            def close_all() -> None:
                for sock in socks:
                    sock.close()

            closer = threading.Timer(hold, close_all)
            closer.start()
            with socket.create_connection(server.server_address, timeout=hold + 5) as quick:
                quick.sendall(b"quick\n")
                quick.recv(64)
            waited = time.monotonic() - began
            closer.join(hold + 5)
            peak = int(server.stats.snapshot()["peak_active"])
        finally:
            for sock in socks:
                sock.close()
    return CrowdRun(server_class.__name__, slow_clients, hold, waited, peak)


# -- zombies ------------------------------------------------------------------------------


def process_state(pid: int) -> str:
    """The state letter of process *pid* from ``/proc/PID/stat`` (``R``, ``S``, ``Z``, ...);
    ``""`` when there is no such process (or no ``/proc``).

    The second field is the command name in parentheses, which may itself hold
    spaces and parentheses, so the state is the first field after the *last* ``)``.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return ""
    return text.rsplit(")", 1)[1].split()[0]


class ZombieRun(NamedTuple):
    """A forking server's children: their states before and after ``collect_children()``."""

    children: int
    before: list[str]  # state letters of the children, before collect_children()
    after: list[str]  # the same after ("" once reaped: no such process)
    active_before: int
    active_after: int


class _Reply(StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def zombies(children: int = 3) -> ZombieRun:
    """A ``ForkingTCPServer`` handles *children* requests, driven by hand (``get_request``,
    ``process_request``) so that no loop reaps them; each child replies and exits. Then
    ``collect_children()`` runs. Linux only (reads ``/proc``)."""
    server: Any = ForkingTCPServer((HOST, 0), _Reply)
    try:
        for _ in range(children):
            with socket.create_connection(server.server_address, timeout=5) as client:
                client.sendall(b"hi\n")
                request, address = server.get_request()
                server.process_request(request, address)
                client.recv(16)
        pids = sorted(server.active_children or ())
        deadline = time.monotonic() + 3
        while any(process_state(pid) not in ("Z", "") for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        before = [process_state(pid) for pid in pids]
        active_before = len(server.active_children or ())
        server.collect_children()
        after = [process_state(pid) for pid in pids]
        active_after = len(server.active_children or ())
    finally:
        server.server_close()
    return ZombieRun(children, before, after, active_before, active_after)


# -- Nagle and delayed ACKs ------------------------------------------------------------------


class _TwoPieces(StreamRequestHandler):
    """Answers each line with a header line and the line, in two writes."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(b"header\n")
            self.wfile.write(line)


def exchange_times(disable_nagle_algorithm: bool, exchanges: int = 20, handler: type | None = None) -> list[float]:
    """Seconds per request/reply exchange on one connection to a ``TCPServer`` whose
    handler answers each line in two small writes (or *handler*, which must answer
    each line with two lines), with *disable_nagle_algorithm* set on the handler."""
    base = handler or _TwoPieces
    cls = type(base.__name__, (base,), {"disable_nagle_algorithm": disable_nagle_algorithm})
    times: list[float] = []
    server: Any = TCPServer((HOST, 0), cls)
    with background(server, 0.05):
        with socket.create_connection(server.server_address, timeout=5) as client:
            reader = client.makefile("rb")
            try:
                for number in range(exchanges):
                    began = time.perf_counter()
                    client.sendall(b"line %d\n" % number)
                    reader.readline()
                    reader.readline()
                    times.append(time.perf_counter() - began)
            finally:
                reader.close()
    return times


def median_ms(times: list[float]) -> float:
    """The median of *times* (seconds), in milliseconds."""
    return statistics.median(times) * 1000


# -- half-close -------------------------------------------------------------------------------


#: What :class:`ReadToEof` replies when its client sends no end of file.
NO_EOF_REPLY = b"no end of file after 1 s\n"


class ReadToEof(StreamRequestHandler):
    """Reads everything until end of file (1 s at most, else replies
    :data:`NO_EOF_REPLY`), then replies with :meth:`report` of what it got."""

    timeout = 1.0

    def handle(self) -> None:
        try:
            data = self.rfile.read()
        except TimeoutError:
            self.wfile.write(NO_EOF_REPLY)
            return
        self.wfile.write(self.report(data))

    def report(self, data: bytes) -> bytes:
        """The reply to *data*: here, how many bytes it holds."""
        return b"%d bytes\n" % len(data)


class HalfCloseRun(NamedTuple):
    """What a client got back, depending on how it ended its side."""

    how: str
    reply: bytes
    note: str


def half_close() -> list[HalfCloseRun]:
    """Three clients send 1000 bytes to a server that reads to end of file, then replies:
    one calls ``shutdown(SHUT_WR)`` and reads, one calls ``close()``, one only waits."""
    runs: list[HalfCloseRun] = []
    server: Any = _quiet(ThreadingTCPServer)((HOST, 0), ReadToEof)
    with background(server, 0.05):
        for how in ("shutdown(SHUT_WR), then read", "close()", "neither: wait for the reply"):
            client = socket.create_connection(server.server_address, timeout=3)
            client.sendall(b"x" * 1000)
            reply, note = b"", ""
            try:
                if how.startswith("shutdown"):
                    client.shutdown(socket.SHUT_WR)
                if how == "close()":
                    client.close()
                    note = "the client can read nothing more: its socket is gone"
                else:
                    while chunk := client.recv(1024):
                        reply += chunk
            except OSError as exc:
                note = f"{type(exc).__name__}: {exc}"
            finally:
                client.close()
            runs.append(HalfCloseRun(how, reply, note))
    return runs


class _KeepsACopy(StreamRequestHandler):
    """Replies, and hands a duplicate of its connection to 'a logger' that keeps it a while."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())
        keeper: Any = self.server
        keeper.copies.append(self.connection.dup())


class _CloseOnly:
    """A server mixin whose shutdown_request only closes (no shutdown(SHUT_WR) first)."""

    def shutdown_request(self, request: Any) -> None:
        self.close_request(request)  # type: ignore[attr-defined]


def eof_seen(shutdown_first: bool, wait: float = 0.5) -> bool:
    """Does the client see end of file within *wait* seconds, when the handler left a
    duplicate of the connection open and the server's ``shutdown_request`` does
    (*shutdown_first*) or does not call ``shutdown(SHUT_WR)`` before closing?"""
    bases = (ThreadingTCPServer,) if shutdown_first else (_CloseOnly, ThreadingTCPServer)
    server: Any = type("Server", bases, {})((HOST, 0), _KeepsACopy)
    server.copies = []
    try:
        with background(server, 0.05):
            with socket.create_connection(server.server_address, timeout=wait) as client:
                client.sendall(b"hi\n")
                client.recv(16)
                try:
                    return client.recv(16) == b""
                except TimeoutError:
                    return False
    finally:
        for copy in server.copies:
            copy.close()
