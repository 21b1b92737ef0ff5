"""Bind errors in plain words, same type and errno."""

from __future__ import annotations

import errno
import socket

import pytest

from sockserve.core.errors import StaleUnixSocketError, explain_bind_error, format_address


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
