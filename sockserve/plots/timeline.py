"""Request timelines drawn: when and where each request ran (matplotlib, imported only when drawing).

One lane per worker, the ``(pid, tid)`` that ran the handler: the serving
thread of a plain server, each handler thread of a threading server, each
child of a forking server, the fixed workers of a thread pool or a prefork
server, the one event-loop thread of an asyncio server. In its lane each
request is a bar::

    accepted ......... started ========== ended
             waiting             running

drawn light while it *waited* (accept to handler start: the queue, a fork,
a worker to come free) and solid while it *ran*; a request whose outcome
was not OK gets a red cross at its end. Requests that overlap in one lane
(coroutines on one loop) are stacked inside the lane. When the timeline hit
its cap, the title says that only the first *cap* requests are shown.

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

The same functions serve the notebooks, the lab's panels and scripts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.timeline import Span, Timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["as_timeline", "worker_lanes", "lane_label", "plot_timeline", "plot_timelines",
           "WAIT_COLOUR", "RUN_COLOUR", "ERROR_COLOUR"]

WAIT_COLOUR = "#c6dbef"
RUN_COLOUR = "#2171b5"
ERROR_COLOUR = "#d62728"
#: Lanes given a tick label each; with more, only every n-th is labelled.
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
    import matplotlib.pyplot as plt

    with plt.ioff():
        _, new = plt.subplots(figsize=size, layout="constrained")
    return new


def _draw(ax: Axes, timeline: Timeline, origin: float, title: str | None) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    spans = timeline.spans()
    lanes = worker_lanes(spans)
    index = {lane: i for i, lane in enumerate(lanes)}
    by_lane: dict[tuple[int, int], list[Span]] = {lane: [] for lane in lanes}
    for span in spans:
        by_lane[(span.pid, span.tid)].append(span)
    errors_x: list[float] = []
    errors_y: list[float] = []
    for lane, members in by_lane.items():
        members.sort(key=lambda s: s.started)
        rows = _stack(members)
        depth = max(rows) + 1
        height = 0.8 / depth
        base = index[lane] - 0.4
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
        ax.plot(errors_x, errors_y, linestyle="none", marker="x", color=ERROR_COLOUR, markersize=6,
                zorder=3)
    pids = len({pid for pid, _ in lanes})
    step = max(1, -(-len(lanes) // MAX_LABELLED_LANES))
    ticks = list(range(0, len(lanes), step))
    ax.set_yticks(ticks, [lane_label(lanes[i], pids) for i in ticks], fontsize=7)
    ax.set_ylim(len(lanes) - 0.5 if lanes else 0.5, -0.5)  # first lane on top
    ax.set_xlabel("ms since the timeline started")
    ax.set_ylabel(f"{len(lanes)} worker{'s' if len(lanes) != 1 else ''}")
    ax.grid(True, axis="x", alpha=0.3)
    heading = title or "when and where each request ran"
    heading += f": {len(spans)} request{'s' if len(spans) != 1 else ''}"
    if timeline.full:
        heading += (f"\n(cap of {timeline.cap} reached: only the first {timeline.cap} are shown, "
                    f"{timeline.dropped} more not recorded)")
    ax.set_title(heading, fontsize=9, loc="left")
    if not spans:
        ax.text(0.5, 0.5, "no requests recorded", transform=ax.transAxes, ha="center", va="center")
    handles: list[Any] = [Patch(color=WAIT_COLOUR, label="waiting: accepted,\nnot yet started"),
               Patch(color=RUN_COLOUR, label="running: the handler")]
    if errors_x:
        handles.append(Line2D([], [], linestyle="none", marker="x", color=ERROR_COLOUR,
                              label="ended in error"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _origin(timelines: Sequence[Timeline]) -> float:
    firsts = [min(s.accepted for s in t.spans()) for t in timelines if len(t)]
    return min(firsts) if firsts else min((t.origin for t in timelines), default=0.0)


def plot_timeline(timeline: Any, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Draw *timeline* (one lane per worker) into *ax*, or a new figure; return the Figure.

    Time runs from the first request's accept (0 ms)."""
    found = as_timeline(timeline)
    lanes = len(worker_lanes(found.spans()))
    height = 1.6 + min(lanes, 40) * 0.22
    axes = _new_axes(ax, (7.5, height))
    _draw(axes, found, _origin([found]), title)
    figure = axes.get_figure()
    assert figure is not None
    return figure  # type: ignore[return-value]


def plot_timelines(timelines: Any, share_time: bool = False, fig: Figure | None = None) -> Figure:
    """Several timelines one above the other: *timelines* maps a label to a
    timeline (or its dict), or is a :class:`~sockserve.measure.results.Comparison`
    (every run that recorded a timeline). Each starts at its own first
    request unless *share_time*. Draws into *fig* (an empty Figure, e.g. one
    made without pyplot, resized here) or a new one; returns the Figure."""
    if hasattr(timelines, "runs"):
        timelines = {run.server: run.timeline for run in timelines.runs if run.timeline}
    found = {str(label): as_timeline(t) for label, t in dict(timelines).items()}
    if not found:
        raise ValueError("no timelines to draw: run the comparison with timeline=True")
    sizes = [min(len(worker_lanes(t.spans())), 40) for t in found.values()]
    ratios = [1.2 + size * 0.22 for size in sizes]
    size = (7.5, 0.8 + sum(ratios))
    if fig is None:
        import matplotlib.pyplot as plt

        with plt.ioff():
            fig = plt.figure(figsize=size, layout="constrained")
    else:
        fig.set_size_inches(*size)
    axes = fig.subplots(len(found), 1, height_ratios=ratios, sharex=share_time, squeeze=False)
    shared = _origin(list(found.values())) if share_time else None
    for ax, (label, timeline) in zip(axes[:, 0], found.items()):
        _draw(ax, timeline, shared if shared is not None else _origin([timeline]), label)
    return fig
