"""The ledger: every model records each request's outcome and timeline span
exactly once, through the one path (sockserve.core.ledger), dead children
and workers, requests that never ran and requests a drain cut off included."""

from __future__ import annotations

import collections
import os
import signal
import socket
import threading
import time
from typing import Any

import pytest

import sockserve
from sockserve.core.ledger import Ledger
from sockserve.core.stats import Outcome, ServerStats
from sockserve.core.timeline import Span, Timeline

from conftest import HOST, class_id, read_all

THREAD_MODELS = [sockserve.TCPServer, sockserve.ThreadingTCPServer, sockserve.ThreadPoolTCPServer]
PROCESS_MODELS = [sockserve.ForkingTCPServer, sockserve.PreForkTCPServer]
MODELS = THREAD_MODELS + PROCESS_MODELS


class Outcomes(sockserve.StreamRequestHandler):
    """One word per connection: ok (reply), error (raise), reset (look like
    a client gone), exit (SystemExit), nap (sleep 1.5 s, then reply), hang
    (read until EOF), kill (SIGKILL itself), quit (os._exit(3))."""

    def handle(self) -> None:
        word = self.rfile.readline().strip()
        if word == b"error":
            raise ValueError("asked to fail")
        if word == b"reset":
            raise ConnectionResetError("asked to look reset")
        if word == b"exit":
            raise SystemExit(2)
        if word == b"nap":
            time.sleep(1.5)
        if word == b"hang":
            self.rfile.read()
        if word == b"kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if word == b"quit":
            os._exit(3)
        self.wfile.write(b"ok\n")


def quiet(cls: type, **extra: Any) -> type:
    """*cls* without tracebacks on stderr, with *extra* class attributes."""

    def handle_error(self: Any, request: Any, client_address: Any) -> None:
        pass

    return type(cls.__name__, (cls,), {"handle_error": handle_error, "workers": 2, **extra})


