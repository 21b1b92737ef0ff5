"""The listen backlog experiment: a burst of new connections against a slow server.

``listen(backlog)`` bounds how many connections the kernel keeps for a server
that has not ``accept()``-ed them yet. The standard library's ``TCPServer``
asks for 5 (``request_queue_size``); sockserve asks for ``socket.SOMAXCONN``.
When a burst of clients arrives faster than the server accepts, the
connections beyond the backlog are not queued: on Linux their handshake (or
their first data) is dropped, the client's kernel retransmits after about
one second (then 3 s, ...), and some are reset. Nothing in the server's code
shows this; only the clients' clocks do.

:func:`run_backlog` measures it: a *plain* server (one request at a time, so
the queue really fills) serving the ``io`` workload runs in a background
thread of this process; *clients* connections are opened at once, each sends
one request (``io <delay_ms>``) and half-closes, and the time from the burst
to each reply is recorded. :func:`compare_backlogs` does it for several
backlogs, :func:`plot_backlog` draws the replies over time (matplotlib,
imported only when drawing) and :func:`describe_backlog` says what it
draws in one sentence (its text alternative).

The clients are non-blocking sockets driven by one selector in the calling
thread (no client threads), every wait is bounded by *wait* seconds, and the
server, its thread and every socket are closed before the functions return.
Servers bind to 127.0.0.1 only.
"""

from __future__ import annotations

import errno
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.servers import TCPServer
from ..measure.workloads import handler_for
from ..plots.style import MIN_FONT_SIZE, REFERENCE, series_style

if TYPE_CHECKING:  # annotations only; matplotlib is imported when drawing
    from matplotlib.axes import Axes

__all__ = [
    "BACKLOG_OUTCOMES",
    "BacklogRun",
    "run_backlog",
    "compare_backlogs",
    "plot_backlog",
    "describe_backlog",
    "effective_somaxconn",
]

#: How one client of the burst ended. ``ok``: a reply came; ``reset``: the
#: connection was reset or closed without a reply; ``refused``: nothing
#: listened; ``timeout``: no reply within *wait*; ``error``: anything else.
BACKLOG_OUTCOMES: tuple[str, ...] = ("ok", "reset", "refused", "timeout", "error")

_HOST = "127.0.0.1"


def effective_somaxconn() -> int:
    """The largest backlog the kernel grants (Linux caps ``listen()`` at
    ``/proc/sys/net/core/somaxconn``); ``socket.SOMAXCONN`` elsewhere."""
    try:
        with open("/proc/sys/net/core/somaxconn", encoding="ascii") as src:
            return min(socket.SOMAXCONN, int(src.read().strip()))
    except (OSError, ValueError):
        return socket.SOMAXCONN


@dataclass(frozen=True)
class BacklogRun:
    """One burst against one server: plain data.

    ``replies[i]`` is the time in seconds from the burst's start to client
    *i*'s reply (None if none came); ``outcomes[i]`` says how client *i*
    ended (one of :data:`BACKLOG_OUTCOMES`). ``window`` is the time the
    counts ``in_window``/``late`` are measured against. ``retransmits[i]``
    is how many segments client *i*'s kernel had to send again (its SYN,
    or its request, dropped by a full queue), from Linux's ``TCP_INFO``;
    empty where the system cannot say. Unlike the clock, it tells a dropped
    client from a slow server on a busy machine.
    """

    label: str
    backlog: int
    clients: int
    delay_ms: float
    window: float
    replies: tuple[float | None, ...]
    outcomes: tuple[str, ...]
    retransmits: tuple[int, ...] = ()

    @property
    def ok(self) -> int:
        """Clients that got their reply (at any time)."""
        return self.outcomes.count("ok")

    @property
    def in_window(self) -> int:
        """Clients answered within ``window`` seconds of the burst."""
        return sum(1 for t in self.replies if t is not None and t <= self.window)

    @property
    def late(self) -> int:
        """Clients answered, but only after ``window`` (a retransmit stall)."""
        return sum(1 for t in self.replies if t is not None and t > self.window)

    @property
    def dropped(self) -> int | None:
        """Clients that had to send something again (part of their connection
        was dropped); None where the system cannot say (no ``TCP_INFO``)."""
        if not self.retransmits:
            return None
        return sum(1 for n in self.retransmits if n > 0)

    def silence(self) -> tuple[float, float]:
        """The longest stretch (from, to: seconds since the burst) in which no
        reply came, between the burst and the last reply: where the figure's
        line is flat. (0, 0) when no reply came."""
        times = [0.0, *sorted(t for t in self.replies if t is not None)]
        if len(times) < 2:
            return (0.0, 0.0)
        gaps = [(b - a, a, b) for a, b in zip(times, times[1:])]
        _, start, end = max(gaps)
        return (start, end)

    def counts(self) -> dict[str, int]:
        """Outcome -> number of clients, every outcome present."""
        return {name: self.outcomes.count(name) for name in BACKLOG_OUTCOMES}

    def summary(self) -> str:
        """One line: answered in the window, late, and the failures."""
        failed = ", ".join(f"{n} {name}" for name, n in self.counts().items() if n and name != "ok")
        return (
            f"{self.label}: {self.in_window} of {self.clients} answered within "
            f"{self.window:g} s, {self.late} later" + (f"; {failed}" if failed else "")
        )


