"""Small, bounded helpers the workbook's lessons call.

Each function starts servers only on 127.0.0.1 (or in a temporary
directory), bounds every wait, and cleans up; the notebooks stay short and
the logic stays here, where it is tested (``tests/test_workbook.py``).

* :func:`background` runs ``serve_forever`` in a thread for a ``with`` block;
  :func:`wait_for` waits, bounded, until something is true.
* :func:`ask` / :func:`ask_datagram` talk to a server: lines over one
  stream connection, or one datagram.
* :func:`time_wait_sockets` counts TCP sockets in TIME_WAIT on a port (Linux,
  from ``/proc/net/tcp``); :func:`leave_time_wait` makes some, and returns
  the port as a :class:`ServedPort`, whose own connections alone are then
  counted.
* :func:`shutdown_latency` times ``shutdown()`` of any TCPServer-like class
  (these three live in :mod:`.shutdowns`).
* :func:`close_timing` and :func:`exit_with_handler_running` show what
  ``block_on_close`` and ``daemon_threads`` do.
* :func:`shutdown_latencies` measures ``shutdown()`` for several classes and
  poll intervals; :func:`plot_shutdown_latencies` draws the result,
  :func:`describe_shutdown_latencies` says it in one sentence and
  :func:`shutdown_sentences` what it shows.
* :func:`fork_cost` times ``fork()`` of this process and of a fresh Python.
* :func:`show` displays a matplotlib figure once and closes it, so that no
  later cell shows it again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.handlers import DatagramRequestHandler, StreamRequestHandler
from ..core.servers import TCPServer
from ..kernel import view as kernelview
from ..measure.serverprocess import child_environment
from .shutdowns import (
    describe_shutdown_latencies,
    plot_shutdown_latencies,
    shutdown_latencies,
    shutdown_latency,
    shutdown_sentences,
)

__all__ = [
    "background",
    "ask",
    "ask_datagram",
    "time_wait_sockets",
    "leave_time_wait",
    "ServedPort",
    "shutdown_latency",
    "CloseTiming",
    "close_timing",
    "exit_with_handler_running",
    "round_trip_seconds",
    "drain_demo",
    "where_handled",
    "wait_for",
    "lines",
    "show",
    "shutdown_latencies",
    "plot_shutdown_latencies",
    "describe_shutdown_latencies",
    "shutdown_sentences",
    "ForkCost",
    "fork_cost",
]

HOST = "127.0.0.1"


@contextlib.contextmanager
def background(server: Any, poll_interval: float = 0.5, *, close: bool = True) -> Iterator[Any]:
    """Serve *server* in a thread while the block runs; then ``shutdown()``,
    join the thread and ``server_close()``, whatever happened in the block.
    With *close* false the server stays open (not serving), for a caller
    that still reads its socket and closes it later."""
    thread = threading.Thread(
        target=server.serve_forever, args=(poll_interval,), name="workbook server", daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(10)
        if close:
            server.server_close()


def _family(address: Any) -> int:
    if isinstance(address, (str, bytes, os.PathLike)):
        return socket.AF_UNIX
    return socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET


def ask(address: Any, *lines: bytes, timeout: float = 5.0, pause: float = 0.0) -> list[bytes]:
    """Send *lines* (bytes, each normally ending in ``b"\\n"``) on one stream
    connection, then close our side and return every reply line the server
    wrote before it closed. With *pause*, each chunk is sent separately that
    many seconds apart (to show that TCP does not keep message boundaries)."""
    with socket.socket(_family(address), socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        for chunk in lines:
            sock.sendall(chunk)
            if pause:
                time.sleep(pause)
        sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as replies:
            return replies.readlines()


def ask_datagram(
    address: Any, payload: bytes, *, timeout: float = 5.0, client_path: str | None = None
) -> bytes:
    """Send one datagram and return the one that comes back.

    A Unix datagram server can only answer a client whose socket has a path,
    so for a Unix *address* give *client_path* (removed afterwards)."""
    family = _family(address)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        if family == socket.AF_UNIX:
            if client_path is None:
                raise ValueError("a Unix datagram client needs a client_path to get replies")
            sock.bind(client_path)
        try:
            sock.sendto(payload, address)
            return sock.recv(65536)
        finally:
            if client_path is not None and family == socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    os.unlink(client_path)


class ServedPort(int):
    """A port number (it is an ``int``) that also names the connections a
    server had on it: ``clients``, the port numbers of their client ends
    (what :func:`leave_time_wait` returns)."""

    clients: frozenset[int]

    def __new__(cls, port: int, clients: Iterable[int] = ()) -> ServedPort:
        served = super().__new__(cls, port)
        served.clients = frozenset(clients)
        return served


def time_wait_sockets(port: int) -> int:
    """How many TCP sockets with local port *port* are in TIME_WAIT (Linux,
    read from ``/proc/net/tcp`` and ``tcp6``).

    For a :class:`ServedPort` (what :func:`leave_time_wait` returns), only
    the server's side of its own connections: on a busy machine other
    programs use the same port number too (a client whose own port it
    happens to be, an earlier server's connections on it still waiting)."""
    peers = port.clients if isinstance(port, ServedPort) else None
    try:
        reading = kernelview.read(kernelview.Target(port=int(port), peers=peers))
    except kernelview.KernelViewUnavailable:
        return 0
    return reading.count("TIME-WAIT")


class _ReplyOnce(StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def leave_time_wait(connections: int = 3, server_class: type = TCPServer) -> ServedPort:
    """Serve *connections* one-line requests on a fresh port and close the
    server. The server closed each connection first, so its side of each
    stays in TIME_WAIT (about a minute on Linux). Returns the port, as a
    :class:`ServedPort` that knows the connections' client ports."""
    server = server_class((HOST, 0), _ReplyOnce)
    port: int = server.server_address[1]
    clients: list[int] = []
    with background(server, poll_interval=0.05):
        for i in range(connections):
            with socket.create_connection(server.server_address, timeout=5) as client:
                clients.append(client.getsockname()[1])
                client.sendall(f"hello {i}\n".encode())
                # Read to EOF before closing: the server closes first, so
                # the TIME_WAIT is on its side (its port), not the client's.
                while client.recv(1024):
                    pass
    return ServedPort(port, clients)


@dataclass(frozen=True)
class CloseTiming:
    """What ``server_close()`` did while a handler was still running."""

    close_seconds: float
    handler_done_at_close: bool
    handler_thread_daemon: bool


def close_timing(server_class: type, handler_seconds: float = 0.5) -> CloseTiming:
    """Start a request whose handler sleeps *handler_seconds*, then call
    ``shutdown()`` and ``server_close()`` at once and time the close.
    Waits for the handler to end before returning, so nothing is left over."""
    started = threading.Event()
    done = threading.Event()
    daemon: list[bool] = []

    class Sleepy(StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            daemon.append(threading.current_thread().daemon)
            started.set()
            time.sleep(handler_seconds)
            self.wfile.write(b"done\n")
            done.set()

    server = server_class((HOST, 0), Sleepy)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    client = socket.create_connection(server.server_address, timeout=handler_seconds + 5)
    try:
        client.sendall(b"go\n")
        if not started.wait(5):
            raise RuntimeError("the handler did not start within 5 s")
        server.shutdown()
        thread.join(5)
        began = time.perf_counter()
        server.server_close()
        close_seconds = time.perf_counter() - began
        finished_at_close = done.is_set()
        done.wait(handler_seconds + 5)
        client.recv(64)
    finally:
        client.close()
    return CloseTiming(close_seconds, finished_at_close, bool(daemon and daemon[0]))


_EXIT_SCRIPT = """
import pathlib, socket, sys, threading, time
import sockserve

marker = pathlib.Path(sys.argv[1])
started = threading.Event()

class Slow(sockserve.StreamRequestHandler):
    def handle(self):
        started.set()
        time.sleep(float(sys.argv[3]))
        marker.write_text("the handler finished")

class Server(sockserve.ThreadingTCPServer):
    daemon_threads = sys.argv[2] == "True"

server = Server(("127.0.0.1", 0), Slow)
threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
client = socket.create_connection(server.server_address)
client.sendall(b"go\\n")
started.wait(5)
print("main thread ends while the handler runs", flush=True)
# no shutdown(), no server_close(): the interpreter simply reaches its end
"""


def exit_with_handler_running(daemon_threads: bool, handler_seconds: float = 0.5) -> str:
    """Run a Python process whose main thread ends while a handler thread is
    busy, with ``daemon_threads`` as given, and say what happened to the
    handler: it finished (the interpreter waited for it) or it was killed."""
    with tempfile.TemporaryDirectory(prefix="ssw-") as tmp:
        marker = os.path.join(tmp, "finished")
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_EXIT_SCRIPT), marker,
             str(daemon_threads), str(handler_seconds)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp,  # nothing in the caller's folder shadows a module
            env=child_environment(),  # this sockserve, installed or a source tree
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the demo process failed: {proc.stderr.strip()}")
        finished = os.path.exists(marker)
    if finished:
        return "the interpreter waited: the handler finished before the process exited"
    return "the interpreter did not wait: the handler thread was killed mid-request"


def round_trip_seconds(address: Any, count: int = 500, timeout: float = 5.0) -> float:
    """Median seconds for one line to go to an echoing stream server and
    back, over *count* round trips on one connection (bounded: at most
    *count* lines, each waiting at most *timeout*)."""
    took: list[float] = []
    with socket.socket(_family(address), socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        with sock.makefile("rb") as replies:
            for _ in range(count):
                began = time.perf_counter()
                sock.sendall(b"ping\n")
                if not replies.readline():
                    raise ConnectionError("the server closed the connection")
                took.append(time.perf_counter() - began)
    took.sort()
    return took[len(took) // 2]


def drain_demo(
    server_class: type, quick: int = 3, stuck: int = 1, timeout: float = 0.5, work: float = 0.2
) -> tuple[Any, list[bytes]]:
    """(Thread-based servers.) Start *quick* requests that take *work* seconds and *stuck* ones that
    wait for a line that never comes, then ``drain(timeout)`` and close.

    Returns the DrainReport and what each client received (the quick ones
    their reply, the stuck ones b"" when their connection was cut)."""
    started = threading.Semaphore(0)

    class Work(StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            started.release()
            if line == b"stuck\n":
                self.rfile.readline()  # the client never sends it
            else:
                time.sleep(work)
            self.wfile.write(b"done " + line)

    server = server_class((HOST, 0), Work)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    clients = [socket.create_connection(server.server_address, timeout=10) for _ in range(quick + stuck)]
    try:
        for i, sock in enumerate(clients):
            sock.sendall(b"quick\n" if i < quick else b"stuck\n")
        for _ in clients:
            if not started.acquire(timeout=5):
                raise RuntimeError("a request did not start within 5 s")
        report = server.drain(timeout)
        thread.join(5)
        server.server_close()
        received = []
        for sock in clients:
            with sock.makefile("rb") as reader:
                received.append(reader.read())
    finally:
        for sock in clients:
            sock.close()
    return report, received


def where_handled(server_class: type) -> str:
    """Serve one request with *server_class* and say where its handler ran:
    in the serving thread or another, in the server's process or a child."""
    stream = getattr(server_class, "socket_type", None) == socket.SOCK_STREAM
    base: type = StreamRequestHandler if stream else DatagramRequestHandler

    class Where(base):  # type: ignore[misc]
        def handle(self) -> None:
            # Read the request first: closing with unread data would reset
            # the connection under the client.
            self.rfile.readline()
            self.wfile.write(f"{os.getpid()} {threading.get_ident()}\n".encode())

    server = server_class((HOST, 0), Where)
    idents: list[int] = []

    def serve() -> None:
        idents.append(threading.get_ident())
        server.serve_forever(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        if stream:
            reply = ask(server.server_address, b"where?\n")[0]
        else:
            reply = ask_datagram(server.server_address, b"where?")
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
    pid, ident = (int(x) for x in reply.split())
    same_process = pid == os.getpid()
    where_thread = "the serving thread" if same_process and ident == idents[0] else (
        "a new thread" if same_process else "the child's only thread")
    where_process = "the server's process" if same_process else "a child process"
    return f"handle() ran in {where_thread}, in {where_process}"


def wait_for(predicate: Callable[[], bool], seconds: float = 3.0) -> bool:
    """Poll *predicate* every 10 ms for up to *seconds*; its last value."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def lines(replies: Sequence[bytes]) -> str:
    """Reply lines as text, one per line (for printing)."""
    return "\n".join(r.decode(errors="replace").rstrip("\n") for r in replies)


def show(figure: Any, description: str = "") -> None:
    """Display *figure* (a matplotlib Figure, or an Axes of one) in the
    notebook once, then close it: an open figure would be shown again by the
    next cell that draws with pyplot. Lessons make figures under
    ``plt.ioff()`` and show them with this. *description*, the figure's
    text alternative (a ``describe_*`` function of the module that drew
    it), is printed right under it."""
    import matplotlib.pyplot as plt  # matplotlib is optional: imported when drawing
    from IPython.display import display  # IPython is optional (a notebook has it): imported on use

    fig = getattr(figure, "figure", figure)
    display(fig)  # type: ignore[no-untyped-call]
    plt.close(fig)
    if description:
        print(description)


@dataclass(frozen=True)
class ForkCost:
    """What one ``fork()`` (plus the child's exit and its reaping) costs:
    ``here`` in this process, ``fresh`` in a new, small Python process;
    each with that process's resident memory in MiB."""

    here_s: float
    here_mib: float
    fresh_s: float
    fresh_mib: float

    @property
    def ratio(self) -> float:
        return self.here_s / self.fresh_s if self.fresh_s else float("inf")


def _resident_mib() -> float:
    """This process's resident memory (MiB), from /proc; 0 where there is none."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _fork_seconds(count: int) -> float:
    """Median seconds of ``fork()`` + the child's ``_exit`` + ``waitpid``."""
    took: list[float] = []
    with warnings.catch_warnings():
        # fork() in a process with threads (a Jupyter kernel has some) warns; the
        # child here only exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        for _ in range(count):
            began = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            took.append(time.perf_counter() - began)
    took.sort()
    return took[len(took) // 2]


def fork_cost(count: int = 20) -> ForkCost:
    """Time *count* forks of this process and of a fresh Python started for
    the purpose (bounded: a few hundred milliseconds). fork() copies the
    process's page tables, so a large process (a Jupyter kernel with
    matplotlib and widgets loaded) forks more slowly than a small one."""
    here = _fork_seconds(count)
    mib = _resident_mib()
    code = (f"from sockserve.workbook.helpers import _fork_seconds, _resident_mib; "
            f"print(_fork_seconds({count}), _resident_mib())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    fresh, fresh_mib = (float(x) for x in out.stdout.split())
    return ForkCost(here, mib, fresh, fresh_mib)
