"""The kernel's view of a server (sockserve.kernelview): parsing fixture tables, and live loopback servers."""

from __future__ import annotations

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
from sockserve import kernelview as kv
from sockserve import sockdiag
from sockserve.backlog import effective_somaxconn

from conftest import serving

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net is Linux's")
little_endian = pytest.mark.skipif(
    sys.byteorder != "little", reason="the fixture text is what a little-endian kernel prints"
)

# What Linux prints, one socket per line, for port 8000 (1F40) and others.
# Addresses are 32-bit words in the machine's byte order: 0100007F is 127.0.0.1.
_TCP_HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
)


def _tcp_line(n: int, local: str, remote: str, state: str, queues: str = "00000000:00000000", inode: int = 0) -> str:
    return (f"{n:4d}: {local} {remote} {state} {queues} 00:00000000 00000000  1000        0 {inode} 1 "
            "0000000000000000 100 0 0 10 0\n")


_LO = "0100007F"
TCP_FIXTURE = _TCP_HEADER + "".join([
    _tcp_line(0, f"{_LO}:1F40", "00000000:0000", "0A", "00000000:00000003", 4242),  # LISTEN, 3 queued
    # the server's side: local port 8000, one socket in every other state
    *(_tcp_line(i, f"{_LO}:1F40", f"{_LO}:{0xC000 + i:04X}", f"{i:02X}") for i in range(1, 12) if i != 10),
    # the client's side: remote port 8000
    _tcp_line(20, f"{_LO}:D000", f"{_LO}:1F40", "02"),  # SYN-SENT: a dropped SYN
    _tcp_line(21, f"{_LO}:D001", f"{_LO}:1F40", "06"),  # TIME-WAIT
    _tcp_line(22, f"{_LO}:D002", f"{_LO}:1F40", "06"),
    _tcp_line(23, f"{_LO}:D003", f"{_LO}:1F40", "01"),
    # noise: another server, and port 8000's digits elsewhere on the line
    _tcp_line(30, f"{_LO}:1F41", f"{_LO}:E000", "01"),
    _tcp_line(31, "00000000:0016", "00000000:0000", "0A", "00000000:00000000", 8000),
    "   99: garbage line\n",
])

TCP6_FIXTURE = _TCP_HEADER + "".join([
    # a dual-stack listener on [::]:8000, a v4 client's accepted socket (v4-mapped), and ::1 both ways
    _tcp_line(0, "00000000000000000000000000000000:1F40", "00000000000000000000000000000000:0000", "0A",
              "00000000:00000001"),
    _tcp_line(1, "0000000000000000FFFF00000100007F:1F40", "0000000000000000FFFF00000100007F:C5E2", "01"),
    _tcp_line(2, "00000000000000000000000001000000:1F40", "00000000000000000000000001000000:892A", "08"),
    _tcp_line(3, "00000000000000000000000001000000:892A", "00000000000000000000000001000000:1F40", "05"),
])

UNIX_FIXTURE = """Num       RefCount Protocol Flags    Type St Inode Path
000000006b06bd51: 00000002 00000000 00010000 0001 01 78446 /tmp/ss-x/server.sock
00000000469951bb: 00000003 00000000 00000000 0001 02     0 /tmp/ss-x/server.sock
0000000009163e23: 00000003 00000000 00000000 0001 02     0 /tmp/ss-x/server.sock
00000000acacedfd: 00000003 00000000 00000000 0001 03 78454 /tmp/ss-x/server.sock
00000000acacedfe: 00000003 00000000 00000000 0001 04 78455 /tmp/ss-x/server.sock
0000000082c0ffee: 00000003 00000000 00000000 0001 03 78460
00000000deadbeef: 00000002 00000000 00010000 0001 01 78470 /tmp/ss-x/other.sock
00000000feedface: 00000002 00000000 00000000 0002 01 78480 @abstract name
"""


@little_endian
def test_addresses_decode_ipv4_ipv6_and_v4_mapped() -> None:
    assert kv.decode_address("0100007F:1F40") == ("127.0.0.1", 8000)
    assert kv.decode_address("00000000:0000") == ("0.0.0.0", 0)
    assert kv.decode_address("00000000000000000000000001000000:892A") == ("::1", 0x892A)
    assert kv.decode_address("0000000000000000FFFF00000100007F:C5E2") == ("::ffff:127.0.0.1", 0xC5E2)
    assert kv.decode_address("B80D0120000000000000000001000000:0050") == ("2001:db8::1", 80)
    with pytest.raises(ValueError, match="not an address"):
        kv.decode_address("7F:1")


@little_endian
def test_every_tcp_state_is_parsed_and_counted_on_its_side() -> None:
    rows = kv.parse_tcp(TCP_FIXTURE)
    assert len(rows) == 1 + 10 + 4 + 2  # the header and the garbage line are skipped
    assert {r.state for r in rows} == set(kv.TCP_STATES)
    listener = rows[0]
    assert (listener.local, listener.local_port, listener.state, listener.rx_queue, listener.inode) == (
        "127.0.0.1", 8000, "LISTEN", 3, 4242)
    server, client, queue = kv.count_tcp(rows, 8000)
    assert server == {state: 1 for state in kv.TCP_STATES}
    assert client == {"SYN-SENT": 1, "TIME-WAIT": 2, "ESTABLISHED": 1}
    assert queue == 3
    # another port sees only its own sockets
    assert kv.count_tcp(rows, 8001) == ({"ESTABLISHED": 1}, {}, None)


