"""Bind errors in plain words, same type and errno."""

from __future__ import annotations

import errno
import socket

import pytest

import sockserve
from sockserve.core import errors
from sockserve.core.errors import (
    BOUND,
    LISTENING,
    TIME_WAIT,
    StaleUnixSocketError,
    explain_bind_error,
    format_address,
    port_holder,
)


@pytest.mark.parametrize(
    "address, text",
    [
        (("127.0.0.1", 8000), "127.0.0.1:8000"),
        (("::1", 8000, 0, 0), "[::1]:8000"),
        ("/tmp/x.sock", "/tmp/x.sock"),
        (b"/tmp/y.sock", "/tmp/y.sock"),
        ("", "(unnamed Unix socket)"),
    ],
)
def test_format_address(address: object, text: str) -> None:
    assert format_address(address) == text


@pytest.mark.parametrize(
    "code, family, expected_type, phrase",
    [
        (errno.EADDRINUSE, socket.AF_INET, OSError, "pass port 0 for a free port"),
        (errno.EADDRNOTAVAIL, socket.AF_INET, OSError, "no such address"),
        (errno.EACCES, socket.AF_INET, PermissionError, "ports below 1024"),
        (errno.EACCES, socket.AF_UNIX, PermissionError, "not writable"),
        (errno.ENOENT, socket.AF_UNIX, FileNotFoundError, "directory does not exist"),
    ],
)
def test_advice_keeps_type_and_errno(code: int, family: int, expected_type: type, phrase: str) -> None:
    address = "/no/such/dir/s.sock" if family == socket.AF_UNIX else ("127.0.0.1", 80)
    original = OSError(code, "raw")
    better = explain_bind_error(original, address, family)
    assert type(better) is expected_type
    assert better.errno == code
    assert phrase in str(better)


def test_unknown_errors_pass_through_unchanged() -> None:
    original = OSError(errno.EIO, "i/o")
    assert explain_bind_error(original, ("127.0.0.1", 1), socket.AF_INET) is original


def test_stale_socket_error_is_an_eaddrinuse_oserror() -> None:
    exc = StaleUnixSocketError(errno.EADDRINUSE, "stale")
    assert isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


# -- what the kernel lists on a port (read after EADDRINUSE, no connection made) ----------


def test_port_holder_reads_a_listener_a_bound_datagram_socket_and_nothing() -> None:
    with socket.socket() as listener, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram, \
            socket.socket() as bound_only:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        datagram.bind(("127.0.0.1", 0))
        bound_only.bind(("127.0.0.1", 0))  # the port is ours, and not in the kernel's table
        assert port_holder(listener.getsockname()[1], socket.SOCK_STREAM) == LISTENING
        assert port_holder(datagram.getsockname()[1], socket.SOCK_DGRAM) == BOUND
        assert port_holder(bound_only.getsockname()[1], socket.SOCK_STREAM) is None


def test_an_unreadable_kernel_table_gives_the_plain_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "PROC_NET", {socket.SOCK_STREAM: ("/nonexistent/tcp",)})
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_holder(port, socket.SOCK_STREAM) is None
        with socket.socket() as second, pytest.raises(OSError) as caught:
            errors.bind_explained(second, ("127.0.0.1", port), socket.AF_INET)
    assert caught.value.errno == errno.EADDRINUSE
    message = str(caught.value)
    assert f"127.0.0.1:{port} is already in use (EADDRINUSE)" in message
    assert "port 0" in message and "allow_reuse_address" in message


@pytest.mark.parametrize(
    "holder, phrase",
    [(LISTENING, "a server listens on that port"), (TIME_WAIT, "TIME_WAIT"),
     (BOUND, "another socket is bound"), (None, "another socket holds it")],
)
def test_eaddrinuse_advice_follows_what_the_kernel_lists(holder: str | None, phrase: str) -> None:
    better = explain_bind_error(OSError(errno.EADDRINUSE, "raw"), ("127.0.0.1", 8000), socket.AF_INET, holder)
    assert type(better) is OSError and better.errno == errno.EADDRINUSE
    assert "127.0.0.1:8000" in str(better) and phrase in str(better)


def test_a_failed_udp_bind_says_the_port_is_bound() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(OSError) as caught:
            sockserve.UDPServer(("127.0.0.1", port), sockserve.DatagramRequestHandler)
    assert caught.value.errno == errno.EADDRINUSE
    assert "another socket is bound to that port" in str(caught.value)
