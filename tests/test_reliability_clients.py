"""Reliability against misbehaving clients (issue 7, scenarios 1, 2, 3 and 8).

Slow clients that never send, clients that reset mid-response, garbage and
oversized input, and handlers that raise: every server keeps serving, every
request is counted, and a client that went away is one debug log line, never
a traceback.
"""

from __future__ import annotations

import logging
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Any

import pytest

import sockserve
from conftest import (
    DGRAM_CLASSES,
    STREAM_CLASSES,
    ALL_CLASSES,
    address_for,
    class_id,
    client_socket,
    exchange,
    serving,
    wait_until,
)

AF_UNIX = getattr(socket, "AF_UNIX", None)
#: Servers whose handlers run in another process.
HANDLED_IN_CHILD = (sockserve.ForkingMixIn, sockserve.PreForkMixIn)
THREADING_STREAM = [c for c in STREAM_CLASSES if issubclass(c, sockserve.ThreadingMixIn)]
POOL_STREAM = [c for c in STREAM_CLASSES if issubclass(c, sockserve.ThreadPoolMixIn)]


def connect(cls: type, address: Any, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(cls.address_family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def recv_line(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Read up to and including the first newline (or EOF)."""
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class LineEcho(sockserve.StreamRequestHandler):
    """Echo line after line until EOF (bounded lines)."""

    def handle(self) -> None:
        while line := self.rfile.readline(65536):
            self.wfile.write(line)


# -- 1. slow clients ------------------------------------------------------------


@pytest.mark.parametrize("cls", THREADING_STREAM, ids=class_id)
def test_threading_server_answers_while_200_clients_never_send(cls: type, sock_dir: str) -> None:
    server = cls(address_for(cls, sock_dir), LineEcho)
    silent: list[socket.socket] = []
    with serving(server):
        try:
            for _ in range(200):
                silent.append(connect(cls, server.server_address))
            assert wait_until(lambda: server.stats.active >= 200), server.stats.snapshot()
            began = time.monotonic()
            with connect(cls, server.server_address) as sock:
                sock.sendall(b"still there?\n")
                assert recv_line(sock) == b"still there?\n"
            # Generous: an unloaded machine answers in well under 10 ms.
            assert time.monotonic() - began < 5.0
            assert wait_until(lambda: server.stats.completed == 1)
        finally:
            for sock in silent:
                sock.close()
        assert wait_until(lambda: server.stats.active == 0)
    assert server.stats.completed == 201
    assert server.stats.errors == 0


class TimedEcho(LineEcho):
    timeout = 0.2


@pytest.mark.parametrize("cls", [sockserve.TCPServer, sockserve.UnixStreamServer], ids=class_id)
def test_plain_server_recovers_from_silent_clients_after_handler_timeout(
    cls: type, sock_dir: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="sockserve")
    server = cls(address_for(cls, sock_dir), TimedEcho)
    silent: list[socket.socket] = []
    with serving(server):
        try:
            for _ in range(3):
                silent.append(connect(cls, server.server_address))
            # Queued behind three silent clients, each given 0.2 s.
            with connect(cls, server.server_address) as sock:
                sock.sendall(b"ping\n")
                assert recv_line(sock) == b"ping\n"
        finally:
            for sock in silent:
                sock.close()
        assert wait_until(lambda: server.stats.completed == 1), server.stats.snapshot()
        assert server.stats.timeouts == 3
    gone = [r for r in caplog.records if r.name == "sockserve" and "went away" in r.getMessage()]
    assert len(gone) == 3
    assert all(r.levelno == logging.DEBUG for r in gone)
    assert "Traceback" not in capfd.readouterr().err


def eof_within(sock: socket.socket, seconds: float) -> bool:
    """True if the server closed *sock* (EOF or reset) within *seconds*."""
    ready, _, _ = select.select([sock], [], [], seconds)
    if not ready:
        return False
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("cls", POOL_STREAM, ids=class_id)
def test_thread_pool_rejects_silent_clients_beyond_its_queue(cls: type, sock_dir: str) -> None:
    class Server(cls):  # type: ignore[misc, valid-type]
        pool_size, queue_size, overflow = 4, 4, "reject"

    server = Server(address_for(cls, sock_dir), LineEcho)
    silent: list[socket.socket] = []
    with serving(server, poll_interval=0.05):
        try:
            # One at a time until the workers are busy and the queue full, so
            # that exactly the last 12 find no room.
            for n in range(1, 9):
                silent.append(connect(cls, server.server_address))
                assert wait_until(lambda: min(server.stats.started, 4) + max(n - 4, 0) == n
                                  and server.stats.accepted == n)
            for _ in range(12):
                silent.append(connect(cls, server.server_address))
            assert wait_until(lambda: server.stats.overflows == 12), server.stats.overflows
            closed = [sock for sock in silent if eof_within(sock, 0.2)]
            assert len(closed) == 12  # 4 served, 4 queued, the rest closed at once
            with connect(cls, server.server_address) as sock:  # still full: rejected too
                assert eof_within(sock, 10.0)
            assert server.stats.overflows == 13
        finally:
            for sock in silent:
                sock.close()
        # Once the silent clients leave, the pool serves again.
        assert wait_until(lambda: server.stats.active == 0)
        assert talk(cls, server.server_address, b"back\n") == b"back\n"
    assert server.stats.completed == 8 + 1
    assert server.stats.accepted == 20 + 1 + 1


@pytest.mark.parametrize("cls", POOL_STREAM, ids=class_id)
def test_thread_pool_blocks_on_silent_clients_then_serves_everyone(
    cls: type, sock_dir: str
) -> None:
    class Server(cls):  # type: ignore[misc, valid-type]
        pool_size, queue_size, overflow = 4, 4, "block"

    server = Server(address_for(cls, sock_dir), LineEcho)
    silent: list[socket.socket] = []
    with serving(server, poll_interval=0.05):
        try:
            for _ in range(20):
                silent.append(connect(cls, server.server_address))
            # 4 running, 4 queued, 1 held by the blocked loop; the rest wait
            # in the listen backlog, not accepted and not lost.
            assert wait_until(lambda: server.stats.accepted == 9), server.stats.snapshot()
            late = connect(cls, server.server_address)
            late.sendall(b"late\n")
            assert not eof_within(late, 0.3)
        finally:
            for sock in silent:
                sock.close()
        with late:
            assert recv_line(late) == b"late\n"
        assert wait_until(lambda: server.stats.completed == 21), server.stats.snapshot()
    assert server.stats.overflows == 0


# -- 2. resets mid-response ---------------------------------------------------------


def big_reply_handler(buffer_size: int) -> type[sockserve.StreamRequestHandler]:
    class BigReply(sockserve.StreamRequestHandler):
        """``big``: stream up to 128 MB; anything else: echo the line."""

        wbufsize = buffer_size

        def handle(self) -> None:
            while line := self.rfile.readline(65536):
                if line != b"big\n":
                    self.wfile.write(line)
                    self.wfile.flush()
                    continue
                chunk = b"x" * 65536
                for _ in range(2048):
                    self.wfile.write(chunk)

    return BigReply


# A forked child inherits every descriptor of this process, including the
# client sockets a test holds, so a close() here neither resets nor ends the
# connection while a child lives. Clients that must really go away therefore
# run in a process of their own, and the others end with shutdown(SHUT_WR).
RESETTING_CLIENT = r"""
import socket, struct, sys
family, address = int(sys.argv[1]), sys.argv[2]
if family != socket.AF_UNIX:
    host, port = address.rsplit(":", 1)
    address = (host, int(port))
sock = socket.socket(family, socket.SOCK_STREAM)
sock.settimeout(10)
sock.connect(address)
sock.sendall(b"big\n")
assert sock.recv(65536), "no response"
if family != socket.AF_UNIX:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
sock.close()  # with unread data: a reset (RST for TCP, ECONNRESET/EPIPE for Unix)
"""


def reset_from_another_process(server: Any) -> None:
    # A fork in another thread while subprocess starts the client would give
    # the forked process subprocess's exec-status pipe: wait until a prefork
    # server has forked its workers (it says SERVING after that).
    assert wait_until(lambda: server.state is sockserve.ServerState.SERVING)
    cls, address = type(server), server.server_address
    where = address if cls.address_family == AF_UNIX else f"{address[0]}:{address[1]}"
    subprocess.run(
        [sys.executable, "-c", RESETTING_CLIENT, str(int(cls.address_family)), where],
        check=True,
        timeout=30,
    )


def talk(cls: type, address: Any, payload: bytes) -> bytes:
    """Send *payload*, end our side (EOF even if a child holds a copy), read to EOF."""
    with connect(cls, address) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize("wbufsize", [0, 8192], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("cls", STREAM_CLASSES, ids=class_id)
def test_reset_mid_response_is_one_debug_line_and_a_disconnect(
    cls: type,
    wbufsize: int,
    sock_dir: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG, logger="sockserve")
    server = cls(address_for(cls, sock_dir), big_reply_handler(wbufsize))
    with serving(server, poll_interval=0.05):
        reset_from_another_process(server)
        assert wait_until(lambda: server.stats.disconnects == 1), server.stats.snapshot()
        # The server goes on serving.
        assert talk(cls, server.server_address, b"hello\n") == b"hello\n"
        assert wait_until(lambda: server.stats.completed == 1), server.stats.snapshot()
    assert server.stats.errors == 0
    assert server.stats.disconnects == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err
    if not issubclass(cls, HANDLED_IN_CHILD):  # a child's log records stay in the child
        gone = [r for r in caplog.records if "went away" in r.getMessage()]
        assert len(gone) == 1, [r.getMessage() for r in caplog.records]
        assert gone[0].levelno == logging.DEBUG and gone[0].name == "sockserve"


class LateReply(sockserve.DatagramRequestHandler):
    def handle(self) -> None:
        time.sleep(0.2)
        self.wfile.write(self.packet)


UNIX_DGRAM = [c for c in DGRAM_CLASSES if c.address_family == AF_UNIX]


@pytest.mark.parametrize("removes_file", [False, True], ids=["closes", "removes-file"])
@pytest.mark.parametrize("handler", ["datagram-handler", "workload"])
@pytest.mark.parametrize("cls", UNIX_DGRAM, ids=class_id)
def test_unix_datagram_client_gone_before_the_reply_is_a_disconnect(
    cls: type,
    handler: str,
    removes_file: bool,
    sock_dir: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from sockserve.measure.workloads import handler_for

    caplog.set_level(logging.DEBUG, logger="sockserve")
    handler_class = LateReply if handler == "datagram-handler" else handler_for("io")
    server = cls(address_for(cls, sock_dir), handler_class)
    # The client has gone before the server even reads its datagram (so no
    # forked child can hold a copy of the client's socket either).
    client = client_socket(cls, sock_dir)
    path = client.getsockname()
    client.sendto(b"io 200", server.server_address)
    client.close()  # the reply's sendto then fails with ECONNREFUSED
    if removes_file:
        os.unlink(path)  # ... or with ENOENT
    with serving(server, poll_interval=0.05):
        assert wait_until(lambda: server.stats.disconnects == 1), server.stats.snapshot()
        assert exchange(cls, server.server_address, b"io 1", sock_dir) == b"io 1" + (
            b"\n" if handler == "workload" else b""
        )
    assert server.stats.errors == 0
    assert "Traceback" not in capfd.readouterr().err
    if not issubclass(cls, HANDLED_IN_CHILD):
        gone = [r for r in caplog.records if "went away" in r.getMessage()]
        assert len(gone) == 1 and gone[0].levelno == logging.DEBUG


# -- 3. garbage and oversized input ---------------------------------------------------


class PacketLength(sockserve.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"%d\n" % len(self.packet))


@pytest.mark.parametrize("cls", DGRAM_CLASSES, ids=class_id)
def test_datagram_longer_than_max_packet_size_is_cut_and_counted(cls: type, sock_dir: str) -> None:
    server = cls(address_for(cls, sock_dir), PacketLength)
    size = server.max_packet_size
    with serving(server, poll_interval=0.05):
        assert exchange(cls, server.server_address, b"a" * 100, sock_dir) == b"100\n"
        assert server.stats.truncated == 0
        assert exchange(cls, server.server_address, b"b" * (size + 5000), sock_dir) == b"%d\n" % size
        assert server.stats.truncated == 1
        assert exchange(cls, server.server_address, b"c" * size, sock_dir) == b"%d\n" % size
        assert server.stats.truncated == 1  # exactly max_packet_size is not truncated


def test_max_packet_size_changed_between_datagrams_holds_for_the_next_one() -> None:
    """get_request keeps one buffer: a larger max_packet_size set on the
    server (or its class) after a datagram was read still gets whole datagrams
    of the new size, a smaller one cuts and counts as before."""
    server = sockserve.UDPServer(("127.0.0.1", 0), PacketLength)
    server.timeout = 5
    with server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)

        def length_of(size: int) -> bytes:
            client.sendto(b"x" * size, server.server_address)
            server.handle_request()
            return client.recv(100)

        assert length_of(100) == b"100\n"
        server.max_packet_size = 20_000
        assert length_of(15_000) == b"15000\n"
        assert server.stats.truncated == 0
        server.max_packet_size = 50
        assert length_of(100) == b"50\n"
        assert server.stats.truncated == 1


@pytest.mark.parametrize("cls", STREAM_CLASSES, ids=class_id)
def test_binary_garbage_does_not_stop_a_stream_server(cls: type, sock_dir: str) -> None:
    rng = random.Random(7)
    garbage = bytes(rng.randrange(256) for _ in range(200_000))
    server = cls(address_for(cls, sock_dir), LineEcho)
    with serving(server, poll_interval=0.05):
        assert talk(cls, server.server_address, garbage) == garbage
        assert talk(cls, server.server_address, b"ok\n") == b"ok\n"


def send_ignoring_resets(sock: socket.socket, total: int, chunk: bytes) -> None:
    """Send *total* bytes of *chunk*s; the server may close early (that is the point)."""
    sent = 0
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # reset or broken pipe once the server has refused the line


@pytest.mark.parametrize("cls", STREAM_CLASSES, ids=class_id)
def test_ten_megabytes_without_newline_get_a_clear_error_in_bounded_memory(
    cls: type, sock_dir: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from sockserve.measure.workloads import LINE_TOO_LONG, MAX_LINE, handler_for

    server = cls(address_for(cls, sock_dir), handler_for("echo"))
    measure = not issubclass(cls, HANDLED_IN_CHILD)  # a child's memory is not ours to trace
    with serving(server, poll_interval=0.05):
        if isinstance(server, sockserve.PreForkMixIn):
            assert wait_until(lambda: server.state is sockserve.ServerState.SERVING)
        if measure:
            tracemalloc.start()
        try:
            with connect(cls, server.server_address, timeout=30) as sock:
                sender = threading.Thread(
                    target=send_ignoring_resets, args=(sock, 10 * 1024 * 1024, b"A" * 65536)
                )
                sender.start()
                reply = b""
                try:
                    while chunk := sock.recv(65536):
                        reply += chunk
                except ConnectionResetError:
                    pass
                sender.join(60)
            peak = tracemalloc.get_traced_memory()[1] if measure else 0
        finally:
            if measure:
                tracemalloc.stop()
        assert reply == LINE_TOO_LONG
        # Reading the line is bounded by MAX_LINE: nowhere near the 10 MB sent.
        assert peak < 16 * MAX_LINE, f"peak traced memory {peak} bytes"
        # The server goes on serving.
        assert talk(cls, server.server_address, b"echo\n") == b"echo\n"
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("cls", [sockserve.ThreadingTCPServer, sockserve.ThreadingUDPServer],
                         ids=class_id)
def test_binary_garbage_to_a_workload_gets_an_error_reply_per_line(
    cls: type, sock_dir: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from sockserve.measure.workloads import handler_for

    rng = random.Random(11)
    lines = [b"io \xff\xfe\x00", b"io -5", b"io nan", b"io 1 2 3", b"\x00 \x00", b"io 1e309", b"\x00" * 40]
    lines += [bytes(rng.randrange(256) for _ in range(30)).replace(b"\n", b"") for _ in range(20)]
    server = cls(address_for(cls, sock_dir), handler_for("io", delay_ms=0))
    with serving(server, poll_interval=0.05):
        if cls.socket_type == socket.SOCK_STREAM:
            replies = talk(cls, server.server_address, b"".join(x + b"\n" for x in lines))
            replies_list = replies.splitlines(keepends=True)
        else:
            replies_list = [exchange(cls, server.server_address, x, sock_dir) for x in lines]
        assert len(replies_list) == len(lines)
        assert all(r.endswith(b"\n") for r in replies_list)
        for line, reply in zip(lines[:6], replies_list[:6]):
            assert reply.startswith(b"ERR bad request"), (line, reply)
        ask = talk if cls.socket_type == socket.SOCK_STREAM else exchange
        assert ask(cls, server.server_address, b"io 1\n") == b"io 1\n"
    assert server.stats.errors == 0
    assert "Traceback" not in capfd.readouterr().err


# -- 8. handler exceptions -----------------------------------------------------------


class Explosive(sockserve.BaseRequestHandler):
    """``boom`` raises ValueError; anything else is echoed."""

    def handle(self) -> None:
        if isinstance(self.request, tuple):
            data, sock = self.request
            if data.startswith(b"boom"):
                raise ValueError("boom from the handler")
            sock.sendto(data, self.client_address)
            return
        data = self.request.recv(1024)
        if data.startswith(b"boom"):
            raise ValueError("boom from the handler")
        self.request.sendall(data)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=class_id)
def test_handler_exception_runs_handle_error_counts_it_and_server_goes_on(
    cls: type, sock_dir: str, capfd: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []

    class Server(cls):  # type: ignore[misc, valid-type]
        def handle_error(self, request: Any, client_address: Any) -> None:
            calls.append(f"{os.getpid()}")
            super().handle_error(request, client_address)

    server = Server(address_for(cls, sock_dir), Explosive)
    stream = cls.socket_type == socket.SOCK_STREAM
    with serving(server, poll_interval=0.05):
        if stream:
            assert exchange(cls, server.server_address, b"boom", sock_dir) == b""
        else:
            with client_socket(cls, sock_dir) as sock:
                sock.sendto(b"boom", server.server_address)
        assert wait_until(lambda: server.stats.errors == 1), server.stats.snapshot()
        for n in range(3):
            assert exchange(cls, server.server_address, b"echo %d" % n, sock_dir) == b"echo %d" % n
        assert wait_until(lambda: server.stats.completed == 3), server.stats.snapshot()
    assert server.stats.errors == 1
    err = capfd.readouterr().err
    assert err.count("ValueError: boom from the handler") == 1, err
    assert err.count("Traceback") == 1
    assert "goes on serving" in err
    if not issubclass(cls, HANDLED_IN_CHILD):
        assert calls == [str(os.getpid())]  # handle_error ran once, in this process
