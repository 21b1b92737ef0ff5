"""The kernel's view of a server (sockserve.kernel.view): fixture tables, the sampler, live loopback servers."""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sockserve
from sockserve.kernel import view as kv
from sockserve.workbook.backlog import effective_somaxconn

from conftest import serving
from procnet_fixtures import TCP6_FIXTURE, TCP_FIXTURE, UNIX_FIXTURE, little_endian

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net is Linux's")


@little_endian
def test_read_from_fixture_tables(tmp_path: Path) -> None:
    (tmp_path / "tcp").write_text(TCP_FIXTURE)
    (tmp_path / "tcp6").write_text(TCP6_FIXTURE)
    (tmp_path / "unix").write_text(UNIX_FIXTURE)
    reading = kv.read(8000, proc_net=str(tmp_path))
    assert reading.count("LISTEN") == 2 and reading.count("ESTABLISHED") == 2
    assert reading.count("TIME-WAIT", "client") == 2 and reading.count("FIN-WAIT-2", "client") == 1
    assert reading.queue == 4 and reading.queue_max is None  # the kernel is not asked about fixtures
    # the server's requested backlog is the fallback maximum
    full = kv.read(kv.Target(port=8000, backlog=3), proc_net=str(tmp_path))
    assert full.queue_max == 3 and full.queue_full
    assert full.summary() == (
        "server: LISTEN 2, SYN-SENT 1, SYN-RECV 1, ESTABLISHED 2, FIN-WAIT-1 1, FIN-WAIT-2 1, CLOSE-WAIT 2, CLOSING 1, "
        "LAST-ACK 1, TIME-WAIT 1, CLOSE 1; clients here: SYN-SENT 1, ESTABLISHED 1, FIN-WAIT-2 1, TIME-WAIT 2; "
        "listen queue 4 (max 3, full)")
    assert kv.KernelReading(0.0).summary() == "server: no sockets; nothing listens"
    assert not kv.read(kv.Target(port=8000, backlog=4), proc_net=str(tmp_path)).queue_full
    # an IPv4 server's sockets are all in tcp: tcp6 is not read for it
    v4 = kv.read(("127.0.0.1", 8000), proc_net=str(tmp_path))
    assert v4.count("LISTEN") == 1 and v4.count("FIN-WAIT-2", "client") == 0 and v4.queue == 3
    v6 = kv.read(("::1", 8000), proc_net=str(tmp_path))
    assert v6.server == {"CLOSE-WAIT": 1} and v6.client == {"FIN-WAIT-2": 1}
    unix = kv.read("/tmp/ss-x/server.sock", proc_net=str(tmp_path))
    assert unix.server["CONNECTING"] == 2 and unix.client == {} and unix.queue == 2
    assert kv.KernelReading.from_dict(reading.to_dict()) == reading


def test_targets_from_ports_addresses_paths_and_servers() -> None:
    assert kv.target_of(8000) == kv.Target(port=8000)
    assert kv.target_of(("::1", 8000, 0, 0)) == kv.Target(port=8000, host="::1")
    assert str(kv.target_of(("::1", 8000, 0, 0))) == "[::1]:8000"
    assert str(kv.target_of(("0.0.0.0", 8000))) == "port 8000"
    assert kv.target_of("/tmp/x.sock") == kv.Target(path="/tmp/x.sock")
    assert kv.target_of(b"\0hidden") == kv.Target(path="@hidden")
    assert kv.target_of(None) is None

    class Small(sockserve.TCPServer):
        request_queue_size = 3

    with Small(("127.0.0.1", 0), sockserve.BaseRequestHandler) as server:
        assert kv.target_of(server) == kv.Target(port=server.server_address[1], backlog=3, host="127.0.0.1")

        class Model:  # the shape of the lab's ServerModel and ServerPanel
            def __init__(self, inner: Any) -> None:
                self.server = inner

        class Panel:
            def __init__(self, model: Any) -> None:
                self.model = model

        assert kv.target_of(Panel(Model(server))) == kv.target_of(server)
        assert kv.target_of(Panel(Model(None))) is None
    for bad in (True, 3.5, object()):
        with pytest.raises(TypeError, match="cannot watch|not a bool"):
            kv.target_of(bad)
    with pytest.raises(ValueError, match="either a TCP port"):
        kv.target_of(0)
    with pytest.raises(ValueError, match="peers are TCP client ports"):
        kv.Target(path="/tmp/x.sock", peers=frozenset({40000}))


