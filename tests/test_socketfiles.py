"""Unix socket files: a mode set without a race, concurrent starts on a stale
path, stale files told from the kernel's list without connecting to anyone,
the file kept on close by default (as the standard library does) and, with
``remove_socket_file = True``, removal of nothing but the file a server created.

Parametrized over every Unix server class (stream and datagram; plain,
threading, forking, thread-pool and prefork variants) and AsyncioServer.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sockserve
from sockserve.core import socketfiles
from sockserve.measure.aio import AsyncioServer
from sockserve.core.errors import StaleUnixSocketError
from sockserve.measure.workloads import handler_for

from conftest import ALL_CLASSES, class_id, client_socket, serving

AF_UNIX = getattr(socket, "AF_UNIX", None)
UNIX_CLASSES: list[type] = [c for c in ALL_CLASSES if c.address_family == AF_UNIX] + [AsyncioServer]
UNIX_PLAIN: list[type] = [sockserve.UnixStreamServer, sockserve.UnixDatagramServer, AsyncioServer]


class LineEcho(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class PacketEcho(sockserve.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read())


def make(cls: type, path: str, **attributes: Any) -> Any:
    """A server of *cls* (with class *attributes* set) bound to *path*."""
    sub = type(cls.__name__, (cls,), attributes)
    if cls is AsyncioServer:
        return sub(path, handler_for("echo"))
    return sub(path, LineEcho if cls.socket_type == socket.SOCK_STREAM else PacketEcho)


def stream(cls: type) -> bool:
    return cls is AsyncioServer or cls.socket_type == socket.SOCK_STREAM


def talk(cls: type, path: str, sock_dir: str) -> bytes:
    """One echo exchange with the server of *cls* at *path*."""
    if stream(cls):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(b"ping\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1024)
                if not chunk:
                    break
                data += chunk
            return data
    with client_socket(cls, sock_dir) as sock:
        sock.sendto(b"ping\n", path)
        return sock.recv(1024)


def identity(path: str) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_dev, info.st_ino


def leave_stale_file(path: str, cls: type) -> None:
    """A socket file nobody is bound to any more (as a crashed server leaves)."""
    kind = socket.SOCK_STREAM if stream(cls) else socket.SOCK_DGRAM
    with socket.socket(socket.AF_UNIX, kind) as sock:
        sock.bind(path)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.fixture(params=["linux", "umask"])
def mode_strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way socketfiles creates a file with a mode (Linux offers both)."""
    monkeypatch.setattr(socketfiles, "MODE_STRATEGY", request.param)
    return str(request.param)


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for the test; restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(value: int) -> None:
        os.umask(value)

    try:
        yield set_umask
    finally:
        os.umask(old)


# -- socket_mode ---------------------------------------------------------------------


@pytest.mark.parametrize(("requested", "victim_mode"), [(0o666, 0o600), (0o600, 0o644)])
@pytest.mark.parametrize("cls", UNIX_CLASSES, ids=class_id)
def test_socket_mode_never_follows_a_path_swapped_after_bind(
    cls: type, requested: int, victim_mode: int, mode_strategy: str, sock_dir: str,
    monkeypatch: pytest.MonkeyPatch, umask: Callable[[int], None],
) -> None:
    # Someone who may write to the directory replaces the new socket file by
    # a symlink to a file of ours the instant bind() returns.
    umask(0o022)  # so 0o666 needs bits the umask removes, 0o600 does not
    path = os.path.join(sock_dir, "swapped.sock")
    victim = os.path.join(sock_dir, "secret")
    with open(victim, "w") as f:
        f.write("secret")
    os.chmod(victim, victim_mode)
    real_bind = socket.socket.bind

    def bind_then_swap(sock: socket.socket, address: Any) -> None:
        real_bind(sock, address)
        if address == path:
            os.unlink(path)
            os.symlink(victim, path)

    monkeypatch.setattr(socket.socket, "bind", bind_then_swap)
    with pytest.raises(FileExistsError) as caught:
        make(cls, path, socket_mode=requested)
    assert caught.value.errno == errno.EEXIST
    assert path in str(caught.value) and "symbolic link" in str(caught.value)
    assert stat.S_IMODE(os.stat(victim).st_mode) == victim_mode  # never chmod-ed
    assert os.readlink(path) == victim  # and nothing of theirs removed


@pytest.mark.parametrize(("requested", "mask"), [(0o660, 0o077), (0o600, 0o022), (0o666, 0o022)])
@pytest.mark.parametrize("cls", UNIX_CLASSES, ids=class_id)
def test_socket_mode_is_the_files_mode_whatever_the_umask(
    cls: type, requested: int, mask: int, mode_strategy: str, sock_dir: str,
    umask: Callable[[int], None],
) -> None:
    umask(mask)
    path = os.path.join(sock_dir, "moded.sock")
    server = make(cls, path, socket_mode=requested, remove_socket_file=True)
    umask(0o022)
    with serving(server, poll_interval=0.05):
        assert stat.S_IMODE(os.lstat(path).st_mode) == requested
        assert talk(cls, path, sock_dir) == b"ping\n"
    assert not os.path.exists(path)


