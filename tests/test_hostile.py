"""Promises that must hold against hostile handlers and clients (issue 15).

* no handler outcome kills or leaks a worker (SystemExit, KeyboardInterrupt,
  os._exit in a child, a crash by signal), and each such request is counted
  once under its true outcome and said once with its cause;
* shutdown() returns at once whatever the clients do (idle clients filling a
  pool, every child slot, every prefork worker) and from a handler in any
  thread or process; server_close() honours block_on_close=False;
* request_timeout bounds a request from accept to the end of its handler, so
  dripping clients cannot hold a worker and a legitimate client is served
  during a slowloris flood;
* children keep their stderr, whatever it is.

Every scenario is bounded in time and runs on loopback. The bounds asserted
(2 s for "at once") catch a hang; the latencies themselves are measured by
benchmarks/bench_hostile.py (shutdown() under idle clients, beside the
standard library's).
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import sockserve
from conftest import (
    ALL_CLASSES,
    HOST,
    STREAM_CLASSES,
    address_for,
    class_id,
    client_socket,
    exchange,
    read_all,
)

POOLS = [c for c in ALL_CLASSES if issubclass(c, (sockserve.ThreadPoolMixIn, sockserve.PreForkMixIn))]
FORKING = [c for c in ALL_CLASSES if issubclass(c, sockserve.ForkingMixIn)]
PROCESS_CLASSES = [c for c in ALL_CLASSES if issubclass(c, (sockserve.ForkingMixIn, sockserve.PreForkMixIn))]
CONCURRENT = [c for c in ALL_CLASSES if issubclass(
    c, (sockserve.ThreadingMixIn, sockserve.ForkingMixIn, sockserve.ThreadPoolMixIn, sockserve.PreForkMixIn)
)]


def wait_for(predicate: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


@contextlib.contextmanager
def running(server: Any, poll_interval: float = 0.05) -> Iterator[threading.Thread]:
    """serve_forever in a thread; on the way out: stop, drain what is left
    (idle clients), close."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval})
    thread.start()
    assert wait_for(lambda: server.state is sockserve.ServerState.SERVING)
    try:
        yield thread
    finally:
        server.shutdown()
        server.drain(0.2)
        thread.join(10)
        server.server_close()


def workers_alive(server: Any) -> int:
    if isinstance(server, sockserve.PreForkMixIn):
        return len(server.worker_pids)
    return sum(thread.is_alive() for thread in server._workers or ())


def configured(server: Any) -> int:
    return server.workers if isinstance(server, sockserve.PreForkMixIn) else server.pool_size


# -- 2. no handler outcome kills or leaks a worker --------------------------------------


class Hostile(sockserve.BaseRequestHandler):
    """exit: SystemExit(2); kbd: KeyboardInterrupt; quit: os._exit(3);
    kill: SIGKILL itself; anything else is echoed."""

    def handle(self) -> None:
        if isinstance(self.request, tuple):
            data, sock = self.request
        else:
            data, sock = self.request.recv(1024), self.request
        word = data.strip()
        if word == b"exit":
            raise SystemExit(2)  # argparse rejecting a client's command does this
        if word == b"kbd":
            raise KeyboardInterrupt
        if word == b"quit":
            os._exit(3)
        if word == b"kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if isinstance(self.request, tuple):
            sock.sendto(data, self.client_address)
        else:
            sock.sendall(data)


def small(cls: type, **extra: Any) -> type:
    settings: dict[str, Any] = {"abort_grace": 0.2}
    if issubclass(cls, sockserve.ThreadPoolMixIn):
        settings.update(pool_size=2, queue_size=4)
    if issubclass(cls, sockserve.PreForkMixIn):
        settings.update(workers=2)
    settings.update(extra)
    return type(cls.__name__, (cls,), settings)


def ask(cls: type, server: Any, payload: bytes, sock_dir: str, wait: float = 3.0) -> bytes | None:
    """One exchange that may get no answer (the handler died): None then,
    after *wait* seconds at most (a datagram that gets no reply)."""
    try:
        with client_socket(cls, sock_dir) as sock:
            sock.settimeout(wait)
            if cls.socket_type == socket.SOCK_STREAM:
                sock.connect(server.server_address)
                sock.sendall(payload)
                return read_all(sock)
            sock.sendto(payload, server.server_address)
            return sock.recv(1024)
    except (TimeoutError, ConnectionError):
        return None


