"""Linux's socket tables, parsed: ``/proc/net/tcp``, ``/proc/net/tcp6``, ``/proc/net/unix``.

Plain functions over text, so they can be tested on fixture text anywhere:

* :func:`parse_tcp` -> :class:`TcpRow` per socket (addresses decoded by
  :func:`decode_address`: ``"0100007F:1F90"`` is 127.0.0.1 port 8000);
* :func:`parse_unix` -> :class:`UnixRow` per socket;
* :func:`count_tcp` / :func:`count_unix` count one server's sockets per
  state (:data:`TCP_STATES`, :data:`UNIX_STATES`, each explained in
  :data:`STATE_MEANINGS`).

:mod:`sockserve.kernel.view` reads the live tables with these.
"""

from __future__ import annotations

import collections
import ipaddress
import sys
from collections.abc import Collection, Iterable
from typing import NamedTuple

__all__ = [
    "TCP_STATES", "UNIX_STATES", "ALL_STATES", "STATE_MEANINGS", "TcpRow", "UnixRow",
    "decode_address", "parse_tcp", "parse_unix", "count_tcp", "count_unix", "normal_address",
]

#: TCP states in the order of a connection's life (``/proc/net/tcp`` code
#: 1..11 -> these names, as ``ss`` prints them).
TCP_STATES: tuple[str, ...] = (
    "LISTEN", "SYN-SENT", "SYN-RECV", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
    "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT", "CLOSE",
)
_TCP_CODES: dict[int, str] = {
    1: "ESTABLISHED", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
    6: "TIME-WAIT", 7: "CLOSE", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING",
    12: "SYN-RECV",  # TCP_NEW_SYN_RECV: request sockets (the file prints them as 03)
}

#: Unix stream socket states as a listening server's side shows them.
UNIX_STATES: tuple[str, ...] = ("LISTEN", "CONNECTING", "CONNECTED", "DISCONNECTING", "UNCONNECTED")
_UNIX_CODES: dict[int, str] = {1: "UNCONNECTED", 2: "CONNECTING", 3: "CONNECTED", 4: "DISCONNECTING"}
ALL_STATES = TCP_STATES + tuple(s for s in UNIX_STATES if s not in TCP_STATES)
_ACCEPTCON = 0x10000  # the flag of a listening Unix socket

#: One line per state, for captions and lessons.
STATE_MEANINGS: dict[str, str] = {
    "LISTEN": "the server's socket, waiting for connections",
    "SYN-SENT": "a client sent SYN and waits for the answer (retransmits if the SYN was dropped)",
    "SYN-RECV": "the server's kernel answered SYN with SYN-ACK and waits for the final ACK",
    "ESTABLISHED": "the handshake is done; data can flow (accepted or still in the listen queue)",
    "FIN-WAIT-1": "this side closed and sent FIN, not yet acknowledged",
    "FIN-WAIT-2": "this side closed first; the peer acknowledged but has not closed yet",
    "CLOSE-WAIT": "the peer closed; this side has not (a handler that forgets to close)",
    "CLOSING": "both sides closed at the same time",
    "LAST-ACK": "the peer closed, then this side; waiting for the last ACK",
    "TIME-WAIT": "this side closed first; the socket lingers about 60 s so late packets die",
    "CLOSE": "closed",
    "CONNECTING": "a Unix connection queued for accept()",
    "CONNECTED": "an accepted Unix connection",
    "DISCONNECTING": "a Unix connection being torn down",
    "UNCONNECTED": "a Unix socket with no peer",
}


