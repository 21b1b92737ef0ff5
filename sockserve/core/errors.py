"""Plain-words explanations for the errors a server meets when it binds.

``server_bind`` and the constructors bind with :func:`bind_explained`, which
passes every ``OSError`` from ``bind()`` through :func:`explain_bind_error`.
The error that comes out has the same class and the same ``errno`` as the
one that went in (so ``except OSError`` and ``e.errno == errno.EADDRINUSE``
keep working), but its message says what happened and what to do about it.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

__all__ = ["bind_explained", "explain_bind_error", "format_address", "someone_listens", "StaleUnixSocketError"]


class StaleUnixSocketError(FileExistsError):
    """A Unix socket path is taken by a file that no server listens on.

    Raised instead of a bare ``EADDRINUSE`` when a crashed server left its
    socket file behind. Pass ``replace_stale=True`` to the Unix server (or set
    the class attribute) to remove the stale file and bind anyway.
    """


def format_address(address: Any) -> str:
    """Render a socket address the way a person writes it.

    ``("127.0.0.1", 8000)`` becomes ``127.0.0.1:8000``, an IPv6 address gets
    brackets, and a Unix socket path is shown as it is.
    """
    if isinstance(address, (str, bytes, os.PathLike)):
        path = os.fsdecode(address)
        return path if path else "(unnamed Unix socket)"
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if isinstance(host, str) and ":" in host:
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return repr(address)


def _advice(code: int | None, where: str, family: int, listening: bool | None) -> str | None:
    unix = family == getattr(socket, "AF_UNIX", object())
    if code == errno.EADDRINUSE:
        if not unix and listening is False:
            return (
                f"{where} is still in use (EADDRINUSE) although no server listens "
                "there: connections of a server that stopped moments ago wait in "
                "TIME_WAIT for about a minute; set allow_reuse_address = True on the "
                "server class (the old one too, on Linux), or pass port 0 for a free port"
            )
        if unix:
            return (
                f"{where} is already in use (EADDRINUSE): a file exists at that "
                "path; stop the server that owns it, remove the file, or choose "
                "another path"
            )
        return (
            f"{where} is already in use (EADDRINUSE): another server holds it; "
            "pass port 0 for a free port, or stop the other server"
        )
    if code == errno.EADDRNOTAVAIL:
        return (
            f"cannot bind to {where} (EADDRNOTAVAIL): this machine has no such "
            "address; use 127.0.0.1 for loopback only, or one of this machine's "
            "own addresses"
        )
    if code == errno.EACCES:
        if unix:
            return (
                f"cannot create the socket file {where} (EACCES): the directory "
                "is not writable by this user; choose a path in a directory you own"
            )
        return (
            f"cannot bind to {where} (EACCES): ports below 1024 need special "
            "privileges; pick a port of 1024 or more, or pass port 0 for a free one"
        )
    if code == errno.ENOENT and unix:
        return (
            f"cannot create the socket file {where} (ENOENT): its directory does "
            "not exist; create the directory first"
        )
    if code == errno.EAFNOSUPPORT:
        return (
            f"cannot bind to {where} (EAFNOSUPPORT): the address does not belong "
            "to the server's address family; an IPv6 address needs "
            "address_family = socket.AF_INET6"
        )
    return None


def explain_bind_error(
    exc: OSError, address: Any, family: int, listening: bool | None = None
) -> OSError:
    """Return an error like *exc* whose message tells the reader what to do.

    The result is of the same type as *exc* and carries the same ``errno``;
    errors this module has no advice for come back unchanged. *listening*
    (for EADDRINUSE) says whether a server was found listening on the
    address: False means the port is held only by connections in TIME_WAIT.
    """
    where = format_address(address)
    if isinstance(exc, socket.gaierror):
        host = address[0] if isinstance(address, tuple) and address else address
        message = (
            f"cannot bind to {where}: {host!r} is not a host name or address this "
            f"machine can resolve ({exc.strerror}); use 127.0.0.1 for loopback only"
        )
        return socket.gaierror(exc.errno, message)
    text = _advice(exc.errno, where, family, listening)
    if text is None:
        return exc
    # OSError(errno, text) picks the matching subclass (PermissionError for
    # EACCES, FileNotFoundError for ENOENT), so the type is preserved.
    better = OSError(exc.errno, text)
    if type(better) is not type(exc):
        better = type(exc)(exc.errno, text)
    return better


def someone_listens(address: Any, family: int) -> bool | None:
    """After EADDRINUSE: does a server listen on *address*? Probed with one
    connect() over loopback only (a wildcard host is probed on loopback);
    None when the address is not loopback, so nothing is sent anywhere."""
    import ipaddress

    host, port = address[0], address[1]
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
    host = wildcard.get(host, host)
    try:
        if not ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        return None if host != "localhost" else someone_listens(("127.0.0.1", port), family)
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect((host, port))
    except ConnectionRefusedError:
        return False
    except OSError:
        return None
    finally:
        probe.close()
    return True


def bind_explained(sock: socket.socket, address: Any, family: int) -> None:
    """``sock.bind(address)``; an error explained as :func:`explain_bind_error`
    does (for EADDRINUSE, after probing whether a server listens there)."""
    try:
        sock.bind(address)
    except OSError as exc:
        listening = someone_listens(address, family) if exc.errno == errno.EADDRINUSE else None
        better = explain_bind_error(exc, address, family, listening)
        if better is exc:
            raise
        raise better from None
