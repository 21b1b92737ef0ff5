"""Instructions per request, socketserver vs sockserve, counted by callgrind.

Wall-clock time on a shared machine is noisy; the number of user-space
instructions a server executes per request is not. For each concurrency model
this script runs the same echo server twice per library, once for N1 and once
for N2 requests, under valgrind's callgrind, and reports

    Ir/req = (instructions(N2) - instructions(N1)) / (N2 - N1)

so start-up (interpreter, imports, bind) and teardown cancel out. Forked
children are counted: callgrind follows ``fork()`` and writes one file per
process (``--callgrind-out-file=...%p``), which are summed. A forked child
starts with a copy of its parent's counters, so the child's counters are
zeroed when it enters ``PyOS_AfterFork_Child`` (``--zero-before``), a C-API
function CPython calls in the child only: each child then counts exactly its
own work (the at-fork hooks, the request, its exit). The client runs in this
process, outside valgrind, one request at a time on loopback.

The workload: an echo handler written once per library (a
``StreamRequestHandler`` subclass replying to every line; a
``DatagramRequestHandler`` for datagram servers). By default the client opens
a new connection per request, sends one line, reads the reply and closes;
``--persistent`` sends every line on one connection (one socket, for
datagrams). Models that exist only in sockserve are set against the closest
standard-library model (ThreadPool* against Threading*, PreFork* against
Forking*), and the table says so.

The floor: each row also runs, under the same conditions in the same run, a
server hand-written with the ``socket`` module and no framework (``FLOOR``),
in the shape of the row's model (``FLOORS`` says which, and the output
repeats it): accept, ``recv`` a line, ``sendall`` it, close; in a new
thread per connection for threading, a forked child per connection for
forking (reaped with ``waitpid(WNOHANG)``), ``recvfrom``/``sendto`` for
datagrams, the same over AF_UNIX for Unix sockets. Pool and prefork have no
exact floor: the closest are 8 threads fed by a ``queue.SimpleQueue``, and
4 processes forked once, each blocking in ``accept()`` on the shared socket
(sockserve's prefork parent accepts and passes each connection on).

Structural costs: a ``StreamRequestHandler`` must give ``handle()`` an
``rfile`` (a buffered reader over the socket) and a ``wfile`` (a writer),
and the echo reads lines until EOF through them. Stream rows run the floor a
second time that way (``floor+streams``: ``makefile("rb")``, a writer, both
closed); the ``streams`` column is what that costs over the bare floor,
which no server honouring that contract escapes (about 44,000 Ir/req on
TCP, most of sockserve/floor).

Columns:

* ``stdlib``, ``sockserve``: Ir/req, the mean of ``--repeat`` estimates;
* ``ratio``: sockserve / stdlib (below 1.00: sockserve is leaner);
* ``floor``, ``sockserve/floor``: the floor's Ir/req and sockserve's over it;
* ``streams``: the structural cost of a stream handler's rfile/wfile (above);
* ``stats off``: sockserve with ``collect_stats = False`` on the server class,
  and ``stats cost`` the difference (statistics on minus off). "n/a" where
  the measured sockserve has no ``BaseServer.collect_stats`` yet;
* ``spread``: the largest (max - min) / mean over the repeated estimates of
  the row, i.e. how well the figure repeats;
* ``faults/req``: minor + major page faults per request of the server process
  and its reaped children (``getrusage`` self + children, the same difference
  of two runs, without valgrind), stdlib and sockserve. For forking models
  this is the page-fault cost of a fork.

Details that keep the count repeatable: ``PYTHONHASHSEED=0``; ``python -S``
(no site packages, sockserve found through ``PYTHONPATH`` = this checkout, so
the measured code is the code next to this script); byte code cached under a
private ``PYTHONPYCACHEPREFIX``, warmed by one run of each server without
valgrind before any is measured; ``serve_forever(poll_interval=3600)`` so no
idle tick is counted; the server is stopped, once idle, by SIGTERM whose
handler raises out of ``serve_forever``, then ``server_close()`` runs as
usual.

Under callgrind Python runs ~50x slower: a run takes a few seconds of CPU, a
full table some minutes. Usage::

    python benchmarks/bench_callgrind.py [--models TCPServer,ForkingTCPServer]
        [--requests 40,120] [--fork-requests 20,60] [--repeat 2]
        [--persistent] [--python PATH] [--json out.json] [--no-faults]
        [--keep DIR]

To see where the instructions go, keep the files and compare two runs, e.g.
``callgrind_annotate --inclusive=yes DIR/TCPServer-sockserve-120/callgrind.out.*``
against the ``-40`` folder (function level: lines and instructions are not
dumped, to keep the files small).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LINE = b"hello from bench_callgrind\n"
DEFAULT_MODELS = (
    "TCPServer",
    "ThreadingTCPServer",
    "ForkingTCPServer",
    "UDPServer",
    "UnixStreamServer",
    "ThreadPoolTCPServer",
    "PreForkTCPServer",
)
#: The function CPython calls in a forked child only (see the docstring).
CHILD_ENTRY = "PyOS_AfterFork_Child"
VALGRIND_ARGS = (
    "--tool=callgrind",
    f"--zero-before={CHILD_ENTRY}",
    "--dump-line=no",
    "--dump-instr=no",
)
#: Bounds: a server must print its address, stop, and answer within these.
START_TIMEOUT = 180.0
STOP_TIMEOUT = 300.0
IO_TIMEOUT = 60.0
RUN_TIMEOUT = 900.0

SERVER = textwrap.dedent(
    """
    import importlib, json, os, resource, signal, sys
    config = json.loads(sys.argv[1])
    module = importlib.import_module(config["module"])
    cls = getattr(module, config["cls"])
    if config["stats_off"]:
        cls = type(cls.__name__, (cls,), {"collect_stats": False})

    class StreamEcho(module.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(line)

    class DatagramEcho(module.DatagramRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.read())

    class Stop(BaseException):
        pass

    def stop(signum, frame):
        raise Stop

    handler = StreamEcho if config["stream"] else DatagramEcho
    address = config["address"] if isinstance(config["address"], str) else tuple(config["address"])
    server = cls(address, handler)
    signal.signal(signal.SIGTERM, stop)
    print(json.dumps(server.server_address), flush=True)
    try:
        server.serve_forever(poll_interval=3600)
    except Stop:
        pass
    server.server_close()
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    with open(config["usage"], "w") as f:
        json.dump({"faults": sum(u.ru_minflt + u.ru_majflt for u in usage)}, f)
    """
)

#: The floor: the same echo with the ``socket`` module and no framework, in
#: the shape of each model (see ``FLOORS``). It reads one line with
#: ``recv`` and sends it back, then closes: no handler object, no streams,
#: no statistics, no shutdown().
FLOOR = textwrap.dedent(
    """
    import io, json, os, resource, signal, socket, sys
    config = json.loads(sys.argv[1])
    shape, family, persistent = config["floor"], config["family"], config["persistent"]
    af = socket.AF_UNIX if family.startswith("unix") else socket.AF_INET
    stream = family in ("tcp", "unix")
    address = config["address"] if isinstance(config["address"], str) else tuple(config["address"])

    class Stop(BaseException):
        pass

    def stop(signum, frame):
        raise Stop

    class Writer(io.BufferedIOBase):
        # what wfile must be: a binary stream whose write() sends at once
        def __init__(self, sock):
            self._sock = sock

        def writable(self):
            return True

        def write(self, data):
            self._sock.sendall(data)
            return len(data)

    def echo_streams(conn):
        # StreamRequestHandler's contract: rfile a buffered reader, wfile a
        # writer, read line by line until EOF, both closed at the end.
        rfile = conn.makefile("rb", -1)
        wfile = Writer(conn)
        for line in rfile:
            wfile.write(line)
        wfile.close()
        rfile.close()
        conn.close()

    def echo(conn):
        # one line, or (--persistent) every line until the client closes
        data = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
            if data.endswith(b"\\n"):
                conn.sendall(data)
                data = b""
                if not persistent:
                    break
        conn.close()

    if config["streams"]:
        echo = echo_streams
    listener = socket.socket(af, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
    listener.bind(address)
    if stream:
        listener.listen(socket.SOMAXCONN)
    signal.signal(signal.SIGTERM, stop)
    children = []
    if shape == "prefork":
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                try:
                    while True:
                        echo(listener.accept()[0])
                except Stop:
                    pass
                os._exit(0)
            children.append(pid)
    elif shape == "pool":
        import queue, threading
        work = queue.SimpleQueue()
        def worker():
            while True:
                echo(work.get())
        for _ in range(8):
            threading.Thread(target=worker, daemon=True).start()
    elif shape == "threading":
        import threading
    print(json.dumps(listener.getsockname()), flush=True)
    try:
        while True:
            if shape == "prefork":
                signal.pause()
            elif not stream:
                data, client = listener.recvfrom(8192)
                listener.sendto(data, client)
            elif shape == "plain":
                echo(listener.accept()[0])
            elif shape == "threading":
                threading.Thread(target=echo, args=(listener.accept()[0],), daemon=True).start()
            elif shape == "pool":
                work.put(listener.accept()[0])
            elif shape == "forking":
                conn = listener.accept()[0]
                pid = os.fork()
                if pid == 0:
                    echo(conn)
                    os._exit(0)
                conn.close()
                try:
                    while os.waitpid(-1, os.WNOHANG)[0]:
                        pass
                except ChildProcessError:
                    pass
    except Stop:
        pass
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)
    if shape == "forking":
        try:
            while os.wait():
                pass
        except ChildProcessError:
            pass
    listener.close()
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    with open(config["usage"], "w") as f:
        json.dump({"faults": sum(u.ru_minflt + u.ru_majflt for u in usage)}, f)
    """
)


# -- models -----------------------------------------------------------------

#: The floor's two variants, run as a third and fourth "library": the bare
#: echo, and (stream models) the echo through the streams that
#: StreamRequestHandler must give its ``handle()``.
FLOOR_LIB = "floor"
FLOOR_STREAMS = "floor+streams"
#: What each floor is (the closest hand-written server to a model).
FLOORS = {
    "plain": "accept, recv a line, sendall, close, in one thread (datagrams: recvfrom, sendto)",
    "threading": "the same in a new threading.Thread per connection",
    "forking": "the same in a forked child per connection (os.fork, os._exit; reaped with waitpid WNOHANG)",
    "pool": "8 threads taking the accepted connections from a queue.SimpleQueue (closest to ThreadPool*)",
    "prefork": "4 processes forked once, each blocking in accept() on the shared socket "
               "(closest to PreFork*, whose parent accepts and passes each connection to a worker)",
}


@dataclass(frozen=True)
class Model:
    """One row: a sockserve class and the standard-library class it is set against."""

    name: str
    stdlib: str
    family: str  # "tcp", "udp", "unix", "unixdgram"

    @property
    def stream(self) -> bool:
        return self.family in ("tcp", "unix")

    @property
    def floor(self) -> str:
        """The shape of this row's floor (a key of ``FLOORS``)."""
        for part, shape in (("ThreadPool", "pool"), ("PreFork", "prefork"), ("Threading", "threading"),
                            ("Forking", "forking")):
            if part in self.name:
                return shape
        return "plain"

    @property
    def label(self) -> str:
        return self.name if self.stdlib == self.name else f"{self.name} (vs {self.stdlib})"


def model(name: str) -> Model:
    """The row for sockserve class *name*; its stdlib counterpart by name."""
    import socketserver

    import sockserve

    stdlib = name
    if not hasattr(socketserver, stdlib):
        stdlib = name.replace("ThreadPool", "Threading").replace("PreFork", "Forking")
    if not hasattr(socketserver, stdlib):
        raise SystemExit(f"{name}: no such class in socketserver, nor a counterpart")
    if not hasattr(sockserve, name):
        raise SystemExit(f"{name}: no such class in sockserve")
    if "UnixDatagram" in name:
        family = "unixdgram"
    elif "UnixStream" in name:
        family = "unix"
    elif "UDP" in name:
        family = "udp"
    else:
        family = "tcp"
    return Model(name, stdlib, family)


# -- one server run -----------------------------------------------------------


@dataclass
class Run:
    """What one server run measured: instructions (None without valgrind)
    and page faults (None under valgrind)."""

    requests: int
    instructions: int | None = None
    faults: int | None = None


def callgrind_total(directory: Path) -> int:
    """The sum of the ``summary:`` lines of every callgrind output file in
    *directory* (one file per process).

    ``summary:`` is the cost the file holds. A forked child's ``totals:``
    line (and valgrind's "Collected") also counts part of what
    ``--zero-before`` zeroed, so it is not used.
    """
    total = 0
    files = sorted(directory.glob("callgrind.out.*"))
    if not files:
        raise RuntimeError(f"no callgrind output in {directory}")
    for path in files:
        with path.open(errors="replace") as f:
            found = next((int(line.split()[1]) for line in f if line.startswith("summary:")), None)
        if found is None:
            raise RuntimeError(f"{path}: no summary line")
        total += found
    return total


def real_python(python: str) -> str:
    """The interpreter binary itself (valgrind cannot follow a shell shim)."""
    with open(python, "rb") as f:
        if f.read(2) != b"#!":
            return python
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


def server_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        PYTHONPATH=str(REPO),
        PYTHONHASHSEED="0",
        PYTHONPYCACHEPREFIX=str(cache),
        PYTHONUNBUFFERED="1",
    )
    return env


