"""The kernel's view of one server: its sockets per TCP state and its listen queue.

A server's code sees only ``accept()`` returning connections. The kernel
sees much more: connections whose handshake is done but which nobody has
accepted yet (the *listen queue*), handshakes in progress (SYN-RECV),
connections the peer has closed but the server has not (CLOSE-WAIT), and
closed connections lingering in TIME-WAIT. Linux shows all of them in
``/proc/net/tcp``, ``/proc/net/tcp6`` and ``/proc/net/unix``; this module
reads those files (standard library only) for one server.

Use:

* :func:`read` ``(target)`` -> :class:`KernelReading`: one reading now.
* :class:`KernelSampler` ``(target, rate=10)``: a daemon thread that records a
  :class:`KernelSeries` of readings until stopped (``with`` block, or
  :meth:`~KernelSampler.start` / :meth:`~KernelSampler.stop`); bounded in
  readings kept (*cap*) and in time (*max_seconds*).
* :func:`available` says whether this system has the files; where it does not,
  :func:`read` raises :class:`KernelViewUnavailable`, whose message is
  :data:`NOT_AVAILABLE` ("... not available on this system ...").

A *target* is a port (``8000``), an address (``("127.0.0.1", 8000)``), a
Unix socket path, a server object (anything with ``server_address``), or
anything with a ``server``/``model``/``address`` attribute leading to one
(the lab's ``ServerModel`` and ``ServerPanel``); :func:`target_of` turns it
into a :class:`Target`, or None while it has no address (a stopped panel).

What a reading counts, for a TCP port P:

* the **server's side**: sockets whose *local* port is P: the LISTEN socket,
  connections in SYN-RECV (a handshake the kernel has answered; request
  sockets are listed with state 03), ESTABLISHED ones (accepted or still
  queued), and the teardown states (CLOSE-WAIT, LAST-ACK, FIN-WAIT-1/2,
  CLOSING, TIME-WAIT);
* the **client's side**: sockets whose *remote* port is P, i.e. clients on
  this machine (SYN-SENT while their handshake waits, ESTABLISHED, and the
  teardown states of the side that closes first: FIN-WAIT-2, TIME-WAIT).
  Only the port is compared, not the address: on a machine that also talks
  to port P elsewhere, those sockets are counted too.
* the tables are not an atomic snapshot: the kernel writes them a page at
  a time while connections come and go, so a reading may miss a socket or
  list one twice (duplicates of a connection are merged, its later line
  wins). Counts are exact when nothing changes, and close while it does.
* the **listen queue**: for a LISTEN socket, ``rx_queue`` in
  ``/proc/net/tcp`` is the number of connections the kernel has completed
  and queued for ``accept()`` (``sk_ack_backlog``). Its ``tx_queue`` is *not*
  the maximum (it is ``write_seq - snd_una``, 0 for a listener; checked on
  Linux 6.18), so the maximum (the ``listen()`` backlog capped by
  ``net.core.somaxconn``) comes from the kernel's sock_diag netlink interface
  (:mod:`sockserve.sockdiag`, what ``ss -lnt`` shows as Send-Q), or, where
  netlink is unavailable, from the server object's ``request_queue_size``
  capped by somaxconn. Linux queues one connection more than the maximum:
  ``listen(2)`` holds 3, and :attr:`KernelReading.queue_full` is
  ``queue > queue_max``. A SYN arriving at a full queue is dropped: the
  client stays in SYN-SENT and retransmits after 1 s, 3 s, ...

For a Unix stream socket path, only the server's side can be seen (a
client socket has no name in ``/proc/net/unix``): LISTEN, CONNECTING
(connections queued for ``accept()``, which is also the queue's current
length), CONNECTED (accepted) and DISCONNECTING.

Everything here is plain data (frozen dataclasses and tuples, JSON-able
through ``to_dict``/``from_dict``) except the sampler's thread. Thread
safety: :func:`read` may be called from any thread; a sampler's methods too.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import sockdiag

__all__ = [
    "TCP_STATES",
    "UNIX_STATES",
    "STATE_MEANINGS",
    "NOT_AVAILABLE",
    "PROC_NET",
    "KernelViewUnavailable",
    "Target",
    "TcpRow",
    "UnixRow",
    "KernelReading",
    "KernelSeries",
    "KernelSampler",
    "available",
    "parse_tcp",
    "parse_unix",
    "decode_address",
    "target_of",
    "count_tcp",
    "count_unix",
    "read",
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
_ALL_STATES = TCP_STATES + tuple(s for s in UNIX_STATES if s not in TCP_STATES)
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

#: The directory read; tests point it elsewhere to simulate other systems.
PROC_NET = "/proc/net"

#: The sentence shown where the kernel's view cannot be read.
NOT_AVAILABLE = (
    "The kernel's view is not available on this system: it reads /proc/net/tcp, "
    "/proc/net/tcp6 and /proc/net/unix, which only Linux provides."
)


class KernelViewUnavailable(RuntimeError):
    """This system has no ``/proc/net`` tables (not Linux); str() is :data:`NOT_AVAILABLE`."""

    def __init__(self, message: str = NOT_AVAILABLE) -> None:
        super().__init__(message)


def available(proc_net: str | None = None) -> bool:
    """True where ``/proc/net/tcp`` can be read (Linux)."""
    return os.access(os.path.join(proc_net or PROC_NET, "tcp"), os.R_OK)


# -- targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What to look at: a TCP *port* (on *host*), or a Unix socket *path*.

    *host* is the server's bound address; sockets are counted only when
    their address matches it (a v4-mapped ``::ffff:a.b.c.d`` matches
    ``a.b.c.d``). "" (the default), a wildcard (``0.0.0.0``, ``::``) or a
    name rather than an address match any address. This matters on a busy
    machine: an IPv6 server on ``[::1]:P`` and an IPv4 one on
    ``127.0.0.1:P`` may share the number P.

    *backlog* is the ``listen()`` backlog the server asked for, when known
    (a server object's ``request_queue_size``): the fallback for the
    queue's maximum where sock_diag cannot be asked.
    """

    port: int = 0
    path: str = ""
    backlog: int | None = None
    host: str = ""

    def __post_init__(self) -> None:
        if bool(self.path) == bool(self.port):
            raise ValueError("a kernel view target is either a TCP port (1-65535) or a Unix socket path")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"a port is a whole number from 1 to 65535, not {self.port!r}")

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    def __str__(self) -> str:
        if self.path:
            return self.path
        host = _address_of(self.host)
        if host is None:
            return f"port {self.port}"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def _address_of(host: str) -> str | None:
    """*host* as a normalised address, or None for "any address"."""
    import ipaddress

    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # "", or a name: match any address
    if address.is_unspecified:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def target_of(obj: object) -> Target | None:
    """The :class:`Target` that *obj* names now (see the module docstring);
    None while *obj* has no address (a server panel that is not running).
    Raises TypeError (one line) for anything else."""
    if isinstance(obj, Target):
        return obj
    if isinstance(obj, bool):
        raise TypeError("a kernel view target is a port, an address, a path or a server, not a bool")
    if isinstance(obj, int):
        return Target(port=obj)
    if isinstance(obj, (str, bytes, os.PathLike)):
        path = os.fspath(obj)
        text = os.fsdecode(path) if isinstance(path, bytes) else path
        if text.startswith("\0"):  # an abstract socket, which /proc/net/unix shows as "@name"
            text = "@" + text[1:]
        return Target(path=text)
    if isinstance(obj, tuple) and len(obj) >= 2 and isinstance(obj[1], int):
        return Target(port=obj[1], host=str(obj[0]))
    if obj is None:
        return None
    address = getattr(obj, "server_address", None)
    if address is not None:
        target = target_of(address)
        backlog = getattr(obj, "request_queue_size", None)
        if target is not None and isinstance(backlog, int):
            return Target(target.port, target.path, backlog, target.host)
        return target
    for name in ("model", "server"):  # a lab panel -> its model -> its server
        if hasattr(obj, name):
            inner = getattr(obj, name)
            if inner is not None or name == "server":
                return target_of(inner)
    if hasattr(obj, "address"):
        return target_of(obj.address)
    raise TypeError(
        f"cannot watch {type(obj).__name__}: pass a port, an address, a Unix socket path or a server"
    )


