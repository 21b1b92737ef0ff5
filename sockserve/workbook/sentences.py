"""Sentences the lessons print, computed from what was measured beside them.

A lesson's static text explains mechanisms; anything that says how a run
*turned out* is computed here from the run, so it stays true on one core,
on two, and on a busy machine. Plain functions of plain data (results of
:mod:`sockserve.load` and :mod:`sockserve.measure`); no IO, no plotting.

* :func:`failures`: how many requests of a run failed, and why, in words.
* :func:`slowest_against_work`: the slowest request of a one-client closed
  loop against the work it asked for (where nothing waits behind another
  request, the rest is the machine's).
* :func:`lines_and_connections`: a run over persistent connections counts
  request lines; its timeline counts connections: both, in one sentence.
* :func:`outcome_words`: outcome counts as "17 reset, 6 timeout".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..plots.timeline import as_timeline

__all__ = ["failures", "slowest_against_work", "lines_and_connections", "outcome_words"]


def outcome_words(outcomes: Mapping[str, int], skip: tuple[str, ...] = ("ok",)) -> str:
    """``"17 reset, 6 timeout"``: the non-zero counts, except *skip*."""
    return ", ".join(f"{n} {name}" for name, n in outcomes.items() if n and name not in skip)


def failures(run: Any) -> str:
    """How many of a run's requests failed and why (its outcomes and the
    load generator's example message for each), or that none did. *run* is
    a :class:`~sockserve.measure.results.RunResult`."""
    outcomes: Mapping[str, int] = run.outcomes or {}
    failed = sum(n for name, n in outcomes.items() if name != "ok")
    if not failed:
        return f"none of its {run.requests} requests failed"
    examples: Mapping[str, str] = (run.load or {}).get("examples", {})
    why = "; ".join(f"{n} {name}" + (f" ({examples[name]})" if examples.get(name) else "")
                    for name, n in outcomes.items() if n and name != "ok")
    return f"{failed} of its {run.requests} requests failed: {why}"


def slowest_against_work(result: Any, work_ms: float, clients: int = 1) -> str:
    """The slowest reply of a closed-loop run with *clients* client(s)
    against the most work a request asked for (*work_ms*). With one client
    no request waits behind another in the server, so anything well beyond
    the work (and a few ms of connection) was time the request spent not
    running: the sentence says how much, and never calls it a queue."""
    ms = result.latency_ms()
    slowest = float(ms["max"])
    text = f"The slowest request took {slowest:.0f} ms for at most {work_ms:g} ms of work"
    if clients != 1:
        return text + f" ({clients} clients: requests may have waited for each other)."
    extra = slowest - work_ms
    if extra <= max(5.0, 0.2 * work_ms):
        return text + ": about the work itself, since with one client no request waits behind another."
    return (text + f": {extra:.0f} ms more. With one client no request waits behind another, so that time "
            "went to the machine: the server's process waited for a core, or ran slower than when the work "
            "was calibrated.")


def lines_and_connections(run: Any) -> str:
    """What a run over connections answered, counted twice: request lines
    (what the load generator counts) and connections (what the server's
    timeline counts, one span per connection: socketserver's "request")."""
    if run.timeline:  # a Timeline or its dict: one span per connection, every round's
        timeline = as_timeline(run.timeline)
        connections = len(timeline.spans()) + timeline.dropped
    else:
        connections = run.clients
    lat = run.latency_ms
    return (f"{run.server}: {run.ok} request lines answered over {connections} connections, half of them "
            f"within {lat['p50']:.1f} ms, the slowest after {lat['max']:.1f} ms")
