"""The file a Unix socket server binds: stale files, permissions, cleanup.

A Unix stream or datagram server binds to a path and the kernel creates a
socket file there. As in the standard library, ``server_close()`` leaves
that file where it is (code written for the standard library removes it
itself afterwards, and must not find it gone); a server with
``remove_socket_file = True`` removes it on close. The servers call
:func:`bind_path` instead of ``socket.bind`` and, when asked to remove the
file, :func:`release_path` on close; nothing else needs to.

What they promise, and how:

* **Stale files.** Before bind, a socket file at the path is looked up in
  the kernel's list of Unix sockets (``/proc/net/unix``), without
  connecting to anyone. It is *stale* when no socket there is bound to
  that very file (a socket bound but not listening yet, say a server
  starting up this very moment, is listed too, so it is never taken for
  stale). A stale file raises
  :class:`~sockserve.core.errors.StaleUnixSocketError`, or, with
  ``replace_stale_socket = True``, is removed before bind. Anything else
  (a live server, a regular file, a list we cannot read, a socket listed
  under a relative path with the file's name, which may be this file) is
  left for ``bind()`` to refuse with EADDRINUSE. The list shows the
  sockets of this network namespace only: a file bound by a process in
  another namespace that shares the file system looks stale.
* **Two servers starting at once.** The probe, the removal and the bind run
  under an exclusive ``flock`` on the socket's directory, which every
  sockserve server in every process takes (and drops right after bind). The
  one that comes second sees the first one's socket, bound even if not yet
  listening, and fails with EADDRINUSE saying so: exactly one serves, and no
  server is left bound to a file someone else removed. (A directory we may
  not open for reading, or a lock held elsewhere for more than
  ``LOCK_WAIT`` seconds, leaves the bind unlocked; the probe above still
  holds.)
* **Permissions without a race** (``socket_mode``). Changing the mode after
  bind by path (``chmod(path)``) follows whatever the path names by then: a
  file swapped for a symlink in between would get the socket's mode. So the
  socket file is *created* with the mode instead. On Linux the bits are set
  on the socket before bind (``fchmod`` of an unbound socket sets the mode
  ``bind()`` gives the file, less the umask); if the umask removed some of
  the requested bits, they are added through a descriptor opened on the
  path with ``O_PATH | O_NOFOLLOW`` and checked (a socket file owned by this
  user, with no bit beyond the requested ones), so the change applies to
  that very inode and never follows a link. Elsewhere the process umask is set to the
  complement of the mode around ``bind()`` (what systemd and gunicorn do; a
  file another thread creates in that instant gets that umask too). If the
  path names no socket file right after bind (swapped in between), the
  server fails (FileExistsError) rather than serve where no client can
  reach it. Nothing stops whoever may write the directory from replacing
  the file later: a socket meant to be private belongs in a directory only
  its user can write to.
* **Cleanup** (``remove_socket_file = True``). ``server_close()`` removes
  the file only if it is still the socket file this server created (same
  device and inode, still a socket), under the same directory lock, and
  only in the process that created it: a regular file, a symlink, another
  server's socket file, or (closing a copy of the server in a forked child)
  the parent's file is never removed.

Abstract-namespace addresses (starting with a NUL byte) and unnamed ones
have no file and are bound as they are.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import time

from .records import NamedTuple

from . import logs
from .errors import StaleUnixSocketError, explain_bind_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["SocketFile", "is_path_address", "bind_path", "release_path"]

#: Seconds bind_path waits for another holder of the directory lock
#: (sockserve servers hold it for the few milliseconds a probe and a bind
#: take); release_path waits less, so that closing stays quick.
LOCK_WAIT = 5.0
RELEASE_LOCK_WAIT = 0.5

#: How the mode is applied: "linux" (fchmod before bind, checked O_PATH
#: chmod) where the system offers it, else "umask". Tests force each.
MODE_STRATEGY = "linux" if hasattr(os, "O_PATH") and os.path.isdir("/proc/self/fd") else "umask"


class SocketFile(NamedTuple):
    """The socket file a server created: where it lives, and which process made it."""

    device: int
    inode: int
    pid: int


def is_path_address(address: Any) -> bool:
    """True for a filesystem socket path (not abstract, not unnamed)."""
    if not isinstance(address, (str, bytes, os.PathLike)):
        return False
    path = os.fsencode(address)
    return bool(path) and not path.startswith(b"\0")


#: The kernel's list of Unix sockets (one line each; the path, if bound, last).
PROC_NET_UNIX = "/proc/net/unix"


def _is_stale(path: Any, info: os.stat_result) -> bool | None:
    """True when the kernel lists no socket bound to the socket file at
    *path* (whose ``lstat`` is *info*), False when it lists one, None when
    that cannot be told (see the module docstring)."""
    name = os.path.basename(os.fsencode(path))
    try:
        with open(PROC_NET_UNIX, "rb") as listing:
            lines = listing.read().splitlines()[1:]
    except OSError:
        return None  # no list to read
    for line in lines:
        fields = line.split(None, 7)  # Num RefCount Protocol Flags Type St Inode Path
        if len(fields) < 8:
            continue  # unbound
        bound = fields[7]
        if os.path.basename(bound) != name or bound.startswith(b"@"):
            continue  # another name, or an abstract one
        if not bound.startswith(b"/"):
            return None  # relative to its binder's directory: maybe this file
        try:
            there = os.stat(bound)
        except OSError:
            continue
        if (there.st_dev, there.st_ino) == (info.st_dev, info.st_ino):
            return False
    return True


class _DirectoryLock:
    """``with _DirectoryLock(path, wait):`` holds an exclusive flock on the
    directory of *path* (see the module docstring); it goes on unlocked if the
    directory cannot be opened or locked, or stays locked for *wait* seconds.
    (A class rather than a contextlib generator: the core does not import
    contextlib.)"""

    def __init__(self, path: Any, wait: float) -> None:
        self.path = path
        self.wait = wait
        self.fd = -1
        self.locked = False

    def __enter__(self) -> None:
        directory = os.path.dirname(os.fsdecode(self.path)) or "."
        try:
            self.fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return  # bind() will say what is wrong with the directory, if anything
        try:
            deadline = time.monotonic() + self.wait
            while True:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self.locked = True
                    return
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        logs.warning(
                            "%s: its directory stayed locked for %.1f s; going on without the lock",
                            os.fsdecode(self.path), self.wait,
                        )
                        return
                    time.sleep(0.005)
                except OSError:
                    return  # no flock on this file system (some NFS mounts)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc_info: object) -> None:
        if self.fd < 0:
            return
        try:
            if self.locked:
                # Unlock explicitly: a child forked meanwhile shares this open
                # file description, and closing our copy alone would not unlock.
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = -1
            self.locked = False


def _clear_stale(path: Any, replace_stale: bool) -> bool:
    """Before bind: remove a stale socket file if allowed, else explain it.
    True when the kernel lists a socket bound to the file there (bind() will refuse)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False  # nothing there (or unreadable: bind will say why)
    if not stat.S_ISSOCK(info.st_mode):
        return False  # a regular file: bind() reports EADDRINUSE
    stale = _is_stale(path, info)
    if stale is not True:
        return stale is False  # bound, or cannot tell: bind() reports EADDRINUSE
    if replace_stale:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return False
    raise StaleUnixSocketError(
        errno.EADDRINUSE,
        f"{os.fsdecode(path)} is a stale socket file (EADDRINUSE): the kernel lists no socket "
        "bound to it, so a server that stopped or crashed left it behind; remove the file, or set "
        "replace_stale_socket = True on the server class to replace it",
    )


