"""BaseServer, TCPServer and UDPServer: API parity, hook order, and where sockserve is better."""

from __future__ import annotations

import errno
import inspect
import logging
import socket
import socketserver
import threading
import time
from typing import Any

import pytest

import sockserve
from sockserve import ServerState
from sockserve.core.loop import RESOURCE_ERRNOS

from conftest import (
    ALL_CLASSES,
    HOST,
    address_for,
    class_id,
    exchange,
    open_fds,
    serving,
)


class LineEcho(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class DatagramEcho(sockserve.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def echo_handler_for(cls: type) -> type:
    return LineEcho if cls.socket_type == socket.SOCK_STREAM else DatagramEcho


# -- API parity with the standard library ---------------------------------------

STDLIB_NAMES = [name for name in socketserver.__all__ if hasattr(sockserve, name)]


def test_every_stdlib_name_is_exported() -> None:
    missing = sorted(set(socketserver.__all__) - set(sockserve.__all__))
    assert missing == []


@pytest.mark.parametrize("name", STDLIB_NAMES)
def test_public_methods_and_signatures_match_stdlib(name: str) -> None:
    ours, theirs = getattr(sockserve, name), getattr(socketserver, name)
    public = [m for m in dir(theirs) if not m.startswith("_") or m in ("__init__", "__enter__", "__exit__")]
    for member in public:
        assert hasattr(ours, member), f"{name}.{member} is missing"
        theirs_member = getattr(theirs, member)
        if inspect.isfunction(theirs_member):
            ours_sig = inspect.signature(getattr(ours, member))
            theirs_sig = inspect.signature(theirs_member)
            assert list(ours_sig.parameters) == list(theirs_sig.parameters), f"{name}.{member}"
            for param in theirs_sig.parameters.values():
                assert ours_sig.parameters[param.name].default == param.default, f"{name}.{member}({param.name})"
                assert ours_sig.parameters[param.name].kind == param.kind, f"{name}.{member}({param.name})"


@pytest.mark.parametrize("name", STDLIB_NAMES)
def test_class_attribute_defaults_match_stdlib(name: str) -> None:
    ours, theirs = getattr(sockserve, name), getattr(socketserver, name)
    for attr, value in vars(theirs).items():
        if attr.startswith("_") or callable(value):
            continue
        if attr == "request_queue_size":
            # The one deliberate difference: a real backlog instead of 5.
            assert getattr(ours, attr) == socket.SOMAXCONN
            continue
        assert getattr(ours, attr) == value, f"{name}.{attr}"


@pytest.mark.parametrize("name", STDLIB_NAMES)
def test_class_hierarchy_matches_stdlib(name: str) -> None:
    ours, theirs = getattr(sockserve, name), getattr(socketserver, name)
    their_bases = [b.__name__ for b in theirs.__mro__ if b.__module__ == "socketserver"]
    our_bases = [b.__name__ for b in ours.__mro__ if b.__module__.startswith("sockserve")]
    assert our_bases == their_bases


def test_listen_backlog_is_somaxconn() -> None:
    with sockserve.TCPServer((HOST, 0), LineEcho) as server:
        assert server.request_queue_size == socket.SOMAXCONN
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


# -- every server class serves ------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=class_id)
def test_every_class_echoes_and_counts(cls: type, sock_dir: str) -> None:
    server = cls(address_for(cls, sock_dir), echo_handler_for(cls))
    assert server.server_address == server.socket.getsockname()
    assert server.state is ServerState.LISTENING
    with serving(server, poll_interval=0.01):
        for i in range(5):
            line = f"hello {i}\n".encode()
            assert exchange(cls, server.server_address, line, sock_dir) == line
        deadline = time.monotonic() + 10
        while server.stats.finished < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        snap = server.stats.snapshot()
    assert server.state is ServerState.CLOSED
    assert server.socket.fileno() == -1
    assert snap["accepted"] == 5
    assert snap["started"] == 5
    assert snap["completed"] == 5
    assert snap["errors"] == 0
    assert snap["handler_time"]["count"] == 5


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=class_id)
def test_context_manager_leaks_nothing(cls: type, sock_dir: str) -> None:
    before = open_fds()
    with cls(address_for(cls, sock_dir), echo_handler_for(cls)) as server:
        assert open_fds() > before
    assert server.socket.fileno() == -1
    assert open_fds() == before


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("this interpreter was built without IPv6")

    class Server6(sockserve.TCPServer):
        address_family = socket.AF_INET6

    try:
        server = Server6(("::1", 0), LineEcho)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback on this machine: {exc}")
    with serving(server):
        assert exchange(Server6, server.server_address[:2], b"six\n") == b"six\n"


# -- hook order ------------------------------------------------------------------------


def recording(cls: type, calls: list[str]) -> tuple[type, type]:
    """Subclasses of *cls* and of its echo handler that log each hook."""

    def wrap(name: str, base: type) -> Any:
        original = getattr(base, name)

        def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(self, *args, **kwargs)

        return hook

    server_hooks = [
        "get_request", "verify_request", "process_request", "finish_request",
        "shutdown_request", "close_request", "service_actions",
    ]
    Server = type("Recording" + cls.__name__, (cls,), {n: wrap(n, cls) for n in server_hooks})
    handler = echo_handler_for(cls)
    Handler = type("Recording" + handler.__name__, (handler,), {
        n: wrap(n, handler) for n in ("__init__", "setup", "handle", "finish")
    })
    return Server, Handler


@pytest.mark.parametrize("cls", [sockserve.TCPServer, sockserve.UDPServer], ids=class_id)
def test_hook_order_matches_the_seed(cls: type, sock_dir: str) -> None:
    calls: list[str] = []
    Server, Handler = recording(cls, calls)
    with Server((HOST, 0), Handler) as server:
        sender = threading.Thread(target=exchange, args=(cls, server.server_address, b"x\n"))
        sender.start()
        server.handle_request()
        sender.join(10)
    assert calls == [
        "get_request", "verify_request", "process_request", "finish_request",
        "__init__", "setup", "handle", "finish", "shutdown_request", "close_request",
    ]


def test_refused_request_is_shut_down_and_counted() -> None:
    closed: list[Any] = []

    class Refusing(sockserve.TCPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            return False

        def shutdown_request(self, request: Any) -> None:
            closed.append(request)
            super().shutdown_request(request)

    with Refusing((HOST, 0), LineEcho) as server:
        with socket.create_connection(server.server_address, timeout=10) as client:
            server.handle_request()
            assert client.recv(10) == b""  # closed without a reply
    assert len(closed) == 1
    assert server.stats.rejected == 1
    assert server.stats.started == 0


def test_handle_request_times_out_into_handle_timeout() -> None:
    timeouts = []

    class Patient(sockserve.TCPServer):
        timeout = 0.05

        def handle_timeout(self) -> None:
            timeouts.append(time.monotonic())

    with Patient((HOST, 0), LineEcho) as server:
        server.handle_request()
    assert len(timeouts) == 1


# -- shutdown --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [sockserve.TCPServer, sockserve.ThreadingTCPServer, sockserve.UDPServer], ids=class_id
)
def test_shutdown_does_not_wait_for_poll_interval(cls: type) -> None:
    # The standard library would need up to poll_interval (30 s here) to notice.
    server = cls((HOST, 0), echo_handler_for(cls))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 30})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while server.state is not ServerState.SERVING and time.monotonic() < deadline:
            time.sleep(0.005)
        assert server.state is ServerState.SERVING
        started = time.monotonic()
        server.shutdown()
        took = time.monotonic() - started
        thread.join(10)
    finally:
        server.server_close()
    assert not thread.is_alive()
    assert took < 1.0, f"shutdown took {took:.3f} s with poll_interval=30"