def test_a_system_without_proc_net_says_not_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kv, "PROC_NET", str(tmp_path / "missing"))
    assert not kv.available()
    with pytest.raises(kv.KernelViewUnavailable, match="not available on this system"):
        kv.read(8000)
    with pytest.raises(kv.KernelViewUnavailable, match="not available on this system"):
        kv.read("/tmp/x.sock")
    sampler = kv.KernelSampler(8000, rate=50).start()
    assert _wait_for(lambda: not sampler.running)
    series = sampler.stop()
    assert sampler.error == kv.NOT_AVAILABLE and series.stopped_by == kv.NOT_AVAILABLE
    assert series.readings == ()


def test_the_sampler_is_bounded_in_readings_and_time(tmp_path: Path) -> None:
    (tmp_path / "tcp").write_text(TCP_FIXTURE)
    with pytest.raises(ValueError, match="rate"):
        kv.KernelSampler(8000, rate=0)
    with pytest.raises(ValueError, match="cap"):
        kv.KernelSampler(8000, cap=0)
    with pytest.raises(TypeError, match="cannot watch"):
        kv.KernelSampler(object())
    sampler = kv.KernelSampler(8000, rate=100, cap=3, max_seconds=0.3, proc_net=str(tmp_path)).start()
    assert _wait_for(lambda: not sampler.running, 5)
    series = sampler.series()
    assert series.stopped_by == "max_seconds"
    assert len(series.readings) == 3 and series.dropped > 0
    assert series.target == "port 8000" and series.states() == list(kv.TCP_STATES)
    assert series.states("client") == ["SYN-SENT", "ESTABLISHED", "TIME-WAIT"]
    assert series.peak("TIME-WAIT", "client") == 2 and series.counts("LISTEN") == [1, 1, 1]
    assert kv.KernelSeries.from_dict(series.to_dict()) == series
    assert series.elapsed()[0] == 0.0 and series.elapsed() == sorted(series.elapsed())


def test_the_sampler_waits_for_an_address_and_follows_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "tcp").write_text(TCP_FIXTURE)

    class Model:
        address: Any = None

    model = Model()
    sampler = kv.KernelSampler(model, rate=50, proc_net=str(tmp_path)).start()
    try:
        assert _wait_for(lambda: sampler.waiting)
        time.sleep(0.1)
        assert sampler.series().readings == ()
        model.address = ("127.0.0.1", 8000)
        assert _wait_for(lambda: len(sampler.series().readings) >= 2)
        assert sampler.series().target == "127.0.0.1:8000"
        model.address = ("127.0.0.1", 8001)
        assert _wait_for(lambda: sampler.series().target == "127.0.0.1:8001")
        assert all(r.count("LISTEN") == 0 for r in sampler.series().readings)
    finally:
        sampler.stop()
    assert not sampler.running


# -- live, on loopback ----------------------------------------------------------------


