"""Soak (issue 7, scenario 11): minutes of mixed load on every server kind.

Marked ``slow``: the default run leaves it out (``-m 'not slow'``). Run it
with::

    SOCKSERVE_SOAK_SECONDS=300 .venv/bin/python -m pytest tests/test_soak.py -m slow -s \
        -o faulthandler_timeout=0

Every server class of ``sockserve.__all__`` serves the ``io`` workload at the
same time, each driven by two client threads for ``SOCKSERVE_SOAK_SECONDS``
(default 300, bounded also by ``SOCKSERVE_SOAK_MAX_REQUESTS`` per client).
The clients mix well-behaved requests (new connection, persistent
connection, byte-at-a-time) with misbehaviour (binary garbage, oversized
lines and datagrams, resets mid-request). At the end: every request a client
made was answered or counted by the client as an error; every request a
server accepted ended with a counted outcome; threads, descriptors and child
processes are back to their baseline. ``-s`` prints the figures
(``faulthandler_timeout=0``: the suite's 120 s hang dump would fire mid-soak).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import struct
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

import sockserve
from conftest import ALL_CLASSES, address_for, class_id, client_socket, open_fds, serving
from sockserve.measure.workloads import LINE_TOO_LONG, MAX_LINE, handler_for

AF_UNIX = getattr(socket, "AF_UNIX", None)
SECONDS = float(os.environ.get("SOCKSERVE_SOAK_SECONDS", "300"))
MAX_REQUESTS = int(os.environ.get("SOCKSERVE_SOAK_MAX_REQUESTS", "1000000"))
CLIENTS_PER_SERVER = 2
IN_CHILD = (sockserve.ForkingMixIn, sockserve.PreForkMixIn)


class SoakHandler(handler_for("io", delay_ms=1)):  # type: ignore[misc, valid-type]
    timeout = 5.0  # a client that stalls cannot pin a plain server for long


def child_processes() -> list[int]:
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def make_server(cls: type, sock_dir: str) -> Any:
    attrs: dict[str, Any] = {}
    if issubclass(cls, sockserve.ForkingMixIn):
        attrs["child_timeout"] = 30
    server_cls = type(cls.__name__, (cls,), attrs)
    return server_cls(address_for(cls, sock_dir, name=cls.__name__), SoakHandler)


def stream_request(cls: type, address: Any, payload: bytes, trickle: bool = False) -> bytes:
    with socket.socket(cls.address_family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        if trickle:
            for byte in payload:
                sock.send(bytes([byte]))
                time.sleep(0.001)
        else:
            sock.sendall(payload)
        # EOF for the server even while a forked child holds a copy of this socket.
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def reset_mid_request(cls: type, address: Any) -> None:
    with socket.socket(cls.address_family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(b"io 20\n")
        if cls.address_family != AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def datagram_request(sock: socket.socket, address: Any, payload: bytes, expect: bytes) -> bool:
    sock.sendto(payload, address)
    while True:  # skip late replies to earlier requests that timed out
        reply = sock.recv(65536)
        if reply == expect:
            return True
        if reply.split(b" ", 1)[0] == expect.split(b" ", 1)[0]:
            return False


def client_loop(
    server: Any, seed: int, deadline: float, sock_dir: str, tally: dict[str, Counter[str]]
) -> None:
    cls = type(server)
    address = server.server_address
    rng = random.Random(seed)
    stream = cls.socket_type == socket.SOCK_STREAM
    dgram = None if stream else client_socket(cls, sock_dir)
    if dgram is not None:
        dgram.settimeout(2)
    try:
        for n in range(MAX_REQUESTS):
            if time.monotonic() > deadline:
                break
            roll = rng.random()
            line = b"r%d-%d %d\n" % (seed, n, rng.choice((0, 0, 1, 5)))
            kind = "normal"
            try:
                if stream:
                    if roll < 0.80:
                        ok = stream_request(cls, address, line) == line
                    elif roll < 0.88:
                        kind = "persistent"
                        lines = [line, line.replace(b"-", b"+"), line.replace(b"-", b"=")]
                        ok = stream_request(cls, address, b"".join(lines)) == b"".join(lines)
                    elif roll < 0.91:
                        kind = "trickle"
                        ok = stream_request(cls, address, line, trickle=True) == line
                    elif roll < 0.95:
                        kind = "garbage"
                        junk = bytes(rng.randrange(256) for _ in range(60)).replace(b"\n", b"")
                        reply = stream_request(cls, address, junk + b"\n")
                        ok = reply.endswith(b"\n") and reply.count(b"\n") == 1
                    elif roll < 0.97:
                        kind = "oversize"
                        ok = stream_request(cls, address, b"x" * (MAX_LINE + 5000)) == LINE_TOO_LONG
                    else:
                        kind = "reset"
                        reset_mid_request(cls, address)
                        ok = True
                else:
                    assert dgram is not None
                    if roll < 0.92:
                        ok = datagram_request(dgram, address, line, line)
                    elif roll < 0.97:
                        kind = "garbage"
                        junk = b"g%d-%d " % (seed, n) + bytes(rng.randrange(256) for _ in range(40))
                        dgram.sendto(junk, address)
                        ok = dgram.recv(65536).endswith(b"\n")
                    else:
                        kind = "oversize"
                        size = server.max_packet_size
                        big = b"o%d-%d" % (seed, n) + b"y" * size  # one word: echoed
                        expect = big[:size] + b"\n"
                        ok = datagram_request(dgram, address, big, expect)
            except TimeoutError:
                tally[kind]["timeout"] += 1
            except OSError as exc:
                tally[kind][type(exc).__name__] += 1
            else:
                tally[kind]["ok" if ok else "bad reply"] += 1
    finally:
        if dgram is not None:
            dgram.close()


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 600)
def test_soak_every_server_kind_under_mixed_load(sock_dir: str) -> None:
    threads_before, fds_before, children_before = (
        threading.active_count(), open_fds(), child_processes()
    )
    servers = [make_server(cls, sock_dir) for cls in ALL_CLASSES]
    tallies: dict[str, dict[str, Counter[str]]] = {
        class_id(cls): defaultdict(Counter) for cls in ALL_CLASSES
    }
    began = time.monotonic()
    deadline = began + SECONDS
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(serving(server, poll_interval=0.1))
        clients = [
            threading.Thread(
                target=client_loop,
                args=(server, 1000 * i + c, deadline, sock_dir, tallies[class_id(type(server))]),
                name=f"soak client {class_id(type(server))} {c}",
            )
            for i, server in enumerate(servers)
            for c in range(CLIENTS_PER_SERVER)
        ]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(SECONDS + 120)
        assert not any(thread.is_alive() for thread in clients)
    elapsed = time.monotonic() - began

    print(f"\nsoak: {elapsed:.0f} s, {len(servers)} servers, "
          f"{CLIENTS_PER_SERVER} clients each")
    print(f"{'server':30} {'requests':>8} {'ok':>8} {'client-errors':>13} "
          f"{'accepted':>8} {'complete':>8} {'disconn':>7} {'timeout':>7} {'abort':>5} "
          f"{'trunc':>5} {'peak':>4} {'p50ms':>6} {'p99ms':>7}")
    problems = []
    for server in servers:
        name = class_id(type(server))
        tally = tallies[name]
        total = sum(sum(c.values()) for c in tally.values())
        ok = sum(c["ok"] for c in tally.values())
        failed = {f"{kind}:{what}": n for kind, c in tally.items() for what, n in c.items()
                  if what != "ok"}
        snap = server.stats.snapshot()
        hist = snap["handler_time_ms"]
        print(f"{name:30} {total:8} {ok:8} {total - ok:13} {snap['accepted']:8} "
              f"{snap['completed']:8} {snap['disconnects']:7} {snap['timeouts']:7} "
              f"{snap['aborted']:5} {snap['truncated']:5} {snap['peak_active']:4} "
              f"{hist.get('p50', 0):6.1f} {hist.get('p99', 0):7.1f}  {failed or ''}")
        # Every request a server accepted ended with a counted outcome.
        accounted = snap["completed"] + snap["errors"] + snap["disconnects"] + snap["timeouts"]
        accounted += snap["aborted"] + snap["rejected"] + snap["overflows"]
        if snap["accepted"] != accounted or snap["active"] != 0:
            problems.append(f"{name}: accepted {snap['accepted']} but accounted {accounted}, "
                            f"active {snap['active']}")
        if snap["errors"]:
            problems.append(f"{name}: {snap['errors']} handler errors")
        if total == 0:
            problems.append(f"{name}: no requests made")
        # Streams lose nothing: every well-behaved request is answered.
        if server.socket_type == socket.SOCK_STREAM and failed:
            problems.append(f"{name}: client failures {failed}")
    assert problems == []
    assert threading.active_count() <= threads_before
    assert open_fds() <= fds_before
    assert child_processes() == children_before
