"""sockserve.measure.serverfeed: a server's per-interval peaks, reported to the
process that started it (and what compare and the lab make of them)."""

from __future__ import annotations

import json
import os
import subprocess
import socket
import sys
import time

import pytest

import sockserve
from sockserve.measure.serverfeed import FeedLine, StatsFeed, parse_feed
from sockserve.measure.workloads import handler_for

from conftest import serving, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(sockserve.__file__)))


def test_the_feed_reports_threads_that_live_shorter_than_its_interval() -> None:
    written: list[bytes] = []
    with serving(sockserve.ThreadingTCPServer(("127.0.0.1", 0), handler_for("io", delay_ms=2))) as server:
        feed = StatsFeed(server, 0.2, written.append).start()
        clients = [socket.create_connection(server.server_address) for _ in range(3)]
        # Three handler threads alive at once (each waits for its request line), however
        # slowly a busy machine starts them; then each lives a few milliseconds more.
        assert wait_until(lambda: server.stats.threads == 3)
        for sock in clients:
            sock.sendall(b"io 2\n")
        for sock in clients:
            assert sock.recv(100) == b"io 2\n"
            sock.close()
        assert wait_until(lambda: server.stats.threads == 0)
        # One whole interval after the handlers ended, so the last line's window saw none.
        reported = len(written)
        assert wait_until(lambda: len(written) > reported)
        feed.stop()
    lines = parse_feed(b"".join(written))
    assert lines and all(isinstance(line, FeedLine) for line in lines)
    assert max(line.threads for line in lines) == 3
    assert lines[-1].threads == 0
    assert lines[-1].started == 3 and lines[-1].iterations_per_ms is None
    assert all(line.interval == 0.2 for line in lines)


def test_parse_feed_skips_other_lines_and_a_line_being_written() -> None:
    good = json.dumps({"type": "stats", "t": 1.5, "interval": 0.1, "threads": 2, "children": 1,
                       "started": 5, "completed": 4, "active": 1, "iterations_per_ms": 900.0})
    data = (b'{"serving": "TCPServer"}\n' + good.encode() + b"\n" + b'{"type": "stats", "t": 2'
            + b"\n" + good.encode()[:20])
    assert parse_feed(data) == [FeedLine(1.5, 0.1, 2, 1, 5, 4, 1, 900.0)]
    with pytest.raises(ValueError):
        StatsFeed(object(), 0)


def test_serve_report_every_writes_lines_after_the_first() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sockserve", "serve", "threading", "-w", "cpu", "-p", "work_ms=1",
         "-p", "iterations_per_ms=1234", "--json", "--report-every", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.stdout is not None and proc.stderr is not None
    try:
        first = json.loads(proc.stdout.readline())
        assert first["serving"] == "ThreadingTCPServer"
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert [line["type"] for line in lines] == ["stats"] * 3
    assert all(line["iterations_per_ms"] == 1234.0 for line in lines)
    assert lines[0]["t"] < lines[1]["t"] < lines[2]["t"]


def test_compare_shows_the_handler_threads_of_a_threading_server_under_echo() -> None:
    from sockserve.measure.experiment import compare

    comparison = compare("echo", ["threading"], clients=4, duration=0.6)
    (run,) = comparison.runs
    assert run.sampling == "peak" and run.sample_interval == pytest.approx(0.1)
    assert run.peak("threads") >= 2, run.threads  # short-lived, yet seen
    assert all(0 <= t <= run.elapsed + 0.3 for t, _ in run.threads)
    assert "most handler threads and child processes alive at once" in comparison.table()


def test_the_lab_samples_peaks_of_a_server_in_this_process() -> None:
    from sockserve.lab.models import ServerModel
    from sockserve.lab.runs import TrafficModel

    server = ServerModel(kind="threading", workload="echo")
    server.start()
    traffic = TrafficModel(server, clients=4, duration=0.8)
    try:
        traffic.send()
        deadline = time.monotonic() + 30
        while traffic.poll().state == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        samples = traffic.samples
        assert samples and all(s.concurrency == "peak" for s in samples)
        assert max(s.threads or 0 for s in samples) >= 1  # echo threads live well under 0.1 s
    finally:
        traffic.stop()
        server.stop()
