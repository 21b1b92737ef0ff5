"""Every promise under faults (issue 24, items 1-8 and 10).

Each test is written from the issue's description of an attack and bounded
in time (a few seconds at most). The rule they share: for every model,
requests sent = handled + errors + disconnects + timeouts + refused, with
nothing left in flight, and a burst that the server can serve within its
deadline is served.

Most failed on main before issue 24's core fix (the prefork burst, three of
the deadline boundaries and the stdlib's two loops passed already: they
hold the other models to the same promise). A request refused
because too many wait (``max_waiting``) or a queue is full counts in
``overflows``; one whose thread or fork cannot start is an error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import sockserve

from conftest import serving, wait_until

#: The counters in which a request accepted by a server ends, exactly once.
FINAL = ("completed", "errors", "disconnects", "timeouts", "aborted", "overflows", "rejected")


def accounted(server: Any) -> int:
    snapshot = server.stats.snapshot()
    return sum(snapshot.get(name, 0) for name in FINAL)


def settle(server: Any, expected: int, seconds: float = 5.0) -> dict[str, Any]:
    """Wait until *expected* requests are accounted for (or *seconds*); the snapshot."""
    deadline = time.monotonic() + seconds
    while accounted(server) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.stats.snapshot()


def ask(address: Any, line: bytes, timeout: float = 5.0) -> bytes | None:
    """Send one line, read to EOF; None on a reset or a timeout."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(line)
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks)
    except OSError:
        return None


def burst(address: Any, lines: list[bytes], timeout: float = 10.0) -> list[bytes | None]:
    """Connect every client at once, send, then read every reply."""
    socks = []
    for line in lines:
        sock = socket.create_connection(address, timeout=timeout)
        sock.sendall(line)
        socks.append(sock)
    replies: list[bytes | None] = []
    for sock in socks:
        with sock:
            try:
                chunks = []
                while chunk := sock.recv(4096):
                    chunks.append(chunk)
                replies.append(b"".join(chunks))
            except OSError:
                replies.append(None)
    return replies


