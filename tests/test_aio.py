"""The asyncio server: same workloads, one loop, and its kinds."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sockserve.measure.aio import AsyncioServer
from sockserve.measure.kinds import make_server, resolve_kind
from sockserve.measure.workloads import LINE_TOO_LONG, MAX_LINE, handler_for

from conftest import serving


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


@pytest.fixture(params=["tcp", "unix"])
def address(request: pytest.FixtureRequest, sock_dir: str) -> Any:
    return ("127.0.0.1", 0) if request.param == "tcp" else os.path.join(sock_dir, "a.sock")


@pytest.fixture
def connect() -> Iterator[Callable[[Any], socket.socket]]:
    opened: list[socket.socket] = []

    def open_one(address: Any) -> socket.socket:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        opened.append(sock)
        sock.settimeout(10)
        sock.connect(address)
        return sock

    try:
        yield open_one
    finally:
        for sock in opened:
            sock.close()


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("workload", ["echo", "io", "cpu", "slow", "mixed"])
def test_each_workload_answers_line_after_line(address: Any, workload: str, connect: Any) -> None:
    server = AsyncioServer(address, handler_for(workload))
    with serving(server):
        sock = connect(server.server_address)
        for line in (b"echo\n", b"io 2\n", b"cpu 1\n"):
            sock.sendall(line)
            assert read_line(sock) == line
        sock.close()
        assert wait_until(lambda: server.stats.completed == 1)
    assert server.stats.started == server.stats.accepted == 1


def test_io_waits_overlap_on_one_thread(connect: Any) -> None:
    server = AsyncioServer(("127.0.0.1", 0), handler_for("io"))
    with serving(server):
        threads = threading.active_count()
        clients = [connect(server.server_address) for _ in range(5)]
        for sock in clients:
            sock.sendall(b"io 300\n")
        assert wait_until(lambda: server.stats.active == 5)
        assert threading.active_count() == threads  # no thread per connection
        assert [read_line(sock) for sock in clients] == [b"io 300\n"] * 5
    assert server.stats.peak_active == 5


def test_cpu_work_blocks_every_other_connection(connect: Any) -> None:
    server = AsyncioServer(("127.0.0.1", 0), handler_for("cpu"))
    with serving(server):
        busy, other = connect(server.server_address), connect(server.server_address)
        assert wait_until(lambda: server.stats.active == 2)
        busy.sendall(b"cpu 500\n")
        time.sleep(0.1)  # the loop picks the line up and starts computing
        other.sendall(b"echo\n")
        assert read_line(other) == b"echo\n"
        # By the time the echo came back, the cpu reply was already sent:
        # the loop could not answer anything while it computed.
        busy.setblocking(False)
        assert busy.recv(1024) == b"cpu 500\n"


def test_over_long_line_is_refused(connect: Any) -> None:
    server = AsyncioServer(("127.0.0.1", 0), handler_for("echo"))
    with serving(server):
        sock = connect(server.server_address)
        sock.sendall(b"x" * (MAX_LINE + 10))
        assert read_line(sock) == LINE_TOO_LONG


def test_drain_completes_then_aborts(connect: Any) -> None:
    server = AsyncioServer(("127.0.0.1", 0), handler_for("io"))
    with serving(server):
        quick, stuck = connect(server.server_address), connect(server.server_address)
        quick.sendall(b"io 100\n")
        stuck.sendall(b"io 5000\n")
        assert wait_until(lambda: server.stats.active == 2)
        quick.shutdown(socket.SHUT_WR)  # done after this request
        report = server.drain(timeout=1.0)
        assert (report.completed, report.aborted) == (1, 1), report
        assert read_line(quick) == b"io 100\n"
        assert stuck.recv(1024) == b""
    assert (server.stats.completed, server.stats.aborted) == (1, 1)


def test_asyncio_kinds_make_asyncio_servers(sock_dir: str) -> None:
    for kind in ("asyncio", "asyncio-unix", "AsyncioServer"):
        info = resolve_kind(kind)
        assert info.concurrency == "asyncio" and info.server_class is None
    server = make_server("asyncio", "io")
    with server:
        assert isinstance(server, AsyncioServer) and server.workload == "io"
    server = make_server("asyncio-unix", "echo", path=os.path.join(sock_dir, "k.sock"))
    with server:
        assert server.address_family == socket.AF_UNIX
    assert not os.path.exists(os.path.join(sock_dir, "k.sock"))
