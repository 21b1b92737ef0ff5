"""Checkers for lesson 05 (measuring honestly): percentiles, and the listen backlog."""

from __future__ import annotations

import socketserver
from typing import Any

from .. import TCPServer
from ..backlog import run_backlog
from . import ExerciseFailed, exercise

LESSON = "05-measuring-honestly"

#: (samples, q, nearest-rank percentile), each case teaching one point.
_CASES: tuple[tuple[list[float], float, float, str], ...] = (
    ([5.0, 1.0, 3.0, 2.0, 4.0], 50, 3.0, "the samples come in any order: sort (a copy) first"),
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


@exercise(
    "measuring-percentile",
    lesson=LESSON,
    prompt="Write percentile(samples, q): the nearest-rank q-th percentile (0 < q <= 100) of a "
    "non-empty list of latencies: the smallest sample such that at least q% of the samples are "
    "at or below it. Do not change the caller's list.",
)
def check_percentile(percentile: Any) -> str:
    if not callable(percentile):
        raise ExerciseFailed(f"expected a function percentile(samples, q); got {percentile!r}")
    for samples, q, want, why in _CASES:
        given = list(samples)
        shown = repr(given) if len(given) <= 6 else _describe(given)
        got = percentile(given, q)
        if given != samples:
            raise ExerciseFailed(
                f"percentile({shown}, {q:g}) changed the caller's list (it sorted it in place?): "
                "sort a copy, sorted(samples), and leave the measurements as they were"
            )
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            raise ExerciseFailed(f"percentile({shown}, {q:g}) returned {got!r}; it should return one of the samples")
        if float(got) != want:
            raise ExerciseFailed(f"percentile({shown}, {q:g}) returned {got!r}, expected {want:g}: {why}")
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


@exercise(
    "measuring-burst-backlog",
    lesson=LESSON,
    prompt=f"Fix BurstServer, a subclass of the standard library's socketserver.TCPServer, so that "
    f"a burst of {BURST} clients connecting at once to it (one request of {DELAY_MS:g} ms each, "
    f"handled one at a time) all get their replies within {WINDOW:g} s.",
)
def check_burst_backlog(server_class: Any) -> str:
    if not isinstance(server_class, type) or not issubclass(
        server_class, (socketserver.TCPServer, TCPServer)
    ):
        raise ExerciseFailed(
            f"expected a server class derived from socketserver.TCPServer; got {server_class!r}"
        )
    backlog = int(getattr(server_class, "request_queue_size", 0))
    if backlog < BURST:
        raise ExerciseFailed(
            f"{server_class.__name__}.request_queue_size is {backlog}: the kernel keeps only about "
            f"that many connections the server has not accepted yet, so most of a burst of {BURST} "
            "is dropped and waits for a retransmit about a second later (or is reset). Set the "
            "class attribute request_queue_size to socket.SOMAXCONN"
        )
    run = run_backlog(None, clients=BURST, delay_ms=DELAY_MS, window=WINDOW, wait=WINDOW + 0.6,
                      server_class=server_class, label=f"{server_class.__name__} (backlog {backlog})")
    if run.in_window < BURST:
        raise ExerciseFailed(
            f"request_queue_size is {backlog}, but the burst was not served in time: {run.summary()}. "
            "Does the class change anything else (server_activate, the socket)?"
        )
    return run.summary()
