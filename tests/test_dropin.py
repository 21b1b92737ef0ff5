"""Drop-in under patching and odd callers (issue 23, items 1-3).

Code written for the standard library reaches into ``socketserver``: it
patches ``socketserver.socket``, swaps ``_ServerSelector``, wraps a
connection in ``_SocketWriter``, builds servers without running
``__init__``, hands a UDP server a socket double, runs under eventlet, and
unlinks its Unix socket file after ``server_close()``. Each test here is
written from the issue's description, and most run the same code against
the standard library's module first (``MODULES``), so a test that the
stdlib fails is a wrong test, not a finding.

The names themselves live in ``sockserve/__init__.py``; the servers read
``socket`` and ``_ServerSelector`` from the package when they make a socket
or start a loop.
"""

from __future__ import annotations

import errno
import importlib.util
import io
import os
import select
import selectors
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

import sockserve

from conftest import serving

MODULES = [pytest.param(socketserver, id="stdlib"), pytest.param(sockserve, id="sockserve")]

#: Every name the standard library's socketserver defines at top level,
#: 3.10 to 3.13 (dunders left out). test_the_list_covers_this_python keeps
#: it honest on the interpreter that runs the tests.
STDLIB_NAMES = frozenset({
    "BaseRequestHandler", "BaseServer", "BufferedIOBase", "DatagramRequestHandler",
    "ForkingMixIn", "ForkingTCPServer", "ForkingUDPServer",
    "ForkingUnixDatagramServer", "ForkingUnixStreamServer",  # 3.12+
    "StreamRequestHandler", "TCPServer", "ThreadingMixIn", "ThreadingTCPServer",
    "ThreadingUDPServer", "ThreadingUnixDatagramServer", "ThreadingUnixStreamServer",
    "UDPServer", "UnixDatagramServer", "UnixStreamServer",
    "_NoThreads", "_ServerSelector", "_SocketWriter", "_Threads",
    "os", "selectors", "socket", "sys", "threading", "time",
})


class Echo(socketserver.BaseRequestHandler):
    """Works under either module: one recv, the same bytes back."""

    def handle(self) -> None:
        if isinstance(self.request, tuple):
            data, sock = self.request
            sock.sendto(data.upper(), self.client_address)
        else:
            self.request.sendall(self.request.recv(1024).upper())


# -- item 1: the module's names --------------------------------------------------


def test_the_list_covers_this_python() -> None:
    here = {name for name in vars(socketserver) if not name.startswith("__")}
    assert here <= STDLIB_NAMES, sorted(here - STDLIB_NAMES)


def test_every_stdlib_top_level_name_exists_on_sockserve() -> None:
    missing = sorted(name for name in STDLIB_NAMES if not hasattr(sockserve, name))
    assert missing == []


def test_the_module_names_are_the_same_modules() -> None:
    for name in ("os", "selectors", "socket", "sys", "threading"):
        assert getattr(sockserve, name, None) is sys.modules[name], name
    # The stdlib's ``time`` is time.monotonic (``from time import monotonic as time``).
    assert getattr(sockserve, "time", None) is time.monotonic
    assert getattr(sockserve, "BufferedIOBase", None) is io.BufferedIOBase


def _handle_one_request(server: Any, word: bytes) -> None:
    """Send *word* to *server* and have ``handle_request()`` echo it upper-cased."""
    server.timeout = 5
    with socket.create_connection(server.server_address, timeout=5) as client:
        client.sendall(word)
        server.handle_request()
        assert client.recv(10) == word.upper()


def _patched_selector(module: Any) -> tuple[type, list[Any]]:
    made: list[Any] = []

    class Recording(selectors.SelectSelector):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    return Recording, made


