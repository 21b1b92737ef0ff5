"""Checkers for lesson 04 (concurrency): mixin order, and a model of throughput."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from .. import BaseServer, TCPServer, ThreadingMixIn
from ..workbook import ask
from ..workloads import handler_for
from . import ExerciseFailed, exercise
from .support import handler_errors_note, require_class, running

LESSON = "04-concurrency"


def burst(address: Any, lines: Sequence[bytes], timeout: float = 5.0) -> list[list[bytes] | str]:
    """Send each of *lines* on its own connection, all at once (one thread
    each); return each connection's reply lines, or the error it met."""
    results: list[list[bytes] | str] = ["no reply"] * len(lines)

    def one(i: int) -> None:
        try:
            results[i] = ask(address, lines[i], timeout=timeout)
        except OSError as exc:
            results[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(lines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 1.0)
    return results


def _owner(cls: type, name: str) -> type:
    """The class in *cls*'s MRO whose own namespace defines *name*."""
    return next(k for k in cls.__mro__ if name in vars(k))


@exercise(
    "concurrency-mixin-order",
    lesson=LESSON,
    prompt="Fix MyThreadingServer so that each request runs in its own thread: combine "
    "ThreadingMixIn and TCPServer in the right order.",
)
def check_mixin_order(server_class: Any) -> str:
    cls = require_class(server_class, TCPServer, "a TCP server class (a TCPServer subclass)")
    bases = ", ".join(b.__name__ for b in cls.__bases__)
    owner = _owner(cls, "process_request")
    if owner is BaseServer:
        raise ExerciseFailed(
            f"{cls.__name__}.process_request is BaseServer's (the bases are {bases}): Python "
            "looks a method up through the bases from left to right, so the one-request-at-a-time "
            "process_request of BaseServer, which TCPServer inherits, is found before the mixin's. "
            f"List the mixin first: class {cls.__name__}(ThreadingMixIn, TCPServer)"
        )
    if not issubclass(cls, ThreadingMixIn):
        raise ExerciseFailed(
            f"{cls.__name__} does not use sockserve.ThreadingMixIn (its process_request comes "
            f"from {owner.__name__}): this exercise is about a thread per request"
        )
    clients, delay = 4, 300
    with running(cls, handler_for("io", delay_ms=delay)) as server:
        replies = burst(server.server_address, [f"io {delay}\n".encode()] * clients)
        peak = server.stats.peak_active
        note = handler_errors_note(server)
    for i, got in enumerate(replies):
        if got != [f"io {delay}\n".encode()]:
            raise ExerciseFailed(f"client {i} got {got!r} instead of its reply.{note}")
    if peak < 2:
        raise ExerciseFailed(
            f"{clients} clients sent a {delay} ms request at once, but only {peak} handler ran at a "
            f"time (server.stats.peak_active): {cls.__name__} still handles requests one by one"
        )
    return (
        f"process_request comes from {owner.__name__}; {clients} requests of {delay} ms "
        f"overlapped ({peak} handlers at once)"
    )


# -- a model of the best throughput -----------------------------------------------------

#: (kind, workload, clients, ms, cores) -> requests per second at best.
_CASES: tuple[tuple[str, str, int, float, int], ...] = (
    ("plain", "io", 8, 10.0, 2),
    ("plain", "cpu", 8, 10.0, 4),
    ("threading", "io", 8, 10.0, 2),
    ("threading", "io", 3, 20.0, 1),
    ("forking", "io", 8, 10.0, 2),
    ("threading", "cpu", 8, 10.0, 2),
    ("threading", "cpu", 2, 20.0, 8),
    ("forking", "cpu", 8, 10.0, 2),
    ("forking", "cpu", 8, 20.0, 4),
    ("forking", "cpu", 1, 10.0, 4),
)

_WHY = {
    ("plain", "io"): "a plain server handles one request at a time, so at best 1000/ms requests "
    "per second, whatever the number of clients or cores",
    ("plain", "cpu"): "a plain server handles one request at a time, so at best 1000/ms requests "
    "per second, whatever the number of clients or cores",
    ("threading", "io"): "every client's request sleeps in its own thread at the same time "
    "(time.sleep releases the GIL), so clients x 1000/ms",
    ("forking", "io"): "every client's request sleeps in its own child process at the same time, "
    "so clients x 1000/ms",
    ("threading", "cpu"): "the GIL lets one thread at a time run Python code, so threads add no "
    "CPU: 1000/ms, whatever the number of clients or cores",
    ("forking", "cpu"): "each child process has its own interpreter and GIL, so as many requests "
    "compute at once as there are cores (or clients, if fewer): min(clients, cores) x 1000/ms",
}


def ideal(kind: str, workload: str, clients: int, ms: float, cores: int) -> float:
    """The reference model (used by the checker and the lesson's table)."""
    per_second = 1000.0 / ms
    if kind == "plain":
        return per_second
    if workload == "io":
        return clients * per_second
    if kind == "threading":
        return per_second
    return min(clients, cores) * per_second


@exercise(
    "concurrency-ideal-throughput",
    lesson=LESSON,
    prompt="Write ideal_rps(kind, workload, clients, ms, cores): the most requests per second a "
    "'plain', 'threading' or 'forking' server can serve when `clients` closed-loop clients send "
    "'io' or 'cpu' requests of `ms` milliseconds each on a machine with `cores` cores "
    "(ignore every overhead).",
)
def check_ideal_throughput(ideal_rps: Any) -> str:
    if not callable(ideal_rps):
        raise ExerciseFailed(f"expected a function ideal_rps(kind, workload, clients, ms, cores); got {ideal_rps!r}")
    for kind, workload, clients, ms, cores in _CASES:
        call = f"ideal_rps({kind!r}, {workload!r}, clients={clients}, ms={ms:g}, cores={cores})"
        got = ideal_rps(kind, workload, clients, ms, cores)
        want = ideal(kind, workload, clients, ms, cores)
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            raise ExerciseFailed(f"{call} returned {got!r}; it should return a number of requests per second")
        if not math.isclose(float(got), want, rel_tol=0.01):
            raise ExerciseFailed(
                f"{call} returned {got!r}, expected {want:g}: {_WHY[(kind, workload)]}"
            )
    return f"all {len(_CASES)} cases match: plain 1000/ms; io scales with clients; cpu with cores only when forking"
