"""Scenes for the kernel's-view lesson: one situation each, built on loopback and read from the kernel.

Each function builds one situation with a real server on ``127.0.0.1``,
reads what the kernel holds for it (:mod:`sockserve.kernel.view`), tears it
all down, and returns a :class:`Scene`: plain data whose ``lines`` say what
was seen in sentences (counts and states, never timings, so that a lesson's
output is the same on every run) and whose ``readings`` keep the kernel
readings behind them.

* :func:`construction`: ``server_bind``, ``server_activate`` (``listen``
  with ``request_queue_size``) and ``fileno``, one step at a time.
* :func:`burst`: more clients at once than a small backlog holds.
* :func:`handshake`: SYN-SENT, SYN-RECV and ESTABLISHED.
* :func:`teardown`: who closes first keeps TIME-WAIT.
* :func:`forgotten_close`: CLOSE-WAIT when a server never closes.

Where the kernel's view is not available (not Linux) each returns a scene
whose only line is :data:`~sockserve.kernel.view.NOT_AVAILABLE`, having
started nothing. Every wait is bounded (a few seconds at most); each
function takes well under two seconds on loopback except :func:`burst`
with *serve* (about one second more: a dropped SYN is retried after 1 s).

A scene reads only its own connections: the listener and the connections
of the clients it made (a :class:`~sockserve.kernel.view.Target` with their
ports as *peers*), so other programs' sockets that use the same port
number, or an earlier server's TIME-WAIT on it, never enter its counts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import selectors
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..kernel import view as kernelview
from ..core.handlers import StreamRequestHandler
from ..kernel.view import KernelReading, KernelSeries
from ..core.servers import TCPServer
from .helpers import background, wait_for

__all__ = ["Scene", "construction", "burst", "reply_times", "handshake", "teardown", "forgotten_close", "states"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Scene:
    """What one scene showed: sentences, and the readings behind them."""

    title: str
    lines: tuple[str, ...]
    readings: tuple[KernelReading, ...] = ()
    series: KernelSeries | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.lines != (kernelview.NOT_AVAILABLE,)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def _unavailable(title: str) -> Scene:
    return Scene(title, (kernelview.NOT_AVAILABLE,))


class _Reply(StreamRequestHandler):
    """Replies to one line."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def _ours(server: Any, clients: Iterable[socket.socket | int]) -> kernelview.Target:
    """The kernel view's target for *server* (a server or a port on
    :data:`HOST`) that counts only the listener and the connections of
    *clients* (sockets, or their port numbers)."""
    target = kernelview.target_of(server)
    assert target is not None
    ports = frozenset(c if isinstance(c, int) else c.getsockname()[1] for c in clients)
    return dataclasses.replace(target, host=HOST, peers=ports)


def _client() -> socket.socket:
    """A non-blocking client socket whose port is known before it connects."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return sock


def _connect_nonblocking(address: Any, sock: socket.socket | None = None) -> socket.socket:
    sock = _client() if sock is None else sock
    code = sock.connect_ex(address)
    if code not in (0, errno.EINPROGRESS):
        sock.close()
        raise OSError(code, os.strerror(code))
    return sock


def construction(request_queue_size: int = 5) -> Scene:
    """Build a ``TCPServer`` one hook at a time and read the kernel after each.

    Shows: nothing after construction without ``bind_and_activate``; after
    ``server_bind`` a port but no row in the kernel's table (a client is
    refused); after ``server_activate`` a LISTEN socket whose queue maximum
    is *request_queue_size* (a client is queued); ``fileno()`` is the
    descriptor whose inode is the LISTEN row's.
    """
    title = "construction"
    if not kernelview.available():
        return _unavailable(title)
    server_class = type("Server", (TCPServer,), {"request_queue_size": request_queue_size})
    lines: list[str] = []
    readings: list[KernelReading] = []
    clients: list[int] = []
    server = server_class((HOST, 0), _Reply, bind_and_activate=False)
    try:
        lines.append(f"constructed with bind_and_activate=False: a socket with no port yet "
                     f"(server_address is {server.server_address!r})")
        server.server_bind()
        port = server.server_address[1]
        reading = kernelview.read(_ours(port, clients))
        readings.append(reading)
        lines.append(f"after server_bind(): port {port} is ours; the kernel's table: {reading.summary()}")
        lines.append(f"  a client connecting now: {_try_connect(server.server_address, clients)}")
        server.server_activate()
        reading = kernelview.read(_ours(server, clients))
        readings.append(reading)
        lines.append(f"after server_activate(): {reading.summary()}")
        lines.append(f"  a client connecting now: {_try_connect(server.server_address, clients)}")
        fd = server.fileno()
        link = os.readlink(f"/proc/self/fd/{fd}")
        inode = int(link.strip("socket:[]"))
        with open("/proc/net/tcp", encoding="ascii") as table:
            rows = [r for r in kernelview.parse_tcp(table.read()) if r.local_port == port and r.state == "LISTEN"]
        same = [r.inode for r in rows] == [inode]
        lines.append(f"fileno() is a descriptor of this process, {link.split('[')[0]}[...]; its inode is the "
                     f"LISTEN row's: {same}")
    finally:
        server.server_close()
    with contextlib.suppress(kernelview.KernelViewUnavailable):
        after = kernelview.read(_ours(port, clients))
        readings.append(after)
        lines.append(f"after server_close(): {after.summary()}")
    return Scene(title, tuple(lines), tuple(readings), facts={"port": port})


def states(reading: KernelReading) -> str:
    """The reading's socket states, without the listen queue (whose maximum depends on the machine)."""
    def text(counts: Any) -> str:
        ordered = [s for s in kernelview.ALL_STATES if counts.get(s)]
        return ", ".join(f"{s} {counts[s]}" for s in ordered) or "no sockets"

    parts = [f"server: {text(reading.server)}"]
    if reading.client:
        parts.append(f"clients here: {text(reading.client)}")
    return "; ".join(parts)


