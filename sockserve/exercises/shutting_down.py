"""Checkers for lesson 06 (shutting down)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import StreamRequestHandler, TCPServer, ThreadingTCPServer
from ..core.drain import DrainReport
from . import ExerciseFailed, exercise
from .support import a_class, a_function, converse, handler_errors_note

LESSON = "06-shutting-down"


class _Slow(StreamRequestHandler):
    """Replies after a pause given by the server's ``pause`` attribute."""

    def handle(self) -> None:
        line = self.rfile.readline()
        server: Any = self.server
        server.daemon_flags.append(threading.current_thread().daemon)
        server.started.release()
        time.sleep(server.pause)
        self.wfile.write(line)
        server.finished.release()


def _server(cls: type, pause: float) -> Any:
    server: Any = cls(("127.0.0.1", 0), _Slow)
    server.pause = pause
    server.started = threading.Semaphore(0)
    server.finished = threading.Semaphore(0)
    server.daemon_flags = []
    return server


def _recording(cls: Any, calls: list[str]) -> Any:
    """A subclass of *cls* that notes in *calls* each call of shutdown() and server_close()."""

    def shutdown(self: Any) -> None:
        calls.append("shutdown")
        cls.shutdown(self)

    def server_close(self: Any) -> None:
        calls.append("server_close")
        cls.server_close(self)

    return type(f"Recording{cls.__name__}", (cls,), {"shutdown": shutdown, "server_close": server_close})


