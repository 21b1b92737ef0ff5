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
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..workbook.fromscratch import ScratchServer
from ..measure.workloads import handler_for
from . import ExerciseFailed, exercise

__all__ = ["serving_loop"]

LESSON = "08-a-server-from-scratch"


def _require_function(answer: Any, what: str, *, coroutine: bool = False) -> Callable[..., Any]:
    if not callable(answer) or isinstance(answer, type):
        raise ExerciseFailed(f"expected {what}, a function; got {answer!r}")
    if coroutine and not inspect.iscoroutinefunction(answer):
        raise ExerciseFailed(
            f"{getattr(answer, '__name__', answer)} is a plain function; asyncio calls it for each "
            "connection and awaits what it returns, so it must be a coroutine function: `async def`")
    if not coroutine and inspect.iscoroutinefunction(answer):
        raise ExerciseFailed(
            f"{answer.__name__} is an `async def` coroutine function; this loop is plain blocking "
            "code, called once: write it with `def`")
    function: Callable[..., Any] = answer
    return function


@contextmanager
def serving_loop(loop: Callable[..., Any], workload: str = "echo") -> Iterator[ScratchServer]:
    """Serve *loop* (``loop(listener, server)``) in a
    :class:`~sockserve.workbook.fromscratch.ScratchServer` in a daemon thread, with a
    timeline recorded; stop it after the block. ``server.loop_error`` is what
    the loop raised (None), ``server.loop_returned`` whether it returned by
    itself."""
    server = ScratchServer(("127.0.0.1", 0), handler_for(workload), loop)
    server.stats.record_timeline(1000)
    server.loop_error = None  # type: ignore[attr-defined]
    server.stop_timeout = 2.0

    def run() -> None:
        try:
            server.serve_forever(0.05)
        except Exception as exc:
            server.loop_error = exc  # type: ignore[attr-defined]

    thread = threading.Thread(target=run, name="scratch loop under check", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._stop.set()
        thread.join(2.0)
        server.server_close()


def _loop_state(server: Any) -> str:
    error = server.loop_error
    if error is not None:
        return f" Your loop raised {type(error).__name__}: {error}."
    return ""


def _returned_early(name: str, server: Any) -> None:
    """Fail when the loop returned although nobody asked it to stop."""
    time.sleep(0.1)
    if server._done.is_set() and not server.stopping:
        if server.loop_error is not None:
            raise ExerciseFailed(f"your loop stopped serving:{_loop_state(server)}")
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


def _conversation(name: str, server: Any, lines: list[bytes], timeout: float = 1.5) -> None:
    """One client: each line answered by itself, then EOF once the client closes."""
    with _connect(server, timeout) as sock:
        for line in lines:
            sock.sendall(line)
            try:
                reply = _read_line(sock)
            except TimeoutError:
                raise ExerciseFailed(
                    f"sent {line!r} and waited {timeout:g} s without a reply line: the loop "
                    "accepted the client (the kernel did, at least) but never answered. Serving "
                    "a connection means reading its request lines and writing a reply to each "
                    "(finish_request -> the handler's handle()).",
                    fix="after listener.accept() gives you conn, read lines from it (for line in "
                    "conn.makefile('rb'), or recv and split at b'\\n') and "
                    "conn.sendall(server.respond(line)) for each." + _loop_state(server)) from None
            if reply != line:
                raise ExerciseFailed(
                    f"sent {line!r}, got back {reply!r}: reply with server.respond(line), which "
                    "for this workload is the line itself (newline included)." + _loop_state(server))
        sock.shutdown(socket.SHUT_WR)
        try:
            rest = sock.recv(4096)
        except TimeoutError:
            raise ExerciseFailed(
                f"after the client closed its side, the connection stayed open for {timeout:g} s: "
                "a server closes its side when the client is done (shutdown_request and "
                "close_request in BaseServer), or connections pile up until descriptors run out.",
                fix="when reading gives end of file (b'' from recv, or the makefile loop ends), close "
                "the connection: conn.close(), or serve it inside `with conn:`.") from None
        if rest:
            raise ExerciseFailed(f"unexpected bytes after the last reply: {rest!r}")


def _stops(name: str, server: Any) -> None:
    began = time.monotonic()
    try:
        server.shutdown()
    except TimeoutError:
        raise ExerciseFailed(
            "shutdown() asked your loop to stop, and it did not return within 2 s: a loop that "
            "blocks in accept() (or recv()) until a client comes can only look at the stop flag "
            "between clients. BaseServer.serve_forever waits in select() for at most "
            "poll_interval seconds, then checks whether it should stop.",
            fix="before accept(), wait with select.select([listener], [], [], server.poll_interval) "
            "(or a selector's select(timeout=server.poll_interval)) and go round the loop again, "
            "checking server.stopping, when nothing is ready.") from None
    if server.loop_error is not None:
        raise ExerciseFailed(f"your loop raised {type(server.loop_error).__name__} while stopping: "
                             f"{server.loop_error}")
    del began


@exercise(
    "scratch-blocking",
    lesson=LESSON,
    prompt="Write serve_blocking(listener, server): until server.stopping, wait up to "
    "server.poll_interval for a client, accept it, answer each request line with "
    "server.respond(line), and close the connection when the client is done.",
    stub="""\
def serve_blocking(listener, server):
    pass  # your code here
""",
    difficulty=2,
)
def check_blocking(loop: Any) -> str:
    name = "scratch-blocking"
    _require_function(loop, "serve_blocking(listener, server)")
    with serving_loop(loop) as server:
        _returned_early(name, server)
        _conversation(name, server, [b"hello\n", b"echo 2\n", b"bye\n"])
        _conversation(name, server, [b"second client\n"])
        _stops(name, server)
        spans = server.stats.timeline.spans() if server.stats.timeline else []
    if len(spans) < 2:
        raise ExerciseFailed(
            f"two clients were served, but only {len(spans)} connection(s) were closed by the "
            "server: close each connection when its client is done")
    return "two clients served one after the other, each closed at its end; stops within poll_interval"


#: Clients connected at once in the event-loop check.
CROWD = 12


def _crowd(name: str, server: Any, timeout: float = 1.5) -> None:
    """CROWD clients connect; the last to connect speaks first, and one
    sends its line in two pieces."""
    socks = [_connect(server, timeout) for _ in range(CROWD)]
    try:
        for i, sock in enumerate(reversed(socks)):
            line = f"client {CROWD - i}\n".encode()
            sock.sendall(line)
            try:
                reply = _read_line(sock)
            except TimeoutError:
                raise ExerciseFailed(
                    f"{CROWD} clients connected, then the last one sent a line first; it waited "
                    f"{timeout:g} s for a reply that never came. A blocking loop is stuck reading "
                    "the first client, which has not spoken yet. An event loop asks the kernel "
                    "which sockets are ready and only touches those.",
                    fix="register the listener with a selectors.DefaultSelector (EVENT_READ), and "
                    "loop over selector.select(timeout=server.poll_interval): the listener ready "
                    "means accept() (then conn.setblocking(False) and register conn too); a "
                    "connection ready means one conn.recv() (b'' means the client closed: "
                    "unregister and close it)." + _loop_state(server)) from None
            if reply != line:
                raise ExerciseFailed(f"client {CROWD - i} sent {line!r} and got {reply!r}" + _loop_state(server))
        first = socks[0]
        first.sendall(b"in two ")
        time.sleep(0.05)
        first.sendall(b"pieces\n")
        try:
            reply = _read_line(first)
        except TimeoutError:
            reply = b""
        if reply != b"in two pieces\n":
            raise ExerciseFailed(
                f"a client sent b'in two ' and, 50 ms later, b'pieces\\n'; it got back {reply!r}. "
                "TCP delivers bytes, not messages: one recv() may hold half a line, or two lines.",
                fix="keep a buffer per connection (the data= of selector.register is a good place): "
                "add what recv() returns, and answer each complete line (up to b'\\n') that is "
                "in it, keeping the rest for later.")
        for sock in socks:
            sock.shutdown(socket.SHUT_WR)
        for sock in socks:
            try:
                rest = sock.recv(4096)
            except TimeoutError:
                raise ExerciseFailed(
                    "after the clients closed their side, a connection stayed open: when recv() "
                    "returns b'' the client is done (close_request in BaseServer).",
                    fix="when conn.recv() returns b'', selector.unregister(conn) and conn.close().") from None
            if rest:
                raise ExerciseFailed(f"unexpected bytes after the last reply: {rest!r}")
    finally:
        for sock in socks:
            sock.close()


@exercise(
    "scratch-selectors",
    lesson=LESSON,
    prompt="Write serve_selectors(listener, server): one thread serves many clients at once "
    "with a selectors.DefaultSelector, answering each complete request line with "
    "server.respond(line), closing each connection when its client is done, and returning "
    "once server.stopping.",
    stub="""\
def serve_selectors(listener, server):
    pass  # your code here
""",
    difficulty=3,
)
def check_selectors(loop: Any) -> str:
    name = "scratch-selectors"
    _require_function(loop, "serve_selectors(listener, server)")
    with serving_loop(loop) as server:
        _returned_early(name, server)
        _crowd(name, server)
        deadline = time.monotonic() + 1.0
        while server.stats.timeline is not None and len(server.stats.timeline) < CROWD:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        _stops(name, server)
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


def _run_asyncio(handler: Callable[..., Any], talk: Callable[[Any], None], timeout: float = 5.0) -> None:
    """Serve *handler* with asyncio.start_server in a thread; call talk(address)."""
    ready = threading.Event()
    box: dict[str, Any] = {}
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
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="scratch asyncio under check", daemon=True)
    thread.start()
    ready.wait(timeout)
    if "address" not in box:
        raise ExerciseFailed(f"the asyncio server did not start: {box.get('error')!r}")
    try:
        talk(box["address"])
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(timeout)


