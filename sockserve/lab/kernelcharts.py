"""The kernel panel's live charts, drawn from a KernelSeries as SVG text.

Three charts, redrawn a few times a second while the panel watches (SVG,
not matplotlib, for the reason :mod:`.svgchart` gives: each costs well under
a millisecond):

:func:`states_chart` ``(series, "server")``
    sockets per TCP state on the server's side (local port), one step line
    per state seen; LISTEN, the one listening socket, is left out.
:func:`states_chart` ``(series, "client")``
    the same for clients on this machine (remote port).
:func:`queue_chart`
    the listen queue's length, and the level at which it is full (Linux
    holds backlog + 1); the caption counts the readings that found it full.

Each state looks as in the static figures of :mod:`sockserve.plots.kernel`
(:data:`sockserve.plots.style.STATE_STYLES`: colour, marker, line style),
lines of equal counts are moved a few pixels apart (the caption says so),
and each chart's accessible name is its text alternative
(:func:`sockserve.plots.kernel.describe_kernel_view` for the three).
Plain functions of plain data: no widgets, no threads, no matplotlib.
"""

from __future__ import annotations

from ..kernel.view import KernelSeries
from ..plots.kernel import FULL_COLOUR, describe_kernel_view
from ..plots.style import REFERENCE, STATE_STYLES, svg_dash
from .svgchart import Series, line_chart

__all__ = ["states_chart", "queue_chart", "kernel_charts", "describe_kernel_view"]

_OFFSET_PX = 4.0  # pixels between lines of equal counts

_WIDTH = 380
_HEIGHT = 240


def _xmax(t: list[float]) -> float:
    return max(t[-1] if t else 0.0, 1.0)


def states_chart(series: KernelSeries, side: str = "server") -> str:
    """Sockets per state over time on *side* ("server" or "client")."""
    if side not in ("server", "client"):
        raise ValueError(f"side is 'server' or 'client', not {side!r}")
    t = series.elapsed()
    states = [state for state in series.states(side) if state != "LISTEN"]
    lines = []
    for i, state in enumerate(states):
        colour, marker, line = STATE_STYLES.get(state, (REFERENCE, "o", "-"))
        offset = (i - (len(states) - 1) / 2) * _OFFSET_PX
        counts = series.counts(state, side)
        points = [(x, float(n) if n or (i and counts[i - 1]) else float("nan"))
                  for i, (x, n) in enumerate(zip(t, counts))]  # no line along zero: see plots.kernel
        lines.append(Series(state, points, colour, dash=svg_dash(line), marker=marker, step=True,
                            offset=offset))
    top = max((y for line in lines for _x, y in line.points if y == y), default=0)
    title = "server's side (local port)" if side == "server" else "clients on this machine (remote port)"
    caption = (f"lines moved up to {_OFFSET_PX * (len(states) - 1) / 2:g} px up or down so equal counts show"
               if len(states) > 1 else "")
    return line_chart(lines, title=title, xlabel="seconds", ylabel="sockets", xmax=_xmax(t),
                      ymax=max(1.0, top * 1.15), width=_WIDTH, height=_HEIGHT, empty="no connections",
                      caption=caption, description=f"{title}: {describe_kernel_view(series)}")


def queue_chart(series: KernelSeries) -> str:
    """The listen queue over time, the level at which it is full, and how often it was."""
    t = series.elapsed()
    queue = [float(r.queue) if r.queue is not None else 0.0 for r in series.readings]
    lines = [Series("in the queue", list(zip(t, queue)), REFERENCE, step=True)]
    maxima = [r.queue_max for r in series.readings if r.queue_max is not None]
    peak = max(queue, default=0.0)
    top = max(peak, 1.0)
    caption = ""
    title = "listen queue"
    if maxima:
        limit = max(maxima)
        title += f" (backlog {limit})"
        full = sum(r.queue_full for r in series.readings)
        caption = (f"full in {full} of {len(series.readings)} readings: new SYNs dropped" if full
                   else f"never full (Linux holds backlog + 1 = {limit + 1})")
        if limit <= 4 * max(peak, 1.0):  # the limit only where it is on the same scale
            lines.append(Series(f"full at {limit + 1}", [(0.0, limit + 1.0), (_xmax(t), limit + 1.0)],
                                FULL_COLOUR, dash="4 3", width=1.4))
            top = max(top, limit + 1.0)
    return line_chart(lines, title=title, xlabel="seconds", ylabel="connections", xmax=_xmax(t),
                      ymax=top * 1.15, width=_WIDTH, height=_HEIGHT, caption=caption, empty="nothing listens",
                      description=f"{title}: {caption or 'no readings'}")


def kernel_charts(series: KernelSeries) -> tuple[str, str, str]:
    """(server's side, clients' side, listen queue) as SVG text."""
    return states_chart(series, "server"), states_chart(series, "client"), queue_chart(series)
