"""Request timelines drawn: when and where each request ran (matplotlib, imported only when drawing).

One lane per worker, the ``(pid, tid)`` that ran the handler: the serving
thread of a plain server, each handler thread of a threading server, each
child of a forking server, the fixed workers of a thread pool or a prefork
server, the one event-loop thread of an asyncio server. In its lane each
request is a bar::

    accepted ......... started ========== ended
             waiting             running

drawn light and thin while it *waited* (accept to handler start: the
queue, a fork, a worker to come free) and dark and thick while it *ran*; a
request whose outcome was not OK gets a cross at its end. Requests that
overlap in one lane (coroutines on one loop) are stacked inside the lane.
When the timeline hit its cap, the title says that only the first *cap*
requests are shown.

A server with a thread (or a child) per request has a worker per request:
hundreds of lanes, one bar each, would make a figure metres tall. Beyond
:data:`MAX_LABELLED_LANES` workers, workers that never ran at the same time
share a row (:func:`lane_rows`), so the figure has as many rows as workers
were busy at once, and the axis says how many workers each row holds.

What a span is: for a stream server, a span is a *connection* (socketserver
calls it a request); with persistent connections one connection carries
many request lines, so the titles say "connections" then (*unit*).

``plot_timeline(timeline, ax=None, title=None)``
    one timeline; returns the Figure. *timeline* is a
    :class:`~sockserve.core.timeline.Timeline`, its ``to_dict()``, or a sequence
    of spans.
``plot_timelines({label: timeline, ...})``
    several, one above the other on one time scale (a comparison's runs:
    ``plot_timelines(comparison)`` takes every run that recorded one).
``worker_lanes(spans)``
    the lanes, in the order they first started a request: what the y axis
    shows, for tests and captions.
``describe_timelines(timelines)`` / ``describe_timeline(timeline)``
    the figure's text alternative: one sentence from the same spans (how
    many, on how many workers, how many ran at once at most, the longest
    wait), for a lesson to print under the figure.

The same functions serve the notebooks, the lab's panels and scripts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.timeline import Span, Timeline
from .style import MIN_FONT_SIZE, OUTCOME_STYLES, PALETTE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["as_timeline", "worker_lanes", "lane_label", "lane_rows", "most_at_once", "plot_timeline",
           "plot_timelines", "describe_timeline", "describe_timelines", "units_of",
           "WAIT_COLOUR", "RUN_COLOUR", "ERROR_COLOUR"]

#: Waiting: light and thin; running: dark and thick (apart in grey print too).
WAIT_COLOUR = PALETTE[1]
RUN_COLOUR = PALETTE[4]
#: A failed request: a cross (its shape says it, not only its colour).
ERROR_COLOUR = OUTCOME_STYLES["refused"][0]
#: Lanes drawn one per worker; with more workers, workers that never ran at
#: the same time share a row (see :func:`lane_rows`).
MAX_LABELLED_LANES = 24
#: Requests stacked side by side inside one lane at most (more wrap around).
MAX_STACK = 12


def as_timeline(obj: Any) -> Timeline:
    """A Timeline from a timeline, its ``to_dict()``, or spans (tuples of six)."""
    if isinstance(obj, Timeline):
        return obj
    if isinstance(obj, Mapping):
        return Timeline.from_dict(obj)  # type: ignore[arg-type]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        spans = [Span(*row) for row in obj]
        timeline = Timeline(max(1, len(spans)), min((s.accepted for s in spans), default=0.0))
        for span in spans:
            timeline.add(span)
        return timeline
    raise TypeError(f"cannot draw {type(obj).__name__} as a timeline: pass a Timeline, "
                    "its to_dict(), or a list of spans")


def worker_lanes(spans: Iterable[Span]) -> list[tuple[int, int]]:
    """The distinct ``(pid, tid)`` of *spans*, in the order each first started a request."""
    first: dict[tuple[int, int], float] = {}
    for span in spans:
        key = (span.pid, span.tid)
        if key not in first or span.started < first[key]:
            first[key] = span.started
    return sorted(first, key=lambda key: (first[key], key))


def lane_rows(spans: Iterable[Span], most: int = MAX_LABELLED_LANES) -> list[list[tuple[int, int]]]:
    """The workers of *spans*, grouped in rows for drawing: one row per worker
    when there are at most *most*; else each worker joins the first row
    whose workers had all finished (their last request ended) before its
    first request was accepted, so the rows are as many as the workers busy
    at the same time, and no two requests in a row overlap."""
    spans = list(spans)
    lanes = worker_lanes(spans)
    if len(lanes) <= most:
        return [[lane] for lane in lanes]
    first: dict[tuple[int, int], float] = {}
    last: dict[tuple[int, int], float] = {}
    for span in spans:
        key = (span.pid, span.tid)
        first[key] = min(first.get(key, span.accepted), span.accepted)
        last[key] = max(last.get(key, span.ended), span.ended)
    rows: list[list[tuple[int, int]]] = []
    ends: list[float] = []
    for lane in sorted(lanes, key=lambda key: (first[key], key)):
        for i, end in enumerate(ends):
            if end <= first[lane]:
                rows[i].append(lane)
                ends[i] = last[lane]
                break
        else:
            rows.append([lane])
            ends.append(last[lane])
    return rows


def _worker_word(lanes: Sequence[tuple[int, int]], count: int) -> str:
    """"thread(s)" when the workers are threads of one process, "process(es)"
    when each is a process of its own, else "worker(s)"."""
    pids = {pid for pid, _ in lanes}
    if len(lanes) < 2:
        word = "worker"
    elif len(pids) == 1:
        word = "thread"
    elif all(pid == tid for pid, tid in lanes):
        word = "process"
    else:
        word = "worker"
    plural = {"process": "processes"}.get(word, word + "s")
    return word if count == 1 else plural


def most_at_once(spans: Iterable[Span]) -> int:
    """The most handlers of *spans* running at the same moment."""
    spans = list(spans)
    events = sorted([(s.started, 1) for s in spans] + [(s.ended, -1) for s in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" + ("" if count == 1 else "s")


def describe_timeline(timeline: Any, label: str = "", unit: str = "request") -> str:
    """One timeline in words: how many *unit* s, on how many workers (and
    rows, when workers share them), the most running at once, the longest
    wait before a handler started, and how many failed."""
    found = as_timeline(timeline)
    spans = found.spans()
    name = f"{label}: " if label else ""
    if not spans:
        return f"{name}no {unit}s recorded"
    lanes = worker_lanes(spans)
    rows = lane_rows(spans)
    where = f"on {len(lanes)} {_worker_word(lanes, len(lanes))}"
    if len(rows) < len(lanes):
        where += f" (drawn in {len(rows)} rows: a row holds {_worker_word(lanes, 2)} that ran one after another)"
    waited = max(s.waited for s in spans) * 1000.0
    failed = sum(1 for s in spans if s.outcome != 0)
    text = (f"{name}{_plural(len(spans), unit)} {where}, at most {most_at_once(spans)} running at once, "
            f"the longest waited {waited:.1f} ms before its handler started")
    if failed:
        text += f", {failed} ended in error (crosses)"
    if found.full:
        text += f" (only the first {found.cap} recorded)"
    return text


def units_of(timelines: Any) -> dict[str, str]:
    """Label -> what a span is ("connection" or "request") for a comparison's
    runs: a run whose clients kept their connections open served many
    requests per connection."""
    if not hasattr(timelines, "runs"):
        return {}
    return {run.server: ("connection" if (run.load.get("spec") or {}).get("connection") == "persistent"
                         else "request") for run in timelines.runs if run.timeline}


def describe_timelines(timelines: Any, unit: str | None = None) -> str:
    """The figure of :func:`plot_timelines` in one line (the same arguments):
    each timeline's :func:`describe_timeline`, joined."""
    units = units_of(timelines)
    found = _found(timelines)
    return "Timelines: " + "; ".join(
        describe_timeline(t, label, unit or units.get(label, "request")) for label, t in found.items()) + "."


