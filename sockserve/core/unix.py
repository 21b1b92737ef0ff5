"""Unix-domain servers: TCPServer and UDPServer on ``AF_UNIX``.

They differ from their parents only in the address family; the address is a
filesystem path (or an abstract name starting with ``"\\0"`` on Linux).

Class attributes they add (see :mod:`sockserve.core.socketfiles`):

``replace_stale_socket`` (False)
    remove a socket file left behind by a crashed server instead of failing.
``socket_mode`` (None)
    permission bits the socket file is created with, e.g. ``0o600`` so only
    this user can connect; None keeps what the umask gives.
``remove_socket_file`` (False)
    ``server_close()`` removes the socket file the server created (and
    nothing else). False, the default, leaves it, as the standard library
    does: code written for it removes the file itself after
    ``server_close()``, and must not find it gone. A file left so is
    *stale* for the next server on the path (see ``replace_stale_socket``).

Two servers starting at once on one path leave one serving.
"""

from __future__ import annotations

import socket

from .servers import TCPServer, UDPServer

__all__ = ["UnixStreamServer", "UnixDatagramServer"]

if hasattr(socket, "AF_UNIX"):

    class UnixStreamServer(TCPServer):
        """A stream server on a Unix socket path."""

        address_family: int = socket.AF_UNIX
        replace_stale_socket: bool = False
        socket_mode: int | None = None
        remove_socket_file: bool = False

    class UnixDatagramServer(UDPServer):
        """A datagram server on a Unix socket path."""

        address_family: int = socket.AF_UNIX
        replace_stale_socket: bool = False
        socket_mode: int | None = None
        remove_socket_file: bool = False