def test_the_linux_way_creates_the_file_with_the_mode_before_any_chmod(
    sock_dir: str, monkeypatch: pytest.MonkeyPatch, umask: Callable[[int], None]
) -> None:
    if not hasattr(os, "O_PATH"):
        pytest.skip("O_PATH is Linux's")
    monkeypatch.setattr(socketfiles, "MODE_STRATEGY", "linux")
    umask(0o022)
    chmods: list[Any] = []
    monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: chmods.append(args))
    path = os.path.join(sock_dir, "born.sock")
    with make(sockserve.UnixStreamServer, path, socket_mode=0o600):
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert chmods == []  # no path was ever followed to set it


# -- concurrent starts on a stale path -----------------------------------------------


@pytest.mark.parametrize("cls", UNIX_PLAIN, ids=class_id)
def test_two_servers_starting_at_once_on_a_stale_path(
    cls: type, sock_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first server to probe the stale file then pauses, so the second
    # probes, removes and binds inside what was the race window.
    real_is_stale = socketfiles._is_stale
    path = os.path.join(sock_dir, "contended.sock")
    for _ in range(2):
        leave_stale_file(path, cls)
        first_probed = threading.Event()

        def slow_first_probe(address: Any, info: os.stat_result) -> bool | None:
            stale = real_is_stale(address, info)
            if not first_probed.is_set():
                first_probed.set()
                time.sleep(0.3)
            return stale

        monkeypatch.setattr(socketfiles, "_is_stale", slow_first_probe)
        servers: list[Any] = []
        errors: list[BaseException] = []

        def start() -> None:
            try:
                servers.append(make(cls, path, replace_stale_socket=True, remove_socket_file=True))
            except OSError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start)]
        threads[0].start()
        assert first_probed.wait(10)
        threads.append(threading.Thread(target=start))
        threads[1].start()
        for thread in threads:
            thread.join(30)
        try:
            assert len(servers) == 1 and len(errors) == 1, (servers, errors)
            error = errors[0]
            assert isinstance(error, OSError) and error.errno == errno.EADDRINUSE
            assert not isinstance(error, StaleUnixSocketError)
            assert path in str(error) and "in use" in str(error)
            winner = servers[0]
            assert identity(path) == tuple(winner._socket_file[:2])
            with serving(winner, poll_interval=0.05):
                assert talk(cls, path, sock_dir) == b"ping\n"
        finally:
            for server in servers:
                server.server_close()
        assert not os.path.exists(path)


@pytest.mark.parametrize(
    "cls", [c for c in UNIX_CLASSES if c is not AsyncioServer and stream(c)], ids=class_id
)
def test_a_socket_bound_but_not_yet_listening_is_never_taken_for_stale(
    cls: type, sock_dir: str
) -> None:
    path = os.path.join(sock_dir, "starting.sock")
    first = type(cls.__name__, (cls,), {})(path, LineEcho, bind_and_activate=False)
    try:
        first.server_bind()  # bound; listen() comes with server_activate()
        with pytest.raises(OSError) as caught:
            make(cls, path, replace_stale_socket=True)
        assert caught.value.errno == errno.EADDRINUSE
        assert not isinstance(caught.value, StaleUnixSocketError)
        assert identity(path) == tuple(first._socket_file[:2])  # left alone
        first.server_activate()
        with serving(first, poll_interval=0.05):
            assert talk(cls, path, sock_dir) == b"ping\n"
    finally:
        first.server_close()


