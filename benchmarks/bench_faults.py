"""Issue 24's attacks, replayed against the standard library and sockserve side by side.

One line per attack and implementation: what was sent and answered, the
server's own counts (sockserve: completed/errors/timeouts/other, and the
requests missing from them), the time it took, and what was left behind
(descriptors and threads of this process beyond the start, zombie children,
files). The standard library has no deadline, pool or prefork: where an
attack needs one, its line says "n/a".

    python benchmarks/bench_faults.py [--only NAME ...] [--scale 1.0]

Loopback only (stderr silenced unless --verbose); every attack is bounded in count and time (a few seconds
each; --scale multiplies the request counts). Run by hand, not by the tests:
``tests/test_faults.py`` holds the pass/fail version of each attack. The
figures depend on the machine's load: print ``uptime`` beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import sockserve

# The attacks' clients are the ones tests/test_faults.py uses (one copy).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from test_faults import (  # type: ignore[import-not-found]  # noqa: E402
    ExitsAsTold,
    Fails,
    RunsOutOfDescriptors,
    ask,
    burst,
    thread_starts_fail_from,
    zombies_of,
)

X = b"x\n"
FINAL = ("completed", "errors", "disconnects", "timeouts", "aborted", "overflows", "rejected")


# -- helpers --------------------------------------------------------------------------


def children_of_self() -> set[int]:
    found: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{os.getpid()}/task/{task}/children") as f:
            found |= {int(pid) for pid in f.read().split()}
    return found


def zombies() -> int:
    return int(zombies_of(os.getpid()))


def counts(server: Any) -> str:
    stats = getattr(server, "stats", None)
    if stats is None:
        return "no counts (stdlib)"
    snap = stats.snapshot()
    other = {k: snap[k] for k in ("disconnects", "aborted", "overflows", "rejected") if snap[k]}
    missing = snap["accepted"] - sum(snap[k] for k in FINAL) - snap["active"]
    text = f"accepted {snap['accepted']}: ok {snap['completed']} err {snap['errors']} to {snap['timeouts']}"
    if other:
        text += " " + " ".join(f"{k} {v}" for k, v in other.items())
    return text + f", missing {missing}, active {snap['active']}"


class Loop:
    """serve_forever in a daemon thread; an exception that ends it is kept."""

    def __init__(self, server: Any, poll_interval: float = 0.5) -> None:
        self.server = server
        self.raised: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(poll_interval,), daemon=True)
        self.thread.start()
        time.sleep(0.05)

    def _run(self, poll_interval: float) -> None:
        try:
            self.server.serve_forever(poll_interval=poll_interval)
        except BaseException as exc:
            self.raised.append(exc)

    def stop(self) -> str:
        if self.thread.is_alive():
            stopper = threading.Thread(target=self.server.shutdown, daemon=True)
            stopper.start()
            stopper.join(5)
        self.thread.join(5)
        closer = threading.Thread(target=self.server.server_close, daemon=True)
        closer.start()
        closer.join(10)
        return f"loop died: {type(self.raised[0]).__name__}" if self.raised else ""


@contextlib.contextmanager
def leftovers(note: list[str], held: int = 0) -> Iterator[None]:
    """Descriptors and threads added (and zombies left) by the block; *held*:
    descriptors open at its start that it closes (the server's socket)."""
    fds, threads = len(os.listdir("/proc/self/fd")) - held, threading.active_count()
    yield
    time.sleep(0.3)
    extra_fds = len(os.listdir("/proc/self/fd")) - fds
    extra_threads = threading.active_count() - threads
    note.append(f"left: fds {extra_fds:+d} threads {extra_threads:+d} zombies {zombies()}")


def reap_all() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


Row = tuple[str, str, str, str, float, str]
ROWS: list[Row] = []


def row(attack: str, impl: str, sent: str, server_counts: str, seconds: float, left: str) -> None:
    ROWS.append((attack, impl, sent, server_counts, seconds, left))
    print(f"{attack:<22} {impl:<9} {sent:<22} {server_counts:<62} {seconds:6.2f} s  {left}", flush=True)


def cls(module: Any, name: str, **attrs: Any) -> Any:
    return type(name, (getattr(module, name),), attrs)


class Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class Slow(socketserver.StreamRequestHandler):
    delay = 0.1

    def handle(self) -> None:
        line = self.rfile.readline()
        time.sleep(self.delay)
        self.wfile.write(line)


def run(attack: str, impl: str, server: Any, drive: Callable[[Any], tuple[str, str]],
        poll_interval: float = 0.5) -> None:
    note: list[str] = []
    with leftovers(note, held=1):  # the server's listening socket, made by the caller
        loop = Loop(server, poll_interval)
        began = time.monotonic()
        try:
            sent, extra = drive(server)
        except Exception as exc:  # the attack itself failed: say so on its line
            sent, extra = f"failed: {type(exc).__name__}", str(exc)[:40]
        seconds = time.monotonic() - began
        time.sleep(0.2)
        server_counts = counts(server)
        died = loop.stop()
    reap_all()
    row(attack, impl, sent, server_counts, seconds, " ".join(x for x in (note[0], died, extra) if x))


def served(replies: list[bytes | None], expected: list[bytes]) -> str:
    return f"{sum(r == e for r, e in zip(replies, expected))}/{len(expected)} answered"


# -- the attacks ----------------------------------------------------------------------


def attack_burst(scale: float) -> None:
    """1. 4x what the server holds at once, 0.3 s requests, deadline 60 s (sockserve)."""
    clients = int(48 * scale)
    lines = [b"%d\n" % n for n in range(clients)]
    slow = type("Slow3", (Slow,), {"delay": 0.3})
    for impl, server in (
        ("stdlib", cls(socketserver, "ForkingTCPServer", max_children=12)(("127.0.0.1", 0), slow)),
        ("sockserve", cls(sockserve, "ForkingTCPServer", max_children=12, request_timeout=60)(("127.0.0.1", 0), slow)),
    ):
        run("burst/forking", impl, server, lambda s: (served(burst(s.server_address, lines), lines), ""), 0.05)
    row("burst/threadpool", "stdlib", "n/a", "no thread pool", 0.0, "")
    server = cls(sockserve, "ThreadPoolTCPServer", pool_size=6, queue_size=6, request_timeout=60)(("127.0.0.1", 0), slow)
    run("burst/threadpool", "sockserve", server, lambda s: (served(burst(s.server_address, lines), lines), ""), 0.05)
    server = cls(sockserve, "PreForkTCPServer", workers=12, request_timeout=60)(("127.0.0.1", 0), slow)
    run("burst/prefork", "sockserve", server, lambda s: (served(burst(s.server_address, lines), lines), ""), 0.05)


def attack_nproc(scale: float) -> None:
    """2. RLIMIT_NPROC, simulated: Thread.start fails from its 4th call (pool_size 6)."""
    count = int(20 * scale)

    def drive(server: Any) -> tuple[str, str]:
        with thread_starts_fail_from(4):
            replies = [ask(server.server_address, b"%d\n" % n, timeout=1) for n in range(count)]
            workers = sum("worker" in t.name for t in threading.enumerate())
            reported = server.stats.threads
        return served(replies, [b"%d\n" % n for n in range(count)]), f"workers alive {workers}, stats.threads {reported}"

    row("nproc/threadpool", "stdlib", "n/a", "no thread pool", 0.0, "")
    run("nproc/threadpool", "sockserve", cls(sockserve, "ThreadPoolTCPServer", pool_size=6)(("127.0.0.1", 0), Echo),
        drive, 0.05)


def attack_start_failures(scale: float) -> None:
    """10. Every thread start (threading) or fork (forking) fails."""
    count = int(20 * scale)

    def threads(server: Any) -> tuple[str, str]:
        with thread_starts_fail_from(1):
            replies = [ask(server.server_address, b"x\n", timeout=1) for _ in range(count)]
        return f"{sum(r == X for r in replies)}/{count} answered", ""

    real_fork = os.fork

    def forks(server: Any) -> tuple[str, str]:
        def fork() -> int:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

        os.fork = fork
        try:
            replies = [ask(server.server_address, b"x\n", timeout=1) for _ in range(count)]
        finally:
            os.fork = real_fork
        return f"{sum(r == X for r in replies)}/{count} answered", ""

    for module in (socketserver, sockserve):
        impl = "stdlib" if module is socketserver else "sockserve"
        run("start fails/threading", impl, module.ThreadingTCPServer(("127.0.0.1", 0), Echo), threads, 0.05)
        run("start fails/forking", impl, module.ForkingTCPServer(("127.0.0.1", 0), Echo), forks, 0.05)


def attack_max_children(scale: float) -> None:
    """3. max_children 1 -> 200 at run time, 70 children (past the 64-slot board) os._exit 3 and 7."""

    def drive(server: Any) -> tuple[str, str]:
        assert ask(server.server_address, b"first\n") == b"first\n"
        server.max_children = 200
        clients = [socket.create_connection(server.server_address, timeout=5) for _ in range(70)]
        deadline = time.monotonic() + 10
        while len(server.active_children or ()) < 70 and time.monotonic() < deadline:
            time.sleep(0.02)
        for n, sock in enumerate(clients):
            sock.sendall(b"exit 7\n" if n % 2 else b"exit 3\n")
        for sock in clients:
            sock.close()
        time.sleep(1.0)
        after = ask(server.server_address, b"after\n", timeout=2)
        return "70 children exited", "next request " + ("answered" if after == b"after\n" else "NOT answered")

    for module in (socketserver, sockserve):
        impl = "stdlib" if module is socketserver else "sockserve"
        run("max_children raised", impl, cls(module, "ForkingTCPServer", max_children=1)(("127.0.0.1", 0),
                                                                                      ExitsAsTold), drive, 0.05)


def attack_boundary(scale: float) -> None:
    """4. Handlers of 45-49 ms under a 50 ms deadline: a client that got its whole
    reply while the server counted a timeout or an error is the finding."""
    count = int(400 * scale)

    class Boundary(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            time.sleep(0.045 + 0.002 * (int(line) % 3))
            self.wfile.write(line)

    def drive(server: Any) -> tuple[str, str]:
        whole = 0
        lines = [b"%d\n" % n for n in range(count)]
        for start in range(0, count, 8):
            replies = burst(server.server_address, lines[start:start + 8])
            whole += sum(r == e for r, e in zip(replies, lines[start:start + 8]))
        time.sleep(0.3)
        snap = server.stats.snapshot()
        wrong = max(0, whole - snap["completed"])
        return f"{whole}/{count} whole replies", f"whole replies not counted completed: {wrong}"

    for name in ("ForkingTCPServer", "PreForkTCPServer", "ThreadPoolTCPServer", "ThreadingTCPServer"):
        attrs: dict[str, Any] = {"request_timeout": 0.05}
        if name == "PreForkTCPServer":
            attrs["workers"] = 8
        if name == "ThreadPoolTCPServer":
            attrs["pool_size"] = 8
        run(f"deadline edge/{name[:-9].lower()}", "sockserve",
            cls(sockserve, name, **attrs)(("127.0.0.1", 0), Boundary), drive, 0.05)


def ratio(attack: str, stdlib: float, ours: float, unit: str = "s") -> None:
    """One line: sockserve's time over the stdlib's, measured side by side
    in this run (issue 24's promise: no more than the stdlib's, 1.00)."""
    value = ours / stdlib if stdlib > 0 else float("inf")
    scale = 1e3 if unit == "ms" else 1.0
    print(f"{attack:<22} ratio     sockserve/stdlib {value:5.2f} (stdlib {stdlib * scale:.3f} {unit}, "
          f"sockserve {ours * scale:.3f} {unit}; promise <= 1.00)", flush=True)


class StampsItsExit(ExitsAsTold):  # type: ignore[misc]  # (from tests/, untyped here)
    """ExitsAsTold that first writes the moment it exits (CLOCK_MONOTONIC, one
    clock for every process) to ``stamps``, a pipe the benchmark reads."""

    stamps = -1

    def handle(self) -> None:
        os.write(self.stamps, struct.pack("d", time.monotonic()))
        super().handle()


def counts_forks(base: type) -> type:
    """*base* with process_request noting when it is called (in the parent):
    the moment the server serves the next request, i.e. once it has noticed
    the last child's death (at max_children=1 it cannot fork before)."""

    class Noting(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.forks: list[float] = []

        def process_request(self, request: Any, client_address: Any) -> None:
            self.forks.append(time.monotonic())
            super().process_request(request, client_address)

    return Noting


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("nan")


def attack_dead_children(scale: float) -> None:
    """5. max_children=1, handlers that os._exit without a word; then idle with
    one dead child. Prints each time's ratio, sockserve over the stdlib
    (the tests check only that a child's end wakes the loop). The busy time is
    split per request: a child's life (process_request to its exit, i.e. the
    fork and the child's work) and the notice (its exit to the next
    process_request: the parent saw the death, the client saw its EOF and
    connected again, the parent accepted). The notice is what criterion 3 of
    issue 24 is about; the client's share of it is the same for both."""
    count = int(100 * scale)
    reaped: dict[str, float] = {}
    split: dict[str, tuple[float, float]] = {}

    def busy(server: Any) -> tuple[str, str]:
        # The client runs in a process of its own: in a thread of this one it
        # would take the GIL from the server's loop for every request (measured:
        # with a client thread the whole-run ratio was 1.11-1.48; a 1,000-request
        # probe with the client in another process, 1.02-1.08).
        read_end, StampsItsExit.stamps = os.pipe()
        done_read, done_write = os.pipe()
        try:
            client = os.fork()
            if client == 0:  # the client: only sockets, then out
                try:
                    for _ in range(count):
                        ask(server.server_address, b"exit 1\n")
                finally:
                    os._exit(0)
            os.close(done_write)
            os.read(done_read, 1)  # EOF: the client has exited
            with contextlib.suppress(ChildProcessError):  # (the stdlib's waitpid(-1) may have reaped it)
                os.waitpid(client, 0)
            exits = [value for (value,) in struct.iter_unpack("d", os.read(read_end, 8 * count + 8))]
        finally:
            for fd in (read_end, done_read, StampsItsExit.stamps):
                os.close(fd)
        forks = server.forks
        lives = [end - start for start, end in zip(forks, exits)]
        notices = [start - end for end, start in zip(exits, forks[1:])]
        split["stdlib" if isinstance(server, socketserver.BaseServer) else "sockserve"] = \
            median(lives), median(notices)
        return f"{count} children died", (f"median life {median(lives) * 1e3:.2f} ms, "
                                          f"notice {median(notices) * 1e3:.2f} ms")

    def idle(server: Any) -> tuple[str, str]:
        before = children_of_self()
        ask(server.server_address, b"exit 1\n")  # returns once the child has exited
        began = time.monotonic()
        dead = children_of_self() - before
        while any(os.path.exists(f"/proc/{pid}") for pid in dead) and time.monotonic() - began < 10:
            time.sleep(0.001)
        reaped[server.__module__] = seconds = time.monotonic() - began
        return "1 child died", f"reaped {seconds:.3f} s after its exit"

    busy_rows = {}
    for module in (socketserver, sockserve):
        impl = "stdlib" if module is socketserver else "sockserve"
        server_class = counts_forks(cls(module, "ForkingTCPServer", max_children=1))
        run("dead children/max 1", impl, server_class(("127.0.0.1", 0), StampsItsExit), busy)
        busy_rows[impl] = ROWS[-1][4]
        run("dead child/idle", impl, module.ForkingTCPServer(("127.0.0.1", 0), ExitsAsTold), idle)
    ratio("dead children/max 1", busy_rows["stdlib"], busy_rows["sockserve"])
    if len(split) == 2:
        (stdlib_life, stdlib_notice), (our_life, our_notice) = (split[m] for m in ("stdlib", "sockserve"))
        ratio("  a child's life", stdlib_life, our_life, "ms")
        ratio("  notice of its death", stdlib_notice, our_notice, "ms")
    ours = [seconds for module, seconds in reaped.items() if module != "socketserver"]
    if "socketserver" in reaped and ours:
        if max(reaped["socketserver"], ours[0]) < 0.01:
            # The stdlib's 0.5 s tick fell just after the exit: a ratio of two
            # near-zero times would say nothing.
            print(f"{'dead child/idle':<22} ratio     both reaped within 10 ms (stdlib {reaped['socketserver']:.3f} s,"
                  f" sockserve {ours[0]:.3f} s; promise <= 1.00)", flush=True)
        else:
            ratio("dead child/idle", reaped["socketserver"], ours[0])


def attack_prefork(scale: float) -> None:
    """6. Prefork: a worker out of descriptors; workers SIGKILLed every 5 ms."""

    def descriptors(server: Any) -> tuple[str, str]:
        replies = [ask(server.server_address, line) for line in (b"leak\n", b"lost?\n", b"after\n")]
        report = server.drain(3.0)
        return f"{sum(r is not None and r != b'' for r in replies)}/3 answered", \
            f"drain waited {report.waited:.2f} s, aborted {report.aborted}"

    def killed(server: Any) -> tuple[str, str]:
        stop = threading.Event()
        kills = [0]

        def killer() -> None:
            while not stop.wait(0.005):
                for pid in list(server.worker_pids):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        kills[0] += 1

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        count = int(600 * scale)
        answered = 0
        for start in range(0, count, 6):
            answered += sum(r == b"x\n" for r in burst(server.server_address, [b"x\n"] * 6, timeout=3))
        stop.set()
        thread.join()
        time.sleep(0.3)
        report = server.drain(2.0)
        return f"{answered}/{count} answered", f"{kills[0]} kills; drain waited {report.waited:.2f} s"

    row("prefork/out of fds", "stdlib", "n/a", "no prefork", 0.0, "")
    run("prefork/out of fds", "sockserve", cls(sockserve, "PreForkTCPServer", workers=1)(("127.0.0.1", 0), RunsOutOfDescriptors),
        descriptors, 0.05)
    row("prefork/SIGKILL 5 ms", "stdlib", "n/a", "no prefork", 0.0, "")
    run("prefork/SIGKILL 5 ms", "sockserve", cls(sockserve, "PreForkTCPServer", workers=2)(("127.0.0.1", 0), Echo),
        killed, 0.05)


def attack_reapers(scale: float) -> None:
    """7. A SIGCHLD handler, or an os.wait() thread, reaps the server's children; the handlers all fail."""
    count = int(100 * scale)

    def drive(server: Any) -> tuple[str, str]:
        for _ in range(count):
            ask(server.server_address, b"x\n")
        return f"{count} failing requests", ""

    for how in ("SIGCHLD handler", "os.wait thread"):
        for module in (socketserver, sockserve):
            impl = "stdlib" if module is socketserver else "sockserve"
            stop = threading.Event()
            if how == "SIGCHLD handler":
                previous = signal.signal(signal.SIGCHLD, lambda *a: reap_all())
            else:
                def reap_until_stopped() -> None:
                    while not stop.wait(0.001):
                        reap_all()

                reaper = threading.Thread(target=reap_until_stopped, daemon=True)
                reaper.start()
            try:
                run(f"reaper/{how.split()[0]}", impl, module.ForkingTCPServer(("127.0.0.1", 0), Fails), drive, 0.05)
            finally:
                if how == "SIGCHLD handler":
                    signal.signal(signal.SIGCHLD, previous)
                else:
                    stop.set()
                    reaper.join()


def attack_two_loops(scale: float) -> None:
    """8. Two serve_forever() loops on one server."""
    for module in (socketserver, sockserve):
        impl = "stdlib" if module is socketserver else "sockserve"
        server = module.TCPServer(("127.0.0.1", 0), Echo)
        note: list[str] = []
        with leftovers(note, held=1):  # the server made just above, closed in the block
            loops = [Loop(server, 0.05) for _ in range(2)]
            began = time.monotonic()
            replies = []
            for n in range(10):
                replies.append(ask(server.server_address, b"%d\n" % n, timeout=1))
            alive = sum(loop.thread.is_alive() for loop in loops)
            seconds = time.monotonic() - began
            deadline = time.monotonic() + 5
            while any(loop.thread.is_alive() for loop in loops) and time.monotonic() < deadline:
                stopper = threading.Thread(target=server.shutdown, daemon=True)
                stopper.start()
                stopper.join(0.5)
            server.server_close()
        row("two loops", impl, served(replies, [b"%d\n" % n for n in range(10)]), f"{alive}/2 loops alive after",
            seconds, note[0])


def attack_sighup(scale: float) -> None:
    """9. SIGHUP to `sockserve serve` with an idle client held by a forked child."""
    row("SIGHUP serve", "stdlib", "n/a", "no serve command", 0.0, "")
    for kind in ("forking", "forking-unix"):
        proc = subprocess.Popen([sys.executable, "-m", "sockserve", "serve", kind, "--grace", "0.2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        address = first.split(" on ", 1)[1].rsplit(" pid ", 1)[0]
        unix = address.startswith("/")
        idle = socket.socket(socket.AF_UNIX if unix else socket.AF_INET)
        idle.connect(address if unix else ("127.0.0.1", int(address.rsplit(":", 1)[1])))
        time.sleep(0.3)
        children = set()
        for task in os.listdir(f"/proc/{proc.pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{proc.pid}/task/{task}/children") as f:
                children |= set(f.read().split())
        began = time.monotonic()
        os.kill(proc.pid, signal.SIGHUP)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        seconds = time.monotonic() - began
        time.sleep(0.3)
        alive = [pid for pid in children if os.path.exists(f"/proc/{pid}")]
        if unix:
            left = f"socket file {'left' if os.path.exists(address) else 'gone'}, " \
                   f"folder {'left' if os.path.exists(os.path.dirname(address)) else 'gone'}"
        else:
            with socket.socket() as again:
                again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    again.bind(("127.0.0.1", int(address.rsplit(":", 1)[1])))
                    left = "port free"
                except OSError:
                    left = "port HELD"
        idle.close()
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        if unix and os.path.exists(os.path.dirname(address)):
            shutil.rmtree(os.path.dirname(address), ignore_errors=True)
        row(f"SIGHUP serve {kind}", "sockserve", f"exit {proc.returncode}", f"{len(alive)} children outlived it",
            seconds, left)


ATTACKS = {
    "burst": attack_burst,
    "nproc": attack_nproc,
    "max_children": attack_max_children,
    "boundary": attack_boundary,
    "dead_children": attack_dead_children,
    "prefork": attack_prefork,
    "reapers": attack_reapers,
    "two_loops": attack_two_loops,
    "sighup": attack_sighup,
    "start_failures": attack_start_failures,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(ATTACKS), help="run only these attacks")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the request counts")
    parser.add_argument("--verbose", action="store_true",
                        help="keep stderr (the handlers' tracebacks and the servers' warnings)")
    args = parser.parse_args()
    if not args.verbose:
        # Children write straight to descriptor 2: silence it for the table's sake.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'attack':<22} {'impl':<9} {'sent':<22} {'server counts':<62} {'time':>8}  leftovers")
    for name, attack in ATTACKS.items():
        if not args.only or name in args.only:
            attack(args.scale)


if __name__ == "__main__":
    main()