# -- parsing ---------------------------------------------------------------------


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
    import ipaddress

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


# -- readings --------------------------------------------------------------------


@dataclass(frozen=True)
class KernelReading:
    """One look at one server's sockets: plain data.

    ``server`` and ``client`` map a state name to how many sockets are in it
    on that side (states with no socket are left out); ``queue`` is the
    listen queue's current length and ``queue_max`` its maximum (None when
    unknown, e.g. nothing listens). ``at`` is ``time.monotonic()``.
    Treat the dicts as read-only.
    """

    at: float
    server: Mapping[str, int] = field(default_factory=dict)
    client: Mapping[str, int] = field(default_factory=dict)
    queue: int | None = None
    queue_max: int | None = None

    def count(self, state: str, side: str = "server") -> int:
        """Sockets in *state* on *side* ("server" or "client")."""
        counts = self.server if side == "server" else self.client
        return counts.get(state, 0)

    @property
    def listening(self) -> bool:
        return self.server.get("LISTEN", 0) > 0

    @property
    def queue_full(self) -> bool:
        """The kernel would drop a new SYN now (Linux: ``queue > queue_max``)."""
        return self.queue is not None and self.queue_max is not None and self.queue > self.queue_max

    def summary(self) -> str:
        """One line: ``server: LISTEN 1, ESTABLISHED 3; clients here: SYN-SENT 3; listen queue 3 (max 2, full)``."""
        parts = [f"server: {_counts_text(self.server)}"]
        if self.client:
            parts.append(f"clients here: {_counts_text(self.client)}")
        if self.queue is not None:
            limit = "" if self.queue_max is None else f" (max {self.queue_max}{', full' if self.queue_full else ''})"
            parts.append(f"listen queue {self.queue}{limit}")
        elif not self.listening:
            parts.append("nothing listens")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "server": dict(self.server), "client": dict(self.client),
                "queue": self.queue, "queue_max": self.queue_max}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelReading:
        return cls(float(data["at"]), dict(data.get("server", {})), dict(data.get("client", {})),
                   data.get("queue"), data.get("queue_max"))


