"""Workloads: the wire protocol, on every server class."""

from __future__ import annotations

import contextlib
import pickle
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

import sockserve
from sockserve.measure import workloads
from sockserve.measure.workloads import (
    LINE_TOO_LONG,
    MAX_LINE,
    WORKLOAD_NAMES,
    EchoHandler,
    get_workload,
    handler_for,
)

from conftest import (ALL_CLASSES, DGRAM_CLASSES, STREAM_CLASSES, address_for, class_id, client_socket,
                      remove_socket_file, serving)

# Small durations keep the whole module fast on a busy machine.
FAST = {"io": {"delay_ms": 5.0}, "cpu": {"work_ms": 5.0}, "mixed": {"heavy_ms": 5.0}}


def is_stream(cls: type) -> bool:
    return cls.socket_type == socket.SOCK_STREAM


class Client:
    """One client socket that sends lines and reads one-line replies."""

    def __init__(self, cls: type, address: Any, sock_dir: str) -> None:
        self.cls = cls
        self.address = address
        self.sock = client_socket(cls, sock_dir)
        self.rfile: Any = None
        if is_stream(cls):
            self.sock.connect(address)
            self.rfile = self.sock.makefile("rb")

    def send(self, data: bytes, trickle_s: float = 0.0) -> None:
        if not is_stream(self.cls):
            self.sock.sendto(data, self.address)
        elif trickle_s:
            for i in range(len(data)):
                self.sock.sendall(data[i : i + 1])
                time.sleep(trickle_s)
        else:
            self.sock.sendall(data)

    def reply(self) -> bytes:
        if self.rfile is not None:
            return bytes(self.rfile.readline())
        return self.sock.recv(65536)

    def ask(self, data: bytes, trickle_s: float = 0.0) -> bytes:
        self.send(data, trickle_s)
        return self.reply()

    def close(self) -> None:
        if self.rfile is not None:
            self.rfile.close()
            # A forked server child holds a copy of this very socket (fork
            # copies every descriptor), so close() alone would not end the
            # connection: shutdown() sends the FIN whatever copies exist.
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self.sock.close()


@contextlib.contextmanager
def running(cls: type, handler: type, sock_dir: str) -> Iterator[Client]:
    """Serve *handler* on a *cls* server; yield a connected client."""
    server = cls(address_for(cls, sock_dir), handler)
    try:
        with serving(server, poll_interval=0.05):
            client = Client(cls, server.server_address, sock_dir)
            try:
                yield client
            finally:
                client.close()
    finally:
        remove_socket_file(server)  # kept by server_close(), as the stdlib keeps it


@pytest.mark.parametrize("name", WORKLOAD_NAMES)
@pytest.mark.parametrize("cls", ALL_CLASSES, ids=class_id)
def test_each_workload_answers(cls: type, name: str, sock_dir: str) -> None:
    workload = get_workload(name, **FAST.get(name, {}))
    with running(cls, workload.handler, sock_dir) as client:
        for index in (0, 1):
            request = workload.request(index)
            assert client.ask(request, workload.trickle_s) == request


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=class_id)
def test_io_takes_at_least_its_delay(cls: type, sock_dir: str) -> None:
    with running(cls, handler_for("io"), sock_dir) as client:
        began = time.perf_counter()
        assert client.ask(b"io 60\n") == b"io 60\n"
        assert time.perf_counter() - began >= 0.06
        # The parameter is the default for a line without a number.
    with running(cls, handler_for("io", delay_ms=40), sock_dir) as client:
        began = time.perf_counter()
        assert client.ask(b"io\n") == b"io\n"
        assert time.perf_counter() - began >= 0.04


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=class_id)
def test_one_client_gets_many_replies(cls: type, sock_dir: str) -> None:
    lines = [f"echo {i}\n".encode() for i in range(6)]
    with running(cls, handler_for("cpu", work_ms=1), sock_dir) as client:
        assert [client.ask(line) for line in lines] == lines
        if is_stream(cls):
            # Several lines sent at once are answered in order, one by one.
            client.send(b"".join(lines))
            assert [client.reply() for _ in lines] == lines


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=class_id)
def test_bad_request_gets_error_and_connection_stays(cls: type, sock_dir: str) -> None:
    with running(cls, handler_for("io"), sock_dir) as client:
        for bad in (b"io abc\n", b"io 1 2\n", b"io -5\n", b"io 99999999\n", b"io nan\n"):
            reply = client.ask(bad)
            assert reply.startswith(b"ERR bad request") and reply.endswith(b"\n"), reply
        assert client.ask(b"io 1\n") == b"io 1\n"