class Echo(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class Slow(sockserve.StreamRequestHandler):
    """Sleeps 0.1 s, then echoes."""

    def handle(self) -> None:
        line = self.rfile.readline()
        time.sleep(0.1)
        self.wfile.write(line)


@contextlib.contextmanager
def loop_of(server: Any) -> Iterator[list[BaseException]]:
    """Like ``serving``, but an exception that ends ``serve_forever`` is
    kept (and checked by the test) instead of escaping its thread."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            server.serve_forever(poll_interval=0.05)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield raised
    finally:
        if thread.is_alive():
            server.shutdown()
        thread.join(10)
        server.server_close()


def make(base: type, handler: type, **attributes: Any) -> Any:
    cls = type(base.__name__, (base,), attributes)
    return cls(("127.0.0.1", 0), handler)


# -- item 1: a burst under a deadline ---------------------------------------------------

BURST_MODELS = {
    # (server class, its bound, clients in the burst: several times what it holds at once)
    "forking": (sockserve.ForkingTCPServer, {"max_children": 4}, 24),
    "threadpool": (sockserve.ThreadPoolTCPServer, {"pool_size": 2, "queue_size": 2}, 16),
    "prefork": (sockserve.PreForkTCPServer, {"workers": 2}, 24),
}


@pytest.mark.parametrize("model", [
    "forking",
    "threadpool",
    "prefork",
])
def test_a_burst_that_fits_its_deadline_is_served_not_dropped_as_timeouts(model: str) -> None:
    """120 clients of 300 ms under a 60 s deadline were closed unserved at once
    and counted as timeouts. The choice: a burst the server can get through
    within the deadline is served (it waits, as it would without a deadline);
    only a request that really waited past its deadline counts as a timeout."""
    base, bound, clients = BURST_MODELS[model]
    server = make(base, Slow, request_timeout=10.0, **bound)
    lines = [b"%d\n" % n for n in range(clients)]
    with serving(server, poll_interval=0.05):
        replies = burst(server.server_address, lines)
        snapshot = settle(server, clients)
    assert replies == lines, f"{sum(r != l for r, l in zip(replies, lines))} of {clients} not served"
    assert snapshot["completed"] == clients and snapshot["timeouts"] == 0, snapshot


# -- item 2: a pool that cannot start its threads -------------------------------------



@contextlib.contextmanager
def thread_starts_fail_from(nth: int) -> Iterator[list[int]]:
    """``threading.Thread.start`` fails (as under RLIMIT_NPROC: RuntimeError
    "can't start new thread") from its *nth* call on, until the block ends.
    Yields the list of calls made. (A simulation: RLIMIT_NPROC does not bind
    root, which runs these tests.)"""
    real = threading.Thread.start
    calls: list[int] = []

    def start(thread: threading.Thread) -> None:
        calls.append(1)
        if len(calls) >= nth:
            raise RuntimeError("can't start new thread")
        real(thread)

    threading.Thread.start = start  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        threading.Thread.start = real  # type: ignore[method-assign]


def pool_threads(server: Any) -> list[threading.Thread]:
    """The live threads running *server*'s pool (not other tests' pools in
    this process: a thread's target is kept while it runs)."""
    return [t for t in threading.enumerate()
            if getattr(getattr(t, "_target", None), "__self__", None) is server and "worker" in t.name]


def test_a_thread_pool_that_starts_only_some_workers_serves_with_those(
        caplog: pytest.LogCaptureFixture) -> None:
    """RLIMIT_NPROC let 3 of 6 workers start: the pool must serve with the 3
    (and say why it has fewer), count every request, and leak no thread."""
    server = make(sockserve.ThreadPoolTCPServer, Echo, pool_size=6, queue_size=4)
    with serving(server, poll_interval=0.05):
        with thread_starts_fail_from(4):
            replies = [ask(server.server_address, b"%d\n" % n, timeout=3) for n in range(10)]
            snapshot = settle(server, 10, seconds=2)
            threads = server.stats.threads
            workers = pool_threads(server)
    assert replies == [b"%d\n" % n for n in range(10)]
    assert snapshot["completed"] == 10, snapshot
    assert threads == len(workers) == 3, (threads, workers)
    assert not any(worker.is_alive() for worker in workers)
    assert server.stats.threads == 0
    assert "could start only 3 of its 6 workers" in caplog.text


# -- item 10: failed thread starts and forks are counted ----------------------------------


@contextlib.contextmanager
def forks_fail() -> Iterator[None]:
    real = os.fork

    def fork() -> int:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    os.fork = fork
    try:
        yield
    finally:
        os.fork = real


@pytest.mark.parametrize("model", ["threading", "forking"])
def test_a_request_whose_thread_or_fork_cannot_start_is_counted(model: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """31 of 43 accepted requests were missing from the counts."""
    base = sockserve.ThreadingTCPServer if model == "threading" else sockserve.ForkingTCPServer
    server = make(base, Echo)
    with serving(server, poll_interval=0.05):
        failing = thread_starts_fail_from(1) if model == "threading" else forks_fail()
        with failing:
            replies = [ask(server.server_address, b"x\n", timeout=3) for _ in range(5)]
        snapshot = settle(server, 5, seconds=2)
    assert replies == [b""] * 5 or all(r is None or r == b"" for r in replies)
    assert snapshot["accepted"] == 5
    assert accounted(server) == 5, snapshot


# -- item 3: raising max_children at run time ------------------------------------------


class ExitsAsTold(sockserve.StreamRequestHandler):
    """``exit N``: os._exit(N) without a word; anything else: echo."""

    def handle(self) -> None:
        line = self.rfile.readline()
        if line.startswith(b"exit "):
            os._exit(int(line.split()[1]))
        self.wfile.write(line)


def test_raising_max_children_at_run_time_never_stops_the_loop(capsys: pytest.CaptureFixture[str]) -> None:
    """Children beyond the report board (sized on the first fork) were judged
    by their exit status: ``os._exit(3)`` counted as a timeout, ``os._exit(7)``
    raised IndexError and ended serve_forever. Every child that exits without
    a reply is an error, however many run."""
    server = make(sockserve.ForkingTCPServer, ExitsAsTold, max_children=1)
    with loop_of(server) as raised:
        assert ask(server.server_address, b"first\n") == b"first\n"  # the board is made
        server.max_children = 200
        clients = []
        for _ in range(70):  # more at once than the board has slots (64 or 2 x max_children)
            clients.append(socket.create_connection(server.server_address, timeout=5))
        deadline = time.monotonic() + 10
        while server.stats.children < 70 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.stats.children == 70
        for n, sock in enumerate(clients):
            sock.sendall(b"exit 7\n" if n % 2 else b"exit 3\n")
        for sock in clients:
            sock.close()
        snapshot = settle(server, 71, seconds=3)
        assert ask(server.server_address, b"still there\n", timeout=3) == b"still there\n"
    assert raised == []
    assert snapshot["errors"] == 70 and snapshot["timeouts"] == 0, snapshot


# -- item 4: deadlines at their boundary -----------------------------------------------


class Quick(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def slow_after_reply(base: type) -> Any:
    """A server whose work after the reply (closing, then 1.3 s of its own
    bookkeeping) outlasts a 1 s deadline: the handler long returned and the
    client has its whole reply. (A deadline of a second, so that even on a
    busy machine the handler itself ends well within it.)"""

    class Server(base):  # type: ignore[misc,valid-type]
        request_timeout = 1.0

        def shutdown_request(self, request: Any) -> None:
            super().shutdown_request(request)
            time.sleep(1.3)

    Server.__name__ = base.__name__
    return Server(("127.0.0.1", 0), Quick)


@pytest.mark.parametrize("base", [
    pytest.param(sockserve.ForkingTCPServer, id="forking"),
    pytest.param(sockserve.PreForkTCPServer, id="prefork"),
    pytest.param(sockserve.ThreadingTCPServer, id="threading"),
    pytest.param(sockserve.ThreadPoolTCPServer, id="threadpool"),
])
def test_a_request_whose_handler_returned_in_time_is_completed(base: type,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A forked child never cancelled its alarm after the handler returned:
    firing while the child reported, it made the request an error ("exited
    with status 0 before it finished") or a timeout."""
    server = slow_after_reply(base)
    with serving(server, poll_interval=0.05):
        replies = burst(server.server_address, [b"%d\n" % n for n in range(4)])
        snapshot = settle(server, 4)
    assert replies == [b"%d\n" % n for n in range(4)]
    assert snapshot["completed"] == 4, snapshot
    assert "before it finished" not in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGALRM, signal.SIGKILL], ids=["SIGALRM", "SIGKILL"])
def test_a_child_killed_after_it_reported_counts_by_its_report(sig: int) -> None:
    """The report/exit race at the deadline: a child whose handler returned
    in time left its outcome on the board, and a signal ended it before it
    could exit (an alarm that fired as it was being cancelled, a drain's
    SIGKILL). Its request was counted by how the process ended, a timeout
    or an error, though the handler had finished. Its report decides."""
    server = make(sockserve.ForkingTCPServer, ExitsAsTold)
    try:
        children = server._new_children()
        request = object()
        key = id(request)
        server._ledger.enter(key, request)
        ready, told = os.pipe()
        pid = os.fork()
        if not pid:  # a child that has reported, and lingers until the signal
            try:
                signal.signal(signal.SIGALRM, signal.SIG_DFL)  # (pytest's handlers are inherited)
                os.write(told, b"x")
                time.sleep(30)
            finally:
                os._exit(0)
        os.close(told)
        assert os.read(ready, 1) == b"x"
        os.close(ready)
        slot = children.board.free.pop()
        children.alive.add(pid)
        children.running[pid] = (key, request, ("127.0.0.1", 1), None, slot)
        board = children.board
        board.owners[slot] = pid
        board.times[2 * slot] = board.times[2 * slot + 1] = time.monotonic()
        board.map[board.want + 1 + slot] = 0  # handled
        board.map[slot] = 1  # reported
        os.kill(pid, sig)
        _done, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status)
        children.reaped(pid, status)
        snapshot = server.stats.snapshot()
    finally:
        server.server_close()
    assert (snapshot["completed"], snapshot["errors"], snapshot["timeouts"]) == (1, 0, 0), snapshot
    assert key not in server._ledger


# -- item 5: children that die without reporting -------------------------------------


def zombies_of(pid: int) -> int:
    count = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as file:
                children = file.read().split()
        except OSError:
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/stat") as file:
                    state = file.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            count += state == "Z"
    return count


#: A poll_interval (and, at max_children, a wait step) far longer than any
#: test: only an event (the child's end waking the loop) can explain a
#: dead child noticed within the tests' bounds. (How soon, against the
#: standard library, is timed by benchmarks/bench_faults.py, dead_children.)
NEVER = 3600.0
NOTICED_WITHIN = 10.0  # seconds: a bound on a busy machine, not a timing goal

needs_pidfd = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no os.pidfd_open here: children are polled")


@needs_pidfd
def test_an_idle_server_is_woken_by_a_child_that_dies_without_reporting(
        caplog: pytest.LogCaptureFixture) -> None:
    """Idle, a child that died without reporting stayed an uncounted zombie
    for 7.5-8 s (16 loop passes). With a poll_interval of an hour, the loop
    never passes by itself: the child's end must wake it."""
    server = make(sockserve.ForkingTCPServer, ExitsAsTold)
    with serving(server, poll_interval=NEVER):
        assert ask(server.server_address, b"exit 1\n") in (b"", None)
        deadline = time.monotonic() + NOTICED_WITHIN
        while (server.stats.errors < 1 or zombies_of(os.getpid())) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.stats.errors == 1 and not server.stats.children, server.stats.snapshot()
        assert zombies_of(os.getpid()) == 0
    assert "exited with status 1 before it finished" in caplog.text


@needs_pidfd
def test_a_child_that_dies_at_max_children_frees_its_place_at_once(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """max_children=1 and handlers that os._exit: each death cost up to a
    50 ms wait step (300 requests: 8.1 s, the stdlib 0.59 s). With the wait
    step and poll_interval an hour long, 20 such requests can be answered
    only if each child's end wakes the waiting loop."""
    from sockserve.core import forking
    monkeypatch.setattr(forking, "_WAIT_STEP", NEVER)
    server = make(sockserve.ForkingTCPServer, ExitsAsTold, max_children=1)
    with serving(server, poll_interval=NEVER):
        replies = [ask(server.server_address, b"exit 1\n", timeout=NOTICED_WITHIN) for _ in range(20)]
        assert ask(server.server_address, b"alive\n", timeout=NOTICED_WITHIN) == b"alive\n"
        snapshot = settle(server, 21)
    assert replies == [b""] * 20
    assert snapshot["errors"] == 20 and snapshot["completed"] == 1, snapshot


def test_a_flood_of_dead_children_is_logged_once_and_counted_in_full(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Every child that died unreported wrote a warning of its own, on the
    way of the next request (a flood of deaths, a flood of lines). The
    first is said at once with its cause; the others are counted as errors
    all the same, and their number said (here, at server_close, since the
    interval between two lines is made an hour long)."""
    from sockserve.core import children
    monkeypatch.setattr(children, "_DEATH_LINES_EVERY", NEVER)
    server = make(sockserve.ForkingTCPServer, ExitsAsTold, max_children=1)
    with serving(server, poll_interval=0.05):
        replies = [ask(server.server_address, b"exit 1\n") for _ in range(10)]
        snapshot = settle(server, 10)
    assert replies == [b""] * 10
    assert snapshot["errors"] == 10, snapshot
    lines = [record.getMessage() for record in caplog.records if record.name == "sockserve"]
    assert [line for line in lines if "exited with status 1 before it finished" in line] == lines[:1], lines
    assert "9 more children that died before they finished" in lines[-1], lines
    assert len(lines) == 2, lines


# -- item 6: prefork loses no request ---------------------------------------------------


class RunsOutOfDescriptors(sockserve.StreamRequestHandler):
    """``leak``: leave the worker unable to take one more descriptor (as a
    handler that leaks them would), then reply."""

    def handle(self) -> None:
        line = self.rfile.readline()
        if line == b"leak\n":
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            # The lowest free descriptor after this request closes is its own.
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.connection.fileno(), hard))
        self.wfile.write(line)


def test_prefork_counts_a_request_its_worker_could_not_take(capsys: pytest.CaptureFixture[str]) -> None:
    """A worker out of descriptors has the passed connection dropped by the
    kernel; it took that for "channel closed" and exited silently: the
    request stayed in flight for ever and drain() waited its whole timeout."""
    server = make(sockserve.PreForkTCPServer, RunsOutOfDescriptors, workers=1)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        assert ask(server.server_address, b"leak\n") == b"leak\n"
        lost = ask(server.server_address, b"lost?\n", timeout=3)
        after = ask(server.server_address, b"after\n", timeout=3)
        snapshot = settle(server, 3, seconds=3)
        report = server.drain(3.0)
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
    assert after == b"after\n"
    assert snapshot["accepted"] == 3 and accounted(server) == 3, (lost, snapshot)
    assert report.aborted == 0 and report.waited < 1.0, report


# -- item 7: code that reaps children ---------------------------------------------------


class Fails(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()
        raise ValueError("this request fails")


@contextlib.contextmanager
def outside_reaper(how: str) -> Iterator[None]:
    def reap_all() -> None:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass

    if how == "SIGCHLD handler":
        previous = signal.signal(signal.SIGCHLD, lambda signum, frame: reap_all())
        try:
            yield
        finally:
            signal.signal(signal.SIGCHLD, previous)
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.001):
            reap_all()

    reaper = threading.Thread(target=loop, name="os.wait reaper")
    reaper.start()
    try:
        yield
    finally:
        stop.set()
        reaper.join()


@pytest.mark.parametrize("how", ["SIGCHLD handler", "os.wait thread"])
def test_an_outside_reaper_does_not_turn_errors_into_completions(
        how: str, capsys: pytest.CaptureFixture[str]) -> None:
    """64 and 20 of 100 errors were seen instead of 100."""
    server = make(sockserve.ForkingTCPServer, Fails)
    with outside_reaper(how):
        with serving(server, poll_interval=0.05):
            for _ in range(20):
                ask(server.server_address, b"x\n")
                time.sleep(0.005)  # let the reaper run (the main thread runs the signal handler)
            snapshot = settle(server, 20)
    assert snapshot["errors"] == 20 and snapshot["completed"] == 0, snapshot


# -- item 8: two loops on one server ---------------------------------------------------


@pytest.mark.parametrize("module", [
    pytest.param(socketserver, id="stdlib"),
    pytest.param(sockserve, id="sockserve"),
])
def test_two_serve_forever_loops_on_one_server_both_serve(module: Any) -> None:
    """The second loop replaced the wake-up socket pair and both stopped
    silently; the stdlib serves from both."""
    server = module.TCPServer(("127.0.0.1", 0), Echo)
    loops = [threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
             for _ in range(2)]
    for loop in loops:
        loop.start()
    try:
        time.sleep(0.2)
        replies = []
        for n in range(10):
            replies.append(ask(server.server_address, b"%d\n" % n, timeout=2))
            if replies[-1] is None:
                break  # not served: no need to wait for the others
        still_running = [loop.is_alive() for loop in loops]
    finally:
        deadline = time.monotonic() + 5
        while any(loop.is_alive() for loop in loops) and time.monotonic() < deadline:
            stopper = threading.Thread(target=server.shutdown, daemon=True)
            stopper.start()
            stopper.join(0.5)
        stopped_by_shutdown = not any(loop.is_alive() for loop in loops)
        if not stopped_by_shutdown and module is socketserver:
            # The stdlib's listening socket blocks: the loop that lost a race
            # for a connection both saw waits in accept() (seen on 3.10), and
            # only another connection frees it. Not sockserve's to promise.
            while any(loop.is_alive() for loop in loops) and time.monotonic() < deadline + 5:
                with contextlib.suppress(OSError):
                    socket.create_connection(server.server_address, timeout=1).close()
                stopper = threading.Thread(target=server.shutdown, daemon=True)
                stopper.start()
                stopper.join(0.5)
        server.server_close()
    assert replies == [b"%d\n" % n for n in range(10)]
    assert still_running == [True, True]
    if module is sockserve:
        assert stopped_by_shutdown, "shutdown() did not stop both loops"
    assert not any(loop.is_alive() for loop in loops)


def test_a_loop_that_lost_the_race_for_a_connection_still_stops_after_the_other_left() -> None:
    """Both loops see one connection; the first takes it and leaves with a
    shutdown() while the second has yet to call accept(). The socket must not
    block again under the loop that stays (it did: that loop then waited in
    accept() for ever and shutdown() with it; seen once in a CI run)."""
    arrived, released = threading.Event(), threading.Event()
    loops: list[threading.Thread] = []

    class Racing(sockserve.TCPServer):
        def _handle_request_noblock(self) -> None:
            if threading.current_thread() is loops[1] and not arrived.is_set():
                arrived.set()  # the second loop saw the connection...
                released.wait(10)  # ...and takes it only after the first has left
            elif threading.current_thread() is loops[0]:
                arrived.wait(5)  # the first takes it once the second saw it too
            super()._handle_request_noblock()

    server = Racing(("127.0.0.1", 0), Echo)
    loops.extend(threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
                 for _ in range(2))
    try:
        for loop in loops:
            loop.start()
        assert wait_until(lambda: server.state is sockserve.ServerState.SERVING)
        time.sleep(0.1)  # both loops waiting
        assert ask(server.server_address, b"raced\n") == b"raced\n"
        assert arrived.is_set(), "the second loop never saw the connection"
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        loops[0].join(5)
        assert not loops[0].is_alive(), "the first loop did not stop"
        released.set()  # the second loop now calls accept() with nothing waiting
        stopper.join(5)
        # (shutdown() returns once the last loop has set its event, a moment
        # before that loop's thread has ended: join, not is_alive() alone.)
        loops[1].join(5)
        assert not loops[1].is_alive(), "the loop that lost the race waits in accept() for ever"
        assert not stopper.is_alive(), "shutdown() did not return once both loops had left"
        # The last loop gone, the socket blocks again, as the stdlib's does.
        assert server.socket.gettimeout() is None
    finally:
        released.set()
        if any(loop.is_alive() for loop in loops):
            with contextlib.suppress(OSError):
                socket.create_connection(server.server_address, timeout=1).close()
        server.server_close()
