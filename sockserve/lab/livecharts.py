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

Each chart has its text alternative, one sentence computed from the same
samples (:func:`describe_latency`, :func:`describe_outcomes`,
:func:`describe_concurrency`): it is the chart's accessible name and what
a saved notebook prints under the picture. Series differ in marker and
line style as well as colour (:mod:`sockserve.plots.style`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..plots.style import OUTCOME_STYLES, PALETTE, svg_dash
from .runs import Sample
from .svgchart import Series, line_chart

__all__ = ["latency_chart", "outcomes_chart", "concurrency_chart", "OUTCOME_COLOURS",
           "describe_latency", "describe_outcomes", "describe_concurrency", "describe_charts"]

#: One colour per outcome, in every chart (with a marker and a line style each: see plots.style).
OUTCOME_COLOURS = {name: colour for name, (colour, _marker, _line) in OUTCOME_STYLES.items()}
_P50, _P99 = PALETTE[4], PALETTE[5]  # blue and vermillion, with circles and triangles


def _outcome_series(name: str, points: list[tuple[float, float]], label: str) -> Series:
    colour, marker, line = OUTCOME_STYLES[name]
    return Series(label, points, colour, dash=svg_dash(line), marker=marker, step=True)


def describe_latency(samples: Sequence[Sample]) -> str:
    """The latency chart in one sentence: replies so far and their p50/p99."""
    last = samples[-1] if samples else None
    if last is None or last.p50_ms is None or not last.ok:
        return "Latency chart: no replies yet."
    recent = [s.recent_p99_ms for s in samples if s.recent_p99_ms is not None]
    worst = f"; the worst interval's p99 was {max(recent):.1f} ms" if recent else ""
    return (f"Latency chart: {last.ok} replies in {last.elapsed:.1f} s, p50 {last.p50_ms:.1f} ms and "
            f"p99 {last.p99_ms or 0.0:.1f} ms over the whole run{worst}.")


def describe_outcomes(samples: Sequence[Sample]) -> str:
    """The outcomes chart in one sentence: how many requests ended each way."""
    if not samples:
        return "Outcomes chart: no requests yet."
    counts = samples[-1].outcomes
    failed = [f"{counts[name]} {name}" for name in OUTCOME_COLOURS if name != "ok" and counts.get(name)]
    return (f"Outcomes chart: {counts.get('ok', 0)} ok"
            + (f", failed: {', '.join(failed)}" if failed else ", none failed")
            + f", over {samples[-1].elapsed:.1f} s.")


def describe_concurrency(samples: Sequence[Sample]) -> str:
    """The threads and children chart in one sentence: the most of each."""
    threads = [s.threads for s in samples if s.threads is not None]
    children = [s.children for s in samples if s.children is not None]
    if not threads and not children:
        return "Threads and children chart: no readings yet."
    peak = bool(samples) and samples[-1].concurrency == "peak"
    what = "alive at once" if peak else "at a reading"
    return (f"Threads and children chart: at most {max(threads, default=0)} handler threads and "
            f"{max(children, default=0)} child processes {what}.")


def describe_charts(samples: Sequence[Sample]) -> str:
    """The three charts' text alternatives, one after the other."""
    return " ".join((describe_latency(samples), describe_outcomes(samples), describe_concurrency(samples)))


def latency_chart(samples: Sequence[Sample], duration: float) -> str:
    recent50 = [(s.elapsed, s.recent_p50_ms) for s in samples if s.recent_p50_ms is not None]
    recent99 = [(s.elapsed, s.recent_p99_ms) for s in samples if s.recent_p99_ms is not None]
    all50 = [(s.elapsed, s.p50_ms) for s in samples if s.p50_ms is not None and s.ok]
    all99 = [(s.elapsed, s.p99_ms) for s in samples if s.p99_ms is not None and s.ok]
    interval = _interval(samples)
    series = [
        Series("p50, this interval", recent50, _P50, marker="o"),
        Series("p99, this interval", recent99, _P99, marker="^"),
        Series("p50 since start", all50, _P50, dash="5 3", width=1.4),
        Series("p99 since start", all99, _P99, dash="2 2", width=1.4),
    ]
    requests = samples[-1].requests if samples else 0
    return line_chart(
        series, title=f"latency (ms), {requests} requests", xlabel="seconds", ylabel="ms",
        xmax=duration,
        caption=f"solid: replies in each {interval} interval; dashed: all replies so far",
        description=describe_latency(samples),
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
    series = [_outcome_series(name, rates[name], name if name == "ok" else f"{name} (failed)")
              for name in OUTCOME_COLOURS if name in seen]
    failed = sum(samples[-1].outcomes.get(n, 0) for n in OUTCOME_COLOURS if n != "ok") if samples else 0
    title = f"requests per second, by outcome ({failed} failed)"
    return line_chart(series, title=title, xlabel="seconds", ylabel="per second", xmax=duration,
                      caption=f"each point: the requests that ended in one {_interval(samples)} interval",
                      description=describe_outcomes(samples))


def concurrency_chart(samples: Sequence[Sample], duration: float) -> str:
    peak = bool(samples) and samples[-1].concurrency == "peak"
    threads = [(s.elapsed, float(s.threads)) for s in samples if s.threads is not None]
    children = [(s.elapsed, float(s.children)) for s in samples if s.children is not None]
    # Equal counts would hide one line under the other: children are drawn
    # 3 px higher, with square markers (the caption says so).
    series = [Series("handler threads", threads, PALETTE[4], step=True, marker="o"),
              Series("child processes", children, PALETTE[0], step=True, marker="s", dash="4 2",
                     offset=3.0)]
    top = max([1.0, *(n for _, n in threads), *(n for _, n in children)]) * 1.2
    what = (f"most alive at once in each {_interval(samples)} interval" if peak
            else "alive at each reading")
    return line_chart(series, title=f"server threads and children ({what})", xlabel="seconds",
                      ylabel="count", xmax=duration, ymax=top,
                      caption="children drawn 3 px higher so equal counts stay apart",
                      description=describe_concurrency(samples))


def _interval(samples: Sequence[Sample]) -> str:
    if len(samples) < 2:
        return "0.1 s"
    span = (samples[-1].elapsed - samples[0].elapsed) / (len(samples) - 1)
    return f"{span:.1f} s"
