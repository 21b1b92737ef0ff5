"""A server's own counts, reported per interval to the process that started it.

Sampling a server from outside (``/proc``, a few times a second) misses
what lives shorter than the sampling interval: a threading server under the
echo workload runs each handler thread for well under a millisecond, so an
outside sampler sees none. The server itself knows: ``ServerStats`` keeps
the most threads and children alive at once since the last look
(``take_peaks()``). :class:`StatsFeed` looks every *interval* seconds and
writes one JSON line per look; ``python -m sockserve serve --report-every S``
runs one on its stdout, which :class:`sockserve.measure.experiment.ServerProcess`
reads with :func:`parse_feed`.

One line (after the serve command's first, "serving ..." line)::

    {"type": "stats", "t": 12345.678, "interval": 0.1, "threads": 3,
     "children": 0, "started": 812, "completed": 811, "active": 1,
     "iterations_per_ms": 14200.0}

``t`` is ``time.monotonic()`` (one clock for every process on the machine),
``threads``/``children`` the peaks of the interval that ends at ``t``, the
counters cumulative, ``iterations_per_ms`` the cpu calibration the server's
handler uses (null for other workloads).

Thread safety: the feed is one daemon thread; ``stop()`` may be called from
any thread.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["StatsFeed", "FeedLine", "parse_feed"]


@dataclass(frozen=True)
class FeedLine:
    """One reported interval (see the module docstring)."""

    t: float
    interval: float
    threads: int
    children: int
    started: int
    completed: int
    active: int
    iterations_per_ms: float | None


class StatsFeed:
    """Writes a server's per-interval peaks as JSON lines via *write*
    (default: file descriptor 1, one ``os.write`` per line).

    Use ``start()`` once the server's first line is out, ``stop()`` when it
    has stopped serving (one last line is written then).
    """

    def __init__(self, server: Any, interval: float, write: Callable[[bytes], Any] | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"the report interval must be positive, got {interval!r}")
        self.server = server
        self.interval = float(interval)
        self._write = write or (lambda data: os.write(1, data))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sockserve stats feed", daemon=True)

    def start(self) -> StatsFeed:
        self.server.stats.take_peaks()  # the first window starts now
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def line(self) -> bytes:
        """Take the peaks and make one line (what the thread writes)."""
        stats = self.server.stats
        threads, children = stats.take_peaks()
        snap = stats.snapshot()
        rate = getattr(self.server.RequestHandlerClass, "iterations_per_ms", None)
        data = {
            "type": "stats", "t": time.monotonic(), "interval": self.interval,
            "threads": int(threads), "children": int(children),
            "started": int(snap.get("started", 0)), "completed": int(snap.get("completed", 0)),
            "active": int(snap.get("active", 0)),
            "iterations_per_ms": None if rate is None else float(rate),
        }
        return json.dumps(data).encode() + b"\n"

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            if not self._emit():
                return
        self._emit()

    def _emit(self) -> bool:
        try:
            self._write(self.line())
        except OSError:
            return False  # the reader is gone: nothing more to say
        return True


def parse_feed(data: bytes) -> list[FeedLine]:
    """The stats lines in a server's stdout (*data*), skipping any other line
    (the first "serving" line) and a last line still being written."""
    found = []
    for raw in data.split(b"\n")[:-1]:  # the last piece is "" or a line being written
        if not raw.startswith(b'{"type": "stats"'):
            continue
        try:
            d = json.loads(raw)
            found.append(FeedLine(
                float(d["t"]), float(d["interval"]), int(d["threads"]), int(d["children"]),
                int(d["started"]), int(d["completed"]), int(d["active"]),
                None if d.get("iterations_per_ms") is None else float(d["iterations_per_ms"]),
            ))
        except (ValueError, KeyError, TypeError):
            continue
    return found