def _not_ours(path: Any, what: str) -> FileExistsError:
    return FileExistsError(
        errno.EEXIST,
        f"{os.fsdecode(path)}: right after bind the path named {what}, not this server's "
        "socket file: another process is changing this directory, so no client could "
        "reach this server there; use a directory only this user can write to",
    )


def _describe(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISSOCK(mode):
        return "another socket file"
    return "something else"


def _check_created(path: Any, info: os.stat_result) -> None:
    """Raise FileExistsError unless *info*, read right after bind, is a socket file."""
    if not stat.S_ISSOCK(info.st_mode):
        raise _not_ours(path, _describe(info.st_mode))


def _bind_with_mode(sock: socket.socket, path: Any, mode: int) -> os.stat_result:
    """Bind so that the file is created with *mode*; return its stat."""
    if MODE_STRATEGY == "linux":
        try:
            os.fchmod(sock.fileno(), mode)  # the mode bind() then creates the file with
        except OSError:
            pass  # this system cannot: the umask way below
        else:
            return _bind_and_widen(sock, path, mode)
    old = os.umask(~mode & 0o777)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    info = os.lstat(path)
    _check_created(path, info)
    return info


def _bind_and_widen(sock: socket.socket, path: Any, mode: int) -> os.stat_result:
    """Bind (the socket's own mode set); add the bits the umask removed,
    through a descriptor that names the created inode and follows no link."""
    sock.bind(path)
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        _check_created(path, info)
        if stat.S_IMODE(info.st_mode) == mode:
            return info
        if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & ~mode:
            # Not what we created (ours, with a subset of *mode*): leave it be.
            raise _not_ours(path, "another socket file")
        try:
            os.chmod(f"/proc/self/fd/{fd}", mode)
            return os.fstat(fd)
        except OSError:
            try:
                if os.lstat(path).st_ino == info.st_ino:
                    os.unlink(path)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def bind_path(
    sock: socket.socket, address: Any, *, replace_stale: bool = False, mode: int | None = None
) -> SocketFile | None:
    """Bind the ``AF_UNIX`` socket *sock* to *address* as the module
    docstring says; return the file it created (None for an abstract or
    unnamed address, which is bound as it is).

    Raises :class:`~sockserve.core.errors.StaleUnixSocketError` for a stale file
    when *replace_stale* is false, FileExistsError when the path is taken
    from under the bind, and the errors of ``bind()`` explained as
    :func:`~sockserve.core.errors.explain_bind_error` does (EADDRINUSE for a path
    in use, a server starting at the same moment included).

    A *sock* that made no file (a test double standing in for a socket)
    gets None, as an abstract address does: there is nothing to remove.
    """
    if not is_path_address(address):
        try:
            sock.bind(address)
        except OSError as exc:
            raise explain_bind_error(exc, address, socket.AF_UNIX) from None
        return None
    with _DirectoryLock(address, LOCK_WAIT):
        bound_there = _clear_stale(address, replace_stale)
        try:
            if mode is None:
                sock.bind(address)
                try:
                    info = os.lstat(address)
                except FileNotFoundError:
                    if type(sock) is socket.socket:
                        raise
                    return None  # a test double: it bound nothing
                _check_created(address, info)
            else:
                info = _bind_with_mode(sock, address, mode)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and bound_there:
                raise OSError(
                    errno.EADDRINUSE,
                    f"{os.fsdecode(address)} is already in use (EADDRINUSE): a socket is bound "
                    "to it (a server, maybe one that started at the same moment); stop that "
                    "server or choose another path",
                ) from None
            raise explain_bind_error(exc, address, socket.AF_UNIX) from None
    return SocketFile(info.st_dev, info.st_ino, os.getpid())


def release_path(address: Any, created: SocketFile | None) -> None:
    """Remove the socket file at *address* if it is still the one *created*
    describes, and this is the process that created it."""
    if created is None or not is_path_address(address) or created.pid != os.getpid():
        return
    with _DirectoryLock(address, RELEASE_LOCK_WAIT):
        try:
            info = os.lstat(address)
        except OSError:
            return
        if (info.st_dev, info.st_ino) == created[:2] and stat.S_ISSOCK(info.st_mode):
            try:
                os.unlink(address)
            except OSError:
                pass
