"""Ask the Linux kernel how long a listening socket's queue may grow (sock_diag netlink).

``/proc/net/tcp`` shows a LISTEN socket's *current* accept-queue length (its
``rx_queue`` column) but not the maximum: its ``tx_queue`` column is
``write_seq - snd_una``, which is always 0 for a listener (checked on Linux
6.18). The maximum (the ``listen()`` backlog, capped by
``net.core.somaxconn``) is what ``ss -lnt`` prints as Send-Q; ``ss`` gets it
from the kernel's sock_diag netlink interface, and so does this module, with
the standard library's ``socket.AF_NETLINK``:

* :func:`tcp_listen_queues` ``(port)`` -> ``[(address, current, maximum), ...]``,
  one per listening TCP socket on *port* (IPv4 and IPv6);
* :func:`unix_listen_queue` ``(inode)`` -> ``(current, maximum)`` of the
  listening Unix stream socket with that inode (``/proc/net/unix`` gives the
  inode).

Both return None when netlink is unavailable (not Linux, or a sandbox that
forbids it); callers then fall back to what they know. Every call opens one
netlink socket, waits at most :data:`TIMEOUT` seconds, and closes it.

Linux accepts one connection more than the maximum: the queue is full when
``current > maximum`` (``sk_acceptq_is_full``), so ``listen(2)`` holds 3.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["tcp_listen_queues", "unix_listen_queue", "TIMEOUT"]

#: Seconds to wait for the kernel's answer.
TIMEOUT = 1.0

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_TCP_LISTEN = 10
_UDIAG_SHOW_RQLEN = 0x10
_UNIX_DIAG_RQLEN = 4
_NO_COOKIE = 0xFFFFFFFF

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_INET_MSG = struct.Struct("=BBBB4s32sIIIIII")  # inet_diag_msg up to idiag_inode (sport in id)
_UNIX_MSG = struct.Struct("=BBBBIII")  # unix_diag_msg
_ATTR = struct.Struct("=HH")  # rtattr: len, type


def _ask(payload: bytes, flags: int) -> list[bytes] | None:
    """Send one sock_diag request; the bodies of the answers (None: no netlink)."""
    message = _HEADER.pack(_HEADER.size + len(payload), _SOCK_DIAG_BY_FAMILY, flags, 1, 0) + payload
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    except (AttributeError, OSError):  # no AF_NETLINK (not Linux) or forbidden
        return None
    bodies: list[bytes] = []
    try:
        sock.settimeout(TIMEOUT)
        sock.sendto(message, (0, 0))
        while True:
            data = sock.recv(65536)
            if not data:
                return bodies
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, _seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    return bodies
                if kind == _NLMSG_DONE:
                    return bodies
                if kind == _NLMSG_ERROR:
                    (errno_value,) = struct.unpack_from("=i", data, offset + _HEADER.size)
                    return bodies if errno_value == 0 else None
                bodies.append(data[offset + _HEADER.size: offset + length])
                offset += (length + 3) & ~3
            if not flags & _NLM_F_DUMP:
                return bodies
    except (OSError, struct.error):
        return None
    finally:
        sock.close()


def tcp_listen_queues(port: int) -> list[tuple[str, int, int]] | None:
    """(bound address, current, maximum) of each listening TCP socket on
    *port* (IPv4 and IPv6); [] if none listens; None if the kernel cannot be asked."""
    found: list[tuple[str, int, int]] = []
    for family in (socket.AF_INET, getattr(socket, "AF_INET6", None)):
        if family is None:
            continue
        # inet_diag_req_v2: family, protocol, ext, pad, states; then the
        # socket id, whose source port the kernel matches for listeners.
        request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
        request += struct.pack(">HH", port, 0) + bytes(32) + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
        bodies = _ask(request, _NLM_F_REQUEST | _NLM_F_DUMP)
        if bodies is None:
            return None
        for body in bodies:
            if len(body) < _INET_MSG.size:
                continue
            _fam, state, _t, _r, ports, addrs, _if, _c0, _c1, _exp, rqueue, wqueue = _INET_MSG.unpack_from(body)
            local_port = struct.unpack(">H", ports[:2])[0]
            if state == _TCP_LISTEN and local_port == port:
                raw = addrs[:4] if family == socket.AF_INET else addrs[:16]
                found.append((socket.inet_ntop(family, raw), rqueue, wqueue))
    return found


def unix_listen_queue(inode: int) -> tuple[int, int] | None:
    """(current, maximum) of the listening Unix socket with this inode; None
    if the kernel cannot be asked or has no such socket."""
    family = getattr(socket, "AF_UNIX", None)
    if family is None or inode <= 0:
        return None
    # unix_diag_req: family, protocol, pad, states, inode, show, cookie.
    request = struct.pack("=BBHIIIII", family, 0, 0, 0xFFFFFFFF, inode, _UDIAG_SHOW_RQLEN, _NO_COOKIE, _NO_COOKIE)
    bodies = _ask(request, _NLM_F_REQUEST)
    if not bodies:
        return None
    body = bodies[0]
    if len(body) < _UNIX_MSG.size or _UNIX_MSG.unpack_from(body)[4] != inode:
        return None
    offset = _UNIX_MSG.size
    while offset + _ATTR.size <= len(body):
        length, kind = _ATTR.unpack_from(body, offset)
        if length < _ATTR.size:
            break
        if kind == _UNIX_DIAG_RQLEN and length >= _ATTR.size + 8:
            rqueue, wqueue = struct.unpack_from("=II", body, offset + _ATTR.size)
            return rqueue, wqueue
        offset += (length + 3) & ~3
    return None