def _server_class(server_class: type, backlog: int | None) -> type:
    if backlog is None:
        return server_class
    return type(f"{server_class.__name__}Backlog{backlog}", (server_class,), {"request_queue_size": backlog})


def run_backlog(
    backlog: int | None = None,
    *,
    clients: int = 30,
    delay_ms: float = 20.0,
    window: float = 0.9,
    wait: float = 1.5,
    server_class: type = TCPServer,
    label: str | None = None,
) -> BacklogRun:
    """Burst *clients* new connections at a one-at-a-time server; time the replies.

    The server is *server_class* (a stream server class of sockserve or of
    the standard library's socketserver; default :class:`~sockserve.TCPServer`,
    which handles one request at a time) with ``request_queue_size`` set to
    *backlog* (None: the class's own), serving the ``io`` workload. Each
    client sends ``io <delay_ms>`` and half-closes; the server takes about
    ``clients * delay_ms`` to answer them all when none is dropped. Returns
    after every client ended or *wait* seconds, whichever is first.
    """
    if clients < 1:
        raise ValueError(f"clients must be at least 1, got {clients!r}")
    if not (0 < window <= wait):
        raise ValueError(f"need 0 < window <= wait, got window={window!r}, wait={wait!r}")
    cls = _server_class(server_class, backlog)
    server = cls((_HOST, 0), handler_for("io", delay_ms=delay_ms))
    granted = int(getattr(server, "request_queue_size", 0))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05},
        name="sockserve-backlog-server", daemon=True,
    )
    thread.start()
    try:
        replies, outcomes, retransmits = _burst(server.server_address, clients, delay_ms, wait)
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
    return BacklogRun(
        label=label or f"backlog {granted}",
        backlog=granted,
        clients=clients,
        delay_ms=float(delay_ms),
        window=float(window),
        replies=tuple(replies),
        outcomes=tuple(outcomes),
        retransmits=tuple(n for n in retransmits if n is not None) if None not in retransmits else (),
    )


#: ``struct tcp_info`` (Linux): ``tcpi_total_retrans``, a u32 after 8 bytes and 23 u32 fields.
_TOTAL_RETRANS = struct.Struct("=I")
_TOTAL_RETRANS_OFFSET = 100


