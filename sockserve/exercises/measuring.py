"""Checkers for lesson 05 (measuring honestly): percentiles, the listen
backlog, and a server that times its own handlers."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import StreamRequestHandler, TCPServer, ThreadingTCPServer
from ..workbook.backlog import run_backlog
from . import ExerciseFailed, exercise
from ..workbook.helpers import wait_for
from .support import a_class, a_function, handler_errors_note, running

LESSON = "05-measuring-honestly"

#: (samples, q, nearest-rank percentile), each case teaching one point.
_CASES: tuple[tuple[list[float], float, float, str], ...] = (
    ([5.0, 1.0, 3.0, 2.0, 4.0], 50, 3.0, "the samples come in any order"),
    ([9.0, 1.0, 5.0, 3.0], 100, 9.0, "the samples come in any order: p100 is the largest"),
    ([float(i) for i in range(1, 101)], 99, 99.0,
     "99 of the 100 samples are at or below the 99th value"),
    ([float(i) for i in range(1, 101)], 99.9, 100.0,
     "with 100 samples, 99.9% of them is 99.9 samples: the rank rounds up, to the 100th value"),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.0,
     "the nearest-rank percentile is always one of the samples (no interpolation): "
     "the 2nd of 4 values"),
    ([10.0] * 99 + [1000.0], 99, 10.0, "99 of the 100 samples are 10, so p99 is 10"),
    ([10.0] * 99 + [1000.0], 100, 1000.0, "p100 is the maximum"),
    ([10.0] * 98 + [1000.0] * 2, 99, 1000.0, "only 98 samples are 10: the 99th value is 1000"),
    ([7.0], 1, 7.0, "with one sample every percentile is that sample"),
)


@exercise("measuring-percentile", lesson=LESSON, answer=a_function("percentile(samples, q)"), difficulty=2)
def check_percentile(percentile: Callable[..., Any]) -> str:
    """Write percentile(samples, q): the nearest-rank q-th percentile (0 < q <= 100) of a non-empty list of
    latencies: the smallest sample such that at least q% of the samples are at or below it. Do not change the
    caller's list."""
    for samples, q, want, why in _CASES:
        given = list(samples)
        shown = repr(given) if len(given) <= 6 else _describe(given)
        got = percentile(given, q)
        if given != samples:
            raise ExerciseFailed(
                f"percentile({shown}, {q:g}) changed the caller's list: the measurements "
                "should stay as they were measured",
                fix="sort a copy, sorted(samples), instead of samples.sort()",
            )
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            raise ExerciseFailed(
                f"percentile({shown}, {q:g}) returned {got!r}, not one of the samples",
                fix="sort a copy of the samples and return the value at the right rank",
            )
        if float(got) != want:
            raise ExerciseFailed(
                f"percentile({shown}, {q:g}) returned {got!r}, which is not the smallest sample "
                f"with at least {q:g}% of the samples at or below it ({why})",
                fix="with n samples sorted, the answer is the k-th smallest, where k = "
                "ceil(q / 100 * n) (at least 1): ordered[k - 1]",
            )
    return f"all {len(_CASES)} cases right, including p99.9 of 100 samples and a tail of 2%"


def _describe(samples: list[float]) -> str:
    runs: list[tuple[float, int]] = []
    for value in samples:
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    if len(runs) <= 3:
        return " + ".join(f"[{v:g}] * {n}" if n > 1 else f"[{v:g}]" for v, n in runs)
    return f"[{samples[0]:g}, {samples[1]:g}, ..., {samples[-1]:g}] ({len(samples)} samples)"


BURST = 30
DELAY_MS = 10.0
WINDOW = 0.9
#: Seconds the check waits for the burst's replies: ample on a busy machine.
BURST_WAIT = 10.0


@exercise("measuring-burst-backlog", lesson=LESSON, difficulty=1,
          stub="class BurstServer(socketserver.TCPServer):\n    pass  # your code here\n",
          prompt=f"Fix BurstServer, a subclass of the standard library's socketserver.TCPServer, so that "
          f"a burst of {BURST} clients connecting at once to it (one request of {DELAY_MS:g} ms each, "
          f"handled one at a time) all get their replies within {WINDOW:g} s.")
def check_burst_backlog(server_class: Any) -> str:
    if not isinstance(server_class, type) or not issubclass(
        server_class, (socketserver.TCPServer, TCPServer)
    ):
        raise ExerciseFailed(
            f"expected a server class derived from socketserver.TCPServer; got {server_class!r}",
            fix="keep socketserver.TCPServer as the base of BurstServer",
        )
    backlog = int(getattr(server_class, "request_queue_size", 0))
    if backlog < BURST:
        # Decided before running the burst: a backlog this short cannot hold it
        # (the burst below would show the same, a second and a half later).
        raise ExerciseFailed(
            f"{server_class.__name__} asks the kernel to keep at most {backlog} connections it has "
            f"not accepted yet, but {BURST} arrive at once: the rest of the burst is dropped and "
            "waits for a retransmit about a second later, or is reset (section 3)",
            fix=f"that number is the class attribute request_queue_size, which server_activate() "
            "passes to listen(): set it to socket.SOMAXCONN",
        )
    # Judged by what the kernel did, not by the clock (a busy machine serves
    # a correct answer late too): a client dropped by a full queue had to
    # send its SYN or its request again, which its TCP_INFO counts. The wait
    # is long enough for a busy machine; a correct answer ends far sooner.
    run = run_backlog(None, clients=BURST, delay_ms=DELAY_MS, window=WINDOW, wait=BURST_WAIT,
                      server_class=server_class, label=f"{server_class.__name__} (backlog {backlog})")
    dropped = run.dropped
    if run.ok < BURST or dropped:
        lost = (f"{dropped} of the {BURST} were dropped by a full queue and had to send again" if dropped
                else f"{BURST - run.ok} got no reply")
        raise ExerciseFailed(
            f"{run.ok} of the {BURST} clients were served ({run.summary()}); {lost}, although "
            f"request_queue_size is {backlog}: something else keeps the burst out",
            fix="change nothing but request_queue_size: leave server_activate() and the socket "
            "as TCPServer makes them",
        )
    if dropped is None and run.in_window < BURST:  # no TCP_INFO here: only the clock can tell
        raise ExerciseFailed(
            f"{run.in_window} of the {BURST} clients were served within {WINDOW:g} s "
            f"({run.summary()}) although request_queue_size is {backlog}: something else keeps "
            "the burst waiting",
            fix="change nothing but request_queue_size: leave server_activate() and the socket "
            "as TCPServer makes them",
        )
    return run.summary() + ("" if dropped is None else "; no client was dropped")