@pytest.mark.parametrize("module", [
    pytest.param(socketserver, id="stdlib"),
    pytest.param(sockserve, id="sockserve"),
])
def test_a_patched_server_selector_is_the_one_the_loops_use(module: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``monkeypatch.setattr(socketserver, "_ServerSelector", X)`` (done to
    avoid poll under green threads) reaches handle_request and serve_forever."""
    assert isinstance(getattr(module, "_ServerSelector", None), type)
    assert issubclass(module._ServerSelector, selectors.BaseSelector)
    recording, made = _patched_selector(module)
    monkeypatch.setattr(module, "_ServerSelector", recording)
    with module.TCPServer(("127.0.0.1", 0), Echo) as server:
        _handle_one_request(server, b"a")
        assert made, "handle_request did not use the patched _ServerSelector"
        made.clear()
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            with socket.create_connection(server.server_address, timeout=5) as client:
                client.sendall(b"b")
                assert client.recv(10) == b"B"
        finally:
            server.shutdown()
            thread.join(5)
        assert made, "serve_forever did not use the patched _ServerSelector"


def test_socket_writer_is_the_stdlibs_writer() -> None:
    """``socketserver._SocketWriter(conn)`` in a handler: a writable binary
    stream that sends everything it is given and says how much."""
    writer_class = getattr(sockserve, "_SocketWriter", None)
    assert writer_class is not None
    left, right = socket.socketpair()
    with left, right:
        writer = writer_class(left)
        assert isinstance(writer, io.BufferedIOBase)
        assert writer.writable()
        assert writer.fileno() == left.fileno()
        assert writer.write(memoryview(b"hello")) == 5
        right.settimeout(5)
        assert right.recv(10) == b"hello"


def test_threads_and_no_threads_are_what_threading_mixin_keeps() -> None:
    assert isinstance(sockserve.ThreadingMixIn._threads, sockserve._NoThreads)  # type: ignore[attr-defined]
    no_threads = sockserve._NoThreads()  # type: ignore[attr-defined]
    no_threads.append(threading.Thread(target=lambda: None))
    no_threads.join()
    with sockserve.ThreadingTCPServer(("127.0.0.1", 0), Echo) as server:
        with serving(server, poll_interval=0.05):
            with socket.create_connection(server.server_address, timeout=5) as client:
                client.sendall(b"x")
                assert client.recv(10) == b"X"
        threads = vars(server).get("_threads")
        assert isinstance(threads, sockserve._Threads)  # type: ignore[attr-defined]
        assert isinstance(threads, list)
        assert threads.pop_all() == []  # server_close() joined them


@pytest.fixture
def swapped(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``sys.modules["socketserver"] = sockserve`` for one test."""
    monkeypatch.setitem(sys.modules, "socketserver", sockserve)
    yield


def _stdlib_counterpart(cls: type) -> type | None:
    return getattr(socketserver, cls.__name__, None)


PATCHABLE = [cls for cls in (getattr(sockserve, name) for name in sockserve.__all__)
             if isinstance(cls, type) and issubclass(cls, sockserve.TCPServer)]


def _construct_under_a_patched_socket(cls: type, target: str, address: Any) -> None:
    fake_socket = mock.create_autospec(socket.socket, instance=True, family=cls.address_family,
                                       type=cls.socket_type, proto=0)
    fake_socket.getsockname.return_value = address
    with mock.patch(target, autospec=True) as patched:
        patched.socket.return_value = fake_socket
        server = cls(address, Echo)
    try:
        assert server.socket is fake_socket, "the server made a real socket, not the patched one"
        patched.socket.assert_called_once_with(cls.address_family, cls.socket_type)
        fake_socket.bind.assert_called_once_with(address)
        if cls.socket_type == socket.SOCK_STREAM:
            fake_socket.listen.assert_called_once()
        assert server.server_address == address
    finally:
        server.server_close()
    fake_socket.close.assert_called()


def _address(cls: type, tmp_path: Any) -> Any:
    if cls.address_family == socket.AF_UNIX:
        return str(tmp_path / "never-made.sock")
    return ("127.0.0.1", 4242)


@pytest.mark.parametrize("cls", [
    pytest.param(_stdlib_counterpart(cls) or cls, id=f"stdlib-{cls.__name__}")
    for cls in PATCHABLE if _stdlib_counterpart(cls) is not None
])
def test_the_stdlib_sees_socketserver_socket_patched(cls: type, tmp_path: Any) -> None:
    """The control: what sliplib's tests rely on holds for every stdlib server."""
    _construct_under_a_patched_socket(cls, "socketserver.socket", _address(cls, tmp_path))


@pytest.mark.parametrize("cls", PATCHABLE, ids=lambda cls: cls.__name__)
def test_patching_sockserve_socket_reaches_every_server_made_afterwards(cls: type, tmp_path: Any) -> None:
    _construct_under_a_patched_socket(cls, "sockserve.socket", _address(cls, tmp_path))


@pytest.mark.parametrize("cls", PATCHABLE, ids=lambda cls: cls.__name__)
def test_patching_socketserver_socket_after_the_swap_reaches_every_server(
        cls: type, tmp_path: Any, swapped: None) -> None:
    """sliplib's pattern: ``mocker.patch("socketserver.socket", autospec=True)``."""
    _construct_under_a_patched_socket(cls, "socketserver.socket", _address(cls, tmp_path))


def test_sliplibs_slipserver_test_passes_after_the_swap(swapped: None) -> None:
    """tests/unit/test_slipserver.py of sliplib, reduced to what it does:
    a TCPServer subclass that wraps ``self.socket`` after ``__init__``,
    constructed under the patched module's ``socket``."""

    class Wrapper:
        def __init__(self, sock: Any) -> None:
            self.socket = sock

    class SlipServer(sys.modules["socketserver"].TCPServer):  # type: ignore[name-defined,misc]
        def __init__(self, address: Any, handler: Any, bind_and_activate: bool = True) -> None:
            if ":" in address[0]:
                self.address_family = socket.AF_INET6
            super().__init__(address[0:2], handler, bind_and_activate)
            self.socket = Wrapper(self.socket)

    for family, address in ((socket.AF_INET, ("93.184.216.34", 54321)),
                            (socket.AF_INET6, ("2606:2800:220:1:248:1893:25c8:1946", 54321, 0, 0))):
        tcp_socket = mock.create_autospec(socket.socket, instance=True, type=socket.SOCK_STREAM,
                                          family=family)
        with mock.patch("socketserver.socket", autospec=True) as patched:
            patched.socket.return_value = tcp_socket
            server = SlipServer(address, Echo)
            assert server.address_family == family
            assert server.socket.socket is tcp_socket


# -- item 2: nothing happens to other programs --------------------------------------


def _pending_connection(listener: socket.socket) -> bool:
    listener.setblocking(False)
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.mark.parametrize("module", [
    pytest.param(socketserver, id="stdlib"),
    pytest.param(sockserve, id="sockserve"),
])
@pytest.mark.parametrize("host", ["127.0.0.1", ""])
def test_a_failed_tcp_bind_connects_to_nobody(module: Any, host: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(OSError) as caught:
            module.TCPServer((host, port), Echo)
        assert caught.value.errno == errno.EADDRINUSE
        assert not _pending_connection(holder), "the failed bind opened a connection to the holder"


@pytest.mark.parametrize("module", [
    pytest.param(socketserver, id="stdlib"),
    pytest.param(sockserve, id="sockserve"),
])
def test_a_failed_unix_bind_connects_to_nobody(module: Any, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "held.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as holder:
        holder.bind(path)
        holder.listen()
        with pytest.raises(OSError) as caught:
            module.UnixStreamServer(path, Echo)
        assert caught.value.errno == errno.EADDRINUSE
        assert not _pending_connection(holder), "the failed bind opened a connection to the holder"


UNIX_CLASSES = [cls for cls in PATCHABLE if cls.address_family == socket.AF_UNIX]


@pytest.mark.parametrize("cls", [
    pytest.param(getattr(socketserver, name), id=f"stdlib-{name}")
    for name in ("UnixStreamServer", "UnixDatagramServer", "ThreadingUnixStreamServer")
] + [pytest.param(cls, id=cls.__name__) for cls in UNIX_CLASSES])
@pytest.mark.parametrize("served", [False, True], ids=["unused", "served"])
def test_unlinking_the_socket_file_after_server_close_never_fails(cls: type, served: bool,
                                                                  sock_dir: str) -> None:
    """What code written for the stdlib must do (sshtunnel does it)."""
    path = os.path.join(sock_dir, "s.sock")
    server = cls(path, Echo)
    if served:
        with socket.socket(socket.AF_UNIX, cls.socket_type) as client:
            client.settimeout(5)
            if cls.socket_type == socket.SOCK_DGRAM:
                client.bind(os.path.join(sock_dir, "c.sock"))
                client.sendto(b"x", path)
            else:
                client.connect(path)
                client.sendall(b"x")
            server.timeout = 5
            server.handle_request()
            assert client.recv(10) == b"X"
    server.server_close()
    os.unlink(path)  # raises FileNotFoundError if the server removed it


# -- item 3: bare and doubled servers ------------------------------------------------


class Recorder(socketserver.BaseRequestHandler):
    seen: list[Any] = []

    def handle(self) -> None:
        Recorder.seen.append(self.client_address)


def _bare(cls: type, how: str) -> Any:
    if how == "object.__new__":
        return object.__new__(cls)
    with mock.patch.object(cls, "__init__", return_value=None):
        return cls(("127.0.0.1", 0), Recorder)


def _hook_calls(server: Any) -> dict[str, Any]:
    """Each hook with the arguments a test double would pass it."""
    address = ("192.0.2.7", 5555)

    def request() -> Any:
        return mock.create_autospec(socket.socket, instance=True)

    def handle_error() -> Any:
        try:
            raise ValueError("boom in a bare server")
        except ValueError:
            return server.handle_error(request(), address)

    return {
        "repr": lambda: repr(server),
        "handle_error": handle_error,
        "verify_request": lambda: server.verify_request(request(), address),
        "handle_timeout": lambda: server.handle_timeout(),
        "service_actions": lambda: server.service_actions(),
        "close_request": lambda: server.close_request(request()),
        "shutdown_request": lambda: server.shutdown_request(request()),
        "finish_request": lambda: server.finish_request(request(), address),
        "process_request": lambda: server.process_request(request(), address),
    }


def _outcomes(server: Any, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    results = {}
    for name, call in _hook_calls(server).items():
        try:
            call()
            results[name] = "ok"
        except Exception as exc:  # what the stdlib does is the reference
            results[name] = type(exc).__name__
    return results


BARE_CLASSES = ["TCPServer", "UDPServer", "ThreadingTCPServer", "UnixStreamServer"]


@pytest.mark.parametrize("how", ["object.__new__", "mocked __init__"])
@pytest.mark.parametrize("name", BARE_CLASSES)
def test_every_hook_of_a_server_whose_init_never_ran_works_as_on_the_stdlib(
        name: str, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    """handle_error, repr and the other hooks on a bare server: whatever
    works on the stdlib's works on sockserve's (with a handler class and an
    address set, as a test double does)."""
    results = {}
    for module in (socketserver, sockserve):
        server = _bare(getattr(module, name), how)
        server.RequestHandlerClass = Recorder
        results[module.__name__] = _outcomes(server, capsys)
        for thread in getattr(server, "_threads", None) or ():
            if thread.ident is not None:  # started (a failed hook may leave one unstarted)
                thread.join(5)
    err = capsys.readouterr().err
    assert "boom in a bare server" in err  # handle_error printed the traceback
    stdlib, ours = results["socketserver"], results["sockserve"]
    worse = {hook: (stdlib[hook], ours[hook]) for hook in stdlib
             if stdlib[hook] == "ok" and ours[hook] != "ok"}
    assert worse == {}, f"hooks that work on the stdlib's bare server and fail on sockserve's: {worse}"


@pytest.mark.parametrize("how", ["object.__new__", "mocked __init__"])
def test_repr_and_handle_error_of_a_bare_server_say_something(
        how: str, capsys: pytest.CaptureFixture[str]) -> None:
    server = _bare(sockserve.TCPServer, how)
    assert "TCPServer" in repr(server)
    try:
        raise KeyError("lost key")
    except KeyError:
        server.handle_error(None, ("127.0.0.1", 1))
    assert "lost key" in capsys.readouterr().err


class OnlyRecvfrom:
    """A replacement socket (a test double, a wrapper) that offers what the
    stdlib's UDPServer uses, and no ``recvfrom_into``."""

    def __init__(self, real: socket.socket) -> None:
        self._real = real
        self.family, self.type = real.family, real.type

    def recvfrom(self, size: int, flags: int = 0) -> tuple[bytes, Any]:
        return self._real.recvfrom(size, flags)

    def sendto(self, data: bytes, address: Any) -> int:
        return self._real.sendto(data, address)

    def fileno(self) -> int:
        return self._real.fileno()

    def gettimeout(self) -> float | None:
        return self._real.gettimeout()

    def getsockname(self) -> Any:
        return self._real.getsockname()

    def close(self) -> None:
        self._real.close()


@pytest.mark.parametrize("cls", [
    pytest.param(socketserver.UDPServer, id="stdlib-UDPServer"),
    pytest.param(socketserver.ThreadingUDPServer, id="stdlib-ThreadingUDPServer"),
    pytest.param(sockserve.UDPServer, id="UDPServer"),
    pytest.param(sockserve.ThreadingUDPServer, id="ThreadingUDPServer"),
    pytest.param(sockserve.ThreadPoolUDPServer, id="ThreadPoolUDPServer"),
])
def test_a_udp_server_works_with_a_socket_that_offers_only_recvfrom(cls: type) -> None:
    server = cls(("127.0.0.1", 0), Echo)
    server.socket = OnlyRecvfrom(server.socket)
    with serving(server, poll_interval=0.05), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        for word in (b"one", b"two"):
            client.sendto(word, server.server_address)
            assert client.recv(100) == word.upper()


def test_a_socket_replaced_after_the_first_datagram_is_asked_for_recvfrom() -> None:
    server = sockserve.UDPServer(("127.0.0.1", 0), Echo)
    server.timeout = 5
    with server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        for word, wrap in ((b"one", False), (b"two", True), (b"three", False)):
            if wrap:
                server.socket = OnlyRecvfrom(server.socket)
            elif isinstance(server.socket, OnlyRecvfrom):
                server.socket = server.socket._real
            client.sendto(word, server.server_address)
            server.handle_request()
            assert client.recv(100) == word.upper()


EVENTLET_SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    import eventlet
    eventlet.monkey_patch()
    import socket, threading
    module = __import__(sys.argv[1])

    class Upper(module.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    server = module.ThreadingTCPServer(("127.0.0.1", 0), Upper)
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    loop.start()
    for word in (b"one", b"two", b"three"):
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(word + b"\\n")
            assert client.makefile("rb").readline() == word.upper() + b"\\n"
    server.shutdown()
    loop.join(5)
    server.server_close()
    assert not loop.is_alive()
    print("served 3")
    """
)


@pytest.mark.parametrize("module", [
    pytest.param("socketserver", id="stdlib"),
    pytest.param("sockserve", id="sockserve"),
])
def test_serve_forever_works_under_eventlet(module: str) -> None:
    # Looked up, not imported: importing eventlet here would install its
    # at-fork warning in the test process, and every later fork would warn.
    if importlib.util.find_spec("eventlet") is None:
        pytest.skip("eventlet is not installed (it is in the test extra)")
    result = subprocess.run([sys.executable, "-c", EVENTLET_SCRIPT, module], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and result.stdout.strip() == "served 3", result.stderr[-2000:]


def test_the_loops_wait_with_select_when_poll_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``eventlet.monkey_patch()`` does to ``select`` and ``selectors``
    after sockserve was imported, without eventlet: both loops then wait
    with ``selectors.SelectSelector`` (looked up when they start). (The
    stdlib's would fail here: its ``_ServerSelector`` is PollSelector,
    bound at import.)"""
    recording, made = _patched_selector(sockserve)
    monkeypatch.delattr(select, "poll")
    monkeypatch.delattr(selectors, "PollSelector")
    monkeypatch.setattr(selectors, "SelectSelector", recording)
    with sockserve.TCPServer(("127.0.0.1", 0), Echo) as server:
        _handle_one_request(server, b"a")
        assert len(made) == 1
        with serving(server, poll_interval=0.05):
            with socket.create_connection(server.server_address, timeout=5) as client:
                client.sendall(b"b")
                assert client.recv(10) == b"B"
        assert len(made) == 2