@pytest.mark.parametrize("cls", DGRAM_CLASSES, ids=class_id)
def test_datagram_newline_is_optional(cls: type, sock_dir: str) -> None:
    with running(cls, handler_for("echo"), sock_dir) as client:
        assert client.ask(b"echo") == b"echo\n"


@pytest.mark.parametrize("cls", STREAM_CLASSES, ids=class_id)
def test_over_long_line_is_refused_with_bounded_memory(cls: type, sock_dir: str) -> None:
    payload = b"x" * (600 * 1024)  # no newline: an unbounded reader would keep all of it
    traced = not issubclass(
        cls, (getattr(sockserve, "ForkingMixIn"), getattr(sockserve, "PreForkMixIn"))
    )
    with running(cls, handler_for("echo"), sock_dir) as client:
        if traced:
            tracemalloc.start()
        try:
            client.send(payload)
            # The reply comes although the client neither ended the line nor
            # closed: the server stopped reading at the bound.
            reply = client.reply()
            peak = tracemalloc.get_traced_memory()[1] if traced else 0
        finally:
            if traced:
                tracemalloc.stop()
        assert reply == LINE_TOO_LONG
        assert client.reply() == b""  # then the server closed the connection
    if traced:
        assert peak < 4 * MAX_LINE, f"server used {peak} bytes for one refused line"


def test_line_of_exactly_the_bound_is_served(sock_dir: str) -> None:
    line = b"x" * (MAX_LINE - 1) + b"\n"
    with running(sockserve.TCPServer, handler_for("echo"), sock_dir) as client:
        assert client.ask(line) == line
        assert client.ask(b"echo\n") == b"echo\n"


class TinyLines(EchoHandler):
    max_line = 16


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=class_id)
def test_max_line_is_a_tunable_bound(cls: type, sock_dir: str) -> None:
    with running(cls, TinyLines, sock_dir) as client:
        assert client.ask(b"echo\n") == b"echo\n"
        assert client.ask(b"y" * 40 + b"\n") == LINE_TOO_LONG
        if is_stream(cls):
            assert client.reply() == b""


def test_bad_names_and_parameters_say_what_is_valid() -> None:
    with pytest.raises(ValueError) as info:
        get_workload("disk")
    for name in WORKLOAD_NAMES:
        assert name in str(info.value)
    with pytest.raises(ValueError) as info:
        handler_for("nope")
    assert "echo, io, cpu, slow, mixed" in str(info.value)
    with pytest.raises(ValueError, match="delay_ms"):
        get_workload("io", work_ms=5)
    with pytest.raises(ValueError, match="out of range"):
        get_workload("cpu", work_ms=-1)


def test_requests_are_deterministic() -> None:
    mixed = get_workload("mixed")
    lines = [mixed.request(i) for i in range(30)]
    assert lines == [get_workload("mixed").request(i) for i in range(30)]
    assert [i for i, line in enumerate(lines) if line == b"cpu 50\n"] == [0, 10, 20]
    assert set(lines) == {b"cpu 50\n", b"cpu 1\n"}
    assert get_workload("io").request(7) == b"io 10\n"
    assert get_workload("io", delay_ms=2.5).request(0) == b"io 2.5\n"
    assert get_workload("cpu", work_ms=30).request(0) == b"cpu 30\n"
    assert get_workload("echo").request(3) == b"echo\n"
    slow = get_workload("slow", trickle_ms=2)
    assert slow.trickle_s == pytest.approx(0.002) and slow.request(0) == b"slow\n"
    assert get_workload("echo").trickle_s == 0.0
    assert dict(get_workload("io", delay_ms=20).params) == {"delay_ms": 20.0}


