"""Each request's latency against the moment it was due (matplotlib, imported only when drawing).

``plot_latency_over_time({label: load_result, ...})`` draws one series of
points per load run: x is when each request was due (sent, in a closed
loop; scheduled, in an open loop), y its latency. A slow request shows as
a high point, and in an open loop the requests queued behind it as a slope
of points that waited less and less. ``describe_latency_over_time`` says
the same in one sentence (the figure's text alternative).

Takes :class:`sockserve.load.LoadResult` objects (their ``timeline``:
``(seconds since the start, latency ms)`` per successful request) or those
pairs directly. Series differ in marker as well as colour
(:mod:`.style`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .style import MIN_FONT_SIZE, series_style

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_latency_over_time", "describe_latency_over_time"]


def _points(result: Any) -> list[tuple[float, float]]:
    pairs: Sequence[Sequence[float]] = getattr(result, "timeline", result)
    return [(float(t), float(ms)) for t, ms in pairs]


def plot_latency_over_time(results: Mapping[str, Any], ax: Axes | None = None) -> Axes:
    """One series of points per entry of *results* (label -> LoadResult or
    points); returns the Axes (a new figure, made under ``plt.ioff()``,
    without *ax*)."""
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt

    if ax is None:
        with plt.ioff():
            _, ax = plt.subplots(figsize=(8.5, 3.6), layout="constrained")
    for i, (label, result) in enumerate(results.items()):
        points = _points(result)
        style = series_style(i)
        ax.scatter([t for t, _ in points], [ms for _, ms in points], s=14, color=style["color"],
                   marker=style["marker"],  # type: ignore[arg-type]
                   edgecolors="black" if i else "none", linewidths=0.3, label=label, zorder=2 + i)
    ax.set(xlabel="seconds since the start (when each request was due)", ylabel="latency (ms)",
           title="Each request's latency")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=MIN_FONT_SIZE + 1, frameon=False)
    return ax


def describe_latency_over_time(results: Mapping[str, Any]) -> str:
    """The figure in one sentence: per series, how many requests over how
    long, their median, the latency nine in ten stayed under, the slowest."""
    parts = []
    for label, result in results.items():
        points = _points(result)
        if not points:
            parts.append(f"{label}: no replies")
            continue
        ms = sorted(m for _, m in points)
        p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
        parts.append(f"{label}: {len(ms)} requests due over {max(t for t, _ in points):.1f} s, median "
                     f"{statistics.median(ms):.1f} ms, nine in ten under {p90:.1f} ms, the slowest {ms[-1]:.1f} ms")
    return "Each request's latency over time: " + "; ".join(parts) + "."