def _retransmits(sock: socket.socket) -> int | None:
    """Segments *sock*'s kernel sent again over the connection's life (its
    SYN included); None where ``TCP_INFO`` cannot say (not Linux)."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None or not sys.platform.startswith("linux"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, option, _TOTAL_RETRANS_OFFSET + _TOTAL_RETRANS.size)
    except OSError:
        return None
    if len(info) < _TOTAL_RETRANS_OFFSET + _TOTAL_RETRANS.size:
        return None
    count: int = _TOTAL_RETRANS.unpack_from(info, _TOTAL_RETRANS_OFFSET)[0]
    return count


def _burst(
    address: tuple[str, int], clients: int, delay_ms: float, wait: float
) -> tuple[list[float | None], list[str], list[int | None]]:
    """Open *clients* connections at once and follow each to its reply;
    also how many segments each client had to send again."""
    request = f"io {delay_ms:g}\n".encode("ascii")
    replies: list[float | None] = [None] * clients
    outcomes = ["timeout"] * clients
    socks: list[socket.socket] = []
    with selectors.DefaultSelector() as selector:
        try:
            began = time.perf_counter()
            for i in range(clients):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.setblocking(False)
                code = sock.connect_ex(address)
                if code not in (0, errno.EINPROGRESS):
                    outcomes[i] = _failure(code)
                    continue
                selector.register(sock, selectors.EVENT_WRITE, i)
            pending = len(selector.get_map())
            while pending and time.perf_counter() - began < wait:
                left = wait - (time.perf_counter() - began)
                for key, _ in selector.select(max(0.0, min(left, 0.05))):
                    i, conn = key.data, key.fileobj
                    assert isinstance(conn, socket.socket)
                    if key.events == selectors.EVENT_WRITE:
                        code = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if code == 0:
                            try:
                                conn.send(request)  # a few bytes: never a partial send
                                conn.shutdown(socket.SHUT_WR)
                                selector.modify(conn, selectors.EVENT_READ, i)
                                continue
                            except OSError as exc:
                                code = exc.errno or errno.EIO
                        outcomes[i] = _failure(code)
                    else:
                        try:
                            data = conn.recv(4096)
                        except OSError as exc:
                            outcomes[i] = _failure(exc.errno or errno.EIO)
                        else:
                            if data.endswith(b"\n") and not data.startswith(b"ERR"):
                                replies[i] = time.perf_counter() - began
                                outcomes[i] = "ok"
                            elif data:
                                outcomes[i] = "error"
                            else:
                                outcomes[i] = "reset"
                    selector.unregister(conn)
                    pending -= 1
        finally:
            retransmits = [_retransmits(sock) for sock in socks]
            for sock in socks:
                sock.close()
    return replies, outcomes, retransmits


def _failure(code: int) -> str:
    if code == errno.ECONNREFUSED:
        return "refused"
    if code in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return "reset"
    if code == errno.ETIMEDOUT:
        return "timeout"
    return "error"


def compare_backlogs(
    backlogs: Iterable[int] = (5, socket.SOMAXCONN), **options: Any
) -> list[BacklogRun]:
    """:func:`run_backlog` once per backlog, one after another (same options)."""
    return [run_backlog(backlog, **options) for backlog in backlogs]


def plot_backlog(runs: BacklogRun | Sequence[BacklogRun], ax: Axes | None = None) -> Axes:
    """When each client got its reply: one step line per run, the window marked.

    x is the time since the burst (s), y the number of clients answered by
    then; a run that stalls shows a flat stretch and a jump near 1 s (a SYN
    or data retransmit). Returns the Axes (a new figure without *ax*).
    """
    import matplotlib.pyplot as plt  # matplotlib is optional: imported when drawing

    if isinstance(runs, BacklogRun):
        runs = [runs]
    if ax is None:
        with plt.ioff():
            _, ax = plt.subplots(figsize=(8.5, 3.6), layout="constrained")
    right = max((run.window for run in runs), default=1.0)
    for i, run in enumerate(runs):
        times = sorted(t for t in run.replies if t is not None)
        right = max([right, *times])
        xs = [0.0, *times]
        ys = list(range(len(xs)))
        failed = run.clients - run.ok
        label = f"{run.label}: {run.in_window} in window" + (f", {failed} failed" if failed else "")
        # Runs climb together at first: a marker at every reply, and a line
        # style each, keep the lines apart where they overlap.
        ax.step(xs, ys, where="post", label=label, linewidth=1.8, markersize=4 + 2 * (len(runs) - 1 - i),
                fillstyle="none" if i else "full", **series_style(i))  # type: ignore[arg-type]
    if runs:
        ax.axvline(runs[0].window, color=REFERENCE, linestyle=":", label=f"window ({runs[0].window:g} s)")
        ax.axhline(runs[0].clients, color=REFERENCE, linestyle="--", linewidth=0.8,
                   label=f"all {runs[0].clients} clients")
    ax.set_xlim(0, right * 1.05)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since the burst")
    ax.set_ylabel("clients answered")
    ax.set_title("A burst of new connections against a one-at-a-time server")
    ax.grid(True, alpha=0.3)
    # Beside the axes, never over a line: a late burst of replies ends up in any corner.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=MIN_FONT_SIZE + 1, frameon=False)
    return ax


def describe_backlog(runs: BacklogRun | Sequence[BacklogRun]) -> str:
    """:func:`plot_backlog` in one sentence (its text alternative), from the
    same runs: per run, the clients answered within the window and later,
    when the last reply came, the failures, and the longest flat stretch."""
    if isinstance(runs, BacklogRun):
        runs = [runs]
    parts = []
    for run in runs:
        times = sorted(t for t in run.replies if t is not None)
        text = f"{run.label}: {run.in_window} of {run.clients} answered within {run.window:g} s"
        if run.late:
            text += f", {run.late} later"
        if times:
            text += f", the last after {times[-1]:.2f} s"
        failed = [f"{n} {name}" for name, n in run.counts().items() if n and name != "ok"]
        if failed:
            text += f", {', '.join(failed)}"
        start, end = run.silence()
        if end - start > max(0.2, 5 * run.delay_ms / 1000.0):  # flat: far longer than a request takes
            text += f"; no reply from {start:.2f} to {end:.2f} s"
        parts.append(text)
    return "Clients answered over time: " + "; ".join(parts) + "."