def _client(server: Any, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(server.server_address, timeout=timeout)
    sock.sendall(b"work\n")
    return sock


def _started(server: Any, count: int) -> None:
    for _ in range(count):
        if not server.started.acquire(timeout=5):
            raise RuntimeError("a request did not reach its handler within 5 s")


@exercise("shutdown-stop", lesson=LESSON, answer=a_function("stop(server, thread)"), difficulty=1)
def check_stop(stop: Callable[..., Any]) -> str:
    """Write stop(server, thread): stop the serve_forever loop running in thread, wait for it, and release the
    server's socket, letting the request in flight finish."""
    calls: list[str] = []
    server = _server(_recording(ThreadingTCPServer, calls), 0.3)
    loop_ended = threading.Event()

    def serve() -> None:
        server.serve_forever(0.05)
        loop_ended.set()
        # The thread lives on a while after the loop returned, as a thread
        # with more to do would (longer than server_close() waits for the
        # request in flight): only a join() waits for that.
        time.sleep(1.0)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = _client(server)
    try:
        _started(server, 1)
        stop(server, thread)
        running = thread.is_alive()
        closed = server.socket.fileno() == -1
        reply = client.recv(64)
    finally:
        client.close()
        if not loop_ended.is_set():
            ThreadingTCPServer.shutdown(server)
        thread.join(5)
        ThreadingTCPServer.server_close(server)
    if "shutdown" not in calls:
        raise ExerciseFailed(
            "stop() never asked the loop to stop" + (
                ": it closed the socket under the running loop. sockserve's loop gives up on a closed "
                "socket, but the standard library's keeps polling it, so on socketserver your stop() "
                "would never end the loop" if "server_close" in calls else
                ": serve_forever runs until another thread asks it to stop"),
            fix="call server.shutdown() first (it returns once the loop has ended), then thread.join(), "
            "then server.server_close()",
        )
    if calls.index("shutdown") > calls.index("server_close") if "server_close" in calls else False:
        raise ExerciseFailed(
            "stop() closed the socket before it asked the loop to stop: the loop was still using it",
            fix="call server.shutdown() before server.server_close()",
        )
    if running:
        raise ExerciseFailed(
            "after stop() returned, the thread that ran serve_forever was still alive: the loop "
            "had returned, but nothing waited for its thread to end",
            fix="after server.shutdown(), call thread.join()",
        )
    if not closed:
        raise ExerciseFailed(
            "the loop stopped, but the listening socket is still open, so the port stays taken: "
            "stopping the loop and releasing the socket are two steps",
            fix="call server.server_close() after shutdown()",
        )
    if reply != b"work\n":
        raise ExerciseFailed(
            f"the request in flight did not get its reply (got {reply!r}): its handler was "
            "still running in its thread when the server stopped",
            fix="let server_close() wait for handler threads (block_on_close, the default); do "
            "not close the connection yourself",
        )
    return "loop stopped, thread joined, socket closed, and the request in flight was answered"


@exercise("shutdown-quick-close", lesson=LESSON, difficulty=1,
          answer=a_class("QuickCloseServer", ThreadingTCPServer, note="one class attribute"))
def check_quick_close(server_class: type) -> str:
    """Write QuickCloseServer, a ThreadingTCPServer whose server_close() does not wait for handlers still
    running, and whose handler threads cannot keep the interpreter alive."""
    server = _server(server_class, 1.0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    client = _client(server)
    daemon = None
    try:
        _started(server, 1)
        daemon = all(server.daemon_flags)
        server.shutdown()
        thread.join(5)
        began = time.perf_counter()
        server.server_close()
        waited = time.perf_counter() - began
    finally:
        server.finished.acquire(timeout=5)  # leave nothing running behind us
        client.close()
    if waited > 0.5:
        raise ExerciseFailed(
            f"server_close() waited {waited:.1f} s for the handler still running: by default a "
            "threading server's close waits for every handler thread (section 3)",
            fix="make the handler threads daemon threads (class attribute daemon_threads = True): "
            "server_close() does not wait for those, and they cannot keep the interpreter alive either",
        )
    if not daemon:
        raise ExerciseFailed(
            "server_close() returned at once, but the handler thread is not a daemon thread, so it "
            "would keep the interpreter alive at exit (section 4)",
            fix="set the class attribute daemon_threads = True",
        )
    return "server_close() returned at once and handler threads are daemons"


@exercise("shutdown-drain", lesson=LESSON, answer=a_function("stop_within(server, seconds)"), difficulty=1)
def check_drain(stop_within: Callable[..., Any]) -> str:
    """Write stop_within(server, seconds) -> DrainReport: stop accepting, give requests in flight up to
    `seconds` to finish, cut off the rest, close the server, and return the drain's report."""
    class Mixed(StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            box: Any = self.server
            box.started.release()
            if line == b"stuck\n":
                # Waits for a line that never comes; bounded, so that an answer
                # that forgets to cut it off gets a verdict instead of a hang.
                self.connection.settimeout(4)
                self.rfile.readline()
            else:
                time.sleep(0.1)
            self.wfile.write(line)

    server: Any = ThreadingTCPServer(("127.0.0.1", 0), Mixed)
    server.started = threading.Semaphore(0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    clients = [socket.create_connection(server.server_address, timeout=5) for _ in range(3)]
    report: Any = None
    try:
        for sock, line in zip(clients, (b"quick\n", b"quick\n", b"stuck\n")):
            sock.sendall(line)
        _started(server, 3)
        began = time.perf_counter()
        report = stop_within(server, 0.5)
        took = time.perf_counter() - began
        thread.join(2)
        loop_ended = not thread.is_alive()
        closed = server.socket.fileno() == -1
    finally:
        if thread.is_alive():
            server.drain(0.1)
            thread.join(5)
        server.server_close()
        for sock in clients:
            sock.close()
    if report is None:
        raise ExerciseFailed(
            "stop_within returned None, but the caller wants to know how the stop went: how many "
            "requests completed and how many were cut off",
            fix="return the DrainReport that server.drain(seconds) gives (section 5)",
        )
    if not isinstance(report, DrainReport):
        raise ExerciseFailed(f"expected a DrainReport, got {report!r}",
                             fix="return what server.drain(seconds) returns")
    if (report.completed, report.aborted) != (2, 1):
        raise ExerciseFailed(
            f"two quick requests should complete and the stuck one be aborted; the report says "
            f"completed={report.completed}, aborted={report.aborted}",
            fix="call server.drain(seconds) once, with the seconds you were given",
        )
    if not loop_ended:
        raise ExerciseFailed("serve_forever was still running after stop_within returned",
                             fix="server.drain(seconds) stops the loop; call it")
    if not closed:
        raise ExerciseFailed(
            "the drain is right, but the listening socket is still open, so the port stays taken",
            fix="call server.server_close() after the drain",
        )
    if took > 3.0:
        raise ExerciseFailed(f"stop_within took {took:.1f} s although it was given 0.5 s",
                             fix="let drain(seconds) bound the wait; do not wait again yourself")
    return "2 requests completed, the stuck one aborted, server closed"


# -- a handler that stops its own server ------------------------------------------------------


@exercise("shutdown-stop-handler", lesson=LESSON, difficulty=2,
          answer=a_class("StopHandler", StreamRequestHandler, method="handle"))
def check_stop_handler(handler: type) -> str:
    """Write StopHandler (a StreamRequestHandler): it echoes every line, and on the line STOP it answers bye,
    stops its own server, and returns."""
    for cls in (TCPServer, ThreadingTCPServer):
        calls: list[str] = []
        recording = _recording(cls, calls)
        serving: list[int] = []
        in_loop: list[bool] = []

        def shutdown(self: Any, recording: Any = recording, in_loop: list[bool] = in_loop) -> None:
            # socketserver's shutdown() would wait here forever for the loop
            # this very thread runs; sockserve's returns, and the check judges.
            in_loop.append(threading.get_ident() in serving)
            recording.shutdown(self)

        server: Any = type(f"Checked{cls.__name__}", (recording,), {
            "shutdown": shutdown,
            "handle_error": lambda self, request, address: self.handler_errors.append(
                f"{type(sys.exc_info()[1]).__name__}: {sys.exc_info()[1]}"),
        })(("127.0.0.1", 0), handler)
        server.handler_errors = []

        def serve(server: Any = server, serving: list[int] = serving) -> None:
            serving.append(threading.get_ident())
            server.serve_forever(0.05)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            replies = converse(server, [b"hello\n", b"STOP\n"], expect_close=True)
            thread.join(2.0)
            still = thread.is_alive()
        finally:
            if thread.is_alive():
                cls.shutdown(server)
                thread.join(5.0)
            server.server_close()
        if replies[0] != b"hello\n":
            raise ExerciseFailed(
                f"the line b'hello\\n' got {replies[0]!r}, not its echo" + handler_errors_note(server),
                fix="write every line other than STOP back as it came",
            )
        if replies[1] != b"bye\n":
            raise ExerciseFailed(
                f"the line b'STOP\\n' got {replies[1]!r}" + handler_errors_note(server),
                fix="compare line.strip() == b'STOP' and write b'bye\\n'",
            )
        if "shutdown" not in calls:
            raise ExerciseFailed(
                f"with {cls.__name__}, the client got b'bye\\n' and the loop ended, but nothing asked it to "
                "stop: its socket was closed under it. sockserve's loop gives up on a closed socket; the "
                "standard library's keeps polling it and never ends",
                fix="ask the loop to stop with the server's shutdown(), from another thread: "
                "threading.Thread(target=self.server.shutdown).start()",
            )
        if any(in_loop):
            raise ExerciseFailed(
                f"with {cls.__name__}, your handler called shutdown() in the thread that runs serve_forever "
                "(a plain server runs its handlers there). shutdown() waits until serve_forever has "
                "returned, and serve_forever waits for the handler to return: on the standard library's "
                "socketserver that waits forever. sockserve lets it pass, but what you write here should "
                "work on both",
                fix="let another thread ask: threading.Thread(target=self.server.shutdown).start(), then "
                "return from handle()",
            )
        if still:
            raise ExerciseFailed(
                f"with {cls.__name__}, the client got b'bye\\n', but serve_forever was still "
                "running 2 s later: the handler can reach the server that created it"
                + handler_errors_note(server),
                fix="start a thread that calls self.server.shutdown() (threading.Thread(target=...).start()) "
                "before returning from handle()",
            )
    return ("echoes, says bye, and stops a TCPServer and a ThreadingTCPServer from inside a handler, "
            "without waiting for itself")