def test_shutdown_from_a_handler_in_the_serving_thread_does_not_deadlock() -> None:
    # The standard library deadlocks here: shutdown() waits for the loop that
    # is running it.
    class Stopper(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            self.server.shutdown()
            self.wfile.write(b"stopping\n")

    server = sockserve.TCPServer((HOST, 0), Stopper)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        reply = exchange(sockserve.TCPServer, server.server_address, b"stop\n")
        thread.join(10)
        assert not thread.is_alive(), "serve_forever deadlocked"
        assert reply == b"stopping\n"
    finally:
        server.server_close()


def test_shutdown_before_serve_forever_starts_still_stops_it() -> None:
    server = sockserve.TCPServer((HOST, 0), LineEcho)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 30})
    thread.start()
    server.shutdown()  # may run before the loop began; must not hang
    thread.join(10)
    server.server_close()
    assert not thread.is_alive()


def test_serve_forever_can_run_again_after_shutdown() -> None:
    server = sockserve.TCPServer((HOST, 0), LineEcho)
    try:
        for round_ in range(2):
            with_thread = threading.Thread(target=server.serve_forever)
            with_thread.start()
            line = f"round {round_}\n".encode()
            assert exchange(sockserve.TCPServer, server.server_address, line) == line
            server.shutdown()
            with_thread.join(10)
            assert server.state is ServerState.LISTENING
    finally:
        server.server_close()