@exercise(
    "scratch-asyncio",
    lesson=LESSON,
    prompt="Write the coroutine echo_lines(reader, writer) that asyncio.start_server runs for "
    "each connection: answer each line with the line itself until the client closes, then "
    "close the writer.",
    stub="""\
async def echo_lines(reader, writer):
    pass  # your code here
""",
    difficulty=2,
)
def check_asyncio(handler: Any) -> str:
    name = "scratch-asyncio"
    _require_function(handler, "echo_lines(reader, writer)", coroutine=True)

    def talk(address: Any) -> None:
        socks = [socket.create_connection(address, timeout=1.0) for _ in range(CROWD)]
        try:
            for i, sock in enumerate(reversed(socks)):
                line = f"coroutine {CROWD - i}\n".encode()
                sock.sendall(line)
                try:
                    reply = _read_line(sock)
                except TimeoutError:
                    raise ExerciseFailed(
                        f"{CROWD} clients connected; the last one sent {line!r} and got no reply "
                        "within 1 s. asyncio runs your coroutine once per connection; it must "
                        "read lines until the client closes, and write each back.",
                        fix="loop: `line = await reader.readline()`; stop when it is b''; else "
                        "writer.write(line) and `await writer.drain()`.") from None
                if not reply:
                    raise ExerciseFailed(
                        f"{CROWD} clients connected; the last one sent {line!r} and the connection "
                        "closed without a reply: your coroutine ended before it answered.",
                        fix="loop: `line = await reader.readline()`; stop when it is b''; else "
                        "writer.write(line) and `await writer.drain()`.")
                if reply != line:
                    raise ExerciseFailed(f"sent {line!r}, got back {reply!r}: write the line itself back")
            for sock in socks:
                sock.shutdown(socket.SHUT_WR)
            for sock in socks:
                try:
                    rest = sock.recv(4096)
                except TimeoutError:
                    raise ExerciseFailed(
                        "after the clients closed their side, a connection stayed open: when "
                        "readline() returns b'' the client is done.",
                        fix="end the coroutine with writer.close() (in a finally: block, so it "
                        "runs whatever happens).") from None
                if rest:
                    raise ExerciseFailed(f"unexpected bytes after the last reply: {rest!r}")
        finally:
            for sock in socks:
                sock.close()

    _run_asyncio(handler, talk)
    return f"{CROWD} connections served at once by coroutines on one event loop, each closed at its end"