def wait_until(check: Any, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return bool(check())


def send(address: Any, word: bytes) -> socket.socket:
    sock = socket.create_connection(address, timeout=15)
    sock.sendall(word + b"\n")
    return sock


def ask(address: Any, word: bytes) -> bytes:
    with send(address, word) as sock:
        return read_all(sock)


class Serving:
    """serve_forever in a thread, with a timeline recorded from the start."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.timeline: Timeline = server.stats.record_timeline(1000)
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> Serving:
        self.thread.start()
        assert wait_until(lambda: self.server.state is sockserve.ServerState.SERVING)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.thread.join(15)
        self.server.server_close()


def assert_recorded_once(server: Any, timeline: Timeline, expected: dict[int, int]) -> list[Span]:
    """Every request counted once, under the outcomes *expected*, with one
    span each; nothing left in the ledger."""
    total = sum(expected.values())
    assert wait_until(lambda: server.stats.finished >= total), server.stats.snapshot()
    time.sleep(0.2)  # a second count would show up now
    snap = server.stats.snapshot()
    counted = {outcome: snap[name] for outcome, name in
               enumerate(("completed", "errors", "disconnects", "timeouts", "aborted")) if snap[name]}
    assert counted == expected, snap
    assert snap["started"] == total and snap["active"] == 0, snap
    spans = timeline.spans()
    assert len(spans) == total and timeline.dropped == 0, spans
    assert dict(collections.Counter(span.outcome for span in spans)) == expected, spans
    assert all(span.accepted <= span.started <= span.ended for span in spans), spans
    assert len(server._ledger) == 0 and not server._ledger.accepted
    return spans


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # SystemExit ends a thread
@pytest.mark.parametrize("cls", MODELS, ids=class_id)
def test_each_outcome_is_recorded_once_with_one_span(cls: type) -> None:
    words = [b"ok", b"error", b"reset", b"ok"]
    if cls is not sockserve.TCPServer:
        words.append(b"exit")  # the plain server lets SystemExit out of serve_forever
    if cls in PROCESS_MODELS:
        words += [b"kill", b"quit"]  # children and workers that die mid-request
    server = quiet(cls)((HOST, 0), Outcomes)
    with Serving(server) as run:
        for word in words:
            ask(server.server_address, word)
        spans = assert_recorded_once(server, run.timeline, {
            Outcome.OK: 2, Outcome.ERROR: len(words) - 3, Outcome.DISCONNECT: 1})
    here = os.getpid()
    if cls in PROCESS_MODELS:
        assert all(span.pid != here and span.tid == span.pid for span in spans)
    else:
        assert all(span.pid == here for span in spans)


@pytest.mark.parametrize("cls", MODELS, ids=class_id)
def test_a_request_past_its_deadline_is_recorded_once_run_or_not(cls: type) -> None:
    """One request runs past request_timeout; the next waits behind it (a
    parked request, a queued one, one a prefork worker gets too late) and
    ends unrun, or, where nothing makes it wait, runs after it: each ends
    once, as a timeout, with one span."""
    one = {"max_children": 1, "pool_size": 1, "queue_size": 1, "workers": 1}
    server = quiet(cls, request_timeout=0.5, **one)((HOST, 0), Outcomes)
    with Serving(server) as run:
        first = send(server.server_address, b"nap")
        assert wait_until(lambda: server.stats.active == 1)  # running, not queued
        second = send(server.server_address, b"nap")
        with first, second:
            first.settimeout(15)
            second.settimeout(15)
            for sock in (first, second):
                try:
                    sock.recv(64)
                except OSError:
                    pass
        assert_recorded_once(server, run.timeline, {Outcome.TIMEOUT: 2})


@pytest.mark.parametrize("cls", [*THREAD_MODELS, *PROCESS_MODELS], ids=class_id)
def test_requests_a_drain_cuts_off_are_recorded_once(cls: type) -> None:
    """One request runs, one waits for a free worker (queued, parked or on
    the channel; request_timeout makes a forking server park it rather than
    stop accepting): a drain cuts both off, each recorded once."""
    one = {"max_children": 1, "pool_size": 1, "queue_size": 4, "workers": 1}
    server = quiet(cls, request_timeout=60, **one)((HOST, 0), Outcomes)
    clients: list[socket.socket] = []
    try:
        with Serving(server) as run:
            clients.append(send(server.server_address, b"hang"))
            assert wait_until(lambda: server.stats.active == 1)
            if cls is not sockserve.TCPServer:  # the plain server takes one at a time
                clients.append(send(server.server_address, b"hang"))
                assert wait_until(lambda: server.stats.accepted == 2)
                time.sleep(0.1)
            report = server.drain(0.2)
            assert report.aborted == len(clients) and report.completed == 0, report
            assert_recorded_once(server, run.timeline, {Outcome.ABORTED: len(clients)})
    finally:
        for sock in clients:
            sock.close()


# -- the ledger itself -------------------------------------------------------------


def test_end_counts_a_cut_off_request_under_the_cut_and_only_once() -> None:
    stats = ServerStats()
    timeline = stats.record_timeline()
    ledger = Ledger(stats)
    ledger.enter(1, "a")
    ledger.enter(2, "b")
    ledger.accepted[2] = 5.0
    assert ledger.expire(2, Outcome.TIMEOUT) == "b"
    assert ledger.expire(2, Outcome.TIMEOUT) is None  # ended already
    stats.request_started()
    stats.request_started()
    assert ledger.end(1, Outcome.OK, 10.0, 11.0, pid=7) == 0
    assert ledger.end(2, Outcome.OK, 10.0, 12.0) == Outcome.TIMEOUT
    assert (stats.completed, stats.timeouts, stats.finished) == (1, 1, 2)
    first, second = timeline.spans()
    assert first == Span(10.0, 10.0, 11.0, 7, 7, Outcome.OK)
    assert (second.accepted, second.outcome, second.pid) == (5.0, Outcome.TIMEOUT, os.getpid())
    assert len(ledger) == 0 and not ledger.accepted


def test_drop_counts_a_request_that_never_ran_and_forget_counts_nothing() -> None:
    stats = ServerStats()
    ledger = Ledger(stats)
    ledger.enter(1, "a")
    ledger.enter(2, "b")
    ledger.accepted[2] = 1.0
    assert ledger.abort_all() == ["a", "b"]
    assert ledger.drop(1, Outcome.TIMEOUT) == Outcome.ABORTED  # the cut wins
    ledger.forget(2)
    assert (stats.started, stats.aborted, stats.finished) == (1, 1, 1)
    assert len(ledger) == 0 and not ledger.accepted and not ledger._cut
