"""Request timelines: when and where each request ran. Plain data, no IO.

A server records one :class:`Span` per request while ``server.stats.timeline``
is a :class:`Timeline` (turn it on with ``server.stats.record_timeline(cap)``;
it is off by default and then costs one attribute test per request)::

    accepted ........ started ============ ended
    |  queue, fork or |   the handler     |
    |  wait for a     |   (setup, handle, |
    |  worker         |   finish)         |

``accepted`` is when ``get_request`` returned (for a prefork server, when the
parent accepted), ``started`` and ``ended`` bracket ``finish_request`` in
whichever thread or process ran it, identified by ``pid`` and ``tid``
(``threading.get_native_id()``, unique among the threads alive on the
machine). Times are ``time.monotonic()`` seconds: the same clock in every
process of the machine, so spans from forked children, prefork workers and
the load generator line up.

Memory is bounded: a timeline keeps at most ``cap`` spans; later requests
are counted in ``dropped`` and ``full`` turns true, so a plot can say that
it shows the first ``cap`` requests only.

Thread safety: ``record`` may be called from any thread (an append to a
list is atomic in CPython); readers get copies.
"""

from __future__ import annotations

import time

from .records import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Span", "Timeline", "DEFAULT_CAP"]

#: Spans a timeline keeps unless told otherwise (about 1 MB of memory).
DEFAULT_CAP = 10_000


class Span(NamedTuple):
    """One request: accepted, handler started, handler ended (monotonic
    seconds), the process and thread that ran the handler, and its outcome
    (an :class:`~sockserve.core.stats.Outcome` value: 0 ok, 1 error, 2 client
    gone, 3 timeout, 4 aborted)."""

    accepted: float
    started: float
    ended: float
    pid: int
    tid: int
    outcome: int

    @property
    def waited(self) -> float:
        """Seconds from accept to the handler's start (queue, fork, pool)."""
        return self.started - self.accepted

    @property
    def ran(self) -> float:
        """Seconds the handler ran."""
        return self.ended - self.started


class Timeline:
    """A bounded record of :class:`Span` s, in the order they ended.

    Use ``spans()`` to read, ``dropped``/``full`` to know whether the cap cut
    the record short, ``to_dict``/``from_dict`` to store or send it.
    ``origin`` is the monotonic time the timeline was made, a convenient zero
    for plots.
    """

    __slots__ = ("cap", "origin", "dropped", "_spans")

    def __init__(self, cap: int = DEFAULT_CAP, origin: float | None = None) -> None:
        if cap < 1:
            raise ValueError(f"cap must be at least 1, got {cap!r}")
        self.cap = cap
        self.origin = time.monotonic() if origin is None else origin
        self.dropped = 0
        self._spans: list[Span] = []

    def record(
        self, accepted: float, started: float, ended: float, pid: int, tid: int, outcome: int
    ) -> None:
        """Add one request's span (or count it as dropped once full)."""
        if len(self._spans) < self.cap:
            self._spans.append(Span(accepted, started, ended, pid, tid, int(outcome)))
        else:
            self.dropped += 1  # a lost increment under a race only undercounts drops

    def add(self, span: Span) -> None:
        """Add a span made elsewhere (a child's report, another timeline)."""
        self.record(*span)

    @property
    def full(self) -> bool:
        """True once the cap was reached (later requests were not kept)."""
        return len(self._spans) >= self.cap

    def spans(self) -> list[Span]:
        """A copy of the spans recorded so far, in the order they ended."""
        return list(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; :meth:`from_dict` reverses it."""
        return {
            "cap": self.cap,
            "origin": self.origin,
            "dropped": self.dropped,
            "fields": list(Span._fields),
            "spans": [list(span) for span in self._spans],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        """Rebuild a timeline saved by :meth:`to_dict`."""
        timeline = cls(int(data["cap"]), float(data["origin"]))
        timeline.dropped = int(data.get("dropped", 0))
        for row in data.get("spans", ()):
            accepted, started, ended, pid, tid, outcome = row
            timeline._spans.append(
                Span(float(accepted), float(started), float(ended), int(pid), int(tid), int(outcome))
            )
        return timeline

    def __repr__(self) -> str:
        more = f", {self.dropped} dropped" if self.dropped else ""
        return f"<Timeline {len(self._spans)} of cap {self.cap} spans{more}>"
