"""Checkers for lesson 04 (concurrency): mixin order, a thread-per-request
mixin of one's own, and a model of throughput."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import BaseServer, StreamRequestHandler, TCPServer, ThreadingMixIn
from ..workbook.helpers import ask
from ..measure.workloads import handler_for
from . import ExerciseFailed, exercise
from .support import a_class, a_function, defining_class, handler_errors_note, running

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


@exercise("concurrency-mixin-order", lesson=LESSON, difficulty=1,
          answer=a_class("MyThreadingServer", TCPServer, ThreadingMixIn, body="pass",
                         what="a TCP server class (a TCPServer subclass)"))
def check_mixin_order(cls: type) -> str:
    """Fix MyThreadingServer so that each request runs in its own thread: combine ThreadingMixIn and TCPServer
    in the right order."""
    bases = ", ".join(b.__name__ for b in cls.__bases__)
    owner = defining_class(cls, "process_request")
    if owner is BaseServer:
        raise ExerciseFailed(
            f"{cls.__name__}.process_request is BaseServer's (the bases are {bases}): Python "
            "looks a method up in the class's __mro__, and BaseServer's one-request-at-a-time "
            "process_request, which TCPServer inherits, is found before the mixin's",
            fix="the MRO lists the bases from left to right: put the mixin first, "
            f"class {cls.__name__}(ThreadingMixIn, TCPServer)",
        )
    if not issubclass(cls, ThreadingMixIn):
        raise ExerciseFailed(
            f"{cls.__name__} does not use sockserve.ThreadingMixIn (its process_request comes "
            f"from {owner.__name__}): this exercise is about a thread per request",
            fix="combine sockserve.ThreadingMixIn with TCPServer",
        )
    clients, delay = 4, 300
    with running(cls, handler_for("io", delay_ms=delay)) as server:
        replies = burst(server.server_address, [f"io {delay}\n".encode()] * clients)
        peak = server.stats.peak_active
        note = handler_errors_note(server)
    for i, got in enumerate(replies):
        if got != [f"io {delay}\n".encode()]:
            raise ExerciseFailed(f"client {i} got {got!r} instead of its reply.{note}",
                                 fix="leave the class body empty: the mixin and the server do the work")
    if peak < 2:
        raise ExerciseFailed(
            f"{clients} clients sent a {delay} ms request at once, but only {peak} handler ran at a "
            f"time (server.stats.peak_active): {cls.__name__} still handles requests one by one",
            fix=f"class {cls.__name__}(ThreadingMixIn, TCPServer): pass, and nothing else",
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


_HINT = {
    ("plain", "io"): "how many requests does a plain server work on at once?",
    ("plain", "cpu"): "how many requests does a plain server work on at once?",
    ("threading", "io"): "while a thread sleeps, what stops the other threads?",
    ("forking", "io"): "while a child process sleeps, what stops the other children?",
    ("threading", "cpu"): "how many threads of one process can run Python code at the same moment?",
    ("forking", "cpu"): "how many processes can compute at the same moment, and how many requests "
    "are there to compute?",
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


@exercise("concurrency-ideal-throughput", lesson=LESSON, difficulty=2,
          answer=a_function("ideal_rps(kind, workload, clients, ms, cores)"))
def check_ideal_throughput(ideal_rps: Callable[..., Any]) -> str:
    """Write ideal_rps(kind, workload, clients, ms, cores): the most requests per second a 'plain', 'threading'
    or 'forking' server can serve when `clients` closed-loop clients send 'io' or 'cpu' requests of `ms`
    milliseconds each on a machine with `cores` cores (ignore every overhead)."""
    for kind, workload, clients, ms, cores in _CASES:
        call = f"ideal_rps({kind!r}, {workload!r}, clients={clients}, ms={ms:g}, cores={cores})"
        got = ideal_rps(kind, workload, clients, ms, cores)
        want = ideal(kind, workload, clients, ms, cores)
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            raise ExerciseFailed(
                f"{call} returned {got!r}, not a number of requests per second",
                fix="start from what one worker does: one request of ms milliseconds after "
                "another is 1000 / ms requests per second; return a number in every case",
            )
        if not math.isclose(float(got), want, rel_tol=0.01):
            judged = ("more than such a server can serve, even with no overhead at all" if got > want
                      else "less than such a server can serve when nothing but the work itself costs time")
            raise ExerciseFailed(
                f"{call} returned {got!r}, which is {judged}: {_HINT[(kind, workload)]}",
                fix=_WHY[(kind, workload)],
            )
    return f"all {len(_CASES)} cases match: plain 1000/ms; io scales with clients; cpu with cores only when forking"


# -- a thread per request, written by hand ----------------------------------------------

OWN_CLIENTS = 4
OWN_DELAY = 0.2


class _Timed(StreamRequestHandler):
    """Echoes one line after OWN_DELAY s, recording (thread id, start, end)
    in ``server.spans``; the line ``boom`` raises instead."""

    def handle(self) -> None:
        line = self.rfile.readline()
        if line.strip() == b"boom":
            raise RuntimeError("boom (the check's handler raises on purpose)")
        began = time.monotonic()
        time.sleep(OWN_DELAY)
        server: Any = self.server
        server.spans.append((threading.get_ident(), began, time.monotonic()))
        self.wfile.write(line)


def _overlap(spans: Sequence[tuple[int, float, float]]) -> int:
    """The most spans in progress at one moment."""
    events = sorted([(b, 1) for _, b, _ in spans] + [(e, -1) for _, _, e in spans])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@exercise("concurrency-own-threads", lesson=LESSON, difficulty=3,
          answer=a_class("OwnThreadingMixIn", prelude="import threading\n\n\n",
                         body="def process_request(self, request, client_address):\n"
                         "    pass  # your code here: start a thread that handles the request"))
def check_own_threads(mixin: type) -> str:
    """Write OwnThreadingMixIn without ThreadingMixIn: its process_request starts a thread that handles the
    request (finish_request), reports a handler's exception (handle_error), and always ends the request
    (shutdown_request)."""
    if issubclass(mixin, ThreadingMixIn):
        raise ExerciseFailed(
            f"{mixin.__name__} derives from ThreadingMixIn, which does the work for it: this "
            "exercise is about writing that hook yourself",
            fix="derive from nothing (class OwnThreadingMixIn:) and define process_request",
        )
    if "process_request" not in vars(mixin):
        raise ExerciseFailed(
            f"{mixin.__name__} does not define the one hook that decides where an accepted "
            "request is handled",
            fix="define process_request(self, request, client_address) in the mixin",
        )
    # running() closes every connection the server accepted, also those an answer forgets to.
    cls = type(f"Own{mixin.__name__}Server", (mixin, TCPServer), {})
    line = b"work\n"
    with running(cls, _Timed) as server:
        server.spans = []
        began = time.monotonic()
        replies = burst(server.server_address, [line] * OWN_CLIENTS, timeout=1.5)
        took = time.monotonic() - began
        spans = list(server.spans)
        note = handler_errors_note(server)
        answered = sum(1 for r in replies if r == [line])
        if answered < OWN_CLIENTS:
            raise ExerciseFailed(
                f"{OWN_CLIENTS} clients sent a request at once and {answered} got the reply: "
                "a request goes on to its handler only if process_request passes it on" + note,
                fix="in the thread, call self.finish_request(request, client_address) (it runs the "
                "handler), then self.shutdown_request(request) (it closes the connection)",
            )
        most = _overlap(spans)
        if most < 2:
            raise ExerciseFailed(
                f"every client was answered, but one request at a time ({took:.2f} s for "
                f"{OWN_CLIENTS} requests of {OWN_DELAY:g} s): process_request waited for each "
                "handler before the loop could accept the next connection",
                fix="do not handle the request in process_request itself: start a "
                "threading.Thread whose target does the work, and return at once",
            )
        server.handler_errors.clear()
        with socket.create_connection(server.server_address, timeout=3.0) as sock:
            sock.sendall(b"boom\n")
            try:
                rest = sock.recv(64)
                closed = rest == b""
            except OSError as exc:
                closed = not isinstance(exc, TimeoutError)
        reported = list(server.handler_errors)
    if not closed:
        raise ExerciseFailed(
            "a handler that raised left its client's connection open: the request was never ended",
            fix="call self.shutdown_request(request) in a finally: block, so it runs whether the "
            "handler returned or raised",
        )
    if not reported:
        raise ExerciseFailed(
            "a handler raised, and the server was never told: BaseServer reports a handler's "
            "exception through one hook (it prints the traceback, or logs it)",
            fix="wrap self.finish_request(...) in try/except Exception: and call "
            "self.handle_error(request, client_address) in the except block",
        )
    return (f"{OWN_CLIENTS} requests of {OWN_DELAY:g} s answered in {took:.2f} s ({most} at once); "
            "a failing handler is reported and its connection closed")

