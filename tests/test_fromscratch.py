"""A serve loop written from scratch, run as a server (sockserve.workbook.fromscratch),
and measured by the comparison harness in this process (sockserve.measure.localserver)."""

from __future__ import annotations

import importlib.util
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sockserve.measure.experiment import run_one
from sockserve.workbook.fromscratch import ScratchServer, scratch_kind
from sockserve.measure.kinds import resolve_kind
from sockserve.measure.localserver import LocalServer, runs_here
from sockserve.measure.workloads import handler_for

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions" / "08-a-server-from-scratch.py"


def _solutions() -> Any:
    spec = importlib.util.spec_from_file_location("solutions_08_from_scratch", SOLUTIONS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blocking_loop(listener: Any, server: Any) -> None:
    while not server.stopping:
        ready, _, _ = select.select([listener], [], [], server.poll_interval)
        if ready:
            conn, _ = listener.accept()
            with conn:
                for line in conn.makefile("rb"):
                    conn.sendall(server.respond(line))


@pytest.fixture
def serving() -> Iterator[Any]:
    started: list[tuple[ScratchServer, threading.Thread]] = []

    def serve(loop: Any, workload: str = "echo", **params: float) -> ScratchServer:
        server = ScratchServer(("127.0.0.1", 0), handler_for(workload, **params), loop)
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield serve
    for server, thread in started:
        server._stop.set()
        thread.join(5)
        server.server_close()


def _ask(address: Any, *lines: bytes) -> list[bytes]:
    with socket.create_connection(address, timeout=5) as sock:
        for line in lines:
            sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        return sock.makefile("rb").readlines()


def test_a_loop_from_scratch_serves_and_each_connection_is_a_span_in_its_thread(serving: Any) -> None:
    server = serving(blocking_loop)
    server.stats.record_timeline(10)
    assert _ask(server.server_address, b"one\n", b"two\n") == [b"one\n", b"two\n"]
    assert _ask(server.server_address, b"three\n") == [b"three\n"]
    server.shutdown()
    spans = server.stats.stop_timeline().spans()
    assert len(spans) == 2
    assert all(s.accepted <= s.started <= s.ended and s.outcome == 0 for s in spans)
    assert {(s.pid, s.tid) for s in spans} == {(os.getpid(), spans[0].tid)}  # one thread served both
    assert spans[0].ended <= spans[1].accepted  # one after the other
    snap = server.stats.snapshot()
    assert snap["accepted"] == 2 and snap["completed"] == 2


def test_respond_does_the_workloads_work(serving: Any) -> None:
    server = serving(blocking_loop, "io", delay_ms=30)
    began = time.monotonic()
    assert _ask(server.server_address, b"io 60\n") == [b"io 60\n"]
    assert time.monotonic() - began >= 0.06


def test_a_loop_that_never_looks_at_stopping_is_said_to_be_stuck(serving: Any) -> None:
    def stuck(listener: Any, server: Any) -> None:
        while True:
            conn, _ = listener.accept()  # blocks until a client comes
            conn.close()
            if server.stopping:
                return

    server = serving(stuck)
    server.stop_timeout = 0.2
    with pytest.raises(TimeoutError, match="server.stopping.*poll_interval"):
        server.shutdown()
    socket.create_connection(server.server_address, timeout=5).close()  # lets it return
    assert server._done.wait(5)


def test_connections_the_loop_left_open_are_closed_and_counted_as_aborted(serving: Any) -> None:
    def forgetful(listener: Any, server: Any) -> None:
        kept = []
        while not server.stopping:
            if select.select([listener], [], [], server.poll_interval)[0]:
                kept.append(listener.accept()[0])

    server = serving(forgetful)
    server.stats.record_timeline(10)
    with socket.create_connection(server.server_address, timeout=5) as client:
        deadline = time.monotonic() + 5
        while server.stats.snapshot()["accepted"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        report = server.drain(1.0)
        assert client.recv(10) == b""  # closed by the server
    assert report.aborted == 1
    assert server.stats.snapshot()["aborted"] == 1
    assert [s.outcome for s in server.stats.stop_timeline().spans()] == [4]


@pytest.fixture
def forget_kind() -> Iterator[list[str]]:
    """Kinds a test registers, removed again so no other test meets them."""
    from sockserve.measure import kinds

    names: list[str] = []
    yield names
    for name in names:
        kinds._INFO.pop(name, None)
        kinds.KINDS.pop(name, None)


def test_a_kind_from_scratch_runs_in_this_process(forget_kind: list[str]) -> None:
    solutions = _solutions()
    name = scratch_kind("test-scratch-selectors", solutions.serve_selectors, concurrency="asyncio")
    forget_kind.append(name)
    info = resolve_kind(name)
    assert runs_here(info) and info.concurrency == "asyncio"
    assert not runs_here(resolve_kind("threading"))
    run = run_one(name, "echo", clients=3, duration=0.3, max_requests=60, timeline=True)
    assert run.served_in_process and run.server == name
    assert run.requests > 0 and run.errors == 0
    assert run.timeline is not None
    spans = run.timeline.to_dict()["spans"]
    assert len(spans) >= run.requests - 3  # every connection closed is a span (a few may be cut at the end)
    assert {(row[3], row[4]) for row in spans} == {(os.getpid(), spans[0][4])}  # one thread


def test_a_local_server_of_a_notebook_class_keeps_its_timeline() -> None:
    import sockserve

    class NotebookServer(sockserve.ThreadingTCPServer):  # defined outside the package
        pass

    info = resolve_kind(NotebookServer)
    assert runs_here(info)
    with LocalServer(info, "echo", timeline=5) as local:
        for i in range(7):
            assert _ask(local.address, f"{i}\n".encode()) == [f"{i}\n".encode()]
    assert local.timeline is not None
    assert len(local.timeline) == 5 and local.timeline.dropped == 2
