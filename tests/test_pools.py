"""Thread pool and prefork servers: bounds, overflow, supervision, statistics."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sockserve
from sockserve import StreamRequestHandler
from sockserve.measure.kinds import resolve_kind

from conftest import address_for, class_id, client_socket, exchange, read_all, serving

POOL_CLASSES = [
    getattr(sockserve, name)
    for name in sockserve.__all__
    if name.startswith(("ThreadPool", "PreFork")) and not name.endswith("MixIn")
]
THREADPOOL_CLASSES = [c for c in POOL_CLASSES if issubclass(c, sockserve.ThreadPoolMixIn)]
PREFORK_CLASSES = [c for c in POOL_CLASSES if issubclass(c, sockserve.PreForkMixIn)]


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


class WhoHandler(sockserve.BaseRequestHandler):
    """Replies '<pid> <thread ident>' to each request, stream or datagram."""

    def handle(self) -> None:
        reply = f"{os.getpid()} {threading.get_ident()}\n".encode()
        if isinstance(self.request, tuple):
            self.request[1].sendto(reply, self.client_address)
        else:
            self.request.recv(1024)
            self.request.sendall(reply)


def test_every_pool_class_is_exported_and_has_a_kind() -> None:
    names = {c.__name__ for c in POOL_CLASSES}
    assert names == {
        "ThreadPoolTCPServer",
        "ThreadPoolUDPServer",
        "ThreadPoolUnixStreamServer",
        "ThreadPoolUnixDatagramServer",
        "PreForkTCPServer",
        "PreForkUnixStreamServer",
    }
    for cls in POOL_CLASSES:
        info = resolve_kind(cls.__name__)
        assert info.server_class is cls
        assert info.concurrency == ("prefork" if cls in PREFORK_CLASSES else "threadpool")


@pytest.mark.parametrize("cls", POOL_CLASSES, ids=class_id)
def test_pool_serves_and_counts(cls: type, sock_dir: str) -> None:
    server = cls(address_for(cls, sock_dir), WhoHandler)
    with serving(server, poll_interval=0.05):
        replies = [exchange(cls, server.server_address, b"hi\n", sock_dir) for _ in range(12)]
        assert wait_until(lambda: server.stats.completed == 12), server.stats.snapshot()
    pids = {int(r.split()[0]) for r in replies}
    threads = {int(r.split()[1]) for r in replies}
    if cls in PREFORK_CLASSES:
        assert os.getpid() not in pids  # served by the workers
        assert 1 <= len(pids) <= cls.workers
    else:
        assert pids == {os.getpid()}
        assert threading.get_ident() not in threads
        assert 1 <= len(threads) <= cls.pool_size  # the same few threads, not one each
    snap = server.stats.snapshot()
    assert snap["accepted"] == snap["started"] == snap["completed"] == 12
    assert snap["active"] == 0 and snap["threads"] == 0 and snap["children"] == 0


def threads_of(server: Any) -> list[threading.Thread]:
    """The live pool workers of *server* (only its own: other tests' pools
    may run in this process; a thread keeps its target while it runs)."""
    return [thread for thread in threading.enumerate()
            if getattr(getattr(thread, "_target", None), "__self__", None) is server
            and "worker" in thread.name]


@pytest.mark.parametrize("cls", THREADPOOL_CLASSES, ids=class_id)
def test_threadpool_starts_workers_once(cls: type, sock_dir: str) -> None:
    Small = type("Small", (cls,), {"pool_size": 3})
    server = Small(address_for(cls, sock_dir), WhoHandler)
    with serving(server, poll_interval=0.05):
        exchange(cls, server.server_address, b"hi\n", sock_dir)
        assert server.stats.threads == 3
        workers = set(threads_of(server))
        assert len(workers) == 3
        for _ in range(10):
            exchange(cls, server.server_address, b"hi\n", sock_dir)
        assert set(threads_of(server)) == workers  # the same three, none added
        assert server.stats.threads == 3
    assert server.stats.threads == 0
    assert not any(t.is_alive() for t in workers)


class GateHandler(StreamRequestHandler):
    """Reads a line, waits for the class's gate, replies 'ok'."""

    gate = threading.Event()

    def handle(self) -> None:
        self.rfile.readline()
        self.gate.wait(10)
        self.wfile.write(b"ok\n")


