"""Reliability of the server's own resources (issue 7, scenarios 4 and 5).

Descriptor exhaustion must not turn the serving loop into a busy loop, and
the server must serve again by itself once descriptors free up. A forking
server must leave no zombie and no descriptor behind, and a hung child must
be ended after ``child_timeout``.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import pytest

import sockserve
from conftest import HOST, class_id, exchange, open_fds, serving, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AF_UNIX = getattr(socket, "AF_UNIX", None)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def child_processes() -> list[tuple[int, str]]:
    """(pid, state) of every live or zombie child of this process."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[1]) == me:
            found.append((int(entry), fields[0]))
    return found


# -- 4. descriptor exhaustion ---------------------------------------------------------

# The server runs in its own process so that its descriptor limit, and the CPU
# it burns while at that limit, are its own.
EXHAUSTED_SERVER = r"""
import json, resource, sys
import sockserve

class Hold(sockserve.StreamRequestHandler):
    # Answer each line; keep the connection (and its descriptor) until EOF.
    def handle(self):
        while line := self.rfile.readline(1024):
            if line == b"stats\n":
                stats = self.server.stats
                line = json.dumps({"accept_errors": stats.accept_errors,
                                   "completed": stats.completed}).encode() + b"\n"
            self.wfile.write(line)

cls = getattr(sockserve, sys.argv[1])
server = cls(sys.argv[2] if sys.argv[2].startswith("/") else ("127.0.0.1", 0), Hold)
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
print(server.server_address if isinstance(server.server_address, str) else server.server_address[1],
      flush=True)
try:
    server.serve_forever(poll_interval=0.5)
finally:
    server.server_close()
"""


def read_replies(socks: list[socket.socket], seconds: float) -> dict[socket.socket, bytes]:
    """Whatever each socket has received within *seconds* (one line each at most)."""
    got: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + seconds
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(pending, [], [], max(0.0, deadline - time.monotonic()))
        for sock in ready:
            data = got.get(sock, b"") + sock.recv(1024)
            got[sock] = data
            if data.endswith(b"\n") or not data:
                pending.remove(sock)
    return got


@pytest.mark.parametrize(
    "cls_name", ["ThreadingTCPServer", "ThreadingUnixStreamServer"]
)
def test_descriptor_exhaustion_backs_off_without_busy_loop_and_recovers(
    cls_name: str, sock_dir: str
) -> None:
    limit, clients = 64, 90  # more clients than the server has descriptors
    unix = "Unix" in cls_name
    path = os.path.join(sock_dir, "x.sock") if unix else "-"
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", EXHAUSTED_SERVER, cls_name, path, str(limit)],
            stdout=subprocess.PIPE,
            stderr=errors,
            env={**os.environ, "PYTHONPATH": ROOT},
            text=True,
        )
        socks: list[socket.socket] = []
        try:
            assert proc.stdout is not None
            where = proc.stdout.readline().strip()
            assert where, "server did not start"
            address: Any = where if unix else (HOST, int(where))
            family = AF_UNIX if unix else socket.AF_INET
            for _ in range(clients):
                sock = socket.socket(family, socket.SOCK_STREAM)
                socks.append(sock)
                sock.settimeout(10)
                sock.connect(address)  # queued in the backlog if not accepted
                sock.sendall(b"hi\n")

            def warned() -> bool:
                errors.seek(0)
                return "cannot accept" in errors.read()

            assert wait_until(warned), "no EMFILE warning from the server"
            replies = read_replies(socks, 1.0)
            served = [s for s in socks if replies.get(s) == b"hi\n"]
            waiting = [s for s in socks if s not in replies]
            assert served and waiting, (len(served), len(waiting))
            assert len(served) + len(waiting) == clients

            # Exhausted: the loop must sleep, not spin on a readable listener.
            time.sleep(0.3)  # let the back-off reach its stride
            began_cpu, began = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(2.0)
            share = (cpu_seconds(proc.pid) - began_cpu) / (time.monotonic() - began)
            assert share < 0.20, f"server used {share:.0%} of a core while exhausted"

            # Clients leave: every client still waiting is accepted and answered.
            for sock in served:
                sock.close()
            late = read_replies(waiting, 15.0)
            assert [late.get(s) for s in waiting] == [b"hi\n"] * len(waiting)
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(address)
                sock.sendall(b"stats\n")
                stats = read_replies([sock], 10.0)[sock]
            accept_errors = json.loads(stats)["accept_errors"]
            assert accept_errors >= 1, stats
        finally:
            for sock in socks:
                sock.close()
            proc.terminate()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        errors.seek(0)
        log = errors.read()
    assert "Traceback" not in log, log
    # A warning when a spell of exhaustion begins, not one per failed accept().
    assert 1 <= log.count("cannot accept") < accept_errors, (accept_errors, log)