# -- accept() out of descriptors ----------------------------------------------------------


@pytest.mark.parametrize("code", sorted(RESOURCE_ERRNOS), ids=errno.errorcode.get)
def test_accept_exhaustion_backs_off_instead_of_spinning(code: int, caplog: pytest.LogCaptureFixture) -> None:
    attempts = []

    class Exhausted(sockserve.TCPServer):
        failing = True

        def get_request(self) -> Any:
            attempts.append(time.monotonic())
            if self.failing:
                raise OSError(code, "simulated")
            return super().get_request()

    server = Exhausted((HOST, 0), LineEcho)
    with caplog.at_level(logging.WARNING, logger="sockserve"):
        with serving(server, poll_interval=0.01):
            client = socket.create_connection(server.server_address, timeout=10)
            try:
                client.sendall(b"later\n")
                time.sleep(0.5)  # the pending connection keeps the socket readable
                spins = len(attempts)
                server.failing = False
                assert client.makefile("rb").readline() == b"later\n"
            finally:
                client.close()
    # Backing off from 10 ms doubling to 500 ms allows about 6 attempts in
    # 0.5 s; a spinning loop makes many thousands.
    assert 1 <= spins < 60, spins
    assert server.stats.accept_errors == spins
    assert server.stats.completed == 1
    warnings = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(warnings) == 1


def test_other_accept_errors_are_ignored_quietly() -> None:
    class Racy(sockserve.TCPServer):
        raised = False

        def get_request(self) -> Any:
            if not self.raised:
                self.raised = True
                raise OSError(errno.ECONNABORTED, "client gave up")
            return super().get_request()

    with Racy((HOST, 0), LineEcho) as server:
        with socket.create_connection(server.server_address, timeout=10) as client:
            server.handle_request()  # swallowed
            client.sendall(b"ok\n")
            server.handle_request()
            assert client.makefile("rb").readline() == b"ok\n"
        assert server.stats.accept_errors == 0


# -- bind errors -----------------------------------------------------------------------


def test_port_in_use_says_what_to_do() -> None:
    with sockserve.TCPServer((HOST, 0), LineEcho) as first:
        port = first.server_address[1]
        before = open_fds()
        with pytest.raises(OSError) as info:
            sockserve.TCPServer((HOST, port), LineEcho)
        assert open_fds() == before  # the failed server closed its socket
    assert info.value.errno == errno.EADDRINUSE
    assert type(info.value) is OSError
    message = str(info.value)
    assert f"{HOST}:{port} is already in use (EADDRINUSE)" in message
    assert "port 0" in message


def test_address_not_on_this_machine() -> None:
    with pytest.raises(OSError) as info:
        sockserve.TCPServer(("192.0.2.1", 0), LineEcho)  # TEST-NET-1: never local; bind only, no traffic
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert "127.0.0.1" in str(info.value)


def test_unresolvable_host_name() -> None:
    with pytest.raises(socket.gaierror) as info:
        sockserve.TCPServer(("no-such-host.invalid", 0), LineEcho)
    assert "no-such-host.invalid" in str(info.value)


def test_port_out_of_range_is_still_overflow_error() -> None:
    before = open_fds()
    for _ in range(50):
        with pytest.raises(OverflowError):
            sockserve.TCPServer((HOST, -1), LineEcho)
    assert open_fds() == before


def test_bind_and_activate_false_leaves_it_to_the_caller() -> None:
    server = sockserve.TCPServer((HOST, 0), LineEcho, bind_and_activate=False)
    try:
        assert server.state is ServerState.CREATED
        server.allow_reuse_address = True
        server.server_bind()
        assert server.state is ServerState.BOUND
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        server.server_activate()
        assert server.state is ServerState.LISTENING
    finally:
        server.server_close()