def lane_label(lane: tuple[int, int], pids: int) -> str:
    """``"pid 812"`` when every lane is its own process, ``"tid 4411"`` when
    they share one, else both."""
    pid, tid = lane
    if pids == 1:
        return f"tid {tid}"
    if pid == tid:
        return f"pid {pid}"
    return f"pid {pid} tid {tid}"


def _stack(spans: list[Span]) -> list[int]:
    """For spans of one lane sorted by start: the row each goes in, so
    handlers that ran at the same time in one lane (coroutines on one loop)
    sit side by side. Waiting does not take a row of its own: it may overlap
    the lane's other work (a pool worker busy while the next request
    waits)."""
    ends: list[float] = []
    rows = []
    for span in spans:
        for row, end in enumerate(ends):
            if end <= span.started:
                ends[row] = span.ended
                break
        else:
            row = len(ends) % MAX_STACK
            if len(ends) < MAX_STACK:
                ends.append(span.ended)
            else:
                ends[row] = max(ends[row], span.ended)
        rows.append(row)
    return rows


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt

    with plt.ioff():
        _, new = plt.subplots(figsize=size, layout="constrained")
    return new


def _draw(ax: Axes, timeline: Timeline, origin: float, title: str | None, unit: str = "request") -> None:
    # matplotlib is optional: imported when drawing
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    spans = timeline.spans()
    lanes = worker_lanes(spans)
    grouped = lane_rows(spans)
    index = {lane: i for i, row in enumerate(grouped) for lane in row}
    by_lane: dict[int, list[Span]] = {i: [] for i in range(len(grouped))}
    for span in spans:
        by_lane[index[(span.pid, span.tid)]].append(span)
    errors_x: list[float] = []
    errors_y: list[float] = []
    for lane, members in by_lane.items():
        members.sort(key=lambda s: s.started)
        rows = _stack(members)
        depth = max(rows) + 1
        height = 0.8 / depth
        base = lane - 0.4
        waits: dict[int, list[tuple[float, float]]] = {}
        runs: dict[int, list[tuple[float, float]]] = {}
        for span, row in zip(members, rows):
            start = (span.accepted - origin) * 1000.0
            began = (span.started - origin) * 1000.0
            waits.setdefault(row, []).append((start, max(began - start, 0.0)))
            runs.setdefault(row, []).append((began, max((span.ended - span.started) * 1000.0, 0.0)))
            if span.outcome != 0:
                errors_x.append((span.ended - origin) * 1000.0)
                errors_y.append(base + (row + 0.5) * height)
        for row in waits:
            # waiting: a thin bar under the running ones (it may overlap them)
            ax.broken_barh(waits[row], (base + (row + 0.3) * height, height * 0.3),
                           facecolors=WAIT_COLOUR, edgecolor="none", zorder=1)
            ax.broken_barh(runs[row], (base + row * height, height * 0.9),
                           facecolors=RUN_COLOUR, edgecolor="white", linewidth=0.3, zorder=2)
    if errors_x:
        ax.plot(errors_x, errors_y, linestyle="none", marker="x", color=ERROR_COLOUR, markersize=7,
                markeredgewidth=2, zorder=3)
    pids = len({pid for pid, _ in lanes})
    if len(grouped) == len(lanes):
        ax.set_yticks(range(len(lanes)), [lane_label(lane, pids) for lane in lanes], fontsize=MIN_FONT_SIZE)
        ax.set_ylabel(f"{len(lanes)} {_worker_word(lanes, len(lanes)) if lanes else 'workers'}")
    else:  # workers share rows: say how many each row holds
        ax.set_yticks(range(len(grouped)), [_plural(len(row), _worker_word(lanes, 1)) for row in grouped],
                      fontsize=MIN_FONT_SIZE)
        ax.set_ylabel(f"{len(lanes)} {_worker_word(lanes, 2)}\nin {len(grouped)} rows", fontsize=9)
    ax.set_ylim(len(grouped) - 0.5 if grouped else 0.5, -0.5)  # first lane on top
    ax.set_xlabel("ms since the timeline started")
    ax.grid(True, axis="x", alpha=0.3)
    heading = title or f"when and where each {unit} ran"
    heading += f": {_plural(len(spans), unit)}"
    if len(grouped) < len(lanes):
        heading += f" on {len(lanes)} {_worker_word(lanes, 2)}, drawn {len(grouped)} rows deep"
    if timeline.full:
        heading += (f"\n(cap of {timeline.cap} reached: only the first {timeline.cap} are shown, "
                    f"{timeline.dropped} more not recorded)")
    ax.set_title(heading, fontsize=10, loc="left")
    if not spans:
        ax.text(0.5, 0.5, f"no {unit}s recorded", transform=ax.transAxes, ha="center", va="center")
    handles: list[Any] = [Patch(color=WAIT_COLOUR, label="waiting (thin): accepted,\nnot yet started"),
                          Patch(color=RUN_COLOUR, label="running (thick):\nthe handler")]
    if errors_x:
        handles.append(Line2D([], [], linestyle="none", marker="x", color=ERROR_COLOUR, markeredgewidth=2,
                              label="ended in error"))
    ax.legend(handles=handles, fontsize=MIN_FONT_SIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)


