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
* with a target's *peers* (the clients' port numbers), only the listener and
  the connections between P and those ports, on both sides: what a program
  that made the clients itself reads, exact on a busy machine too.
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
  (:mod:`sockserve.kernel.sockdiag`, what ``ss -lnt`` shows as Send-Q), or, where
  netlink is unavailable, from the server object's ``request_queue_size``
  capped by somaxconn. Linux queues one connection more than the maximum:
  ``listen(2)`` holds 3, and :attr:`KernelReading.queue_full` is
  ``queue > queue_max``. A SYN arriving at a full queue is dropped: the
  client stays in SYN-SENT and retransmits after 1 s, 3 s, ...

For a Unix stream socket path, only the server's side can be seen (a
client socket has no name in ``/proc/net/unix``): LISTEN, CONNECTING
(connections queued for ``accept()``, which is also the queue's current
length), CONNECTED (accepted) and DISCONNECTING.

Recipes (for lessons; each runs in well under a second on loopback, and
``tests/test_kernelview.py`` runs every one of them):

* *A burst fills a small backlog*: a server class with
  ``request_queue_size = 2``, bound but not serving (or serving slowly),
  and six non-blocking ``connect()`` calls: ``read(server)`` shows
  ``queue == 3``, ``queue_full``, ESTABLISHED 3 on the server's side and
  SYN-SENT 3 on the clients' side (their SYNs were dropped; they retry
  after 1 s). ``KernelSampler(server)`` around a burst against a slow
  plain server records the queue filling and draining.
* *SYN-RECV*: on loopback a handshake completes inside ``connect()``, so
  SYN-RECV is rarely seen; a listener with ``TCP_DEFER_ACCEPT`` keeps each
  handshake there until the client sends data.
* *TIME-WAIT on the side that closes first*: a handler that replies, then
  reads until EOF; clients that close after the reply leave TIME-WAIT on
  the clients' side, none on the server's. (A handler that returns at once
  closes first, and the TIME-WAIT moves to the server's side.)
* *CLOSE-WAIT when a handler forgets to close*: override
  ``shutdown_request`` to keep the socket open; after the clients close,
  the server's side shows CLOSE-WAIT and the clients' FIN-WAIT-2.
* *The panel*: ``sockserve.lab.KernelPanel(server_panel)`` plots all of it
  live while a ``TrafficPanel`` sends load; ``sockserve.plots.kernel`` draws
  a recorded series for a static figure.

Parsing the tables (plain functions over text) lives in :mod:`sockserve.kernel.procnet`;
its names are re-exported here. Everything here is plain data (frozen dataclasses and tuples, JSON-able
through ``to_dict``/``from_dict``) except the sampler's thread. Thread
safety: :func:`read` may be called from any thread; a sampler's methods too.
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import sockdiag
from .procnet import (
    ALL_STATES,
    STATE_MEANINGS,
    TCP_STATES,
    UNIX_STATES,
    TcpRow,
    UnixRow,
    count_tcp,
    count_unix,
    decode_address,
    normal_address,
    parse_tcp,
    parse_unix,
)

__all__ = [
    # re-exported from sockserve.kernel.procnet, the parsing layer
    "TCP_STATES",
    "UNIX_STATES",
    "ALL_STATES",
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

    *peers* (TCP only), the port numbers of the client ends of the
    connections to look at: the listener and those connections are counted,
    nothing else that uses the port number. A program that made the clients
    itself knows their ports (``getsockname()``, known from ``bind()`` on),
    and on a busy machine needs them: other programs' clients may get the
    same number as their own port, and an earlier server on the same port
    may have left connections in TIME-WAIT. None (the default) counts every
    connection of the port.
    """

    port: int = 0
    path: str = ""
    backlog: int | None = None
    host: str = ""
    peers: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if bool(self.path) == bool(self.port):
            raise ValueError("a kernel view target is either a TCP port (1-65535) or a Unix socket path")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"a port is a whole number from 1 to 65535, not {self.port!r}")
        if self.peers is not None and self.path:
            raise ValueError("peers are TCP client ports: a Unix socket target has none")

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    def __str__(self) -> str:
        if self.path:
            return self.path
        host = normal_address(self.host)
        if host is None:
            return f"port {self.port}"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


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
        if getattr(obj, "socket_type", socket.SOCK_STREAM) != socket.SOCK_STREAM:
            raise ValueError(
                f"{type(obj).__name__} is a datagram server: it has no connections and no listen "
                "queue for the kernel to show (the kernel view is for TCP and Unix stream servers)"
            )
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
    ordered = [s for s in ALL_STATES if counts.get(s)] + sorted(set(counts) - set(ALL_STATES))
    return ", ".join(f"{s} {counts[s]}" for s in ordered) or "no sockets"


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
    host = normal_address(resolved.host)
    # An IPv4 server's sockets are all in tcp, an IPv6 one's in tcp6 (v4
    # clients of a dual-stack server appear there v4-mapped): the kernel
    # spends about 3 us per socket writing a table, so read only what can match.
    tables = ("tcp", "tcp6") if host is None else ("tcp6",) if ":" in host else ("tcp",)
    for name in tables:
        text = _read_text(os.path.join(root, name), needle)
        if text is not None:
            found = True
            rows.extend(parse_tcp(text))
    if not found:
        raise KernelViewUnavailable()
    server, client, queue = count_tcp(rows, resolved.port, resolved.host, resolved.peers)
    queue_max = None
    if queue is not None:
        listeners = sockdiag.tcp_listen_queues(resolved.port) if real else None
        wanted = normal_address(resolved.host)
        maxima = [most for address, _now, most in listeners or ()
                  if wanted is None or normal_address(address) == wanted]
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
        return [s for s in ALL_STATES if s in seen] + sorted(seen - set(ALL_STATES))

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

    Cost: each reading makes the kernel write the whole socket table of this
    network namespace, about 3 us of CPU per socket (a few hundred us on a
    quiet machine or a Binder pod; 14 ms with 4,600 sockets, most of them in
    TIME-WAIT after load tests), so a high *rate* on a busy machine takes a
    share of a core.

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
                target = target_of(self.target)
            except (TypeError, ValueError) as exc:  # e.g. a panel started with a datagram kind
                self._error = str(exc)
                self._end(str(exc))
                return
            try:
                self._sample(target)
            except KernelViewUnavailable as exc:
                self._error = str(exc)
                self._end(str(exc))
                return
            except OSError as exc:  # a table that could not be read this time: skip this reading
                self._error = f"{type(exc).__name__}: {exc}"
            next_at += interval
            pause = next_at - time.monotonic()
            if pause < 0:  # fell behind (a busy machine): do not burst to catch up
                next_at, pause = time.monotonic(), 0.0
            stop.wait(pause)

    def _sample(self, target: Target | None) -> None:
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
