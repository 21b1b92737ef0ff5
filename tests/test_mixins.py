"""ThreadingMixIn and ForkingMixIn: concurrency, cleanup, children and their statistics."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any

import pytest

import sockserve
from sockserve.core.threads import HandlerThreads, NoThreads

from conftest import HOST, exchange, serving


class Sleepy(sockserve.StreamRequestHandler):
    """Replies after waiting as many milliseconds as the line says."""

    def handle(self) -> None:
        line = self.rfile.readline()
        time.sleep(int(line) / 1000)
        self.wfile.write(line)


def wait_until(predicate: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def parallel_requests(cls: type, address: Any, lines: list[bytes]) -> list[bytes]:
    replies: list[bytes] = [b""] * len(lines)

    def one(i: int) -> None:
        replies[i] = exchange(cls, address, lines[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(lines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return replies


@pytest.mark.parametrize("cls", [sockserve.ThreadingTCPServer, sockserve.ForkingTCPServer])
def test_requests_overlap(cls: type) -> None:
    server = cls((HOST, 0), Sleepy)
    with serving(server, poll_interval=0.01):
        began = time.monotonic()
        replies = parallel_requests(cls, server.server_address, [b"300\n"] * 4)
        took = time.monotonic() - began
    assert replies == [b"300\n"] * 4
    assert server.stats.peak_active >= 2
    # Serially this would take 1.2 s; generous for a busy machine.
    assert took < 1.15


# -- threads ---------------------------------------------------------------------------


def test_threads_are_joined_on_close_and_reaped_while_serving() -> None:
    server = sockserve.ThreadingTCPServer((HOST, 0), Sleepy)
    with serving(server, poll_interval=0.01):
        for _ in range(10):
            assert exchange(type(server), server.server_address, b"0\n") == b"0\n"
        assert isinstance(server._threads, HandlerThreads)
        assert len(server._threads) < 10  # finished threads are dropped
        wait_until(lambda: server.stats.threads == 0)
    assert len(server._threads) == 0
    assert server.stats.completed == 10


def test_block_on_close_waits_for_running_handlers() -> None:
    server = sockserve.ThreadingTCPServer((HOST, 0), Sleepy)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    client = socket.create_connection(server.server_address, timeout=10)
    try:
        client.sendall(b"300\n")
        wait_until(lambda: server.stats.active == 1)
        server.shutdown()
        thread.join(10)
        server.server_close()  # must wait for the 300 ms handler
        assert server.stats.completed == 1
        assert client.makefile("rb").readline() == b"300\n"
    finally:
        client.close()


def test_daemon_threads_are_not_tracked() -> None:
    class Daemonic(sockserve.ThreadingTCPServer):
        daemon_threads = True

    server = Daemonic((HOST, 0), Sleepy)
    with serving(server, poll_interval=0.01):
        assert exchange(Daemonic, server.server_address, b"0\n") == b"0\n"
        assert len(server._threads) == 0  # daemons are never joined
        wait_until(lambda: server.stats.threads == 0)


def test_thread_handler_error_is_counted_and_server_survives(capsys: pytest.CaptureFixture[str]) -> None:
    class Broken(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            if self.rfile.readline() == b"bad\n":
                raise KeyError("bad")
            self.wfile.write(b"good\n")

    server = sockserve.ThreadingTCPServer((HOST, 0), Broken)
    with serving(server, poll_interval=0.01):
        exchange(type(server), server.server_address, b"bad\n")
        assert exchange(type(server), server.server_address, b"ok\n") == b"good\n"
        wait_until(lambda: server.stats.finished == 2)
    assert server.stats.errors == 1
    assert server.stats.completed == 1
    assert "KeyError" in capsys.readouterr().err


# -- processes ---------------------------------------------------------------------------


def test_forked_requests_are_counted_in_the_parent() -> None:
    class Picky(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            if line == b"fail\n":
                raise ValueError("child failure")
            self.wfile.write(line)

    class Quiet(sockserve.ForkingTCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass

    server = Quiet((HOST, 0), Picky)
    with serving(server, poll_interval=0.01):
        for i in range(12):
            line = b"fail\n" if i % 4 == 0 else b"ok\n"
            assert exchange(Quiet, server.server_address, line) == (b"" if i % 4 == 0 else b"ok\n")
        wait_until(lambda: server.stats.finished == 12)
    assert server.active_children is not None and not server.active_children
    snap = server.stats.snapshot()
    assert (snap["completed"], snap["errors"], snap["started"]) == (9, 3, 12)
    assert snap["children"] == 0
    assert snap["handler_time"]["count"] == 12


def test_max_children_is_a_real_bound() -> None:
    class Small(sockserve.ForkingTCPServer):
        max_children = 2

    peak = []
    server = Small((HOST, 0), Sleepy)
    watcher_stop = threading.Event()

    def watch() -> None:
        while not watcher_stop.is_set():
            peak.append(len(server.active_children or ()))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with serving(server, poll_interval=0.01):
            replies = parallel_requests(Small, server.server_address, [b"100\n"] * 6)
    finally:
        watcher_stop.set()
        watcher.join()
    assert replies == [b"100\n"] * 6
    assert max(peak) <= 2
    assert server.stats.peak_active <= 2


def test_child_timeout_ends_a_hung_child_and_counts_it() -> None:
    class Hanging(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            time.sleep(60)

    class Guarded(sockserve.ForkingTCPServer):
        child_timeout = 1

    server = Guarded((HOST, 0), Hanging)
    began = time.monotonic()
    with serving(server, poll_interval=0.01):
        with socket.create_connection(server.server_address, timeout=20) as client:
            client.sendall(b"x\n")
            try:
                assert client.recv(10) == b""  # the child was ended, the socket closed
            except ConnectionResetError:
                pass  # closed with our line unread: the kernel resets instead
        wait_until(lambda: server.stats.finished == 1, 20)
    assert time.monotonic() - began < 20
    # Its time was up: counted as a timeout (not as a drain's abort).
    assert (server.stats.timeouts, server.stats.aborted) == (1, 0)


def test_foreign_children_are_never_reaped() -> None:
    pid = os.fork()
    if pid == 0:
        time.sleep(0.3)
        os._exit(7)
    try:
        server = sockserve.ForkingTCPServer((HOST, 0), Sleepy)
        with serving(server, poll_interval=0.01):
            for _ in range(3):
                exchange(type(server), server.server_address, b"0\n")
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7


def test_children_are_gone_after_close() -> None:
    server = sockserve.ForkingTCPServer((HOST, 0), Sleepy)
    with serving(server, poll_interval=0.01):
        parallel_requests(type(server), server.server_address, [b"50\n"] * 5)
    assert not server.active_children
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)



def test_null_thread_list_is_used_without_block_on_close() -> None:
    class Detached(sockserve.ThreadingTCPServer):
        block_on_close = False

    server = Detached((HOST, 0), Sleepy)
    with serving(server, poll_interval=0.01):
        assert exchange(Detached, server.server_address, b"0\n") == b"0\n"
        assert isinstance(server._threads, NoThreads)
        wait_until(lambda: server.stats.threads == 0)


# -- how children report -----------------------------------------------------------


class Outcomes(sockserve.StreamRequestHandler):
    """Replies "ok"; fails as the line says: "error", "reset" (a
    disconnect), or sleeps the given milliseconds first."""

    def handle(self) -> None:
        line = self.rfile.readline().strip()
        if line == b"error":
            raise ValueError("asked to fail")
        if line == b"reset":
            raise ConnectionResetError("asked to look reset")
        if line.isdigit():
            time.sleep(int(line) / 1000)
        self.wfile.write(b"ok\n")


class QuietForking(sockserve.ForkingTCPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def test_each_outcome_and_handler_time_reaches_the_parent() -> None:
    server = QuietForking((HOST, 0), Outcomes)
    with serving(server, poll_interval=0.01):
        for line in (b"200\n", b"error\n", b"reset\n", b"0\n"):
            exchange(QuietForking, server.server_address, line)
        wait_until(lambda: server.stats.finished == 4)
    snap = server.stats.snapshot()
    assert (snap["completed"], snap["errors"], snap["disconnects"]) == (2, 1, 1)
    # The 200 ms handler's time came from the child: the slowest, at least 0.2 s.
    assert snap["handler_time"]["count"] == 4
    assert 0.2 <= snap["handler_time"]["max"] < 5


def test_children_beyond_the_report_board_are_counted_by_exit_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sockserve.core.forking

    monkeypatch.setattr(sockserve.core.forking, "_MIN_SLOTS", 1)

    class Tiny(QuietForking):
        max_children = 1  # a board of 2 slots

    server = Tiny((HOST, 0), Outcomes)
    with serving(server, poll_interval=0.01):
        exchange(Tiny, server.server_address, b"0\n")  # the board is made
        assert server._children is not None and server._children.board.slots == 2
        server.max_children = 6  # grown past the board
        replies = parallel_requests(Tiny, server.server_address, [b"300\n"] * 4 + [b"error\n"])
        wait_until(lambda: server.stats.finished == 6)
    assert replies == [b"ok\n"] * 4 + [b""]
    snap = server.stats.snapshot()
    assert (snap["completed"], snap["errors"], snap["started"]) == (5, 1, 6)
    assert not server.active_children


def test_a_parent_at_max_children_wakes_when_a_child_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    import sockserve.core.forking

    # Without the child's wake-up, the parent would look again only after
    # this long, and the clients (10 s timeouts) would give up first.
    monkeypatch.setattr(sockserve.core.forking, "_WAIT_STEP", 60.0)

    class One(QuietForking):
        max_children = 1

    server = One((HOST, 0), Outcomes)
    began = time.monotonic()
    with serving(server, poll_interval=60):  # no idle tick reaps for it either
        replies = parallel_requests(One, server.server_address, [b"100\n"] * 3)
        wait_until(lambda: server.stats.finished == 3)
    assert replies == [b"ok\n"] * 3
    assert server.stats.peak_active == 1
    assert time.monotonic() - began < 10


# -- what each mixin says it overrides ------------------------------------------------


@pytest.mark.parametrize("mixin", [sockserve.ThreadingMixIn, sockserve.ForkingMixIn,
                                   sockserve.ThreadPoolMixIn, sockserve.PreForkMixIn],
                         ids=lambda m: m.__name__)
def test_each_mixin_says_which_hooks_it_overrides(mixin: type) -> None:
    """The docstring's "Overrides ..." sentence names exactly the server
    methods the mixin defines again."""
    server_methods = {name for klass in sockserve.TCPServer.__mro__ for name, value in vars(klass).items()
                      if callable(value) and not name.startswith("__")}
    overridden = {name for name, value in vars(mixin).items() if callable(value) and name in server_methods}
    doc = mixin.__doc__ or ""
    said = doc[doc.index("Overrides"):].split("\n\n")[0]
    # Hooks are named bare (``process_request``); ``drain()`` is a mention.
    named = {word.strip("`,.:;()") for word in said.split() if word.startswith("``") and "()" not in word}
    assert overridden == named & server_methods, (overridden, named)
    assert "process_request" in overridden
