"""Request handlers: setup/handle/finish, the streams, and their tuning attributes."""

from __future__ import annotations

import io
import socket
import threading
from typing import Any

import pytest

import sockserve
from sockserve.core.handlers import SocketWriter

from conftest import HOST, exchange, serving


def run_one(server_cls: type, handler: type, payload: bytes) -> tuple[Any, bytes]:
    with server_cls((HOST, 0), handler) as server:
        reply: list[bytes] = []
        client = threading.Thread(
            target=lambda: reply.append(exchange(server_cls, server.server_address, payload))
        )
        client.start()
        server.handle_request()
        client.join(10)
    return server, reply[0]


def test_order_and_finish_after_failure() -> None:
    calls: list[str] = []

    class Failing(sockserve.BaseRequestHandler):
        def setup(self) -> None:
            calls.append("setup")

        def handle(self) -> None:
            calls.append("handle")
            raise RuntimeError("handler failed")

        def finish(self) -> None:
            calls.append("finish")

    with pytest.raises(RuntimeError):
        Failing(request=None, client_address=("127.0.0.1", 1), server=None)  # type: ignore[arg-type]
    assert calls == ["setup", "handle", "finish"]


def test_base_handler_keeps_its_arguments() -> None:
    seen: dict[str, Any] = {}

    class Keeper(sockserve.BaseRequestHandler):
        def handle(self) -> None:
            seen.update(request=self.request, client_address=self.client_address, server=self.server)

    Keeper("req", ("1.2.3.4", 5), "srv")  # type: ignore[arg-type]
    assert seen == {"request": "req", "client_address": ("1.2.3.4", 5), "server": "srv"}


def test_stream_handler_defaults() -> None:
    h = sockserve.StreamRequestHandler
    assert (h.rbufsize, h.wbufsize, h.timeout, h.disable_nagle_algorithm) == (-1, 0, None, False)


def test_unbuffered_wfile_sends_each_write_at_once() -> None:
    class Writer(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            assert isinstance(self.wfile, SocketWriter)
            assert isinstance(self.wfile, io.BufferedIOBase)
            assert self.wfile.fileno() == self.connection.fileno()
            self.server.sent = self.wfile.write(memoryview(b"abc\n"))
            self.wfile.write(self.rfile.readline())

    server, reply = run_one(sockserve.TCPServer, Writer, b"def\n")
    assert server.sent == 4
    assert reply == b"abc\ndef\n"


def test_buffered_wfile_is_flushed_by_finish() -> None:
    class Buffered(sockserve.StreamRequestHandler):
        wbufsize = 65536

        def handle(self) -> None:
            assert not isinstance(self.wfile, SocketWriter)
            self.wfile.write(b"held in a buffer until finish\n")

    _, reply = run_one(sockserve.TCPServer, Buffered, b"x\n")
    assert reply == b"held in a buffer until finish\n"


def test_timeout_and_nagle_are_applied_to_the_connection() -> None:
    seen: dict[str, Any] = {}

    class Tuned(sockserve.StreamRequestHandler):
        timeout = 2.5
        disable_nagle_algorithm = True

        def handle(self) -> None:
            seen["timeout"] = self.connection.gettimeout()
            seen["nodelay"] = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            self.wfile.write(self.rfile.readline())

    run_one(sockserve.TCPServer, Tuned, b"x\n")
    assert seen["timeout"] == 2.5
    assert seen["nodelay"] != 0


def test_handler_timeout_counts_a_silent_client() -> None:
    class Impatient(sockserve.StreamRequestHandler):
        timeout = 0.1

        def handle(self) -> None:
            self.rfile.readline()

    server = sockserve.TCPServer((HOST, 0), Impatient)
    with serving(server):
        with socket.create_connection(server.server_address, timeout=10) as silent:
            assert silent.recv(10) == b""  # closed by the server after its timeout
    assert server.stats.timeouts == 1
    assert server.stats.errors == 0


def test_datagram_handler_streams() -> None:
    seen: dict[str, Any] = {}

    class Upper(sockserve.DatagramRequestHandler):
        def handle(self) -> None:
            seen["packet"] = self.packet
            seen["socket_is_server"] = self.socket is self.server.socket
            self.wfile.write(self.rfile.read().upper())

    _, reply = run_one(sockserve.UDPServer, Upper, b"shout\n")
    assert reply == b"SHOUT\n"
    assert seen == {"packet": b"shout\n", "socket_is_server": True}


def test_rfile_reads_like_makefiles_reader_and_fails_like_it() -> None:
    """rfile on a plain socket: a BufferedReader over a socket.SocketIO (the
    objects makefile("rb") makes), reading lines to EOF; its raw layer,
    closed or timed out, raises as SocketIO's does."""
    from sockserve.core.handlers import _reader

    left, right = socket.socketpair()
    with left, right:
        rfile = _reader(left, -1)
        assert isinstance(rfile, io.BufferedReader) and isinstance(rfile.raw, socket.SocketIO)
        assert rfile.raw.readable() and rfile.raw.mode == "rb"
        right.sendall(b"one\ntwo\n")
        right.shutdown(socket.SHUT_WR)
        assert list(rfile) == [b"one\n", b"two\n"]
        raw = rfile.raw
        rfile.close()
        with pytest.raises(ValueError):
            raw.readinto(bytearray(4))
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(0.01)
        timed = _reader(left, 0)
        with pytest.raises(TimeoutError):
            timed.readinto(bytearray(4))
        with pytest.raises(OSError, match="timed out object"):
            timed.readinto(bytearray(4))
        timed.close()
        left.setblocking(False)
        idle = _reader(left, 0)
        assert idle.readinto(bytearray(4)) is None  # would block: None, as SocketIO says
        idle.close()


def test_socket_writer_reports_what_it_wrote() -> None:
    left, right = socket.socketpair()
    with left, right:
        writer = SocketWriter(left)
        assert writer.write(b"abc") == 3
        assert writer.write(bytearray(b"de")) == 2
        assert writer.write(memoryview(b"fghi").cast("B")[1:]) == 3
        assert right.recv(16) == b"abcdeghi"