def _wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _connect_nonblocking(address: Any, family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(address)
    except (BlockingIOError, InterruptedError):
        pass  # the handshake goes on in the kernel
    return sock


class _Reply(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def _ours(target: Any, clients: list[socket.socket] | list[int]) -> kv.Target:
    """*target* read with only the listener and the connections of *clients*
    (sockets or their ports): other programs on this busy machine use the
    same port numbers, and earlier servers on a reused port leave TIME-WAIT."""
    resolved = kv.target_of(target)
    assert resolved is not None
    ports = frozenset(c if isinstance(c, int) else c.getsockname()[1] for c in clients)
    return dataclasses.replace(resolved, peers=ports)


@linux_only
def test_a_small_backlog_fills_and_the_rest_wait_in_syn_sent_or_syn_recv() -> None:
    class Small(sockserve.TCPServer):
        request_queue_size = 2

    clients: list[socket.socket] = []
    with Small(("127.0.0.1", 0), _Reply) as server:  # bound and listening, never accepting
        try:
            for _ in range(6):
                clients.append(_connect_nonblocking(server.server_address))
            target = _ours(server, clients)
            assert _wait_for(lambda: kv.read(target).queue == 3)
            reading = kv.read(target)
            assert reading.queue_max == 2  # from sock_diag: the backlog asked for
            assert reading.queue_full  # Linux holds backlog + 1
            assert reading.count("LISTEN") == 1
            assert reading.count("ESTABLISHED") == 3  # queued connections are established
            extra = reading.count("SYN-SENT", "client") + reading.count("SYN-RECV")
            assert extra == 3, reading
            assert reading.count("ESTABLISHED", "client") + reading.count("SYN-SENT", "client") == 6
            # the listener's rx_queue is the queue, as read straight from the table
            with open("/proc/net/tcp") as table:
                rows = [r for r in kv.parse_tcp(table.read()) if r.local_port == server.server_address[1]]
            assert [r.rx_queue for r in rows if r.state == "LISTEN"] == [3]
            # accepting one makes room for one retransmitted SYN (after about 1 s)
            request, _ = server.get_request()
            request.close()
        finally:
            for sock in clients:
                sock.close()


@linux_only
def test_syn_recv_is_counted() -> None:
    """With TCP_DEFER_ACCEPT the kernel keeps a handshake in SYN-RECV until data arrives."""
    listener = socket.socket()
    clients: list[socket.socket] = []
    try:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        target = _ours(port, clients)
        assert _wait_for(lambda: kv.read(target).count("SYN-RECV") == 3)
        reading = kv.read(target)
        assert reading.count("ESTABLISHED", "client") == 3 and reading.queue == 0
        assert reading.queue_max == 8
        clients[0].sendall(b"x")
        assert _wait_for(lambda: kv.read(target).queue == 1)
        assert kv.read(target).count("SYN-RECV") == 2
    finally:
        for sock in clients:
            sock.close()
        listener.close()


@linux_only
def test_the_side_that_closes_first_keeps_time_wait() -> None:
    class ReplyThenWaitForEof(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline())
            self.wfile.flush()
            self.rfile.read()  # returns when the client has closed

    with sockserve.ThreadingTCPServer(("127.0.0.1", 0), ReplyThenWaitForEof) as server:
        with serving(server, poll_interval=0.05):
            ports = []
            for i in range(3):
                with socket.create_connection(server.server_address, timeout=5) as client:
                    ports.append(client.getsockname()[1])
                    client.sendall(b"hi\n")
                    assert client.recv(16) == b"hi\n"
            assert _wait_for(lambda: server.stats.snapshot()["completed"] == 3)
            target = _ours(server, ports)
            assert _wait_for(lambda: kv.read(target).count("TIME-WAIT", "client") == 3)
            reading = kv.read(target)
            assert reading.count("TIME-WAIT") == 0
            assert reading.server == {"LISTEN": 1}


class _ForgetfulServer(sockserve.ThreadingTCPServer):
    """Never closes a connection: what a handler that forgets to close leaves."""

    block_on_close = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.forgotten: list[socket.socket] = []

    def shutdown_request(self, request: Any) -> None:
        self.forgotten.append(request)


@linux_only
def test_a_server_that_does_not_close_keeps_close_wait() -> None:
    with _ForgetfulServer(("127.0.0.1", 0), _Reply) as server:
        try:
            with serving(server, poll_interval=0.05):
                ports = []
                for _ in range(2):
                    with socket.create_connection(server.server_address, timeout=5) as client:
                        ports.append(client.getsockname()[1])
                        client.sendall(b"hi\n")
                        assert client.recv(16) == b"hi\n"
                target = _ours(server, ports)
                assert _wait_for(lambda: kv.read(target).count("CLOSE-WAIT") == 2)
                # the clients' FIN is acknowledged (the ACK may be delayed a little)
                assert _wait_for(lambda: kv.read(target).count("FIN-WAIT-2", "client") == 2)
                reading = kv.read(target)
                assert reading.count("CLOSE-WAIT") == 2
                assert reading.count("TIME-WAIT", "client") == 0
        finally:
            for request in server.forgotten:
                request.close()


@linux_only
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_established_counts_match_open_connections(host: str) -> None:
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    release = threading.Event()

    class Hold(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            release.wait(10)

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("HoldServer", (sockserve.ThreadingTCPServer,), {"address_family": family})
    clients: list[socket.socket] = []
    with server_class((host, 0), Hold) as server:
        try:
            with serving(server, poll_interval=0.05):
                for _ in range(4):
                    sock = socket.create_connection(server.server_address[:2], timeout=5)
                    sock.sendall(b"x\n")
                    clients.append(sock)
                assert _wait_for(lambda: server.stats.snapshot()["active"] == 4)
                reading = kv.read(_ours(server, clients))
                assert reading.count("ESTABLISHED") == 4 and reading.count("ESTABLISHED", "client") == 4
                assert reading.queue == 0
                assert reading.queue_max == min(server.request_queue_size, effective_somaxconn())
                release.set()
        finally:
            release.set()
            for sock in clients:
                sock.close()


@linux_only
def test_a_unix_server_shows_its_queue_and_accepted_connections(sock_dir: str) -> None:
    class SmallUnix(sockserve.UnixStreamServer):
        request_queue_size = 2

    path = os.path.join(sock_dir, "k.sock")
    clients: list[socket.socket] = []
    with SmallUnix(path, _Reply) as server:
        try:
            for _ in range(4):
                clients.append(_connect_nonblocking(path, socket.AF_UNIX))
            reading = kv.read(server)
            assert reading.server == {"LISTEN": 1, "CONNECTING": 3}
            assert (reading.queue, reading.queue_max, reading.queue_full) == (3, 2, True)
            request, _ = server.get_request()
            try:
                after = kv.read(server)
                assert after.count("CONNECTED") == 1 and after.queue == 2
            finally:
                request.close()
        finally:
            for sock in clients:
                sock.close()


@linux_only
def test_a_sampler_records_a_burst_live() -> None:
    class Small(sockserve.TCPServer):
        request_queue_size = 2

    clients: list[socket.socket] = []
    with Small(("127.0.0.1", 0), _Reply) as server:
        with kv.KernelSampler(server, rate=50) as sampler:
            assert _wait_for(lambda: len(sampler.series().readings) >= 2)
            try:
                for _ in range(5):
                    clients.append(_connect_nonblocking(server.server_address))
                assert _wait_for(lambda: any(r.queue_full for r in sampler.series().readings))
            finally:
                for sock in clients:
                    sock.close()
        series = sampler.series()
    assert series.stopped_by == "stop"
    assert series.readings[0].queue == 0 and series.peak("ESTABLISHED") == 3
    assert "SYN-SENT" in series.states("client")


def test_a_datagram_server_is_refused_in_one_line(sock_dir: str) -> None:
    with sockserve.UDPServer(("127.0.0.1", 0), sockserve.DatagramRequestHandler) as server:
        with pytest.raises(ValueError, match="datagram server"):
            kv.target_of(server)

        class Model:  # a lab model whose server turns out to be a datagram one
            def __init__(self) -> None:
                self.server: Any = None

        model = Model()
        sampler = kv.KernelSampler(model, rate=50).start()
        try:
            assert _wait_for(lambda: sampler.waiting)
            model.server = server
            assert _wait_for(lambda: not sampler.running)
        finally:
            sampler.stop()
        assert "datagram server" in sampler.error and sampler.series().stopped_by == sampler.error
