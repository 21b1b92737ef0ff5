"""Server kinds: names built from sockserve.__all__, resolve_kind, make_server."""

from __future__ import annotations

import gc
import os
import socket
import time

import pytest

import sockserve
from sockserve.measure import kinds
from sockserve.measure.kinds import KINDS, KindInfo, kind_names, make_server, resolve_kind

from conftest import ALL_CLASSES, client_socket, serving

EXPECTED = {
    "plain": "TCPServer",
    "threading": "ThreadingTCPServer",
    "forking": "ForkingTCPServer",
    "plain-udp": "UDPServer",
    "threading-udp": "ThreadingUDPServer",
    "forking-udp": "ForkingUDPServer",
    "plain-unix": "UnixStreamServer",
    "threading-unix": "ThreadingUnixStreamServer",
    "forking-unix": "ForkingUnixStreamServer",
    "plain-unix-dgram": "UnixDatagramServer",
    "threading-unix-dgram": "ThreadingUnixDatagramServer",
    "forking-unix-dgram": "ForkingUnixDatagramServer",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_short_names_map_to_the_classes(name: str) -> None:
    info = resolve_kind(name)
    assert isinstance(info, KindInfo)
    assert info.name == name
    assert info.server_class is getattr(sockserve, EXPECTED[name])
    assert KINDS[name] is info.server_class
    transport = name.split("-", 1)[1] if "-" in name else "tcp"
    assert info.transport == transport
    assert info.concurrency == name.split("-", 1)[0]
    assert EXPECTED[name] in info.description


def test_every_exported_server_class_is_a_kind_under_its_own_name() -> None:
    assert ALL_CLASSES, "conftest found no server classes"
    for cls in ALL_CLASSES:
        assert KINDS[cls.__name__] is cls
        assert resolve_kind(cls.__name__).server_class is cls
        assert resolve_kind(cls).server_class is cls


def test_kind_names_are_short_names_ordered_by_transport() -> None:
    names = kind_names()
    assert names[:3] == ["plain", "threading", "forking"]
    assert set(EXPECTED) <= set(names)
    assert not any("Server" in name for name in names)
    udp = kind_names("udp")
    assert udp[:3] == ["plain-udp", "threading-udp", "forking-udp"]
    assert all(name.endswith("-udp") for name in udp)


def test_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as caught:
        resolve_kind("threadin")
    message = str(caught.value)
    assert "threadin" in message and "threading" in message and "forking-unix" in message


def test_names_are_case_insensitive_as_a_fallback() -> None:
    assert resolve_kind("THREADING").name == "threading"
    assert resolve_kind("threadingtcpserver").server_class is sockserve.ThreadingTCPServer


def test_a_new_class_with_a_known_mixin_gets_its_traits() -> None:
    class ThreadingTCP6(sockserve.ThreadingTCPServer):
        address_family = socket.AF_INET6

    info = resolve_kind(ThreadingTCP6)
    assert (info.transport, info.concurrency) == ("tcp", "threading")


def test_register_kind_with_a_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kinds, "_INFO", dict(kinds._INFO))
    monkeypatch.setattr(kinds, "KINDS", dict(kinds.KINDS))
    made: list[object] = []

    def factory(address: object, handler: type) -> object:
        made.append((address, handler))
        return sockserve.TCPServer(address, handler)  # type: ignore[arg-type]

    info = kinds.register_kind("asyncio", None, transport="tcp", concurrency="asyncio",
                               factory=factory)
    assert resolve_kind("asyncio") is info
    assert "asyncio" in kinds.kind_names()
    with pytest.raises(ValueError):
        kinds.register_kind("broken", None)
    with pytest.raises(ValueError):
        kinds.register_kind("bad", sockserve.TCPServer, concurrency="telepathy")


def test_is_loopback() -> None:
    assert kinds.is_loopback("127.0.0.1")
    assert kinds.is_loopback("::1")
    assert kinds.is_loopback("localhost")
    assert not kinds.is_loopback("0.0.0.0")
    assert not kinds.is_loopback("::")
    assert not kinds.is_loopback("192.0.2.1")


# -- make_server ---------------------------------------------------------------


def exchange(cls: type, address: object, line: bytes, sock_dir: str | None = None) -> bytes:
    """Send one request line; for streams close our side so the server's
    line loop ends, then read the reply."""
    with client_socket(cls, sock_dir) as sock:
        if cls.socket_type == socket.SOCK_DGRAM:
            sock.sendto(line, address)
            return sock.recv(65536)
        sock.connect(address)
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as reader:
            return reader.read()


@pytest.mark.parametrize("name", ["plain", "threading", "forking", "plain-udp",
                                  "threading-unix", "forking-unix-dgram"])
def test_make_server_serves_the_workload(name: str, sock_dir: str) -> None:
    info = resolve_kind(name)
    path = os.path.join(sock_dir, "k.sock") if info.is_unix else None
    server = make_server(name, "echo", path=path)
    assert type(server) is info.server_class
    assert server.state is sockserve.ServerState.LISTENING
    with serving(server):
        reply = exchange(type(server), server.server_address, b"hello\n", sock_dir)
    assert reply == b"hello\n"
    assert not (path and os.path.exists(path))


def test_make_server_passes_workload_params() -> None:
    server = make_server("threading", "io", delay_ms=30)
    with serving(server):
        began = time.monotonic()
        reply = exchange(type(server), server.server_address, b"io\n")
        took = time.monotonic() - began
    assert reply == b"io\n"
    assert took >= 0.025


def test_make_server_unix_without_path_uses_a_private_temp_dir() -> None:
    server = make_server("plain-unix")
    path = server.server_address
    folder = os.path.dirname(path)
    assert os.path.exists(path) and (os.stat(folder).st_mode & 0o077) == 0
    server.server_close()
    del server
    gc.collect()
    assert not os.path.exists(folder)


def test_make_server_on_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = make_server("threading", host="::1")
    except OSError as exc:  # IPv6 disabled in the kernel
        pytest.skip(f"cannot bind ::1: {exc}")
    with server:
        assert server.address_family == socket.AF_INET6
        assert type(server).__name__ == "ThreadingTCPServer"
        assert isinstance(server, sockserve.ThreadingTCPServer)


def test_make_server_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown workload"):
        make_server("plain", "sleepy")
    with pytest.raises(ValueError, match="unknown server kind"):
        make_server("nope")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="already in use"):
            make_server("plain", port=taken.getsockname()[1])


def test_make_server_sets_class_attributes_before_binding() -> None:
    server = make_server("threading", class_attributes={"allow_reuse_address": True, "abort_grace": 0.25})
    try:
        assert type(server).__name__ == "ThreadingTCPServer" and type(server) is not sockserve.ThreadingTCPServer
        assert server.abort_grace == 0.25
        assert server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert not sockserve.ThreadingTCPServer.allow_reuse_address  # the class itself is untouched
    finally:
        server.server_close()


def test_make_server_serves_a_handler_class_as_it_is() -> None:
    from sockserve.measure import kinds

    class Upper(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.readline().upper())

    server = kinds.make_server("threading", Upper)
    try:
        assert server.RequestHandlerClass is Upper
    finally:
        server.server_close()
    with pytest.raises(ValueError, match="for a named workload"):
        kinds.make_server("threading", Upper, delay_ms=3)