def _counts_text(counts: Mapping[str, int]) -> str:
    ordered = [s for s in _ALL_STATES if counts.get(s)] + sorted(set(counts) - set(_ALL_STATES))
    return ", ".join(f"{s} {counts[s]}" for s in ordered) or "no sockets"


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
    rows: Iterable[TcpRow], port: int, host: str = ""
) -> tuple[dict[str, int], dict[str, int], int | None]:
    """(server side, client side, listen queue now) of *port* among *rows*;
    with *host*, only sockets whose address on the server's end matches it."""
    server: collections.Counter[str] = collections.Counter()
    client: collections.Counter[str] = collections.Counter()
    queue: int | None = None
    wanted = _address_of(host)
    for row in _unique(rows):
        if row.local_port == port and (wanted is None or _address_of(row.local) == wanted):
            server[row.state] += 1
            if row.state == "LISTEN":
                queue = (queue or 0) + row.rx_queue
        elif row.remote_port == port and (wanted is None or _address_of(row.remote) == wanted):
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


def _read_text(path: str, needle: str = "") -> str | None:
    """The lines of a /proc table holding *needle* (all when ""); None if missing."""
    try:
        with open(path, encoding="ascii", errors="replace") as table:
            return "".join(line for line in table if needle in line)
    except FileNotFoundError:
        return None


