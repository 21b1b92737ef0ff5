"""Checkers for lesson 08 (a server from scratch): a blocking accept loop, a
``selectors`` event loop, an asyncio coroutine.

Each check runs the learner's code as a real server on 127.0.0.1 and talks
to it, and teaches in two steps (see :mod:`sockserve.exercises`): a failure
first says what the code did and which idea it misses; from the second
failure on, it also says what to change.
"""

from __future__ import annotations

import asyncio
import inspect
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..measure.workloads import handler_for
from ..workbook.fromscratch import ScratchListener, ScratchServer
from ..workbook.helpers import wait_for
from . import ExerciseFailed, exercise
from .support import a_function

__all__ = ["serving_loop"]

LESSON = "08-a-server-from-scratch"


def _require_blocking(loop: Callable[..., Any]) -> None:
    """A serve loop is plain blocking code: fail on a coroutine function."""
    if inspect.iscoroutinefunction(loop):
        raise ExerciseFailed(
            f"{loop.__name__} is an `async def` coroutine function; this loop is plain blocking "
            "code, called once",
            fix="write it with `def`; the loop blocks in select() and in the connection's reads")


class _WatchedListener(ScratchListener):
    """The listener, noting when the loop calls a blocking ``accept()`` with
    no client waiting: that loop cannot look at ``server.stopping`` until a
    client comes (``server.idle_accepts`` counts such calls). It also counts
    ``fileno()`` calls (``server.listener_polls``): ``select.select`` makes one
    each time it waits on the listener."""

    def fileno(self) -> int:
        server: Any = self._server
        server.listener_polls += 1
        sock: socket.socket = self._sock
        return sock.fileno()

    def accept(self) -> tuple[Any, Any]:
        sock: socket.socket = self._sock
        if sock.gettimeout() is None and not select.select([sock], [], [], 0)[0]:
            server: Any = self._server
            server.idle_accepts += 1
        return super().accept()