@pytest.mark.parametrize("cls, word", [(c, b"exit") for c in POOLS] + [
    (sockserve.ThreadPoolTCPServer, b"kbd"), (sockserve.PreForkTCPServer, b"kbd")
], ids=lambda v: v.decode() if isinstance(v, bytes) else class_id(v))
def test_a_handler_raising_systemexit_or_keyboardinterrupt_kills_no_worker(
    cls: type, word: bytes, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    Server = small(cls)
    server = Server(address_for(cls, sock_dir), Hostile)
    with running(server):
        bad = configured(server) + 2  # more than there are workers
        for _ in range(bad):
            ask(cls, server, word, sock_dir, wait=0.3)
        assert ask(cls, server, b"still there", sock_dir) == b"still there"
        assert wait_for(lambda: server.stats.finished == bad + 1)
        assert workers_alive(server) == configured(server)
        snap = server.stats.snapshot()
    assert (snap["errors"], snap["completed"]) == (bad, 1), snap
    if not issubclass(cls, sockserve.PreForkMixIn):  # a worker's log lines stay in its process
        said = [r.getMessage() for r in caplog.records if word.decode() != "" and "raised" in r.getMessage()]
        assert len(said) == bad, said
        name = "SystemExit" if word == b"exit" else "KeyboardInterrupt"
        assert all(name in line for line in said)


CHILD_DEATHS = [(c, b"kill", "SIGKILL") for c in PROCESS_CLASSES] + [
    (sockserve.ForkingTCPServer, b"quit", "exited with status 3"),
    (sockserve.ForkingUDPServer, b"quit", "exited with status 3"),
    (sockserve.PreForkTCPServer, b"quit", "exited with status 3"),
]


@pytest.mark.parametrize("cls, word, cause", CHILD_DEATHS,
                         ids=[f"{class_id(c)}-{w.decode()}" for c, w, _ in CHILD_DEATHS])
def test_a_child_that_exits_or_is_killed_is_counted_once_with_its_cause(
    cls: type, word: bytes, cause: str, sock_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    Server = small(cls)
    server = Server(address_for(cls, sock_dir), Hostile)
    with running(server):
        assert ask(cls, server, word, sock_dir, wait=0.5) in (None, b"")
        assert wait_for(lambda: server.stats.finished == 1)
        assert ask(cls, server, b"after", sock_dir) == b"after"
        assert wait_for(lambda: server.stats.finished == 2)
        if isinstance(server, sockserve.PreForkMixIn):
            assert wait_for(lambda: len(server.worker_pids) == server.workers)
        snap = server.stats.snapshot()
    assert (snap["errors"], snap["completed"], snap["aborted"]) == (1, 1, 0), snap
    said = [r.getMessage() for r in caplog.records if cause in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]


# -- 3. shutdown() at once, whatever the clients do ----------------------------------------


def idle_clients(cls: type, server: Any, count: int, sock_dir: str) -> list[socket.socket]:
    """Clients that connect and say nothing."""
    clients = []
    for _ in range(count):
        sock = client_socket(cls, sock_dir)
        sock.connect(server.server_address)
        clients.append(sock)
    return clients


SATURATED = [
    ("block-pool", sockserve.ThreadPoolTCPServer, {"pool_size": 2, "queue_size": 2, "overflow": "block"}, 8),
    ("max-children", sockserve.ForkingTCPServer, {"max_children": 2}, 5),
    ("prefork", sockserve.PreForkTCPServer, {"workers": 2}, 5),
    ("threading", sockserve.ThreadingTCPServer, {}, 5),
]


class Idle(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()  # never comes


@pytest.mark.parametrize("name, cls, settings, clients", SATURATED, ids=[s[0] for s in SATURATED])
def test_shutdown_returns_at_once_under_idle_clients(
    name: str, cls: type, settings: dict[str, Any], clients: int, sock_dir: str
) -> None:
    Server = type(cls.__name__, (cls,), {"abort_grace": 0.2, "block_on_close": False, **settings})
    server = Server((HOST, 0), Idle)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 30})
    thread.start()
    assert wait_for(lambda: server.state is sockserve.ServerState.SERVING)
    conns = idle_clients(cls, server, clients, sock_dir)
    try:
        # Until the loop blocks: a full queue (4 + 1 in hand), every child
        # slot (2: then it waits for one to end, as the stdlib does), every
        # prefork worker.
        assert wait_for(lambda: server.stats.accepted >= 2)
        time.sleep(0.2)  # let the loop reach its blocking point
        began = time.monotonic()
        server.shutdown()
        took = time.monotonic() - began
        thread.join(5)
        assert not thread.is_alive()
        assert took < 2.0, f"shutdown() took {took:.2f} s"
        report = server.drain(0.1)
        assert report.aborted >= 1  # the idle requests are drain's business
    finally:
        if thread.is_alive():
            server.shutdown()
            thread.join(5)
        for sock in conns:
            sock.close()
        server.server_close()
        if isinstance(server, sockserve.ForkingMixIn):
            end_children(server)


@pytest.mark.parametrize("name, cls, settings, clients", SATURATED, ids=[s[0] for s in SATURATED])
def test_server_close_without_blocking_returns_at_once(
    name: str, cls: type, settings: dict[str, Any], clients: int, sock_dir: str
) -> None:
    Server = type(cls.__name__, (cls,), {"abort_grace": 0.2, "block_on_close": False, **settings})
    server = Server((HOST, 0), Idle)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 30})
    thread.start()
    assert wait_for(lambda: server.state is sockserve.ServerState.SERVING)
    conns = idle_clients(cls, server, clients, sock_dir)
    try:
        assert wait_for(lambda: server.stats.accepted >= 2)
        time.sleep(0.2)
        server.shutdown()
        thread.join(5)
        began = time.monotonic()
        server.server_close()
        took = time.monotonic() - began
        assert took < 2.0, f"server_close() took {took:.2f} s with block_on_close=False"
    finally:
        for sock in conns:
            sock.close()
    # What was left goes on: children that this process ends by PID (they
    # inherited this test's client sockets, so they would never see EOF),
    # workers told to finish.
    if isinstance(server, sockserve.ForkingMixIn):
        end_children(server)
    if isinstance(server, sockserve.PreForkMixIn):
        server._finish_workers(wait=True)
        assert not server.worker_pids