def _try_connect(address: Any, ports: list[int]) -> str:
    """Connect to *address* and close; say what happened. The client's port goes to *ports*."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.bind((HOST, 0))
        ports.append(sock.getsockname()[1])
        try:
            sock.connect(address)
        except ConnectionRefusedError as exc:
            return f"refused ({exc.strerror}): nothing listens on a port that is only bound"
        return "connected (the kernel completed the handshake; nobody has called accept() yet)"


def burst(backlog: int = 2, clients: int = 6, *, serve: bool = True) -> Scene:
    """*clients* connect at once to a plain server whose ``request_queue_size`` is *backlog*.

    While the server is not accepting yet, the kernel queues ``backlog + 1``
    connections (Linux) and drops the SYNs of the others, whose clients stay
    in SYN-SENT. With *serve*, the server then serves them one by one while
    a :class:`~sockserve.kernel.view.KernelSampler` records the queue: the
    dropped clients get in after their SYN is retried (about 1 s later).

    ``facts``: ``served`` (clients that got their reply), ``replies``
    (seconds from the burst to each client's reply, None for none, in the
    order they connected), ``accepting`` (seconds from the burst to the
    moment the server started accepting), ``burst_at`` (the burst's
    ``time.monotonic()``, the clock of the readings). The series covers the whole
    scene, from before the burst to after the last reply: if the sampler
    fell behind (a busy machine), a reading taken at the end is added.
    """
    title = "burst"
    if not kernelview.available():
        return _unavailable(title)
    server_class = type("SmallBacklog", (TCPServer,), {"request_queue_size": backlog})
    socks: list[socket.socket] = []
    lines: list[str] = []
    readings: list[KernelReading] = []
    series = None
    replies: list[float | None] = [None] * clients
    accepting = 0.0
    began = time.monotonic()
    with server_class((HOST, 0), _Reply) as server:
        try:
            socks.extend(_client() for _ in range(clients))  # bound: their ports are known
        except OSError:
            for sock in socks:
                sock.close()
            raise
        target = _ours(server, socks)
        sampler = kernelview.KernelSampler(target, rate=50, max_seconds=10)
        try:
            if serve:
                sampler.start()
                wait_for(lambda: bool(sampler.series().readings), 1.0)
                time.sleep(0.1)  # a quiet moment first: the listener alone
            began = time.monotonic()
            for sock in socks:
                _connect_nonblocking(server.server_address, sock)
            wait_for(lambda: (kernelview.read(target).queue or 0) >= min(clients, backlog + 1))
            wait_for(lambda: kernelview.read(target).count("SYN-SENT", "client") >= clients - backlog - 1, 1.0)
            reading = kernelview.read(target)
            readings.append(reading)
            lines.append(f"{clients} clients connect at once to a server with request_queue_size = {backlog}, "
                         "before it accepts anything:")
            lines.append(f"  {reading.summary()}")
            if serve:
                time.sleep(0.2)
                accepting = time.monotonic() - began
                with background(server, 0.05, close=False):
                    replies = _replies(socks, began)
                    time.sleep(0.2)
                last = time.monotonic()
                # The figure must reach past the last reply: wait for the sampler, or read once more.
                wait_for(lambda: sampler.series().readings[-1].at >= last
                         if sampler.series().readings else False, 1.0)
                series = sampler.stop()
                if not series.readings or series.readings[-1].at < last:
                    series = KernelSeries(series.target, (*series.readings, kernelview.read(target)),
                                          series.dropped, series.stopped_by)
                served = sum(1 for t in replies if t is not None)
                lines.append(f"served one at a time: {served} of {clients} clients got their reply; the listen "
                             f"queue peaked at {max((r.queue or 0) for r in series.readings)}")
        finally:
            sampler.stop()
            for sock in socks:
                sock.close()
    served = sum(1 for t in replies if t is not None)
    return Scene(title, tuple(lines), tuple(readings), series,
                 facts={"served": served, "replies": replies, "accepting": accepting, "burst_at": began})


def reply_times(scene: Scene, pause: float = 0.2) -> str:
    """When each client of a :func:`burst` got its reply, in one sentence:
    the moment the server began accepting, the reply times in order, and
    the longest stretch without a reply when it is longer than *pause*
    seconds (the clients on either side of it), or that none replied."""
    replies = scene.facts.get("replies") or []
    accepting = float(scene.facts.get("accepting", 0.0))
    times = sorted(t for t in replies if t is not None)
    if not times:
        return "No client got a reply."
    text = (f"The server began accepting {accepting:.2f} s after the burst; replies came at "
            f"{', '.join(f'{t:.2f}' for t in times)} s")
    gaps = [(b - a, n) for n, (a, b) in enumerate(zip(times, times[1:]), start=1)]
    longest, before = max(gaps, default=(0.0, 0))
    if longest > pause:
        text += f": {before}, then none for {longest:.2f} s, then {len(times) - before} more"
    missing = len(replies) - len(times)
    if missing:
        text += f"; {missing} client{'s' if missing > 1 else ''} got none"
    return text + "."


def _replies(socks: list[socket.socket], began: float, wait: float = 5.0) -> list[float | None]:
    """Send each client's line (a client whose SYN was dropped sends it once
    its retried SYN got through) and record, per client, the seconds from
    *began* to its reply. A client closes only after the server did (it
    reads its reply, then the end of file), so the server always closes
    first, whatever the timing. Every client is closed by the end, and the
    whole takes at most *wait* seconds."""
    replies: list[float | None] = [None] * len(socks)
    received = [b""] * len(socks)
    deadline = time.monotonic() + wait
    with selectors.DefaultSelector() as selector:
        for i, sock in enumerate(socks):
            selector.register(sock, selectors.EVENT_WRITE, i)
        while selector.get_map() and time.monotonic() < deadline:
            for key, _events in selector.select(max(0.0, min(0.05, deadline - time.monotonic()))):
                i, sock = key.data, socks[key.data]
                try:
                    if key.events == selectors.EVENT_WRITE:
                        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                            sock.send(b"hi\n")  # three bytes: never a partial send
                            selector.modify(sock, selectors.EVENT_READ, i)
                            continue
                    else:
                        data = sock.recv(16)
                        if data:
                            received[i] += data
                            if received[i] == b"hi\n":
                                replies[i] = time.monotonic() - began
                            continue  # read on, to the server's end of file
                except OSError:
                    pass
                selector.unregister(sock)
                sock.close()
    return replies


def handshake() -> Scene:
    """The three-way handshake's states, held still long enough to read them.

    On loopback ``connect()`` completes the handshake before it returns, so
    the states are seen with two tricks: a listener with ``TCP_DEFER_ACCEPT``
    keeps each connection in SYN-RECV until its client sends data; a full
    listen queue (backlog 0, one connection queued) keeps the next client in
    SYN-SENT.
    """
    title = "handshake"
    if not kernelview.available():
        return _unavailable(title)
    lines: list[str] = []
    readings: list[KernelReading] = []
    listener = socket.socket()
    clients: list[socket.socket] = []
    try:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 2)
        listener.bind((HOST, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        clients.append(socket.create_connection((HOST, port), timeout=2))
        target = _ours(port, clients)
        wait_for(lambda: kernelview.read(target).count("SYN-RECV") == 1)
        reading = kernelview.read(target)
        readings.append(reading)
        lines.append("a client connected but has sent nothing yet (TCP_DEFER_ACCEPT holds it back):")
        lines.append(f"  {reading.summary()}")
        clients[0].sendall(b"hi\n")
        wait_for(lambda: kernelview.read(target).queue == 1)
        clients.append(_connect_nonblocking((HOST, port)))
        target = _ours(port, clients)
        wait_for(lambda: kernelview.read(target).count("SYN-SENT", "client") == 1, 1.0)
        reading = kernelview.read(target)
        readings.append(reading)
        lines.append("it sends a line (now ready to accept), and a second client tries while the queue is full:")
        lines.append(f"  {reading.summary()}")
    finally:
        for sock in clients:
            sock.close()
        listener.close()
    return Scene(title, tuple(lines), tuple(readings))


class _ReplyThenWaitForEof(StreamRequestHandler):
    """Replies to one line, then waits for the client to close first."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())
        self.connection.settimeout(3)
        self.rfile.read()