@contextmanager
def serving_loop(loop: Callable[..., Any], workload: str = "echo") -> Iterator[ScratchServer]:
    """Serve *loop* (``loop(listener, server)``) in a
    :class:`~sockserve.workbook.fromscratch.ScratchServer` in a daemon thread, with a
    timeline recorded; stop it after the block. ``server.loop_error`` is what
    the loop raised (None); ``server.responded`` every line the loop passed
    to ``respond()``; ``server.idle_accepts`` how often it blocked in
    ``accept()`` with no client waiting."""
    server: Any = ScratchServer(("127.0.0.1", 0), handler_for(workload), loop)
    server.stats.record_timeline(1000)
    server.loop_error = None
    server.stop_timeout = 2.0
    server.listener = _WatchedListener(server.socket, server)
    server.idle_accepts = 0
    server.listener_polls = 0
    server.responded = []
    respond = server.respond

    def recorded(line: bytes) -> bytes:
        server.responded.append(bytes(line))
        return bytes(respond(line))

    server.respond = recorded

    def run() -> None:
        try:
            server.serve_forever(0.05)
        except Exception as exc:
            server.loop_error = exc

    thread = threading.Thread(target=run, name="scratch loop under check", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._stop.set()
        thread.join(2.0)
        if thread.is_alive():
            # A loop blocked in accept() (a wrong answer) would stay there
            # for good: closing the socket does not wake it, shutting it
            # down does (accept() raises), and the thread ends.
            with suppress(OSError):
                server.socket.shutdown(socket.SHUT_RDWR)
            thread.join(2.0)
        server.server_close()


def _loop_state(server: Any) -> str:
    error = server.loop_error
    if error is not None:
        return f" Your loop raised {type(error).__name__}: {error}."
    return ""


_LOOP_RAISED_FIX = ("run your loop's body by hand on one connection to see the whole traceback, and fix the "
                    "line it names; a client that leaves (b'' or ConnectionResetError) must end only its own "
                    "connection, never the loop")


def _returned_early(server: Any) -> None:
    """Fail when the loop returned although nobody asked it to stop."""
    time.sleep(0.1)
    if server._done.is_set() and not server.stopping:
        if server.loop_error is not None:
            raise ExerciseFailed(f"your loop stopped serving:{_loop_state(server)}", fix=_LOOP_RAISED_FIX)
        raise ExerciseFailed(
            "your loop returned at once, so nothing accepts the clients: a server's loop "
            "(serve_forever in BaseServer) runs until it is asked to stop.",
            fix="wrap the work in `while not server.stopping:`; inside, wait for the listener to be "
            "readable (select with timeout server.poll_interval), then accept and serve.")


def _connect(server: Any, timeout: float) -> socket.socket:
    sock = socket.create_connection(server.server_address, timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


_WHOLE_LINES_FIX = ("keep what recv() returns in a buffer (a bytearray per connection), and call "
                    "server.respond() once per complete line in it, up to and including its b'\\n'; keep the "
                    "rest for the next recv()")


def _whole_lines(server: Any) -> None:
    """Fail when the loop passed respond() anything but one whole line."""
    for got in list(server.responded):
        if got.count(b"\n") != 1 or not got.endswith(b"\n"):
            raise ExerciseFailed(
                f"your loop called server.respond({got[:40]!r}): that is not one request line. TCP delivers "
                "a stream of bytes, not messages: one recv() may return half a line, or two lines.",
                fix=_WHOLE_LINES_FIX)


_SERVE_FIX = ("after listener.accept() gives you conn, read lines from it (for line in conn.makefile('rb'), or "
              "recv and split at b'\\n') and conn.sendall(server.respond(line)) for each.")


def _conversation(server: Any, pieces: list[bytes], replies: list[bytes], timeout: float = 1.5) -> None:
    """One client sends *pieces* (50 ms apart) and must get *replies*, then EOF once it closes."""
    with _connect(server, timeout) as sock, sock.makefile("rb") as reader:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.05)
        got: list[bytes] = []
        for want in replies:
            try:
                reply = reader.readline()
            except TimeoutError:
                raise ExerciseFailed(
                    f"sent {b''.join(pieces)!r} and waited {timeout:g} s for reply line {len(got) + 1}: the "
                    "loop accepted the client (the kernel did, at least) but never answered it. Serving a "
                    "connection means reading its request lines and writing a reply to each "
                    "(finish_request -> the handler's handle())." + _loop_state(server),
                    fix=_SERVE_FIX) from None
            got.append(reply)
            _whole_lines(server)
            if reply != want:
                raise ExerciseFailed(
                    f"sent {b''.join(pieces)!r}, got back {b''.join(got)!r}: each request line gets "
                    "server.respond(line) back, which for this workload is the line itself (newline "
                    "included)." + _loop_state(server),
                    fix="write exactly what server.respond(line) returns, with conn.sendall(), once per line")
        _closed_after_replies(
            [sock], ExerciseFailed(
                f"after the client closed its side, the connection stayed open for {timeout:g} s: "
                "a server closes its side when the client is done (shutdown_request and "
                "close_request in BaseServer), or connections pile up until descriptors run out.",
                fix="when reading gives end of file (b'' from recv, or the makefile loop ends), close "
                "the connection: conn.close(), or serve it inside `with conn:`."))


def _closed_after_replies(socks: list[socket.socket], still_open: ExerciseFailed, per: str = "request line") -> None:
    """Each client closes its side after its last reply; the server must then close
    each connection without another byte. *still_open* is the failure when one
    stays open (its recv timed out); a reply too many names *per* what one reply goes."""
    for sock in socks:
        sock.shutdown(socket.SHUT_WR)
    for sock in socks:
        try:
            rest = sock.recv(4096)
        except TimeoutError:
            raise still_open from None
        if rest:
            raise ExerciseFailed(f"unexpected bytes after the last reply: {rest!r}",
                                 fix=f"write one reply per {per}, and nothing else")


_BLOCKING_FIX = ("before accept(), wait with select.select([listener], [], [], server.poll_interval) (or a "
                 "selector's select(timeout=server.poll_interval)) and go round the loop again, checking "
                 "server.stopping, when nothing is ready.")
_BLOCKING_HINT = ("a loop that blocks in accept() (or recv()) until a client comes can only look at the stop "
                  "flag between clients. BaseServer.serve_forever waits in select() for at most "
                  "poll_interval seconds, then checks whether it should stop.")


def _stops(server: Any) -> None:
    # Before asking the loop to stop, wait until it is idle again: back in a
    # blocking accept() (the watched listener saw it: such a loop cannot stop
    # until a client comes), back in select() (it polls the listener), or
    # with a listener that cannot block. Judged from that, not from a race
    # between shutdown() and the loop's next look at server.stopping.
    polls = server.listener_polls
    wait_for(lambda: bool(server.idle_accepts or server.listener_polls > polls + 1
                          or server.socket.gettimeout() == 0.0 or server._done.is_set()), 3.0)
    if server.idle_accepts:
        raise ExerciseFailed(f"your loop waited in accept() with no client coming: {_BLOCKING_HINT}",
                             fix=_BLOCKING_FIX)
    try:
        server.shutdown()
    except TimeoutError:
        raise ExerciseFailed(
            f"shutdown() asked your loop to stop, and it did not return within 2 s: {_BLOCKING_HINT}",
            fix=_BLOCKING_FIX) from None
    if server.loop_error is not None:
        raise ExerciseFailed(f"your loop raised {type(server.loop_error).__name__} while stopping: "
                             f"{server.loop_error}", fix=_LOOP_RAISED_FIX)


@exercise("scratch-blocking", lesson=LESSON, answer=a_function("serve_blocking(listener, server)"), difficulty=2)
def check_blocking(loop: Callable[..., Any]) -> str:
    """Write serve_blocking(listener, server): until server.stopping, wait up to server.poll_interval for a
    client, accept it, answer each request line with server.respond(line), and close the connection when the
    client is done."""
    _require_blocking(loop)
    with serving_loop(loop) as server:
        _returned_early(server)
        _conversation(server, [b"hello\n"], [b"hello\n"])
        _conversation(server, [b"in two ", b"pieces\n", b"echo 2\nbye\n"],
                      [b"in two pieces\n", b"echo 2\n", b"bye\n"])
        _stops(server)
        spans = server.stats.timeline.spans() if server.stats.timeline else []
    if len(spans) < 2:
        raise ExerciseFailed(
            f"two clients were served, but only {len(spans)} connection(s) were closed by the "
            "server: close each connection when its client is done",
            fix="serve each connection inside `with conn:` (or call conn.close() when its client is done)")
    return "two clients served one after the other, each closed at its end; stops within poll_interval"


#: Clients connected at once in the event-loop check.
CROWD = 12


def _last_speaks_first(socks: list[socket.socket], label: str) -> Iterator[tuple[int, bytes, bytes | None]]:
    """Each of the connected *socks*, the last to connect first, sends the
    line ``<label> <its number>`` and reads one reply line (up to its
    socket's timeout); yields (number, line, reply), reply None when none
    came in time. A loop that serves one connection at a time is stuck on
    the first, which has not spoken yet."""
    for i, sock in enumerate(reversed(socks)):
        line = f"{label} {len(socks) - i}\n".encode()
        sock.sendall(line)
        try:
            reply: bytes | None = _read_line(sock)
        except TimeoutError:
            reply = None
        yield len(socks) - i, line, reply


def _crowd(server: Any, timeout: float = 1.5) -> None:
    """CROWD clients connect; the last to connect speaks first, and one
    sends its line in two pieces."""
    socks = [_connect(server, timeout) for _ in range(CROWD)]
    try:
        for number, line, reply in _last_speaks_first(socks, "client"):
            if reply is None:
                raise ExerciseFailed(
                    f"{CROWD} clients connected, then the last one sent a line first; it waited "
                    f"{timeout:g} s for a reply that never came. A blocking loop is stuck reading "
                    "the first client, which has not spoken yet. An event loop asks the kernel "
                    "which sockets are ready and only touches those.",
                    fix="register the listener with a selectors.DefaultSelector (EVENT_READ), and "
                    "loop over selector.select(timeout=server.poll_interval): the listener ready "
                    "means accept() (then conn.setblocking(False) and register conn too); a "
                    "connection ready means one conn.recv() (b'' means the client closed: "
                    "unregister and close it)." + _loop_state(server))
            _whole_lines(server)
            if reply != line:
                raise ExerciseFailed(f"client {number} sent {line!r} and got {reply!r}" + _loop_state(server),
                                     fix="write exactly what server.respond(line) returns, once per line, "
                                     "to the connection the line came from")
        first = socks[0]
        first.sendall(b"in two ")
        time.sleep(0.05)
        first.sendall(b"pieces\n")
        try:
            reply = _read_line(first)
        except TimeoutError:
            reply = b""
        _whole_lines(server)
        if reply != b"in two pieces\n":
            raise ExerciseFailed(
                f"a client sent b'in two ' and, 50 ms later, b'pieces\\n'; it got back {reply!r}. "
                "TCP delivers bytes, not messages: one recv() may hold half a line, or two lines.",
                fix="keep a buffer per connection (the data= of selector.register is a good place): "
                "add what recv() returns, and answer each complete line (up to b'\\n') that is "
                "in it, keeping the rest for later.")
        _closed_after_replies(
            socks, ExerciseFailed(
                "after the clients closed their side, a connection stayed open: when recv() "
                "returns b'' the client is done (close_request in BaseServer).",
                fix="when conn.recv() returns b'', selector.unregister(conn) and conn.close()."))
    finally:
        for sock in socks:
            sock.close()


@exercise("scratch-selectors", lesson=LESSON, answer=a_function("serve_selectors(listener, server)"), difficulty=3)
def check_selectors(loop: Callable[..., Any]) -> str:
    """Write serve_selectors(listener, server): one thread serves many clients at once with a
    selectors.DefaultSelector, answering each complete request line with server.respond(line), closing each
    connection when its client is done, and returning once server.stopping."""
    _require_blocking(loop)
    with serving_loop(loop) as server:
        _returned_early(server)
        _crowd(server)
        wait_for(lambda: server.stats.timeline is None or len(server.stats.timeline) >= CROWD, 1.0)
        _stops(server)
        timeline = server.stats.timeline
        spans = timeline.spans() if timeline is not None else []
    workers = {(span.pid, span.tid) for span in spans}
    if len(workers) > 1:
        raise ExerciseFailed(
            f"the {len(spans)} connections were closed by {len(workers)} different threads: that "
            "is ThreadingMixIn again. The point of an event loop is one thread that waits for "
            "whichever socket is ready.",
            fix="do not start threads: serve every connection from the loop itself, one recv() per "
            "ready socket per round.")
    overlapping = sum(1 for span in spans if span.accepted < min(s.ended for s in spans))
    return (f"{CROWD} clients served at once by one thread ({overlapping} connections open "
            "together), lines split across reads put together; stops within poll_interval")


def _run_asyncio(handler: Callable[..., Any], talk: Callable[[Any], None], timeout: float = 5.0) -> list[str]:
    """Serve *handler* with asyncio.start_server in a thread; call talk(address).
    Returns the blocking calls the event loop's thread made (``time.sleep``),
    which stop every other connection while they last."""
    ready = threading.Event()
    box: dict[str, Any] = {}
    blocking: list[str] = []

    def watch(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and arg is time.sleep:
            blocking.append("time.sleep()")
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handler(reader, writer)

    async def main() -> None:
        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        box["address"] = server.sockets[0].getsockname()[:2]
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        async with server:
            await stop.wait()
            for writer in writers:  # connections an answer left open
                writer.transport.abort()

    def run() -> None:
        sys.setprofile(watch)  # this thread only: the event loop's
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
            ready.set()
        finally:
            sys.setprofile(None)

    thread = threading.Thread(target=run, name="scratch asyncio under check", daemon=True)
    thread.start()
    ready.wait(timeout)
    if "address" not in box:
        raise ExerciseFailed(f"the asyncio server did not start: {box.get('error')!r}",
                             fix="run the cell that defines your coroutine again; if this repeats, restart "
                             "the kernel (Kernel > Restart)")
    try:
        talk(box["address"])
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(timeout)
    return blocking


@exercise("scratch-asyncio", lesson=LESSON, difficulty=2,
          answer=a_function("echo_lines(reader, writer)", coroutine=True))
def check_asyncio(handler: Callable[..., Any]) -> str:
    """Write the coroutine echo_lines(reader, writer) that asyncio.start_server runs for each connection: answer
    each line with the line itself until the client closes, then close the writer."""

    loop_fix = ("loop: `line = await reader.readline()`; stop when it is b''; else writer.write(line) and "
                "`await writer.drain()`.")

    def talk(address: Any) -> None:
        socks = [socket.create_connection(address, timeout=1.0) for _ in range(CROWD)]
        try:
            for round_ in ("coroutine", "again"):  # two lines each: answering one is not enough
                for _, line, reply in _last_speaks_first(socks, round_):
                    if reply is None:
                        raise ExerciseFailed(
                            f"{CROWD} clients connected; one sent {line!r} and got no reply within 1 s. "
                            "asyncio runs your coroutine once per connection; it must read lines until the "
                            "client closes, and write each back.", fix=loop_fix)
                    if not reply:
                        raise ExerciseFailed(
                            f"{CROWD} clients connected; one sent {line!r} and the connection closed "
                            "without a reply: your coroutine ended before it answered.", fix=loop_fix)
                    if reply != line:
                        raise ExerciseFailed(f"sent {line!r}, got back {reply!r}: the reply is the line itself",
                                             fix="writer.write(line) with the very bytes readline() returned")
            _closed_after_replies(
                socks, ExerciseFailed(
                    "after the clients closed their side, a connection stayed open: when "
                    "readline() returns b'' the client is done.",
                    fix="end the coroutine with writer.close() (in a finally: block, so it "
                    "runs whatever happens)."), per="line")
        finally:
            for sock in socks:
                sock.close()

    blocking = _run_asyncio(handler, talk)
    if blocking:
        raise ExerciseFailed(
            f"every line was answered, but your coroutine called {blocking[0]} on the event loop's thread: "
            "while it sleeps, the whole loop sleeps, and no other connection is served. A coroutine may "
            "only wait where it awaits.",
            fix="await asyncio.sleep(seconds) instead of time.sleep(seconds)")
    return (f"{CROWD} connections served at once by coroutines on one event loop, two lines each, each "
            "closed at its end, and nothing blocked the loop")