# -- a server that times its own handlers ----------------------------------------------------


class _Sleep(StreamRequestHandler):
    """Replies to ``N`` after sleeping N milliseconds."""

    def handle(self) -> None:
        line = self.rfile.readline()
        time.sleep(int(line) / 1000)
        self.wfile.write(line)


def _ask_all(address: Any, lines: list[bytes], together: bool) -> list[float]:
    """Send each line on its own connection (all at once when *together*,
    else one after another); return each client's seconds until the server
    closed the connection (after its reply), NaN when it failed."""
    waited = [float("nan")] * len(lines)

    def one(i: int) -> None:
        began = time.monotonic()
        try:
            with socket.create_connection(address, timeout=3.0) as sock:
                sock.sendall(lines[i])
                while sock.recv(64):  # to the end: the connection closes after finish_request
                    pass
        except OSError:
            return
        waited[i] = time.monotonic() - began

    if not together:
        for i in range(len(lines)):
            one(i)
        return waited
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(lines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)
    return waited


def _timed_right(server: Any, delays: tuple[int, ...], base: str) -> None:
    """Send one request per delay, one after another; fail unless durations holds each handler's seconds."""
    server.durations = []
    waited = _ask_all(server.server_address, [b"%d\n" % d for d in delays], together=False)
    note = handler_errors_note(server)
    if any(w != w for w in waited):  # nan: no reply
        raise ExerciseFailed(
            f"with {base}, a client got no reply: the mixin's hook replaced the one that runs the handler" + note,
            fix="call super().finish_request(request, client_address) inside your finish_request",
        )
    # The client sees its connection end at shutdown_request(); give the
    # server's thread a moment to note what it timed after that.
    wait_for(lambda: len(server.durations) >= len(delays), 3.0)
    durations = list(server.durations)
    if len(durations) != len(delays):
        raise ExerciseFailed(
            f"with {base}, after {len(delays)} requests, server.durations holds {len(durations)} values: "
            "the hook that runs each request's handler is the place to time it",
            fix="override finish_request(self, request, client_address): note "
            "time.perf_counter() before and after super().finish_request(...), and append the "
            "difference to self.durations",
        )
    for delay, seconds in zip(delays, durations):
        # Up to a second over: a handler's sleep can end late on a busy machine (a class's hub,
        # a test run with the CPU taken), and milliseconds (20 for 0.020) or a start time
        # (time.perf_counter() itself) are still far outside.
        if not isinstance(seconds, (int, float)) or not delay / 1000 <= seconds < delay / 1000 + 1.0:
            raise ExerciseFailed(
                f"with {base}, a handler that sleeps {delay} ms was recorded as {seconds!r}: the value should "
                "be the seconds the handler ran (a threading server's process_request returns before the "
                "handler has even started)",
                fix="time finish_request, the hook that runs the handler: append time.perf_counter() - began, "
                "where began = time.perf_counter() just before super().finish_request(...) (seconds, not "
                "milliseconds)",
            )


@exercise("measuring-timing-mixin", lesson=LESSON, difficulty=2,
          answer=a_class("TimingMixIn", note="the hook that runs the handler", prelude="import time\n\n\n"))
def check_timing_mixin(mixin: type) -> str:
    """Write TimingMixIn: a server mixin whose finish_request measures how long each handler took
    (time.perf_counter) and appends the seconds to self.durations (a list the server has), still running the
    handler."""
    delays = (20, 80)
    # A threading server first: there the hook that runs the handler
    # (finish_request) and the one that hands the request on
    # (process_request, which returns at once) time different things.
    threaded = type(f"Timing{ThreadingTCPServer.__name__}", (mixin, ThreadingTCPServer), {})
    with running(threaded, _Sleep) as server:
        _timed_right(server, delays, ThreadingTCPServer.__name__)
    cls = type(f"Timing{TCPServer.__name__}", (mixin, TCPServer), {})
    with running(cls, _Sleep) as server:
        _timed_right(server, delays, TCPServer.__name__)
        # What server-side timing cannot see: the queue in front of a plain server.
        record: list[float] = []
        server.durations = record
        waited = _ask_all(server.server_address, [b"50\n"] * 3, together=True)
    inside = sorted(record)  # read once the server has stopped: every handler has been timed
    served = ", ".join(f"{d * 1000:.0f}" for d in inside)
    seen = ", ".join(f"{w * 1000:.0f}" for w in sorted(waited))
    return (f"durations right. Three clients at once: the server timed its handlers at {served} ms, "
            f"the clients waited {seen} ms: server-side timing leaves out the queue")