def teardown(closes_first: str = "client", connections: int = 3) -> Scene:
    """*connections* one-line exchanges; then *closes_first* ("client" or "server") closes first.

    The side that sends the first FIN goes through FIN-WAIT-1/2 to TIME-WAIT
    and stays there (60 s on Linux); the other side passes CLOSE-WAIT and
    LAST-ACK and is gone at once.
    """
    if closes_first not in ("client", "server"):
        raise ValueError(f"closes_first is 'client' or 'server', not {closes_first!r}")
    title = f"teardown, {closes_first} closes first"
    if not kernelview.available():
        return _unavailable(title)
    handler = _ReplyThenWaitForEof if closes_first == "client" else _Reply
    server_class = type("Teardown", (TCPServer,), {})
    ports: list[int] = []
    with server_class((HOST, 0), handler) as server:
        with background(server, 0.05, close=False):
            for _ in range(connections):
                with socket.create_connection(server.server_address, timeout=5) as client:
                    ports.append(client.getsockname()[1])
                    client.sendall(b"hi\n")
                    client.recv(16)
                    if closes_first == "server":
                        client.recv(16)  # b"": the server's FIN came first
            wait_for(lambda: server.stats.snapshot()["completed"] == connections)
            side = "client" if closes_first == "client" else "server"
            target = _ours(server, ports)
            wait_for(lambda: kernelview.read(target).count("TIME-WAIT", side) == connections)
            reading = kernelview.read(target)
    lines = (f"{connections} exchanges, each closed first by the {closes_first}:", f"  {states(reading)}")
    return Scene(title, lines, (reading,))


