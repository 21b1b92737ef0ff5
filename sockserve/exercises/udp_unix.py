"""Checkers for lesson 03 (UDP and Unix sockets)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from typing import Any

from .. import DatagramRequestHandler, UDPServer, UnixDatagramServer
from ..workbook import ask_datagram
from . import ExerciseFailed, exercise
from .support import handler_errors_note, require_class, running

LESSON = "03-udp-and-unix"


@exercise(
    "udp-reverse",
    lesson=LESSON,
    prompt="Finish Reverse (a DatagramRequestHandler): answer each datagram with its bytes reversed.",
)
def check_reverse(handler: Any) -> str:
    require_class(handler, DatagramRequestHandler, "a DatagramRequestHandler subclass")
    samples = [b"hello", b"a man a plan", b"x" * 100 + b"y"]
    with running(UDPServer, handler) as server:
        for payload in samples:
            try:
                got = ask_datagram(server.server_address, payload, timeout=3)
            except TimeoutError:
                raise ExerciseFailed(
                    f"sent {payload[:20]!r} and no datagram came back within 3 s"
                    + handler_errors_note(server)
                ) from None
            if got == b"":
                raise ExerciseFailed(
                    f"sent {payload[:20]!r}, got an empty datagram back: write the reply to "
                    "self.wfile (finish() sends what wfile holds)" + handler_errors_note(server)
                )
            if got != payload[::-1]:
                raise ExerciseFailed(
                    f"sent {payload[:20]!r}, expected {payload[::-1][:20]!r}, got {got[:20]!r}"
                    + handler_errors_note(server)
                )
    return f"{len(samples)} datagrams answered reversed"


class _Length(DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(str(len(self.packet)).encode())


@exercise(
    "udp-big-datagrams",
    lesson=LESSON,
    prompt="Write BigDatagramServer, a UDPServer subclass whose handlers see datagrams of up to "
    "16 KiB whole (a 12000-byte datagram must arrive entire).",
)
def check_big_datagrams(server_class: Any) -> str:
    require_class(server_class, UDPServer, "a UDPServer subclass")
    size = 12000
    with running(server_class, _Length) as server:
        got = ask_datagram(server.server_address, b"z" * size, timeout=3)
        seen = int(got or b"0")
        truncated = server.stats.snapshot()["truncated"]
        limit = server.max_packet_size
    if seen != size:
        raise ExerciseFailed(
            f"the handler saw {seen} of the {size} bytes sent (stats.truncated = {truncated}): "
            f"max_packet_size is {limit}, so the rest of the datagram was dropped; raise the "
            "class attribute to at least 16384"
        )
    if limit > 65535:
        raise ExerciseFailed(
            f"max_packet_size = {limit} is more than any datagram can carry (65535); 16384 is enough"
        )
    return f"a {size}-byte datagram arrived whole (max_packet_size = {limit})"


class _Upper(DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.packet.upper())


@exercise(
    "unix-dgram-client",
    lesson=LESSON,
    prompt="Write ask_unix(server_path, payload, client_path) -> bytes: send one datagram to a Unix "
    "datagram server, return its reply, and leave no socket file behind.",
)
def check_unix_client(ask_unix: Any) -> str:
    if not callable(ask_unix):
        raise ExerciseFailed(f"expected a function ask_unix(server_path, payload, client_path); got {ask_unix!r}")
    tmp = tempfile.mkdtemp(prefix="ssx-", dir="/tmp")
    try:
        client_path = os.path.join(tmp, "client.sock")
        with running(UnixDatagramServer, _Upper, unix=True) as server:
            try:
                reply = ask_unix(server.server_address, b"quiet please", client_path)
            except (TimeoutError, socket.timeout):
                raise ExerciseFailed(
                    "no reply came back (your socket timed out): a Unix datagram server answers "
                    "the address the datagram came from, and an unbound client socket has none; "
                    "bind the client socket to client_path before sending."
                    + handler_errors_note(server)
                ) from None
            if reply is None:
                raise ExerciseFailed("ask_unix returned None; return the reply datagram (bytes)")
            if reply != b"QUIET PLEASE":
                raise ExerciseFailed(
                    f"the server answers b'QUIET PLEASE', but ask_unix returned {reply!r}"
                )
        if os.path.exists(client_path):
            raise ExerciseFailed(
                f"the reply is right, but the client's socket file {client_path} was left behind: "
                "remove it (os.unlink) when done, or the next call cannot bind that path"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return "got the reply and cleaned up the client's socket file"