def _somaxconn(proc_root: str) -> int | None:
    try:
        with open(os.path.join(proc_root, "sys", "net", "core", "somaxconn"), encoding="ascii") as src:
            return int(src.read().strip())
    except (OSError, ValueError):
        return None


def read(target: object, *, proc_net: str | None = None) -> KernelReading:
    """One :class:`KernelReading` of *target* now.

    Raises :class:`KernelViewUnavailable` where the tables do not exist,
    ValueError when *target* names nothing (a stopped server panel).
    *proc_net* reads another copy of the tables (tests); the kernel is then
    not asked for the queue's maximum, since it would describe this system.
    """
    resolved = target_of(target)
    if resolved is None:
        raise ValueError(f"{target!r} has no address now (is the server running?)")
    root = proc_net or PROC_NET
    real = proc_net is None or os.path.realpath(root) == os.path.realpath(PROC_NET)
    at = time.monotonic()
    if resolved.is_unix:
        text = _read_text(os.path.join(root, "unix"), resolved.path)
        if text is None:
            raise KernelViewUnavailable()
        server, queue, listener = count_unix(parse_unix(text), resolved.path)
        queue_max = None
        if listener:
            asked = sockdiag.unix_listen_queue(listener) if real else None
            if asked is not None:
                queue, queue_max = asked
            elif resolved.backlog is not None:
                queue_max = _capped(resolved.backlog, real)
        return KernelReading(at, server, {}, queue, queue_max)
    # A port appears as ":PPPP " in the local or the remote column.
    needle = f":{resolved.port:04X} "
    rows: list[TcpRow] = []
    found = False
    for name in ("tcp", "tcp6"):
        text = _read_text(os.path.join(root, name), needle)
        if text is not None:
            found = True
            rows.extend(parse_tcp(text))
    if not found:
        raise KernelViewUnavailable()
    server, client, queue = count_tcp(rows, resolved.port, resolved.host)
    queue_max = None
    if queue is not None:
        listeners = sockdiag.tcp_listen_queues(resolved.port) if real else None
        wanted = _address_of(resolved.host)
        maxima = [most for address, _now, most in listeners or ()
                  if wanted is None or _address_of(address) == wanted]
        if maxima:
            queue_max = sum(maxima)
        elif resolved.backlog is not None:
            queue_max = _capped(resolved.backlog, real)
    return KernelReading(at, server, client, queue, queue_max)


def _capped(backlog: int, real: bool) -> int:
    """What Linux grants for ``listen(backlog)``: at most somaxconn."""
    limit = _somaxconn(os.path.dirname(PROC_NET)) if real else None
    backlog = max(backlog, 0)
    return min(backlog, limit) if limit is not None else backlog


# -- series and sampler --------------------------------------------------------------