class _Forgetful(TCPServer):
    """Never closes a connection: what a handler that forgets to close leaves behind."""

    forgotten: list[socket.socket]

    def shutdown_request(self, request: Any) -> None:
        self.forgotten.append(request)


def forgotten_close(connections: int = 3) -> Scene:
    """A server that never closes its connections: CLOSE-WAIT piles up on its side.

    The clients close after their reply; the kernel acknowledges each FIN
    (the client waits in FIN-WAIT-2) and the server's socket waits in
    CLOSE-WAIT for a ``close()`` that never comes, holding a descriptor each.
    """
    title = "forgotten close"
    if not kernelview.available():
        return _unavailable(title)
    ports: list[int] = []
    with _Forgetful((HOST, 0), _Reply) as server:
        server.forgotten = []
        try:
            with background(server, 0.05, close=False):
                for _ in range(connections):
                    with socket.create_connection(server.server_address, timeout=5) as client:
                        ports.append(client.getsockname()[1])
                        client.sendall(b"hi\n")
                        client.recv(16)
                target = _ours(server, ports)
                wait_for(lambda: kernelview.read(target).count("CLOSE-WAIT") == connections)
                wait_for(lambda: kernelview.read(target).count("FIN-WAIT-2", "client") == connections)
                before = kernelview.read(target)
            for request in server.forgotten:
                request.close()
            wait_for(lambda: kernelview.read(target).count("CLOSE-WAIT") == 0)
            after = kernelview.read(target)
        finally:
            for request in server.forgotten:
                request.close()
    lines = (f"{connections} clients got their reply and closed; the server never called close():",
             f"  {states(before)}",
             "the server closes them at last:",
             f"  {states(after)}")
    return Scene(title, lines, (before, after))