def test_parametrized_handlers_are_cached_and_picklable() -> None:
    io20 = handler_for("io", delay_ms=20)
    assert io20 is handler_for("io", delay_ms=20)
    assert issubclass(io20, workloads.IoHandler) and io20.default_ms == 20.0
    assert handler_for("io") is workloads.IoHandler
    for handler in (EchoHandler, workloads.MixedHandler, io20, TinyLines):
        assert pickle.loads(pickle.dumps(handler)) is handler
    # Another interpreter, which never made the variant, rebuilds it.
    code = (
        "import pickle, sys; cls = pickle.loads(sys.stdin.buffer.read()); "
        "print(cls.__name__, cls.default_ms, cls.__mro__[1].__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(io20), capture_output=True, timeout=60
    )
    assert out.stdout.split() == [b"IoHandler_20ms", b"20.0", b"IoHandler"], out.stderr


def test_cpu_is_calibrated_once_and_does_real_work() -> None:
    rate = workloads.calibrate()
    assert rate > 0 and workloads.calibrate() == rate
    began = time.process_time()
    workloads.burn_cpu(40)
    # A fixed amount of work, calibrated on the fastest run: never much
    # less CPU time than asked for (other load can only make it longer).
    assert time.process_time() - began >= 0.02


def test_a_handed_calibration_fixes_the_work_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server does ms * iterations_per_ms loop iterations, whatever its
    # own process would have measured.
    spun: list[int] = []
    monkeypatch.setattr(workloads, "_spin", spun.append)
    monkeypatch.setattr(workloads, "_iterations_per_ms", 99.0)  # "this process's" figure
    handler = handler_for("cpu", work_ms=4, iterations_per_ms=1234)
    assert handler.iterations_per_ms == 1234.0 and handler.default_ms == 4.0
    assert handler is handler_for("cpu", work_ms=4, iterations_per_ms=1234)
    handler.work(handler, 4.0)  # type: ignore[arg-type]
    mixed = handler_for("mixed", iterations_per_ms=500)
    mixed.work(mixed, 50.0)  # type: ignore[arg-type]
    workloads.CpuHandler.work(workloads.CpuHandler, 2.0)  # type: ignore[arg-type]
    assert spun == [4 * 1234, 50 * 500, 2 * 99]
    assert pickle.loads(pickle.dumps(handler)) is handler
    workload = get_workload("cpu", work_ms=4, iterations_per_ms=1234)
    assert workload.params["iterations_per_ms"] == 1234.0 and workload.work_ms == 4.0
    assert workload.request(0) == b"cpu 4\n"  # the wire protocol is unchanged
    with pytest.raises(ValueError, match="iterations_per_ms"):
        get_workload("io", iterations_per_ms=100)
    with pytest.raises(ValueError, match="out of range"):
        get_workload("cpu", iterations_per_ms=0)


def test_calibration_counts_cpu_time_not_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock that only advances while the loop computes (as thread_time
    # does) gives the same figure however long the thread waited for a core.
    cpu = [0.0]

    def fake_spin(iterations: int) -> int:
        cpu[0] += iterations / 20_000_000  # 20,000 iterations per CPU ms
        time.sleep(0.0005)  # waiting for a core: wall time only
        return 0

    monkeypatch.setattr(workloads, "_spin", fake_spin)
    monkeypatch.setattr(workloads, "_cpu_clock", lambda: cpu[0])
    assert workloads.measure_iterations_per_ms() == pytest.approx(20_000)
    assert workloads.CALIBRATION_CLOCK in ("thread_time", "process_time")


def test_work_and_wait_per_request() -> None:
    assert workloads.work_ms_per_request("cpu", {"work_ms": 7}) == 7
    assert workloads.work_ms_per_request("mixed", {}) == pytest.approx((50 + 9 * 1) / 10)
    assert workloads.work_ms_per_request("io", {}) == 0
    assert workloads.wait_ms_per_request("io", {"delay_ms": 3}) == 3
    assert workloads.wait_ms_per_request("slow", {"trickle_ms": 5}) == 20  # 4 pauses in b"slow\n"
    assert workloads.uses_calibration("mixed") and not workloads.uses_calibration("io")