# -- 5. forking: zombies, descriptors, hung children -------------------------------------


class OneShot(sockserve.BaseRequestHandler):
    """Read one chunk, answer it (``hang``: sleep for a minute first)."""

    def handle(self) -> None:
        data = self.request.recv(1024)
        if data == b"hang":
            time.sleep(60)
        self.request.sendall(data)


#: A forking server in a process of its own, as a server runs: it forks from a
#: small process (forked from a test worker, each child copied the worker's
#: page tables: 2,000 requests cost 23 CPU-s there, most of it in the children).
#: Prints its address, serves until a line on stdin, then prints what it left
#: behind (children, descriptors, statistics) and waits for a last line.
FORKING_SERVER = r"""
import json, os, sys, threading, time
import sockserve

class OneShot(sockserve.BaseRequestHandler):
    def handle(self):
        self.request.sendall(self.request.recv(1024))

def children():
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.append([int(entry), fields[0]])
    return found

fds_before = len(os.listdir("/proc/self/fd"))
server = sockserve.ForkingTCPServer(("127.0.0.1", 0), OneShot)
loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
loop.start()
print(server.server_address[1], flush=True)
sys.stdin.readline()
server.shutdown()
loop.join()
server.server_close()
stats = server.stats
print(json.dumps({
    "children": children(), "active_children": len(server.active_children or ()),
    "fds_before": fds_before, "fds_after": len(os.listdir("/proc/self/fd")),
    "counts": [stats.started, stats.completed, stats.errors, stats.children],
    "peak_children": stats.peak_children, "max_children": server.max_children,
}), flush=True)
sys.stdin.readline()
"""


def test_forking_2000_requests_leave_no_zombie_and_no_descriptor() -> None:
    """ForkingTCPServer in a process of its own: 2,000 requests from four
    client threads here, then shutdown() and server_close(); it must have no
    child left (live or zombie), as many descriptors as before it was made,
    and every request counted as completed."""
    requests, client_threads = 2000, 4
    cls = sockserve.ForkingTCPServer
    proc = subprocess.Popen(
        [sys.executable, "-c", FORKING_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": ROOT}, text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    failures: list[str] = []
    try:
        address = (HOST, int(proc.stdout.readline()))

        def client(number: int) -> None:
            for i in range(requests // client_threads):
                payload = b"%d-%d" % (number, i)
                try:
                    reply = exchange(cls, address, payload)
                except OSError as exc:
                    failures.append(repr(exc))
                    continue
                if reply != payload:
                    failures.append(f"{payload!r} -> {reply!r}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(client_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        left = json.loads(proc.stdout.readline())
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    assert failures == []
    assert left["children"] == [], "zombie or stray child after server_close()"
    assert left["active_children"] == 0
    assert left["fds_after"] == left["fds_before"]
    assert left["counts"] == [requests, requests, 0, 0]
    assert 1 <= left["peak_children"] <= left["max_children"]


def test_forking_child_timeout_ends_a_hung_handler() -> None:
    class Server(sockserve.ForkingTCPServer):
        child_timeout = 1.0

    server = Server((HOST, 0), OneShot)
    with serving(server, poll_interval=0.05):
        began = time.monotonic()
        result: list[bytes] = []
        hung = threading.Thread(
            target=lambda: result.append(exchange(Server, server.server_address, b"hang"))
        )
        hung.start()
        assert wait_until(lambda: server.stats.active == 1)
        # The server keeps serving others while the child hangs.
        assert exchange(Server, server.server_address, b"hello") == b"hello"
        hung.join(30)
        assert not hung.is_alive()
        assert result == [b""]  # the child was ended: EOF, no reply
        assert 0.9 < time.monotonic() - began < 20
        assert wait_until(lambda: server.stats.timeouts == 1 and not server.active_children)
    assert child_processes() == []
    # Its time was up: a timeout, not a drain's abort nor a handler error.
    assert (server.stats.completed, server.stats.timeouts, server.stats.aborted,
            server.stats.errors) == (1, 1, 0, 0)
