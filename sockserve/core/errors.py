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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "bind_explained", "explain_bind_error", "format_address", "port_holder", "StaleUnixSocketError",
    "LISTENING", "TIME_WAIT", "BOUND",
]


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


def _advice(code: int | None, where: str, family: int, holder: str | None) -> str | None:
    unix = family == getattr(socket, "AF_UNIX", object())
    if code == errno.EADDRINUSE:
        if unix:
            return (
                f"{where} is already in use (EADDRINUSE): a file exists at that "
                "path; stop the server that owns it, remove the file, or choose "
                "another path"
            )
        if holder == LISTENING:
            return (
                f"{where} is already in use (EADDRINUSE): a server listens on that port; "
                "pass port 0 for a free port, or stop the other server"
            )
        if holder == TIME_WAIT:
            return (
                f"{where} is still in use (EADDRINUSE) although no server listens "
                "there: connections of a server that stopped moments ago wait in "
                "TIME_WAIT for about a minute; set allow_reuse_address = True on the "
                "server class (the old one too, on Linux), or pass port 0 for a free port"
            )
        if holder == BOUND:
            return (
                f"{where} is already in use (EADDRINUSE): another socket is bound to that "
                "port; pass port 0 for a free port, or stop the program that holds it"
            )
        return (
            f"{where} is already in use (EADDRINUSE): another socket holds it (a server, "
            "or connections of one that stopped moments ago, in TIME_WAIT); pass port 0 "
            "for a free port, stop the other server, or set allow_reuse_address = True "
            "on the server class"
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
    exc: OSError, address: Any, family: int, holder: str | None = None
) -> OSError:
    """Return an error like *exc* whose message tells the reader what to do.

    The result is of the same type as *exc* and carries the same ``errno``;
    errors this module has no advice for come back unchanged. *holder* (for
    EADDRINUSE on a port) is what the kernel lists on that port, as
    :func:`port_holder` says: :data:`LISTENING`, :data:`TIME_WAIT` (only
    connections in TIME_WAIT), :data:`BOUND` (a datagram socket), or None
    (nothing read: the message names the likely causes).
    """
    where = format_address(address)
    if isinstance(exc, socket.gaierror):
        host = address[0] if isinstance(address, tuple) and address else address
        message = (
            f"cannot bind to {where}: {host!r} is not a host name or address this "
            f"machine can resolve ({exc.strerror}); use 127.0.0.1 for loopback only"
        )
        return socket.gaierror(exc.errno, message)
    text = _advice(exc.errno, where, family, holder)
    if text is None:
        return exc
    # OSError(errno, text) picks the matching subclass (PermissionError for
    # EACCES, FileNotFoundError for ENOENT), so the type is preserved.
    better = OSError(exc.errno, text)
    if type(better) is not type(exc):
        better = type(exc)(exc.errno, text)
    return better


#: What :func:`port_holder` finds on a port.
LISTENING, TIME_WAIT, BOUND = "listening", "time-wait", "bound"

#: The kernel's tables of this network namespace's sockets, by socket type.
PROC_NET: dict[int, tuple[str, ...]] = {
    socket.SOCK_STREAM: ("/proc/net/tcp", "/proc/net/tcp6"),
    socket.SOCK_DGRAM: ("/proc/net/udp", "/proc/net/udp6"),
}
_TCP_LISTEN, _TCP_TIME_WAIT = "0A", "06"


def port_holder(port: int, sock_type: int) -> str | None:
    """After EADDRINUSE: what the kernel lists on local *port*, read from
    its socket tables (``/proc/net/tcp`` and friends), without sending
    anything to anyone. For a stream socket :data:`LISTENING` (a socket
    listens on the port, at some address), else :data:`TIME_WAIT` (only
    connections in TIME_WAIT); for a datagram socket :data:`BOUND`; None
    when the tables cannot be read or list nothing that tells (a socket
    bound but not listening, say)."""
    states: set[str] = set()
    for table in PROC_NET.get(sock_type, ()):
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)  # the header
                for line in lines:
                    # sl local_address rem_address st ...; the address is HEX:PORT
                    fields = line.split(None, 4)
                    if len(fields) > 3 and int(fields[1].rpartition(":")[2], 16) == port:
                        states.add(fields[3])
        except (OSError, ValueError):
            continue
    if not states:
        return None
    if sock_type != socket.SOCK_STREAM:
        return BOUND
    if _TCP_LISTEN in states:
        return LISTENING
    if states == {_TCP_TIME_WAIT}:
        return TIME_WAIT
    return None


def bind_explained(sock: socket.socket, address: Any, family: int) -> None:
    """``sock.bind(address)``; an error explained as :func:`explain_bind_error`
    does (for EADDRINUSE on a port, with what :func:`port_holder` reads)."""
    try:
        sock.bind(address)
    except OSError as exc:
        holder = None
        if exc.errno == errno.EADDRINUSE and isinstance(address, tuple) and len(address) >= 2:
            try:
                holder = port_holder(int(address[1]), int(sock.type))
            except (TypeError, ValueError):
                pass
        better = explain_bind_error(exc, address, family, holder)
        if better is exc:
            raise
        raise better from None