def test_a_directory_locked_elsewhere_delays_the_bind_then_binds_without_it(
    sock_dir: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(socketfiles, "LOCK_WAIT", 0.2)
    path = os.path.join(sock_dir, "locked.sock")
    fd = os.open(sock_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="sockserve"):
            server = make(sockserve.UnixStreamServer, path)
        assert time.monotonic() - began >= 0.2
        assert "locked" in caplog.text and path in caplog.text
        with serving(server, poll_interval=0.05):
            assert talk(sockserve.UnixStreamServer, path, sock_dir) == b"ping\n"
    finally:
        os.close(fd)


def test_the_directory_lock_serialises_binds(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "waits.sock")
    fd = os.open(sock_dir, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    released = []

    def release_soon() -> None:
        time.sleep(0.2)
        released.append(time.monotonic())
        os.close(fd)

    releaser = threading.Thread(target=release_soon)
    releaser.start()
    try:
        server = make(sockserve.UnixStreamServer, path)
        bound_at = time.monotonic()
        server.server_close()
    finally:
        releaser.join(10)
    assert released and bound_at >= released[0]


@pytest.mark.parametrize("cls", UNIX_PLAIN, ids=class_id)
def test_staleness_is_read_from_the_kernel_without_connecting(
    cls: type, sock_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.path.join(sock_dir, "looked-up.sock")
    leave_stale_file(path, cls)

    def no_connect(sock: socket.socket, address: Any) -> None:
        raise AssertionError(f"connected to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    with pytest.raises(StaleUnixSocketError):
        make(cls, path)
    monkeypatch.setattr(socketfiles, "PROC_NET_UNIX", os.path.join(sock_dir, "no-such-list"))
    with pytest.raises(OSError) as caught:  # no list to read: not called stale
        make(cls, path, replace_stale_socket=True)
    assert caught.value.errno == errno.EADDRINUSE
    assert not isinstance(caught.value, StaleUnixSocketError)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)  # nothing removed


def test_a_socket_listed_under_a_relative_path_of_that_name_is_never_taken_for_stale(
    sock_dir: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bound as "same.sock" from another directory: the kernel lists the
    # relative name only, which may be this file, so it is left alone.
    path = os.path.join(sock_dir, "same.sock")
    leave_stale_file(path, sockserve.UnixStreamServer)
    monkeypatch.chdir(tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as elsewhere:
        elsewhere.bind("same.sock")
        with pytest.raises(OSError) as caught:
            make(sockserve.UnixStreamServer, path, replace_stale_socket=True)
    assert not isinstance(caught.value, StaleUnixSocketError)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


# -- on close ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [c for c in UNIX_CLASSES if c is not AsyncioServer], ids=class_id)
def test_close_keeps_the_socket_file_by_default(cls: type, sock_dir: str) -> None:
    """As the standard library does: code written for it removes the file
    itself after server_close(), and must not find it gone."""
    path = os.path.join(sock_dir, "kept.sock")
    server = make(cls, path)
    made = identity(path)
    with serving(server, poll_interval=0.05):
        assert talk(cls, path, sock_dir) == b"ping\n"
    assert identity(path) == made
    os.unlink(path)


@pytest.mark.parametrize("cls", UNIX_CLASSES, ids=class_id)
def test_close_removes_the_socket_file_it_created(cls: type, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "own.sock")
    server = make(cls, path, remove_socket_file=True)
    with serving(server, poll_interval=0.05):
        assert talk(cls, path, sock_dir) == b"ping\n"
    assert not os.path.lexists(path)


@pytest.mark.parametrize("cls", UNIX_CLASSES, ids=class_id)
def test_close_never_removes_a_regular_file_at_its_path(cls: type, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "replaced.sock")
    server = make(cls, path, remove_socket_file=True)
    try:
        os.unlink(path)
        with open(path, "w") as f:
            f.write("not a socket")
    finally:
        server.server_close()
    with open(path) as f:
        assert f.read() == "not a socket"


@pytest.mark.parametrize("cls", UNIX_CLASSES, ids=class_id)
def test_close_never_removes_another_servers_socket_file(cls: type, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "taken.sock")
    first = make(cls, path, remove_socket_file=True)
    os.unlink(path)  # someone removed it; another server binds the path
    second = make(cls, path, remove_socket_file=True)
    try:
        first.server_close()
        assert identity(path) == tuple(second._socket_file[:2])
        with serving(second, poll_interval=0.05):
            assert talk(cls, path, sock_dir) == b"ping\n"
    finally:
        first.server_close()
        second.server_close()
    assert not os.path.lexists(path)


@pytest.mark.parametrize("cls", UNIX_CLASSES, ids=class_id)
def test_close_never_removes_a_symlink_at_its_path(cls: type, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "linked.sock")
    target = os.path.join(sock_dir, "elsewhere")
    with open(target, "w") as f:
        f.write("kept")
    server = make(cls, path, remove_socket_file=True)
    try:
        os.unlink(path)
        os.symlink(target, path)
    finally:
        server.server_close()
    assert os.readlink(path) == target


@pytest.mark.parametrize("cls", UNIX_CLASSES, ids=class_id)
def test_a_forked_process_closing_the_server_leaves_the_file(cls: type, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "inherited.sock")
    server = make(cls, path, remove_socket_file=True)
    try:
        pid = os.fork()
        if pid == 0:  # the child: close its copy of the server, as a handler might
            status = 1
            try:
                server.server_close()
                status = 0
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert identity(path) == tuple(server._socket_file[:2])
        with serving(server, poll_interval=0.05):
            assert talk(cls, path, sock_dir) == b"ping\n"
    finally:
        server.server_close()
    assert not os.path.lexists(path)


def test_an_abstract_address_has_no_file_and_nothing_is_removed(sock_dir: str) -> None:
    name = f"\0sockserve-test-{os.getpid()}"
    server = make(sockserve.UnixStreamServer, name)
    try:
        assert server._socket_file is None
        assert os.listdir(sock_dir) == []
    finally:
        server.server_close()
