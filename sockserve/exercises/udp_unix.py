"""Checkers for lesson 03 (UDP and Unix sockets)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from .. import DatagramRequestHandler, UDPServer, UnixDatagramServer
from ..workbook.helpers import ask_datagram, wait_for
from . import ExerciseFailed, exercise
from .support import a_class, a_function, handler_error_fix, handler_errors_note, running

LESSON = "03-udp-and-unix"


@exercise("udp-reverse", lesson=LESSON, difficulty=1,
          answer=a_class("Reverse", DatagramRequestHandler, method="handle"))
def check_reverse(handler: type) -> str:
    """Finish Reverse (a DatagramRequestHandler): answer each datagram with its bytes reversed."""
    samples = [b"hello", b"a man a plan", b"x" * 100 + b"y"]
    with running(UDPServer, handler) as server:
        for payload in samples:
            try:
                got = ask_datagram(server.server_address, payload, timeout=3)
            except TimeoutError:
                raise ExerciseFailed(
                    f"sent {payload[:20]!r} and no datagram came back within 3 s"
                    + handler_errors_note(server),
                    fix="write the reply to self.wfile in handle(); DatagramRequestHandler's "
                    "finish() sends it back as one datagram",
                ) from None
            if got != payload[::-1]:
                # The datagram can come back before the server has reported
                # the handler's exception: give the report a moment.
                wait_for(lambda: bool(server.handler_errors), 0.5)
            if server.handler_errors:
                raise ExerciseFailed(
                    f"sent {payload[:20]!r}; your handler raised {server.handler_errors[0]}, so the "
                    f"datagram that went back ({got[:20]!r}) holds only what it wrote before that",
                    fix=handler_error_fix(server, "fix the line the error names"),
                )
            if got == b"":
                raise ExerciseFailed(
                    f"sent {payload[:20]!r}, got an empty datagram back: the handler sends "
                    "whatever handle() wrote, and it wrote nothing",
                    fix="read the datagram (self.rfile.read() or self.packet) and write the "
                    "reply to self.wfile",
                )
            if got != payload[::-1]:
                raise ExerciseFailed(
                    f"sent {payload[:20]!r}, got {got[:20]!r} back, which is not the datagram "
                    "reversed" + handler_errors_note(server),
                    fix="bytes reverse like any sequence: data[::-1]",
                )
    return f"{len(samples)} datagrams answered reversed"


#: The largest datagram the exercise asks for: 16 KiB.
BIG = 16 * 1024


class _Length(DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(str(len(self.packet)).encode())


@exercise("udp-big-datagrams", lesson=LESSON, answer=a_class("BigDatagramServer", UDPServer), difficulty=1)
def check_big_datagrams(server_class: type[UDPServer]) -> str:
    """Write BigDatagramServer, a UDPServer subclass whose handlers see datagrams of up to 16 KiB whole (a
    12000-byte datagram, and a 16 KiB one, must arrive entire)."""
    limit = server_class.max_packet_size
    if isinstance(limit, int) and limit > 65535:
        raise ExerciseFailed(
            f"max_packet_size = {limit} is more than any datagram can carry: the server would "
            "allocate that much for every datagram it reads",
            fix="a UDP datagram carries at most 65507 bytes over IPv4; ask for what the exercise asks",
        )
    # Every size up to the one asked for must arrive whole: a limit that fits
    # only the smaller one fails, and the hint names no size that passes.
    for size in (12000, BIG):
        with running(server_class, _Length) as server:
            got = ask_datagram(server.server_address, b"z" * size, timeout=3)
            seen = int(got or b"0")
            truncated = server.stats.snapshot()["truncated"]
        if seen != size:
            raise ExerciseFailed(
                f"a datagram bigger than the server reads arrived cut: the handler saw {seen} bytes of it "
                f"(stats.truncated = {truncated}). The server reads each datagram with one recvfrom() of a "
                "fixed size, and the kernel drops the rest",
                fix=f"that size is the class attribute max_packet_size ({limit} now): set it to the largest "
                "datagram the exercise asks for, 16 KiB",
            )
    return f"datagrams of 12000 and {BIG} bytes arrived whole (max_packet_size = {limit})"


class _Upper(DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.packet.upper())


#: The body of the client the exercise starts from: it sends, but no reply can reach it.
_UNBOUND_CLIENT = """\
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
    sock.settimeout(2)
    sock.sendto(payload, server_path)
    return sock.recv(65536)  # why does no reply ever come?"""


@exercise("unix-dgram-client", lesson=LESSON, difficulty=2,
          answer=a_function("ask_unix(server_path, payload, client_path)", body=_UNBOUND_CLIENT))
def check_unix_client(ask_unix: Callable[..., Any]) -> str:
    """Write ask_unix(server_path, payload, client_path) -> bytes: send one datagram to a Unix datagram server,
    return its reply, and leave no socket file behind."""
    tmp = tempfile.mkdtemp(prefix="ssx-", dir="/tmp")
    try:
        client_path = os.path.join(tmp, "client.sock")
        with running(UnixDatagramServer, _Upper, unix=True) as server:
            try:
                reply = ask_unix(server.server_address, b"quiet please", client_path)
            except (TimeoutError, socket.timeout):
                raise ExerciseFailed(
                    "no reply came back (your client's socket timed out): a datagram server "
                    "answers the address each datagram came from."
                    + handler_errors_note(server, "The check's server, answering your datagram,"),
                    fix="an unbound Unix datagram socket has no address to answer; bind the client "
                    "socket to client_path before sending",
                ) from None
            if reply is None:
                raise ExerciseFailed(
                    "ask_unix returned None, but the caller wants the server's reply",
                    fix="return what sock.recv() gives (bytes)",
                )
            if reply != b"QUIET PLEASE":
                raise ExerciseFailed(
                    f"ask_unix returned {reply!r}, which is not the datagram the server sent back",
                    fix="send payload as it is, and return the bytes of the one datagram that comes back",
                )
        if os.path.exists(client_path):
            raise ExerciseFailed(
                f"the reply is right, but the client's socket file {client_path} was left behind: "
                "a bound Unix socket's file outlives the socket",
                fix="remove it (os.unlink(client_path)) when done, in a finally block, or the next "
                "call cannot bind that path",
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return "got the reply and cleaned up the client's socket file"