def end_children(server: Any) -> None:
    """SIGTERM the children a forking server still has, by PID, and reap them."""
    for pid in list(server.active_children or ()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in list(server.active_children or ()):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        server.active_children.discard(pid)


class StopsTheServer(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()
        self.server.shutdown()
        self.wfile.write(b"asked\n")


@pytest.mark.parametrize("cls", [c for c in CONCURRENT if c.socket_type == socket.SOCK_STREAM],
                         ids=class_id)
def test_shutdown_from_a_handler_in_any_thread_or_process_stops_the_server(
    cls: type, sock_dir: str
) -> None:
    Server = small(cls)
    server = Server(address_for(cls, sock_dir), StopsTheServer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 30})
    thread.start()
    try:
        assert wait_for(lambda: server.state is sockserve.ServerState.SERVING)
        assert exchange(cls, server.server_address, b"stop\n", sock_dir) == b"asked\n"
        thread.join(5)
        assert not thread.is_alive(), "the loop did not stop"
    finally:
        if thread.is_alive():
            server.shutdown()
            thread.join(5)
        server.server_close()


# -- 4. request_timeout: a deadline for the whole request ----------------------------------


class Reads(sockserve.StreamRequestHandler):
    timeout = 30  # an idle timeout that a dripping client never trips

    def handle(self) -> None:
        line = self.rfile.readline()
        self.wfile.write(line)


def drip(sock: socket.socket, stop: threading.Event) -> None:
    """One byte every 0.1 s, never a newline, until stopped or cut off."""
    with contextlib.suppress(OSError):
        while not stop.wait(0.1):
            sock.sendall(b"x")


@pytest.mark.parametrize("cls", [c for c in STREAM_CLASSES if c.address_family == socket.AF_INET],
                         ids=class_id)
def test_a_dripping_client_is_cut_off_at_request_timeout(cls: type, sock_dir: str) -> None:
    Server = small(cls, request_timeout=0.5)
    server = Server((HOST, 0), Reads)
    with running(server):
        sock = socket.create_connection(server.server_address, timeout=10)
        stop = threading.Event()
        dripper = threading.Thread(target=drip, args=(sock, stop))
        began = time.monotonic()
        dripper.start()
        try:
            reply = read_all(sock)  # EOF (or a reset) when the deadline passes
            took = time.monotonic() - began
        finally:
            stop.set()
            dripper.join(5)
            sock.close()
        assert reply == b""
        assert took < 5.0, f"the dripping client kept its worker {took:.1f} s"
        assert wait_for(lambda: server.stats.timeouts == 1), server.stats.snapshot()
        assert ask(cls, server, b"fine\n", sock_dir) == b"fine\n"


@contextlib.contextmanager
def descriptors(needed: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


SLOWLORIS = 2000  # the figure


@pytest.mark.allow_leaks  # 2,000 sockets close asynchronously in the kernel
@pytest.mark.parametrize("cls", [sockserve.ThreadPoolTCPServer, sockserve.PreForkTCPServer,
                                 sockserve.ForkingTCPServer], ids=class_id)
def test_a_legitimate_client_is_served_during_a_slowloris_flood(cls: type) -> None:
    deadline = 1.0
    # A waiting room no larger than the workers: a request waits for a worker
    # until its own deadline, so a legitimate client accepted right behind
    # hundreds of slow ones (the default max_waiting, 512, is sized for bursts)
    # would reach a worker only as its own deadline ran out. With a small room
    # the oldest waiting are shed as the flood is accepted (counted as overflows).
    Server = type(cls.__name__, (cls,), {"request_timeout": deadline, "abort_grace": 0.2,
                                         "max_children": 20, "workers": 4, "pool_size": 8,
                                         "max_waiting": 4})
    with descriptors(3 * SLOWLORIS + 256):
        server = Server((HOST, 0), Reads)
        with running(server):
            slow: list[socket.socket] = []
            for _ in range(SLOWLORIS):
                sock = socket.socket()
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(server.server_address)
                slow.append(sock)
            try:
                # Every slow client has said a byte and keeps dripping until the
                # legitimate client is answered (at most 30 s).
                flood_until = time.monotonic() + 30
                stop = threading.Event()

                def keep_dripping() -> None:
                    while not stop.is_set() and time.monotonic() < flood_until:
                        for sock in slow:
                            with contextlib.suppress(OSError):
                                sock.send(b"x")
                        stop.wait(0.3)

                dripper = threading.Thread(target=keep_dripping)
                dripper.start()
                time.sleep(0.5)
                began = time.monotonic()
                reply = b""
                with socket.create_connection(server.server_address, timeout=10) as legit:
                    legit.sendall(b"hello\n")
                    reply = legit.recv(64)
                waited = time.monotonic() - began
                stop.set()
                dripper.join(10)
            finally:
                for sock in slow:
                    sock.close()
        # Served while 2,000 slow clients kept dripping. How soon is a timing
        # figure, not this test's: about the 1 s deadline on a quiet machine,
        # 4 s and 10 s in two CI runs with four test sessions on two cores.
        assert reply == b"hello\n", f"no reply after {waited:.2f} s"


# -- 5. children keep their stderr ---------------------------------------------------------

CHILD_PRINTS = textwrap.dedent(
    """
    import sys, threading, sockserve
    cls = getattr(sockserve, sys.argv[1])

    class Talk(sockserve.StreamRequestHandler):
        def handle(self):
            self.rfile.readline()
            print("a worker's words", file=sys.stderr, flush=True)
            self.wfile.write(b"ok\\n")

    server = cls(("127.0.0.1", 0), Talk)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.readline()
    server.shutdown()
    server.server_close()
    """
)


@pytest.mark.parametrize("cls, kind", [
    (sockserve.ForkingTCPServer, "socket"),
    (sockserve.PreForkTCPServer, "socket"),
    (sockserve.PreForkTCPServer, "pipe"),
    (sockserve.PreForkTCPServer, "file"),
], ids=lambda v: v if isinstance(v, str) else class_id(v))
def test_children_write_to_the_parents_stderr_whatever_it_is(cls: type, kind: str, tmp_path: Any) -> None:
    if kind == "socket":  # as under systemd's journal
        ours, theirs = socket.socketpair()
        stderr: Any = theirs
    elif kind == "pipe":
        read_fd, write_fd = os.pipe()
        stderr = write_fd
    else:
        stderr = open(tmp_path / "stderr.txt", "wb")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(sockserve.__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_PRINTS, cls.__name__],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
    )
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"hi\n")
            assert sock.recv(16) == b"ok\n"
        proc.stdin.write(b"\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
    if kind == "socket":
        theirs.close()
        ours.settimeout(5)
        text = read_all(ours)
        ours.close()
    elif kind == "pipe":
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            text = pipe.read()
    else:
        stderr.close()
        text = (tmp_path / "stderr.txt").read_bytes()
    assert b"a worker's words" in text