# -- errors in handlers -----------------------------------------------------------------


def test_handler_error_is_reported_counted_and_survived(capsys: pytest.CaptureFixture[str]) -> None:
    class Flaky(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            if line == b"boom\n":
                raise ValueError("the handler broke")
            self.wfile.write(line)

    server = sockserve.TCPServer((HOST, 0), Flaky)
    with serving(server):
        assert exchange(sockserve.TCPServer, server.server_address, b"boom\n") == b""
        assert exchange(sockserve.TCPServer, server.server_address, b"fine\n") == b"fine\n"
    err = capsys.readouterr().err
    assert "ValueError: the handler broke" in err
    assert "Flaky failed on the request from 127.0.0.1:" in err
    assert server.stats.errors == 1
    assert server.stats.completed == 1


def test_client_reset_is_a_disconnect_not_a_traceback(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    class Resetting(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    server = sockserve.TCPServer((HOST, 0), Resetting)
    with caplog.at_level(logging.DEBUG, logger="sockserve"):
        with serving(server):
            exchange(sockserve.TCPServer, server.server_address, b"x\n")
    assert "Traceback" not in capsys.readouterr().err
    assert server.stats.disconnects == 1
    assert server.stats.errors == 0
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and "went away" in r.getMessage()]
    assert len(debug) == 1


def test_port_held_only_by_time_wait_says_so() -> None:
    # A server that closes its connections first leaves them in TIME_WAIT;
    # rebinding without SO_REUSEADDR then fails although nothing listens.
    server = sockserve.TCPServer((HOST, 0), LineEcho)
    with serving(server, poll_interval=0.01):
        for _ in range(3):
            assert exchange(sockserve.TCPServer, server.server_address, b"x\n") == b"x\n"
    port = server.server_address[1]
    with pytest.raises(OSError) as info:
        sockserve.TCPServer((HOST, port), LineEcho)
    assert info.value.errno == errno.EADDRINUSE
    message = str(info.value)
    assert "no server listens" in message and "TIME_WAIT" in message
    assert "allow_reuse_address = True" in message


def test_importing_sockserve_does_not_import_logging() -> None:
    # logging registers an at-fork hook that runs in every forked child (it
    # re-makes each handler's lock): a forking server would pay it per
    # request although it logs nothing. The core writes through sockserve.core.logs.
    import subprocess
    import sys

    code = "import sys, sockserve; print(sorted({'logging', 'traceback'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_close_request_closes_a_plain_socket_and_leaves_one_a_stream_holds() -> None:
    """close_request on a socket.socket: closed at once (fileno -1, the peer
    sees EOF); while a file object made from it is open, the descriptor
    stays open until that closes, as socket.close() does."""
    import socket as socket_module

    server = sockserve.TCPServer(("127.0.0.1", 0), sockserve.BaseRequestHandler, bind_and_activate=False)
    try:
        left, right = socket_module.socketpair()
        with right:
            server.close_request(left)
            assert left.fileno() == -1 and right.recv(1) == b""
        left, right = socket_module.socketpair()
        with right:
            reader = left.makefile("rb")
            server.close_request(left)
            assert left._closed and reader.raw._sock is left  # type: ignore[attr-defined]
            right.sendall(b"x")
            assert reader.read(1) == b"x"
            reader.close()
            assert left.fileno() == -1
    finally:
        server.server_close()


def test_settings_read_per_request_may_be_class_values_instance_values_or_properties() -> None:
    """request_timeout and max_packet_size are copied to a new server when they are
    plain class values; a property in a subclass keeps working as on the stdlib."""

    class Plain(sockserve.UDPServer):
        max_packet_size = 10

    class Computed(sockserve.UDPServer):
        @property
        def max_packet_size(self) -> int:  # type: ignore[override]
            return 20

        @property
        def request_timeout(self) -> float:  # type: ignore[override]
            return 1.5

    with Plain(("127.0.0.1", 0), sockserve.DatagramRequestHandler) as plain:
        assert plain.max_packet_size == 10 and plain.request_timeout is None
        plain.max_packet_size = 30
        assert plain.max_packet_size == 30
    with Computed(("127.0.0.1", 0), sockserve.DatagramRequestHandler) as computed:
        assert (computed.max_packet_size, computed.request_timeout) == (20, 1.5)
