"""The traffic panel's live charts, drawn from its samples as SVG text.

Three charts, each redrawn several times a second while load runs (see
:mod:`.svgchart` for why SVG and not matplotlib):

:func:`latency_chart`
    p50 and p99 of the replies in each interval (solid, with markers) beside
    p50 and p99 since the start (dashed), so a change shows at once instead
    of being averaged away.
:func:`outcomes_chart`
    requests per second in each interval, by outcome: ok, and each kind of
    failure (refused, reset, timeout, error) that happened, so failures are
    seen, not only successes.
:func:`concurrency_chart`
    the server's threads and children; the title says whether they are the
    peak in each interval or the count at each reading.
"""

from __future__ import annotations

from collections.abc import Sequence

from .runs import Sample
from .svgchart import Series, line_chart

__all__ = ["latency_chart", "outcomes_chart", "concurrency_chart", "OUTCOME_COLOURS"]

#: One colour per outcome, in every chart.
OUTCOME_COLOURS = {
    "ok": "#2a9d3a",
    "refused": "#d62728",
    "reset": "#ff7f0e",
    "timeout": "#9467bd",
    "error": "#7f7f7f",
}


def latency_chart(samples: Sequence[Sample], duration: float) -> str:
    recent50 = [(s.elapsed, s.recent_p50_ms) for s in samples if s.recent_p50_ms is not None]
    recent99 = [(s.elapsed, s.recent_p99_ms) for s in samples if s.recent_p99_ms is not None]
    all50 = [(s.elapsed, s.p50_ms) for s in samples if s.p50_ms is not None and s.ok]
    all99 = [(s.elapsed, s.p99_ms) for s in samples if s.p99_ms is not None and s.ok]
    interval = _interval(samples)
    series = [
        Series("p50, this interval", recent50, "#1f77b4", marker="o"),
        Series("p99, this interval", recent99, "#d62728", marker="^"),
        Series("p50 since start", all50, "#1f77b4", dash="5 3", width=1.2),
        Series("p99 since start", all99, "#d62728", dash="5 3", width=1.2),
    ]
    requests = samples[-1].requests if samples else 0
    return line_chart(
        series, title=f"latency (ms), {requests} requests", xlabel="seconds", ylabel="ms",
        xmax=duration,
        caption=f"solid: replies in each {interval} interval; dashed: all replies so far",
    )


def outcomes_chart(samples: Sequence[Sample], duration: float) -> str:
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in OUTCOME_COLOURS}
    seen: set[str] = {"ok"}
    previous: Sample | None = None
    for s in samples:
        if previous is not None and s.outcomes and previous.outcomes:
            dt = s.elapsed - previous.elapsed
            if dt > 0:
                for name in rates:
                    done = s.outcomes.get(name, 0) - previous.outcomes.get(name, 0)
                    rates[name].append((s.elapsed, done / dt))
                    if done and name != "ok":
                        seen.add(name)
        previous = s
    markers = {"ok": "", "refused": "s", "reset": "^", "timeout": "o", "error": "s"}
    series = [Series(name if name == "ok" else f"{name} (failed)", rates[name], colour,
                     marker=markers[name], step=True)
              for name, colour in OUTCOME_COLOURS.items() if name in seen]
    failed = sum(samples[-1].outcomes.get(n, 0) for n in OUTCOME_COLOURS if n != "ok") if samples else 0
    title = f"requests per second, by outcome ({failed} failed)"
    return line_chart(series, title=title, xlabel="seconds", ylabel="per second", xmax=duration,
                      caption=f"each point: the requests that ended in one {_interval(samples)} interval")


def concurrency_chart(samples: Sequence[Sample], duration: float) -> str:
    peak = bool(samples) and samples[-1].concurrency == "peak"
    threads = [(s.elapsed, float(s.threads)) for s in samples if s.threads is not None]
    children = [(s.elapsed, float(s.children)) for s in samples if s.children is not None]
    # Equal counts would hide one line under the other: children are drawn
    # 3 px higher, with square markers (the caption says so).
    series = [Series("handler threads", threads, "#2ca02c", step=True, marker="o"),
              Series("child processes", children, "#9467bd", step=True, marker="s", dash="4 2",
                     offset=3.0)]
    top = max([1.0, *(n for _, n in threads), *(n for _, n in children)]) * 1.2
    what = (f"most alive at once in each {_interval(samples)} interval" if peak
            else "alive at each reading")
    return line_chart(series, title=f"server threads and children ({what})", xlabel="seconds",
                      ylabel="count", xmax=duration, ymax=top,
                      caption="children drawn 3 px higher so equal counts stay apart")


def _interval(samples: Sequence[Sample]) -> str:
    if len(samples) < 2:
        return "0.1 s"
    span = (samples[-1].elapsed - samples[0].elapsed) / (len(samples) - 1)
    return f"{span:.1f} s"