@dataclass(frozen=True)
class KernelSeries:
    """Readings of one target over time: plain data.

    ``dropped`` readings were left out (the oldest, beyond the sampler's
    cap); ``stopped_by`` says why recording ended ("", "stop", "max_seconds",
    or the error's sentence, e.g. :data:`NOT_AVAILABLE`).
    """

    target: str
    readings: tuple[KernelReading, ...] = ()
    dropped: int = 0
    stopped_by: str = ""

    def elapsed(self) -> list[float]:
        """Seconds from the first reading to each reading."""
        if not self.readings:
            return []
        start = self.readings[0].at
        return [r.at - start for r in self.readings]

    def counts(self, state: str, side: str = "server") -> list[int]:
        return [r.count(state, side) for r in self.readings]

    def states(self, side: str = "server") -> list[str]:
        """The states seen at least once on *side*, in the order of a connection's life."""
        seen = {s for r in self.readings for s in (r.server if side == "server" else r.client)}
        return [s for s in _ALL_STATES if s in seen] + sorted(seen - set(_ALL_STATES))

    def peak(self, state: str, side: str = "server") -> int:
        return max(self.counts(state, side), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "dropped": self.dropped, "stopped_by": self.stopped_by,
                "readings": [r.to_dict() for r in self.readings]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelSeries:
        return cls(str(data["target"]), tuple(KernelReading.from_dict(r) for r in data.get("readings", ())),
                   int(data.get("dropped", 0)), str(data.get("stopped_by", "")))


class KernelSampler:
    """Record a :class:`KernelSeries` of *target* in a background thread.

    ``KernelSampler(target, rate=10.0, cap=3000, max_seconds=600.0)``: take
    *rate* readings a second; keep the newest *cap* (older ones are dropped
    and counted); stop by itself after *max_seconds*. Use it as a context
    manager, or call :meth:`start` and :meth:`stop` (which returns the
    series). :meth:`series` may be called at any time, from any thread.

    The target is looked up at every reading, so a server panel may be
    started after the sampler: until it has an address nothing is recorded
    (:attr:`waiting` is True). When the target's address changes (the panel
    was restarted on a new port), the series starts afresh.
    On a system without ``/proc/net`` the thread ends at once and
    :attr:`error` is :data:`NOT_AVAILABLE`.
    """

    def __init__(self, target: object, rate: float = 10.0, cap: int = 3000, max_seconds: float = 600.0,
                 *, proc_net: str | None = None) -> None:
        if not 0 < rate <= 100:
            raise ValueError(f"rate is readings per second, more than 0 and at most 100, not {rate!r}")
        if cap < 1:
            raise ValueError(f"cap must be at least 1 reading, not {cap!r}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, not {max_seconds!r}")
        target_of(target)  # a bad target fails here, in the caller's thread
        self.target = target
        self.rate, self.cap, self.max_seconds = rate, cap, max_seconds
        self._proc_net = proc_net
        self._lock = threading.Lock()
        self._readings: collections.deque[KernelReading] = collections.deque(maxlen=cap)
        self._dropped = 0
        self._label = ""
        self._stopped_by = ""
        self._error = ""
        self._waiting = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def waiting(self) -> bool:
        """True while the target has no address (nothing to read yet)."""
        return self._waiting

    @property
    def error(self) -> str:
        """Why recording stopped on its own ("" if it did not)."""
        return self._error

    def start(self) -> KernelSampler:
        if self.running:
            return self
        self._stop = threading.Event()
        self._error = self._stopped_by = ""
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="sockserve-kernelview",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> KernelSeries:
        """Stop recording (within about one interval) and return the series."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            if not self._stopped_by:
                self._stopped_by = "stop"
        return self.series()

    def series(self) -> KernelSeries:
        with self._lock:
            return KernelSeries(self._label, tuple(self._readings), self._dropped, self._stopped_by)

    def __enter__(self) -> KernelSampler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, stop: threading.Event) -> None:
        interval = 1.0 / self.rate
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        while not stop.is_set():
            if time.monotonic() >= deadline:
                self._end("max_seconds")
                return
            try:
                self._sample()
            except KernelViewUnavailable as exc:
                self._error = str(exc)
                self._end(str(exc))
                return
            except (OSError, ValueError) as exc:  # a table changed under us: skip this reading
                self._error = f"{type(exc).__name__}: {exc}"
            next_at += interval
            pause = next_at - time.monotonic()
            if pause < 0:  # fell behind (a busy machine): do not burst to catch up
                next_at, pause = time.monotonic(), 0.0
            stop.wait(pause)

    def _sample(self) -> None:
        target = target_of(self.target)
        if target is None:
            self._waiting = True
            return
        self._waiting = False
        reading = read(target, proc_net=self._proc_net)
        label = str(target)
        with self._lock:
            if label != self._label:
                self._readings.clear()
                self._dropped = 0
                self._label = label
            if len(self._readings) == self.cap:
                self._dropped += 1
            self._readings.append(reading)

    def _end(self, why: str) -> None:
        with self._lock:
            self._stopped_by = why
