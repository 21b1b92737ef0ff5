"""``sockserve serve`` stops on the first SIGINT or SIGTERM whatever its
clients do (issue 15 item 1), for every kind it offers: idle clients
(connected, sending nothing), a slow client dripping a request one byte at a
time, and a client in the middle of a long request, all at once. It drains
with the grace it prints and cuts off what is still in flight instead of
waiting for it, leaves no child process, worker, socket file or temporary
folder behind, exits 0, and the port can be served again at once.

The issue's "within 2 s" is a timing goal on a machine that is not busy:
``benchmarks/bench_serve_stop.py`` times it, kind by kind, with this
module's scenario (:func:`stop_with_clients`). Here a stop must come far
sooner than the clients would let it (:data:`NOT_WAITING`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sockserve.measure.kinds import kind_names, resolve_kind
from sockserve.cli.serve import GRACE

KINDS = kind_names()
IDLE_CLIENTS = 45  # more than a thread pool takes (8 workers, 32 queued), a forking server (40 children), prefork (4)
#: The long request's work: a server that waited for it would take this long to stop.
LONG_REQUEST_MS = 30_000
#: A stop within this many seconds did not wait for its clients (the long
#: request needs 30 s, the dripping client 80 s); the server's own waits are
#: the grace (GRACE, 1 s) and ending cut-off children (ABORT_GRACE, 0.25 s).
NOT_WAITING = 10.0


def start(*args: str) -> tuple[dict[str, Any], subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "sockserve", "serve", *args, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"sockserve serve {' '.join(args)} did not start: {err}")
    return json.loads(line), proc


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = {int(p) for p in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(children - found)
            found |= children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's reaping is left


class Drip(threading.Thread):
    """A slow client: one byte of a request every 0.2 s, never a whole line."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock, self.stop = sock, threading.Event()

    def run(self) -> None:
        for byte in b"io 1" * 100:
            if self.stop.wait(0.2):
                return
            try:
                self.sock.send(bytes([byte]))
            except OSError:
                return


def connect(info: dict[str, Any]) -> socket.socket:
    address = info["address"]
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(address if isinstance(address, str) else tuple(address))
    return sock


def datagram_client(info: dict[str, Any], tmp_path: Path, n: int) -> socket.socket:
    address = info["address"]
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(tmp_path / f"c{n}.sock"))
        sock.connect(address)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(tuple(address))
    return sock


@dataclass(frozen=True)
class Stopped:
    """One ``sockserve serve`` stopped by a signal while its clients did their worst."""

    kind: str
    signal: signal.Signals
    info: dict[str, Any]  # what it printed when it started
    took: float  # seconds from the signal to the process's exit
    returncode: int
    err: str  # what it wrote on stderr
    children: set[int]  # its descendants just before the signal


def stop_with_clients(kind: str, sig: signal.Signals, folder: Path) -> Stopped:
    """Serve *kind* (``-w io``), give it every kind of difficult client at
    once, wait until they are all in, then send *sig* and time the exit.
    Every client and the process are gone when it returns (a server still
    running 30 s after the signal is killed: the test fails)."""
    info_kind = resolve_kind(kind)
    info, proc = start(kind, "-w", "io")
    sockets: list[socket.socket] = []
    drip: Drip | None = None
    try:
        if info_kind.is_stream:
            sockets += [connect(info) for _ in range(IDLE_CLIENTS)]      # idle
            slow = connect(info)
            sockets.append(slow)
            drip = Drip(slow)                                           # slow, dripping
            drip.start()
            busy = connect(info)
            sockets.append(busy)
            busy.sendall(b"io %d\n" % LONG_REQUEST_MS)                  # mid-request: 30 s of work
        else:
            for n in range(3):                                          # mid-request, three of them
                sock = datagram_client(info, folder, n)
                sockets.append(sock)
                sock.send(b"io %d\n" % LONG_REQUEST_MS)
        time.sleep(0.6)  # the requests reach their handlers
        kids = descendants(proc.pid)
        began = time.monotonic()
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"{kind}: still running 30 s after {sig.name}:\n{err}")
        took = time.monotonic() - began
    finally:
        if drip is not None:
            drip.stop.set()
            drip.join(5)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for sock in sockets:
            sock.close()
    return Stopped(kind, sig, info, took, proc.returncode, err, kids)


@pytest.mark.parametrize("kind", KINDS)
def test_serve_stops_on_the_first_signal_whatever_its_clients_do(kind: str, tmp_path: Path) -> None:
    sig = (signal.SIGTERM, signal.SIGINT)[KINDS.index(kind) % 2]
    info_kind = resolve_kind(kind)
    stopped = stop_with_clients(kind, sig, tmp_path)
    info, err = stopped.info, stopped.err
    assert stopped.returncode == 0, f"{kind}: exit status {stopped.returncode} after {sig.name}:\n{err}"
    assert stopped.took < NOT_WAITING, f"{kind}: took {stopped.took:.2f} s to stop after {sig.name}:\n{err}"
    assert f"sockserve serve: {sig.name}: stopping; requests in flight get up to {GRACE:g} s to finish" in err
    assert f"sockserve serve: stopped {info['serving']} (" in err and "Traceback" not in err, err
    if info_kind.is_stream:
        # What it did with the clients, in its own words: none finished (the
        # long request could not, the others had sent no whole request), so
        # every one in flight was cut off; it did not wait for them.
        cut = re.search(r"(\d+) in flight at the stop: 0 finished within the grace, (\d+) cut off", err)
        assert cut and cut.group(1) == cut.group(2) != "0", err
    left = sorted(pid for pid in stopped.children if alive(pid))
    assert not left, f"{kind}: processes {left} outlived the server"
    if info_kind.is_unix:
        path = info["address"]
        assert not os.path.exists(path), f"{kind}: left its socket file {path}"
        assert not os.path.exists(os.path.dirname(path)), f"{kind}: left its temporary folder"
    else:
        # The same port, at once (TCP connections of the last run may be in TIME_WAIT).
        port = str(info["address"][1])
        again, proc2 = start(kind, "--port", port)
        try:
            assert again["address"][1] == int(port)
        finally:
            proc2.send_signal(signal.SIGINT)
            _, err2 = proc2.communicate(timeout=30)
        assert proc2.returncode == 0, err2


@pytest.mark.parametrize("kind", KINDS)
def test_a_signal_right_after_the_first_line_stops_it(kind: str) -> None:
    """The first line comes before the loop serves: a signal in between must
    not be lost (drain() with no loop to stop, then a loop that serves on)."""
    sig = (signal.SIGINT, signal.SIGTERM)[KINDS.index(kind) % 2]
    _, proc = start(kind)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"{kind}: still serving 10 s after a {sig.name} sent right after its first line")
    assert proc.returncode == 0 and "sockserve serve: stopped" in err, err