@little_endian
def test_ipv6_and_v4_mapped_sockets_count_for_the_port() -> None:
    rows = kv.parse_tcp(TCP6_FIXTURE)
    assert [r.local for r in rows] == ["::", "::ffff:127.0.0.1", "::1", "::1"]
    server, client, queue = kv.count_tcp(rows, 8000)
    assert server == {"LISTEN": 1, "ESTABLISHED": 1, "CLOSE-WAIT": 1}
    assert client == {"FIN-WAIT-2": 1}
    assert queue == 1


@little_endian
def test_a_connection_listed_twice_is_counted_once_in_its_later_state() -> None:
    # the table changed while it was read: one connection went from ESTABLISHED to TIME-WAIT
    text = TCP_FIXTURE + _tcp_line(40, f"{_LO}:D003", f"{_LO}:1F40", "06")
    _server, client, _queue = kv.count_tcp(kv.parse_tcp(text), 8000)
    assert client == {"SYN-SENT": 1, "TIME-WAIT": 3}
    # two SO_REUSEPORT listeners on one address are two sockets
    text = TCP_FIXTURE + _tcp_line(41, f"{_LO}:1F40", "00000000:0000", "0A", "00000000:00000002", 4243)
    server, _client, queue = kv.count_tcp(kv.parse_tcp(text), 8000)
    assert server["LISTEN"] == 2 and queue == 5


@little_endian
def test_a_host_keeps_only_the_sockets_of_that_address() -> None:
    rows = kv.parse_tcp(TCP_FIXTURE) + kv.parse_tcp(TCP6_FIXTURE)
    # port 8000 on ::1 is another server than port 8000 on 127.0.0.1
    assert kv.count_tcp(rows, 8000, "::1") == ({"CLOSE-WAIT": 1}, {"FIN-WAIT-2": 1}, None)
    server, client, queue = kv.count_tcp(rows, 8000, "127.0.0.1")
    assert server["LISTEN"] == 1 and server["ESTABLISHED"] == 2  # v4-mapped counts as 127.0.0.1
    assert client == {"SYN-SENT": 1, "TIME-WAIT": 2, "ESTABLISHED": 1} and queue == 3
    # a wildcard or a name matches every address
    assert kv.count_tcp(rows, 8000, "::") == kv.count_tcp(rows, 8000, "localhost") == kv.count_tcp(rows, 8000)


def test_unix_rows_count_the_listener_the_queue_and_the_accepted() -> None:
    rows = kv.parse_unix(UNIX_FIXTURE)
    assert len(rows) == 8
    assert rows[0] == kv.UnixRow("LISTEN", True, 1, 78446, "/tmp/ss-x/server.sock")
    assert rows[5].path == "" and rows[7].path == "@abstract name" and rows[7].socket_type == 2
    server, queue, listener = kv.count_unix(rows, "/tmp/ss-x/server.sock")
    assert server == {"LISTEN": 1, "CONNECTING": 2, "CONNECTED": 1, "DISCONNECTING": 1}
    assert (queue, listener) == (2, 78446)
    assert kv.count_unix(rows, "/tmp/ss-x/gone.sock") == ({}, None, 0)


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


@linux_only
def test_a_small_backlog_fills_and_the_rest_wait_in_syn_sent_or_syn_recv() -> None:
    class Small(sockserve.TCPServer):
        request_queue_size = 2

    clients: list[socket.socket] = []
    with Small(("127.0.0.1", 0), _Reply) as server:  # bound and listening, never accepting
        try:
            for _ in range(6):
                clients.append(_connect_nonblocking(server.server_address))
            assert _wait_for(lambda: kv.read(server).queue == 3)
            reading = kv.read(server)
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
        assert _wait_for(lambda: kv.read(port).count("SYN-RECV") == 3)
        reading = kv.read(port)
        assert reading.count("ESTABLISHED", "client") == 3 and reading.queue == 0
        assert reading.queue_max == 8
        clients[0].sendall(b"x")
        assert _wait_for(lambda: kv.read(port).queue == 1)
        assert kv.read(port).count("SYN-RECV") == 2
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
            for i in range(3):
                with socket.create_connection(server.server_address, timeout=5) as client:
                    client.sendall(b"hi\n")
                    assert client.recv(16) == b"hi\n"
            assert _wait_for(lambda: server.stats.snapshot()["completed"] == 3)
            assert _wait_for(lambda: kv.read(server).count("TIME-WAIT", "client") == 3)
            reading = kv.read(server)
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
                for _ in range(2):
                    with socket.create_connection(server.server_address, timeout=5) as client:
                        client.sendall(b"hi\n")
                        assert client.recv(16) == b"hi\n"
                assert _wait_for(lambda: kv.read(server).count("CLOSE-WAIT") == 2)
                # the clients' FIN is acknowledged (the ACK may be delayed a little)
                assert _wait_for(lambda: kv.read(server).count("FIN-WAIT-2", "client") == 2)
                reading = kv.read(server)
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
                reading = kv.read(server)
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
def test_sock_diag_reports_the_backlog_of_tcp_and_unix_listeners(sock_dir: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(7)
        assert sockdiag.tcp_listen_queues(listener.getsockname()[1]) == [("127.0.0.1", 0, 7)]
    with socket.socket(socket.AF_UNIX) as unix_listener:
        unix_listener.bind(os.path.join(sock_dir, "d.sock"))
        unix_listener.listen(5)
        assert sockdiag.unix_listen_queue(os.fstat(unix_listener.fileno()).st_ino) == (0, 5)
    assert sockdiag.unix_listen_queue(0) is None


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
