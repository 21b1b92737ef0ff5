"""The file a Unix socket server binds: stale files, permissions, cleanup.

A Unix stream or datagram server binds to a path and the kernel creates a
socket file there. The standard library leaves that file behind when the
server closes, and a second run then fails with a bare EADDRINUSE. sockserve:

* before bind, tells a *stale* file (nobody listens on it any more, typically
  left by a crashed server) apart from one in use, and says so clearly;
  with ``replace_stale_socket = True`` it removes a stale file and binds;
* after bind, applies ``socket_mode`` (e.g. ``0o600``) if set;
* on ``server_close()``, removes the file it created (only if the file at that
  path is still the one it made).

Abstract-namespace addresses (starting with a NUL byte) have no file and are
left alone. The server classes call these functions; nothing else needs to.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import Any

from .errors import StaleUnixSocketError

__all__ = ["is_path_address", "prepare_path", "claim_path", "release_path"]


def is_path_address(address: Any) -> bool:
    """True for a filesystem socket path (not abstract, not unnamed)."""
    if not isinstance(address, (str, bytes, os.PathLike)):
        return False
    path = os.fsencode(address)
    return bool(path) and not path.startswith(b"\0")


def _is_stale(path: Any, sock_type: int) -> bool:
    """True when *path* is a socket file that nobody answers on."""
    probe = socket.socket(socket.AF_UNIX, sock_type)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return False


def prepare_path(address: Any, sock_type: int, replace_stale: bool) -> None:
    """Check *address* before bind; remove a stale socket file if allowed.

    Raises :class:`StaleUnixSocketError` (an ``OSError`` with errno
    EADDRINUSE) for a stale file when *replace_stale* is false.
    """
    if not is_path_address(address):
        return
    try:
        info = os.lstat(address)
    except OSError:
        return  # nothing there (or unreadable: bind will say why)
    if not stat.S_ISSOCK(info.st_mode) or not _is_stale(address, sock_type):
        return  # a regular file, or a live server: bind() reports EADDRINUSE
    if replace_stale:
        os.unlink(address)
        return
    path = os.fsdecode(address)
    raise StaleUnixSocketError(
        errno.EADDRINUSE,
        f"{path} is a stale socket file (EADDRINUSE): no server listens on it, "
        "probably one crashed and left it behind; remove the file, or set "
        "replace_stale_socket = True on the server class to replace it",
    )


def claim_path(address: Any, mode: int | None) -> tuple[int, int] | None:
    """After bind: apply *mode*, and return the file's identity for cleanup."""
    if not is_path_address(address):
        return None
    if mode is not None:
        os.chmod(address, mode)
    info = os.stat(address)
    return info.st_dev, info.st_ino


def release_path(address: Any, identity: tuple[int, int] | None) -> None:
    """Remove the socket file at *address* if it is still the one we made."""
    if identity is None or not is_path_address(address):
        return
    try:
        info = os.lstat(address)
    except OSError:
        return
    if (info.st_dev, info.st_ino) == identity and stat.S_ISSOCK(info.st_mode):
        try:
            os.unlink(address)
        except OSError:
            pass  # removed by someone else in the meantime
