"""Shared fixtures: running servers safely, Unix socket paths, leak checks."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sockserve

# A shell starts a background job with SIGINT ignored, and a Python program
# that starts with SIGINT ignored keeps it so (no KeyboardInterrupt): the
# command-line tests that press Ctrl-C on a child would then see it ignored.
# Handled here, SIGINT is reset to the default in every child that execs.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

HOST = "127.0.0.1"

# Every check(...) writes to the learner's progress file (~/.sockserve by
# default): the tests (and the notebook kernels nbval starts, which inherit
# this environment) write theirs in a temporary folder instead.
if "SOCKSERVE_PROGRESS" not in os.environ:
    _progress = tempfile.mkdtemp(prefix="sockserve-progress-")
    os.environ["SOCKSERVE_PROGRESS"] = os.path.join(_progress, "progress.json")
    atexit.register(shutil.rmtree, _progress, True)

#: Every concrete server class, as (class, is_stream, is_unix).
SERVER_CLASSES: list[tuple[type, bool, bool]] = []
for _name in sockserve.__all__:
    _cls = getattr(sockserve, _name)
    if isinstance(_cls, type) and issubclass(_cls, sockserve.TCPServer):
        SERVER_CLASSES.append(
            (
                _cls,
                _cls.socket_type == socket.SOCK_STREAM,
                _cls.address_family == getattr(socket, "AF_UNIX", None),
            )
        )

STREAM_CLASSES = [c for c, stream, _ in SERVER_CLASSES if stream]
DGRAM_CLASSES = [c for c, stream, _ in SERVER_CLASSES if not stream]
ALL_CLASSES = [c for c, _, _ in SERVER_CLASSES]


@pytest.fixture
def one_core() -> Iterator[None]:
    """Pin this process (and so every server and load worker it starts) to
    one core, as ``taskset -c 0`` or a small Binder pod would."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def class_id(cls: type) -> str:
    return cls.__name__


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A short temporary directory for Unix socket files (paths max ~107 bytes)."""
    path = tempfile.mkdtemp(prefix="ss-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def address_for(cls: type, sock_dir: str, name: str = "s") -> Any:
    """A bindable address for *cls*: loopback port 0, or a path in *sock_dir*."""
    if cls.address_family == getattr(socket, "AF_UNIX", None):
        return os.path.join(sock_dir, f"{name}.sock")
    if cls.address_family == socket.AF_INET6:
        return ("::1", 0)
    return (HOST, 0)


@contextlib.contextmanager
def serving(server: Any, poll_interval: float = 0.5) -> Iterator[Any]:
    """Run ``server.serve_forever`` in a daemon thread; always shut down and close."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        assert not thread.is_alive(), "serve_forever did not return after shutdown()"


def remove_socket_file(server: Any) -> None:
    """What code written for the stdlib does after ``server_close()``: a Unix
    server keeps its socket file (as the stdlib's does), so remove it."""
    if getattr(socket, "AF_UNIX", None) == server.address_family and isinstance(server.server_address, str):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(server.server_address)


def client_socket(cls: type, sock_dir: str | None = None) -> socket.socket:
    """A client socket of the right family/type for *cls* (Unix datagram
    clients are bound so the server can reply)."""
    sock = socket.socket(cls.address_family, cls.socket_type)
    if cls.address_family == getattr(socket, "AF_UNIX", None) and cls.socket_type == socket.SOCK_DGRAM:
        assert sock_dir is not None
        sock.bind(tempfile.mktemp(prefix="c-", suffix=".sock", dir=sock_dir))
    sock.settimeout(10)
    return sock


def exchange(cls: type, address: Any, payload: bytes, sock_dir: str | None = None) -> bytes:
    """Send one line to a server of class *cls*; return what came back."""
    with client_socket(cls, sock_dir) as sock:
        if cls.socket_type == socket.SOCK_STREAM:
            sock.connect(address)
            sock.sendall(payload)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        sock.sendto(payload, address)
        return sock.recv(65536)


def drain_then_release(server: Any, timeout: float, release: Callable[[], None]) -> Any:
    """``server.drain(timeout)`` from another thread; once it has stopped the
    loop (the requests in flight are then the drain's to account for), call
    *release* to let the requests that should complete do so; return the
    drain's report. A test's requests wait for *release* instead of napping, so
    the drain's timeout need only outlast their last step (a line sent, a reply
    written), not a nap sized to be still in flight on a busy machine."""
    reports: list[Any] = []
    thread = threading.Thread(target=lambda: reports.append(server.drain(timeout)), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.state is not sockserve.ServerState.SERVING), server.state
    finally:
        release()
        thread.join(timeout + 30)
    assert reports, "drain() did not return"
    return reports[0]


def read_all(sock: socket.socket) -> bytes:
    """Everything *sock* receives until EOF; a reset ends it like EOF."""
    chunks = []
    try:
        while chunk := sock.recv(1024):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll *condition* until it holds (True) or *seconds* pass (its last value)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(0.005)
    return True


#: Seconds within which a Stop (or a lab panel made again, which stops the
#: old one) shows it did not wait for the run it stopped: every wait inside
#: Stop is bounded (2 s in all), and each run a test stops this way has 30 s
#: to go, so a third of that tells the two apart on a busy machine too. How
#: quickly Stop returns (the lab promises about a second) is a timing goal:
#: benchmarks/bench_lab.py measures it.
DID_NOT_WAIT_FOR_THE_RUN = 10.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


#: How long a test's threads and descriptors may take to go after it (a server's
#: threads end, a child's socket closes) before they count as leaked; the
#: fixture's own test (test_reliability_lifecycle) sets it short through
#: SOCKSERVE_TEST_LEAK_SETTLE, since what it checks takes 0.3 s to settle.
LEAK_SETTLE_SECONDS = float(os.environ.get("SOCKSERVE_TEST_LEAK_SETTLE", "5.0"))


def _settle(read: Any, baseline: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    value = read()
    while value > baseline and time.monotonic() < deadline:
        time.sleep(0.02)
        value = read()
    return value


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test leaves the thread and descriptor counts where it found them."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    threads_before = threading.active_count()
    fds_before = open_fds()
    yield
    threads_after = _settle(threading.active_count, threads_before, LEAK_SETTLE_SECONDS)
    fds_after = _settle(open_fds, fds_before, LEAK_SETTLE_SECONDS)
    assert threads_after <= threads_before, (
        f"thread leak: {threads_before} threads before the test, {threads_after} after: "
        f"{[t.name for t in threading.enumerate()]}"
    )
    assert fds_after <= fds_before, (
        f"descriptor leak: {fds_before} open before the test, {fds_after} after"
    )


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A folder every worker of this test run shares (pytest-xdist gives each
    worker its own base folder inside the run's): for work done once per run."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def distributions(run_dir: Any) -> Any:
    """The sdist and the wheel of the working tree (packaging_support.Built),
    built once per test run."""
    from packaging_support import build_distributions

    return build_distributions(run_dir)


@pytest.fixture(scope="session")
def binder_env(run_dir: Any) -> Any:
    """The Binder environment with the wheel (packaging_support.BinderEnv),
    made once per test run."""
    from packaging_support import binder_environment

    return binder_environment(run_dir)
