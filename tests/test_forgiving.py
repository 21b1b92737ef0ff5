"""Code that mocks or reaches into socketserver works on sockserve as on the
standard library (issue 14 item 5).

Each idiom below is found in public projects. Every test runs the same code
against both libraries, so "works exactly as on the stdlib" is checked, not
assumed.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from unittest import mock

import pytest

import sockserve
from conftest import ALL_CLASSES, HOST, address_for, class_id, exchange, serving

LIBRARIES = [socketserver, sockserve]


def lib_id(lib: Any) -> str:
    return lib.__name__


class Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


# -- an instance whose BaseServer.__init__ never ran ----------------------------------


@pytest.mark.parametrize("lib", LIBRARIES, ids=lib_id)
def test_hooks_work_on_a_server_whose_init_was_mocked_away(lib: Any) -> None:
    """Patroni's MockRestApiServer: ``__init__`` patched with a Mock, the
    stdlib's private per-instance state supplied as class attributes."""

    class RestApiServer(lib.ThreadingMixIn, lib.TCPServer):
        daemon_threads = True

    served: list[bytes] = []

    class Handler(lib.StreamRequestHandler):
        def handle(self) -> None:
            served.append(self.rfile.readline())

    with mock.patch.object(lib.TCPServer, "__init__", mock.Mock(return_value=None)):
        server = RestApiServer(("127.0.0.1", 0), Handler)
    RestApiServer._BaseServer__is_shut_down = mock.Mock()
    RestApiServer._BaseServer__shutdown_request = True
    server.RequestHandlerClass = Handler
    a, b = socket.socketpair()
    try:
        b.sendall(b"hello\n")
        # A request run through the threading hook, as the tests do.
        server.process_request_thread(a, ("127.0.0.1", 1))
        assert served == [b"hello\n"]
        # The loop's request path, with get_request mocked.
        c, d = socket.socketpair()
        d.sendall(b"again\n")
        server.get_request = mock.Mock(return_value=(c, ("127.0.0.1", 2)))
        server.process_request = mock.Mock()
        server._handle_request_noblock()
        server.process_request.assert_called_once_with(c, ("127.0.0.1", 2))
        c.close()
        d.close()
        # shutdown() waits on the mocked event: it returns at once.
        server.shutdown()
        RestApiServer._BaseServer__is_shut_down.wait.assert_called()
    finally:
        a.close()
        b.close()
    if lib is sockserve:
        assert server.stats.completed == 1
        assert server.stats.threads == 0
        assert len(server._ledger) == 0


@pytest.mark.parametrize("cls", [sockserve.TCPServer, sockserve.ThreadingTCPServer,
                                 sockserve.ForkingTCPServer, sockserve.ThreadPoolTCPServer],
                         ids=class_id)
def test_state_made_on_first_use_is_the_instances_own(cls: type) -> None:
    """Two instances made without __init__ never share their state."""
    first = cls.__new__(cls)
    second = cls.__new__(cls)
    assert first.stats is not second.stats
    assert first._ledger is not second._ledger
    assert first._BaseServer__is_shut_down is not second._BaseServer__is_shut_down
    assert first.stats is first.stats  # made once, then kept


# -- the stdlib's private names mean what they mean there --------------------------------


IN_PROCESS = [c for c in ALL_CLASSES if not issubclass(c, (sockserve.ForkingMixIn, sockserve.PreForkMixIn))]


@pytest.mark.parametrize("cls", IN_PROCESS, ids=class_id)
def test_setting_the_private_shutdown_flag_in_a_handler_stops_the_loop(cls: type, sock_dir: str) -> None:
    """The common workaround for the stdlib's handler deadlock:
    ``server._BaseServer__shutdown_request = True`` from a handler."""

    class Stopper(sockserve.BaseRequestHandler):
        def handle(self) -> None:
            self.server._BaseServer__shutdown_request = True
            if isinstance(self.request, tuple):
                self.request[1].sendto(b"bye", self.client_address)
            else:
                self.request.recv(64)  # read it: closing unread data resets a Unix stream
                self.request.sendall(b"bye")

    server = cls(address_for(cls, sock_dir), Stopper)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        assert exchange(cls, server.server_address, b"stop", sock_dir) == b"bye"
        thread.join(5)
        assert not thread.is_alive(), "serve_forever went on after the flag was set"
        # ...and the flag is reset, as the stdlib does, so serving can start again.
        assert server._BaseServer__shutdown_request is False
        assert server._BaseServer__is_shut_down.is_set()
    finally:
        if thread.is_alive():
            server.shutdown()
            thread.join(5)
        server.server_close()


@pytest.mark.parametrize("lib", LIBRARIES, ids=lib_id)
def test_the_private_event_is_the_one_shutdown_waits_on(lib: Any) -> None:
    server = lib.TCPServer((HOST, 0), Echo)
    event = server._BaseServer__is_shut_down
    assert isinstance(event, threading.Event)
    assert "_BaseServer__is_shut_down" in vars(server)  # per instance, as code reads it
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while event.is_set() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not event.is_set()  # cleared while serving
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
    assert event.is_set()  # set once serve_forever has returned


# -- a subclass that runs process_request_thread from its own pool ------------------------


class OwnPoolServer(sockserve.ThreadingMixIn, sockserve.TCPServer):
    """Patroni, jsonrpclib-pelix: process_request hands the request to a
    pool of the subclass's own, which calls process_request_thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from concurrent.futures import ThreadPoolExecutor

        self.executor = ThreadPoolExecutor(max_workers=2)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.executor.submit(self.process_request_thread, request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self.executor.shutdown(wait=True)


class Slow(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        time.sleep(0.2)
        self.wfile.write(line)


def test_statistics_stay_balanced_when_a_subclass_pools_process_request_thread() -> None:
    server = OwnPoolServer((HOST, 0), Echo)
    with serving(server, poll_interval=0.05):
        for n in range(5):
            assert exchange(type(server), server.server_address, b"%d\n" % n) == b"%d\n" % n
        deadline = time.monotonic() + 5
        while server.stats.threads and time.monotonic() < deadline:
            time.sleep(0.01)
        snap = server.stats.snapshot()
    assert snap["threads"] == 0  # never negative: each thread counted itself in and out
    assert (snap["started"], snap["completed"], snap["active"]) == (5, 5, 0)
    assert server.stats.take_peaks()[0] >= 1


def test_drain_sees_the_requests_a_subclass_pool_runs() -> None:
    server = OwnPoolServer((HOST, 0), Slow)
    with serving(server, poll_interval=0.05):
        clients = []
        for n in range(2):
            sock = socket.create_connection(server.server_address, timeout=10)
            sock.sendall(b"x%d\n" % n)
            clients.append(sock)
        deadline = time.monotonic() + 5
        while server.stats.started < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        report = server.drain(timeout=5)
        for sock in clients:
            sock.close()
    assert (report.completed, report.aborted) == (2, 0), report


def test_an_http_server_built_without_init_still_counts_its_requests() -> None:
    """The same mocking pattern on http.server running over sockserve."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Server(sockserve.ThreadingMixIn, sockserve.TCPServer):
        pass

    server = Server.__new__(Server)
    server.RequestHandlerClass = Handler
    server.server_address = ("127.0.0.1", 0)
    a, b = socket.socketpair()
    b.sendall(b"GET / HTTP/1.0\r\n\r\n")
    server.process_request_thread(a, ("127.0.0.1", 9))
    reply = b.recv(1024)
    b.close()
    a.close()
    assert reply.startswith(b"HTTP/1.0 204")
    assert server.stats.completed == 1