def normal_address(host: str) -> str | None:
    """*host* as a normalised address, or None for "any address"."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # "", or a name: match any address
    if address.is_unspecified:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class TcpRow(NamedTuple):
    """One line of ``/proc/net/tcp`` or ``/proc/net/tcp6``."""

    local: str  # "127.0.0.1", "::1", "::ffff:127.0.0.1"
    local_port: int
    remote: str
    remote_port: int
    state: str  # one of TCP_STATES
    tx_queue: int
    rx_queue: int  # for LISTEN: connections waiting in the accept queue
    inode: int


class UnixRow(NamedTuple):
    """One line of ``/proc/net/unix``."""

    state: str  # one of UNIX_STATES
    listening: bool
    socket_type: int  # 1 stream, 2 datagram, 5 seqpacket
    inode: int
    path: str  # "" for an unnamed socket; "@name" for an abstract one


def decode_address(text: str) -> tuple[str, int]:
    """``"0100007F:1F90"`` -> ``("127.0.0.1", 8000)``; 32 hex digits for IPv6.

    The kernel prints each 32-bit word of the address in this machine's byte
    order and the port as a plain hex number. A v4-mapped IPv6 address is
    written ``::ffff:a.b.c.d``."""
    host, _, port = text.rpartition(":")
    if len(host) not in (8, 32) or not port:
        raise ValueError(f"not an address of /proc/net/tcp: {text!r}")
    raw = b"".join(
        bytes.fromhex(host[i:i + 8])[:: -1 if sys.byteorder == "little" else 1] for i in range(0, len(host), 8)
    )
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw)), int(port, 16)
    address = ipaddress.IPv6Address(raw)
    mapped = address.ipv4_mapped
    return (f"::ffff:{mapped}" if mapped is not None else str(address)), int(port, 16)


def _tcp_row(line: str) -> TcpRow | None:
    fields = line.split()
    if len(fields) < 10 or ":" not in fields[1] or fields[0] == "sl":
        return None
    try:
        local, local_port = decode_address(fields[1])
        remote, remote_port = decode_address(fields[2])
        state = _TCP_CODES.get(int(fields[3], 16), "CLOSE")
        tx_text, _, rx_text = fields[4].partition(":")
        return TcpRow(local, local_port, remote, remote_port, state, int(tx_text, 16), int(rx_text, 16),
                      int(fields[9]))
    except ValueError:
        return None  # a line this parser does not understand is skipped, never fatal


def parse_tcp(text: str) -> list[TcpRow]:
    """Every socket in the text of ``/proc/net/tcp`` or ``/proc/net/tcp6``
    (the header and malformed lines are skipped)."""
    return [row for row in map(_tcp_row, text.splitlines()) if row is not None]


def _unix_row(line: str) -> UnixRow | None:
    fields = line.split(None, 7)
    if len(fields) < 7 or fields[0] == "Num":
        return None
    try:
        flags, socket_type, code, inode = int(fields[3], 16), int(fields[4], 16), int(fields[5], 16), int(fields[6])
    except ValueError:
        return None
    listening = bool(flags & _ACCEPTCON)
    state = "LISTEN" if listening else _UNIX_CODES.get(code, "UNCONNECTED")
    path = fields[7].rstrip("\n") if len(fields) > 7 else ""
    return UnixRow(state, listening, socket_type, inode, path)


def parse_unix(text: str) -> list[UnixRow]:
    """Every socket in the text of ``/proc/net/unix``."""
    return [row for row in map(_unix_row, text.splitlines()) if row is not None]


def _unique(rows: Iterable[TcpRow]) -> list[TcpRow]:
    """One row per connection: the kernel writes its tables a page at a time
    while connections change, so a socket that moved (ESTABLISHED to
    TIME-WAIT, say) may be listed twice; its later line wins."""
    latest: dict[tuple[object, ...], TcpRow] = {}
    for row in rows:
        key: tuple[object, ...] = (row.local, row.local_port, row.remote, row.remote_port)
        if row.state == "LISTEN":
            key += (row.inode,)  # SO_REUSEPORT listeners share an address
        latest.pop(key, None)
        latest[key] = row
    return list(latest.values())


def count_tcp(
    rows: Iterable[TcpRow], port: int, host: str = "", peers: Collection[int] | None = None
) -> tuple[dict[str, int], dict[str, int], int | None]:
    """(server side, client side, listen queue now) of *port* among *rows*;
    with *host*, only sockets whose address on the server's end matches it.

    With *peers* (the port numbers of the client ends), only the listener
    and the connections between *port* and those ports are counted, on both
    sides: the connections one program made, told apart from everything
    else on this machine that uses the port number (other programs'
    clients that happen to get it as their own port, connections of an
    earlier server on the same port still in TIME-WAIT)."""
    server: collections.Counter[str] = collections.Counter()
    client: collections.Counter[str] = collections.Counter()
    queue: int | None = None
    wanted = normal_address(host)
    for row in _unique(rows):
        if row.local_port == port and (wanted is None or normal_address(row.local) == wanted):
            if row.state == "LISTEN":
                queue = (queue or 0) + row.rx_queue
            elif peers is not None and row.remote_port not in peers:
                continue
            server[row.state] += 1
        elif row.remote_port == port and (wanted is None or normal_address(row.remote) == wanted):
            if peers is None or row.local_port in peers:
                client[row.state] += 1
    return dict(server), dict(client), queue


def count_unix(rows: Iterable[UnixRow], path: str) -> tuple[dict[str, int], int | None, int]:
    """(server side, listen queue now, the listener's inode or 0) of *path*."""
    server: collections.Counter[str] = collections.Counter()
    listener = 0
    for row in rows:
        if row.path == path:
            server[row.state] += 1
            if row.listening:
                listener = row.inode
    queue = server.get("CONNECTING", 0) if listener else None
    return dict(server), queue, listener