def _connect(cls: type, address: Any, sock_dir: str) -> socket.socket:
    sock = client_socket(cls, sock_dir)
    try:
        sock.connect(address)
        sock.sendall(b"go\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # rejected and closed already (a Unix socket notices at once)
    except BaseException:
        sock.close()
        raise
    return sock


@pytest.fixture
def connect(sock_dir: str) -> Iterator[Callable[[type, Any], socket.socket]]:
    """Open client connections that are all closed when the test ends."""
    opened: list[socket.socket] = []

    def open_one(cls: type, address: Any) -> socket.socket:
        opened.append(_connect(cls, address, sock_dir))
        return opened[-1]

    try:
        yield open_one
    finally:
        for sock in opened:
            sock.close()


@pytest.fixture
def gate() -> Iterator[type]:
    handler = type("Gate", (GateHandler,), {"gate": threading.Event()})
    try:
        yield handler
    finally:
        handler.gate.set()


STREAM_POOLS = [c for c in THREADPOOL_CLASSES if c.socket_type == socket.SOCK_STREAM]


@pytest.mark.parametrize("cls", STREAM_POOLS, ids=class_id)
def test_overflow_reject_closes_at_once_and_counts(
    cls: type, sock_dir: str, gate: type, connect: Any
) -> None:
    Tiny = type("Tiny", (cls,), {"pool_size": 1, "queue_size": 1, "overflow": "reject"})
    server = Tiny(address_for(cls, sock_dir), gate)
    with serving(server, poll_interval=0.05):
        clients = [connect(cls, server.server_address)]
        assert wait_until(lambda: server.stats.active == 1)  # the worker is busy
        clients.append(connect(cls, server.server_address))  # queued
        assert wait_until(lambda: server.stats.accepted == 2)
        extra = [connect(cls, server.server_address) for _ in range(2)]
        for sock in extra:  # closed with no reply, before the gate opens
            assert read_all(sock) == b""
        assert server.stats.overflows == 2
        gate.gate.set()
        assert [read_all(sock) for sock in clients] == [b"ok\n", b"ok\n"]
        assert wait_until(lambda: server.stats.completed == 2)
    snap = server.stats.snapshot()
    assert (snap["accepted"], snap["completed"], snap["overflows"]) == (4, 2, 2)


@pytest.mark.parametrize("cls", STREAM_POOLS, ids=class_id)
def test_overflow_block_stops_accepting_then_serves_all(
    cls: type, sock_dir: str, gate: type, connect: Any
) -> None:
    Tiny = type("Tiny", (cls,), {"pool_size": 1, "queue_size": 1, "overflow": "block"})
    server = Tiny(address_for(cls, sock_dir), gate)
    with serving(server, poll_interval=0.05):
        clients = [connect(cls, server.server_address)]
        assert wait_until(lambda: server.stats.active == 1)  # the worker is busy
        clients += [connect(cls, server.server_address) for _ in range(4)]
        # One running, one queued, one held by the blocked loop; the rest
        # wait in the listen backlog, not accepted.
        assert wait_until(lambda: server.stats.accepted == 3)
        time.sleep(0.2)
        assert server.stats.accepted == 3
        gate.gate.set()
        assert [read_all(sock) for sock in clients] == [b"ok\n"] * 5
        assert wait_until(lambda: server.stats.completed == 5)
    assert server.stats.overflows == 0


def test_bad_pool_settings_are_refused(sock_dir: str) -> None:
    Bad = type("Bad", (sockserve.ThreadPoolTCPServer,), {"overflow": "drop"})
    with Bad(("127.0.0.1", 0), WhoHandler) as server:
        with pytest.raises(ValueError, match="overflow"):
            server.process_request(None, None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("cls", PREFORK_CLASSES, ids=class_id)
def test_prefork_forks_workers_replaces_dead_and_stops_all(cls: type, sock_dir: str) -> None:
    Two = type("Two", (cls,), {"workers": 2})
    server = Two(address_for(cls, sock_dir), WhoHandler)
    with serving(server, poll_interval=0.05):
        # The pids and the children gauge are updated one after the other: wait for both.
        assert wait_until(lambda: len(server.worker_pids) == 2 and server.stats.children == 2)
        first = set(server.worker_pids)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: victim not in server.worker_pids and len(server.worker_pids) == 2
                          and server.stats.children == 2)
        replaced = set(server.worker_pids)
        assert replaced - first
        reply = exchange(cls, server.server_address, b"hi\n", sock_dir)
        assert int(reply.split()[0]) in replaced
    assert server.worker_pids == set()
    assert not any(_alive(pid) for pid in first | replaced)
    assert server.stats.children == 0


class DieHandler(StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("cls", PREFORK_CLASSES, ids=class_id)
def test_prefork_worker_dying_mid_request_is_counted_an_error(cls: type, sock_dir: str) -> None:
    One = type("One", (cls,), {"workers": 1})
    server = One(address_for(cls, sock_dir), DieHandler)
    with serving(server, poll_interval=0.05):
        assert exchange(cls, server.server_address, b"x\n", sock_dir) == b""
        # Its true outcome: the handler failed (no drain cut it off).
        assert wait_until(lambda: server.stats.errors == 1), server.stats.snapshot()
        assert server.stats.aborted == 0
        assert wait_until(lambda: len(server.worker_pids) == 1)  # replaced
    assert server.stats.started == server.stats.finished == 1


def test_prefork_refuses_datagram_servers() -> None:
    class PreForkUDP(sockserve.PreForkMixIn, sockserve.UDPServer):
        pass

    with PreForkUDP(("127.0.0.1", 0), WhoHandler) as server:
        with pytest.raises(TypeError, match="stream"):
            server.serve_forever()


class NapHandler(StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()
        time.sleep(0.2)
        self.wfile.write(b"ok\n")


def test_forking_max_children_is_a_real_bound(connect: Any) -> None:
    Bounded = type("Bounded", (sockserve.ForkingTCPServer,), {"max_children": 2})
    server = Bounded(("127.0.0.1", 0), NapHandler)
    with serving(server, poll_interval=0.05):
        clients = [connect(sockserve.TCPServer, server.server_address) for _ in range(5)]
        assert [read_all(sock) for sock in clients] == [b"ok\n"] * 5
        assert wait_until(lambda: server.stats.completed == 5)
    snap = server.stats.snapshot()
    assert snap["peak_children"] == 2
    assert snap["children"] == 0


@pytest.mark.parametrize("cls", PREFORK_CLASSES, ids=class_id)
def test_prefork_workers_keep_no_copy_of_the_parents_sockets(cls: type, sock_dir: str) -> None:
    mine, peer = socket.socketpair()  # open in this process when the workers fork
    try:
        server = cls(address_for(cls, sock_dir), WhoHandler)
        with serving(server, poll_interval=0.05):
            assert wait_until(lambda: len(server.worker_pids) == cls.workers)
            mine.close()
            peer.settimeout(5)
            assert peer.recv(1) == b""  # EOF: no worker holds a copy of `mine`
            exchange(cls, server.server_address, b"hi\n", sock_dir)  # still serving
    finally:
        mine.close()
        peer.close()
