"""Checkers for lesson 10 (the kernel's view).

Both run the learner's code against live sockets on loopback and read the
kernel's tables (:mod:`sockserve.kernel.view`); where those do not exist (not
Linux) they say so instead of guessing.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable
from typing import Any

from .. import StreamRequestHandler, TCPServer, ThreadingTCPServer
from ..kernel import view as kernelview
from ..workbook.helpers import wait_for
from . import ExerciseFailed, exercise
from .support import a_class, a_function

LESSON = "10-the-kernels-view"
HOST = "127.0.0.1"


def _need_kernel_view() -> None:
    if not kernelview.available():
        raise ExerciseFailed(kernelview.NOT_AVAILABLE + " This exercise reads them, so it needs Linux.",
                             fix="run this lesson on Linux (a Linux JupyterHub, Binder, or a Linux container)")


class _Clean(StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class _Forgets(StreamRequestHandler):
    """Replies, then waits for news to push and never notices that its client left.

    Every *every*-th connection is kept this way (until the server's
    ``release`` event is set); the others end as they should.
    """

    every = 1  # 0: never

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())
        server: Any = self.server
        with server.lock:
            server.seen += 1
            keep = self.every > 0 and server.seen % self.every == 0
        if keep:
            server.release.wait(10)


def _serve(handler: type) -> tuple[Any, threading.Thread]:
    server: Any = ThreadingTCPServer((HOST, 0), handler)
    server.seen = 0
    server.lock = threading.Lock()
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


@exercise("kernel-close-wait", lesson=LESSON, difficulty=2,
          answer=a_function("close_wait_count(server, clients=3)", prelude="import time\n\n\n\n"))
def check_close_wait(close_wait_count: Callable[..., Any]) -> str:
    """Write close_wait_count(server, clients=3) -> int: `server` is serving on 127.0.0.1; let `clients` clients
    each connect, send a line, read the reply and close, then return how many of the server's sockets the kernel
    holds in CLOSE-WAIT once they have all closed."""
    _need_kernel_view()
    rng = random.Random()
    cases = [1, 2, 0]  # keep every connection, every second one, none
    rng.shuffle(cases)
    for every in cases:
        handler = type("SomeHandler", (_Forgets,), {"every": every})
        clients = rng.randint(3, 5)
        expected = clients // every if every else 0
        server, thread = _serve(handler)
        try:
            got = close_wait_count(server, clients)
            seen = server.seen
        finally:
            server.release.set()
            server.shutdown()
            thread.join(5)
            server.server_close()
        if got is None:
            raise ExerciseFailed(
                "close_wait_count returned None, but the point is a number: how many of the server's "
                "connections the kernel still holds open after their clients closed.",
                fix="return kernelview.read(server).count('CLOSE-WAIT').",
            )
        if not isinstance(got, int) or isinstance(got, bool):
            raise ExerciseFailed(f"close_wait_count should return a count (an int), not {got!r}",
                                 fix="return the number the kernel reports: kernelview.read(server).count('CLOSE-WAIT')")
        if seen < clients:
            raise ExerciseFailed(
                f"only {seen} of the {clients} clients reached the handler: a connection the server "
                "never saw cannot be forgotten by it.",
                fix="for each client: socket.create_connection(server.server_address, timeout=5), "
                "sendall(b'hi\\n'), recv() the reply, then close() it.",
            )
        if got != expected:
            what = "ends every connection properly" if expected == 0 else (
                f"forgets {expected} of its {clients} connections after their clients closed")
            raise ExerciseFailed(
                f"for a handler that {what}, your function said {got}, the kernel says {expected}. "
                "CLOSE-WAIT is the state of a connection whose peer has closed while this side has not: "
                "it appears on the server's side once a client's FIN has arrived, a moment after close().",
                fix="close every client first, give their FINs a moment to arrive (time.sleep(0.2)), then "
                "return kernelview.read(server).count('CLOSE-WAIT'): the server's side (the default), not "
                "the clients'.",
            )
    return "the kernel's CLOSE-WAIT count told each forgetful handler from the clean one"


@exercise("kernel-backlog", lesson=LESSON, difficulty=2,
          answer=a_class("BacklogServer", TCPServer, note="__init__ with a backlog argument, and server_activate"))
def check_backlog(server_class: type) -> str:
    """Write BacklogServer, a TCPServer subclass whose constructor takes a `backlog` keyword argument and whose
    server_activate() listens with that backlog."""
    _need_kernel_view()
    # Never 5, socketserver's default request_queue_size: a server that
    # listened with the default must not pass by luck.
    backlog = random.choice([1, 2, 3, 4, 6, 7])
    try:
        server_class((HOST, 0), _Clean, backlog=3, bind_and_activate=False).server_close()
        server = server_class((HOST, 0), _Clean, backlog=backlog, bind_and_activate=False)
    except TypeError as exc:
        raise ExerciseFailed(
            f"{server_class.__name__}((host, port), handler, backlog=3, bind_and_activate=False) "
            f"failed ({exc}): the backlog is a choice of whoever makes the server, so the constructor "
            "has to accept it.",
            fix="def __init__(self, server_address, handler, backlog=5, bind_and_activate=True): store "
            "self.backlog = backlog, then call super().__init__(server_address, handler, bind_and_activate).",
        ) from None
    clients: list[socket.socket] = []
    try:
        server.server_bind()
        port = server.server_address[1]
        if kernelview.read(port).listening:
            raise ExerciseFailed(
                "after server_bind() alone the kernel already shows a LISTEN socket: binding names the "
                "socket, listening is what server_activate() is for.",
                fix="call listen() only in server_activate().",
            )
        server.server_activate()
        reading = kernelview.read(server)
        if not reading.listening:
            raise ExerciseFailed(
                "after server_activate() the kernel shows no LISTEN socket on the server's port: "
                "nothing can connect yet.",
                fix="server_activate() must call self.socket.listen(self.backlog).",
            )
        for _ in range(backlog + 3):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(server.server_address)
            clients.append(sock)
        wait_for(lambda: (kernelview.read(server).queue or 0) >= backlog + 1, 2.0)
        reading = kernelview.read(server)
    finally:
        for sock in clients:
            sock.close()
        server.server_close()
    if reading.queue_max != backlog:
        raise ExerciseFailed(
            f"asked for backlog={backlog}, the kernel says this listen queue holds at most "
            f"{reading.queue_max} (it queued {reading.queue} of {backlog + 3} clients that connected at "
            "once): the number given to listen() is the queue's maximum.",
            fix="in server_activate(), call self.socket.listen(self.backlog) instead of using "
            "request_queue_size.",
        )
    # The usual way to make a server: the constructor binds and listens at once.
    other = random.choice([b for b in (1, 2, 3, 4, 6, 7) if b != backlog])
    made = server_class((HOST, 0), _Clean, backlog=other)
    try:
        listening = kernelview.read(made)
    finally:
        made.server_close()
    if listening.queue_max != other:
        raise ExerciseFailed(
            f"{server_class.__name__}((host, port), handler, backlog={other}) listens with a queue of at most "
            f"{listening.queue_max}: with bind_and_activate=True (the default) the constructor calls "
            "server_activate() itself, inside super().__init__, so the backlog must be known before that call.",
            fix="store self.backlog = backlog before calling super().__init__(server_address, handler, "
            "bind_and_activate), and listen with self.backlog in server_activate().",
        )
    return (f"backlog={backlog}: no LISTEN after server_bind(), LISTEN after server_activate(), and the "
            f"kernel queued {reading.queue} of {backlog + 3} clients that connected at once; "
            f"made in one step with backlog={other}, it listens with that backlog")