def _origin(timelines: Sequence[Timeline]) -> float:
    firsts = [min(s.accepted for s in t.spans()) for t in timelines if len(t)]
    return min(firsts) if firsts else min((t.origin for t in timelines), default=0.0)


def plot_timeline(timeline: Any, ax: Axes | None = None, title: str | None = None,
                  unit: str = "request") -> Figure:
    """Draw *timeline* (one lane per worker) into *ax*, or a new figure; return the Figure.

    Time runs from the first request's accept (0 ms); *unit* names what a
    span is ("request", or "connection" for persistent connections)."""
    found = as_timeline(timeline)
    rows = len(lane_rows(found.spans()))
    height = 1.6 + rows * 0.24
    axes = _new_axes(ax, (7.5, height))
    _draw(axes, found, _origin([found]), title, unit)
    figure = axes.get_figure()
    assert figure is not None
    return figure  # type: ignore[return-value]


def _found(timelines: Any) -> dict[str, Timeline]:
    if hasattr(timelines, "runs"):
        timelines = {run.server: run.timeline for run in timelines.runs if run.timeline}
    found = {str(label): as_timeline(t) for label, t in dict(timelines).items()}
    if not found:
        raise ValueError("no timelines to draw: run the comparison with timeline=True")
    return found


def plot_timelines(timelines: Any, share_time: bool = False, fig: Figure | None = None,
                   unit: str | None = None) -> Figure:
    """Several timelines one above the other: *timelines* maps a label to a
    timeline (or its dict), or is a :class:`~sockserve.measure.results.Comparison`
    (every run that recorded a timeline; a run over persistent connections
    counts "connections", see :func:`units_of`). Each starts at its own first
    request unless *share_time*. Draws into *fig* (an empty Figure, e.g. one
    made without pyplot, resized here) or a new one; returns the Figure.
    *unit* names what a span is for every timeline (default: "request",
    or what :func:`units_of` says)."""
    units = units_of(timelines)
    found = _found(timelines)
    sizes = [len(lane_rows(t.spans())) for t in found.values()]
    ratios = [1.2 + size * 0.24 for size in sizes]
    size = (7.5, 0.8 + sum(ratios))
    if fig is None:
        # matplotlib is optional: imported when drawing
        import matplotlib.pyplot as plt

        with plt.ioff():
            fig = plt.figure(figsize=size, layout="constrained")
    else:
        fig.set_size_inches(*size)
    axes = fig.subplots(len(found), 1, height_ratios=ratios, sharex=share_time, squeeze=False)
    shared = _origin(list(found.values())) if share_time else None
    for ax, (label, timeline) in zip(axes[:, 0], found.items()):
        _draw(ax, timeline, shared if shared is not None else _origin([timeline]), label,
              unit or units.get(label, "request"))
    return fig