def has_collect_stats(python: str, cache: Path) -> bool:
    """Does the measured sockserve offer ``BaseServer.collect_stats``?"""
    code = "import sockserve, sys; sys.exit(0 if hasattr(sockserve.BaseServer, 'collect_stats') else 3)"
    done = subprocess.run([python, "-S", "-c", code], env=server_env(cache), timeout=60)
    return done.returncode == 0


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            raise RuntimeError("the server did not print its address")
        if select.select([fd], [], [], min(left, 0.5))[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("the server exited before printing its address")
            data += chunk
    return data


def _cpu_ticks(pid: int) -> tuple[int, bool]:
    """(utime + stime of *pid*, all its threads asleep)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    asleep = True
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("S", "D"):
                    asleep = False
    return int(fields[11]) + int(fields[12]), asleep


def wait_idle(pid: int, limit: float = 30.0) -> None:
    """Wait (at most *limit* s) until *pid* spends no CPU and sleeps, so the
    stop signal never lands inside the last request."""
    deadline = time.monotonic() + limit
    previous = None
    while time.monotonic() < deadline:
        try:
            ticks, asleep = _cpu_ticks(pid)
        except OSError:
            return
        if asleep and ticks == previous:
            return
        previous = ticks
        time.sleep(0.1)


def drive(family: str, address: Any, requests: int, persistent: bool, workdir: Path) -> None:
    """Send *requests* echo requests one after another; check every reply."""
    deadline = time.monotonic() + RUN_TIMEOUT
    stream = family in ("tcp", "unix")
    af = socket.AF_UNIX if family.startswith("unix") else socket.AF_INET
    kind = socket.SOCK_STREAM if stream else socket.SOCK_DGRAM
    if not isinstance(address, str):
        address = tuple(address)
    client_path = str(workdir / "client.sock")

    def connect() -> socket.socket:
        sock = socket.socket(af, kind)
        sock.settimeout(IO_TIMEOUT)
        if family == "unixdgram":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(client_path)
            sock.bind(client_path)
        if stream:
            sock.connect(address)
        return sock

    def one(sock: socket.socket) -> None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"client gave up after {RUN_TIMEOUT:.0f} s")
        if stream:
            sock.sendall(LINE)
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        else:
            sock.sendto(LINE, address)
            reply = sock.recv(4096)
        if reply != LINE:
            raise RuntimeError(f"bad echo: {reply!r}")

    if persistent:
        with connect() as sock:
            for _ in range(requests):
                one(sock)
    else:
        for _ in range(requests):
            with connect() as sock:
                one(sock)


def run_server(
    python: str,
    library: str,
    row: Model,
    requests: int,
    *,
    valgrind: bool,
    stats_off: bool = False,
    persistent: bool = False,
    cache: Path,
    keep: Path | None = None,
) -> Run:
    """Start one server (under callgrind if *valgrind*), drive *requests*
    through it, stop it, and return what it measured."""
    workdir = Path(tempfile.mkdtemp(prefix="ss-cg-", dir="/tmp"))
    try:
        family = row.family
        if family.startswith("unix"):
            address: Any = str(workdir / "server.sock")
        else:
            address = ["127.0.0.1", 0]
        config = {
            "module": library,
            "cls": {"socketserver": row.stdlib, "sockserve": row.name}.get(library, library),
            "floor": row.floor,
            "family": family,
            "streams": library == FLOOR_STREAMS,
            "persistent": persistent,
            "stats_off": stats_off,
            "stream": row.stream,
            "address": address,
            "usage": str(workdir / "usage.json"),
        }
        script = SERVER if library in ("socketserver", "sockserve") else FLOOR
        command = [python, "-S", "-c", script, json.dumps(config)]
        if valgrind:
            command = [
                "valgrind",
                *VALGRIND_ARGS,
                f"--callgrind-out-file={workdir}/callgrind.out.%p",
                f"--log-file={workdir}/valgrind.%p.log",
                *command,
            ]
        stderr = open(workdir / "stderr.txt", "wb")
        # In the run's own folder: ``python -c`` puts the working directory
        # first on sys.path, so a ``sockserve`` folder there would shadow
        # PYTHONPATH's, and a crowded one (/tmp) makes start-up cost vary.
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, env=server_env(cache), start_new_session=True,
            cwd=workdir,
        )
        try:
            bound = json.loads(_read_line(proc, time.monotonic() + START_TIMEOUT))
            drive(family, bound, requests, persistent, workdir)
            wait_idle(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(STOP_TIMEOUT)
        finally:
            if proc.poll() is None:
                # Our child leads its own session: its group id is its PID.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
            stderr.close()
            assert proc.stdout is not None
            proc.stdout.close()
        if proc.returncode != 0:
            tail = (workdir / "stderr.txt").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{library} {config['cls']} exited with {proc.returncode}:\n{tail}")
        run = Run(requests)
        if valgrind:
            run.instructions = callgrind_total(workdir)
            if keep is not None:
                off = "-statsoff" if stats_off else ""
                target = keep / f"{row.name}-{library}{off}-{requests}"
                suffix = 2
                while target.exists():
                    target, suffix = target.with_name(f"{target.name.split('~')[0]}~{suffix}"), suffix + 1
                target.mkdir(parents=True)
                for path in workdir.glob("callgrind.out.*"):
                    shutil.copy(path, target)
        else:
            run.faults = int(json.loads((workdir / "usage.json").read_text())["faults"])
        return run
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def per_request(small: Run, large: Run, attribute: str) -> float:
    """The per-request slope of *attribute* between two runs."""
    if large.requests <= small.requests:
        raise ValueError("the second run must serve more requests")
    a, b = getattr(small, attribute), getattr(large, attribute)
    return float(b - a) / (large.requests - small.requests)


# -- the table ----------------------------------------------------------------


@dataclass
class Row:
    model: str
    stdlib_model: str
    requests: tuple[int, int]
    stdlib_ir: list[float] = field(default_factory=list)
    sockserve_ir: list[float] = field(default_factory=list)
    stats_off_ir: list[float] | None = None
    stdlib_faults: list[float] = field(default_factory=list)
    sockserve_faults: list[float] = field(default_factory=list)
    floor: str = "plain"
    floor_ir: list[float] = field(default_factory=list)
    streams_ir: list[float] | None = None  # the floor with rfile/wfile (stream models)

    def ratio(self) -> float | None:
        if not self.stdlib_ir or not self.sockserve_ir:
            return None
        return statistics.fmean(self.sockserve_ir) / statistics.fmean(self.stdlib_ir)

    def over_floor(self) -> float | None:
        if not self.floor_ir or not self.sockserve_ir:
            return None
        return statistics.fmean(self.sockserve_ir) / statistics.fmean(self.floor_ir)

    def structural(self) -> float | None:
        """What the handler's streams cost over the bare floor (Ir/req)."""
        if not self.streams_ir or not self.floor_ir:
            return None
        return statistics.fmean(self.streams_ir) - statistics.fmean(self.floor_ir)

    def spread(self) -> float:
        """Largest relative spread (max - min) / mean among the Ir estimates."""
        worst = 0.0
        for values in (self.stdlib_ir, self.sockserve_ir, self.stats_off_ir or [], self.floor_ir,
                       self.streams_ir or []):
            if len(values) > 1 and statistics.fmean(values):
                worst = max(worst, (max(values) - min(values)) / abs(statistics.fmean(values)))
        return worst


def _mean(values: Sequence[float] | None) -> float | None:
    return statistics.fmean(values) if values else None


def measure(
    row: Model,
    python: str,
    requests: tuple[int, int],
    *,
    repeat: int,
    stats_off: bool,
    faults: bool,
    fault_requests: tuple[int, int],
    persistent: bool,
    cache: Path,
    valgrind: bool = True,
    keep: Path | None = None,
    log: Any = None,
) -> Row:
    """Every figure of one row."""
    result = Row(row.name, row.stdlib, requests, stats_off_ir=[] if stats_off else None, floor=row.floor,
                 streams_ir=[] if row.stream else None)

    def note(text: str) -> None:
        if log is not None:
            print(text, file=log, flush=True)

    def slope(library: str, counts: tuple[int, int], under_valgrind: bool, off: bool = False) -> float:
        runs = [
            run_server(python, library, row, n, valgrind=under_valgrind, stats_off=off,
                       persistent=persistent, cache=cache, keep=keep if under_valgrind else None)
            for n in counts
        ]
        return per_request(runs[0], runs[1], "instructions" if under_valgrind else "faults")

    for library in ("socketserver", "sockserve", FLOOR_LIB):  # compile and cache the byte code once
        run_server(python, library, row, 1, valgrind=False, persistent=persistent, cache=cache)
    if faults:
        for _ in range(repeat):
            result.stdlib_faults.append(slope("socketserver", fault_requests, False))
            result.sockserve_faults.append(slope("sockserve", fault_requests, False))
        note(f"  {row.name}: faults/req stdlib {result.stdlib_faults} sockserve {result.sockserve_faults}")
    if valgrind:
        for _ in range(repeat):
            result.stdlib_ir.append(slope("socketserver", requests, True))
            result.sockserve_ir.append(slope("sockserve", requests, True))
            if result.stats_off_ir is not None:
                result.stats_off_ir.append(slope("sockserve", requests, True, off=True))
            result.floor_ir.append(slope(FLOOR_LIB, requests, True))
            if result.streams_ir is not None:
                result.streams_ir.append(slope(FLOOR_STREAMS, requests, True))
            note(f"  {row.name}: Ir/req stdlib {result.stdlib_ir} sockserve {result.sockserve_ir}"
                 f" stats-off {result.stats_off_ir} floor {result.floor_ir} floor+streams {result.streams_ir}")
    return result


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


def table(rows: list[Row]) -> str:
    head = ("model", "stdlib Ir/req", "sockserve Ir/req", "ratio", "floor Ir/req", "sockserve/floor",
            "streams", "stats off Ir/req", "stats cost", "spread", "faults/req stdlib", "faults/req sockserve")
    lines = []
    for r in rows:
        on, off = _mean(r.sockserve_ir), _mean(r.stats_off_ir)
        cost = on - off if on is not None and off is not None else None
        label = r.model if r.model == r.stdlib_model else f"{r.model} (vs {r.stdlib_model})"
        lines.append((
            label, _fmt(_mean(r.stdlib_ir)), _fmt(on), _fmt(r.ratio(), ".2f"), _fmt(_mean(r.floor_ir)),
            _fmt(r.over_floor(), ".2f"), _fmt(r.structural()), _fmt(off), _fmt(cost),
            f"{r.spread():.2%}", _fmt(_mean(r.stdlib_faults), ".1f"), _fmt(_mean(r.sockserve_faults), ".1f"),
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    out = [" | ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    out.append("-+-".join("-" * w for w in widths))
    for line in lines:
        out.append(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
    return "\n".join(out)


def _pair(text: str) -> tuple[int, int]:
    parts = [int(x) for x in text.split(",")]
    if len(parts) != 2 or not 0 <= parts[0] < parts[1]:
        raise argparse.ArgumentTypeError("give two request counts N1,N2 with 0 <= N1 < N2")
    return parts[0], parts[1]


@contextlib.contextmanager
def byte_code_cache() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ss-cg-pyc-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="sockserve class names, comma-separated (default: %(default)s)")
    parser.add_argument("--requests", type=_pair, default=(40, 120), help="N1,N2 under callgrind (default 40,120)")
    parser.add_argument("--fork-requests", type=_pair, default=(20, 60),
                        help="N1,N2 under callgrind for models that fork per request (default 20,60)")
    parser.add_argument("--fault-requests", type=_pair, default=(100, 400),
                        help="N1,N2 for the page-fault runs, no valgrind (default 100,400)")
    parser.add_argument("--repeat", type=int, default=2, help="estimates per figure, for the spread (default 2)")
    parser.add_argument("--persistent", action="store_true", help="every request on one connection")
    parser.add_argument("--python", default=sys.executable, help="interpreter running the servers")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--no-faults", action="store_true", help="skip the page-fault runs")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="keep the callgrind files, one folder per run (for callgrind_annotate)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if shutil.which("valgrind") is None:
        parser.error("valgrind not found (Debian: apt-get install valgrind)")
    rows = [model(name) for name in args.models.split(",") if name]
    python = real_python(args.python)
    started = time.monotonic()
    results = []
    with byte_code_cache() as cache:
        stats_off = has_collect_stats(python, cache)
        version = subprocess.run([python, "-S", "-c", "import sys; print(sys.version.split()[0])"],
                                 capture_output=True, text=True, timeout=60).stdout.strip()
        print(f"Python {version} ({python}); load average at start {os.getloadavg()[0]:.2f}", file=sys.stderr)
        for row in rows:
            forks = "Forking" in row.name
            results.append(measure(
                row, python, args.fork_requests if forks else args.requests, repeat=args.repeat,
                stats_off=stats_off, faults=not args.no_faults, fault_requests=args.fault_requests,
                persistent=args.persistent, cache=cache, keep=args.keep, log=sys.stderr,
            ))
    mode = "persistent connection" if args.persistent else "new connection per request"
    print(f"echo, {mode}, server user-space instructions per request (callgrind, children included), "
          f"Python {version}, {platform.machine()}")
    print(f"requests N1,N2 = {args.requests[0]},{args.requests[1]} "
          f"(forking per request: {args.fork_requests[0]},{args.fork_requests[1]}), {args.repeat} estimates each; "
          f"page faults from {args.fault_requests[0]},{args.fault_requests[1]} requests without valgrind")
    print(table(results))
    print("floor: the same echo hand-written with the socket module, no framework, measured in this run:")
    for shape in dict.fromkeys(r.floor for r in results):
        print(f"  {shape}: {FLOORS[shape]}")
    streams = [r for r in results if r.structural() is not None]
    if streams:
        print("streams: structural, what any StreamRequestHandler pays: the floor's echo through an rfile made "
              "by makefile('rb') (a BufferedReader over a SocketIO, read line by line to EOF) and a writer "
              "wfile, both closed; Ir/req over the bare floor: "
              + ", ".join(f"{r.model} {r.structural():,.0f}" for r in streams))
    if not stats_off:
        print("stats off: n/a (this sockserve has no BaseServer.collect_stats)")
    print(f"took {time.monotonic() - started:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        payload = {
            "python": version,
            "machine": platform.machine(),
            "mode": mode,
            "requests": list(args.requests),
            "fork_requests": list(args.fork_requests),
            "fault_requests": list(args.fault_requests),
            "repeat": args.repeat,
            "stats_off_supported": stats_off,
            "rows": [dict(asdict(r), ratio=r.ratio(), spread=r.spread()) for r in results],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
