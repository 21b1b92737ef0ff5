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

Colours are :data:`sockserve.plots.kernel.STATE_COLOURS`, the same as the
static figures of :mod:`sockserve.plots.kernel`. Plain functions of plain
data: no widgets, no threads, no matplotlib.
"""

from __future__ import annotations

from ..plots.kernel import STATE_COLOURS
from ..kernel.view import KernelSeries
from .svgchart import Series, line_chart

__all__ = ["states_chart", "queue_chart", "kernel_charts"]

_WIDTH = 380
_HEIGHT = 240


def _xmax(t: list[float]) -> float:
    return max(t[-1] if t else 0.0, 1.0)


def states_chart(series: KernelSeries, side: str = "server") -> str:
    """Sockets per state over time on *side* ("server" or "client")."""
    if side not in ("server", "client"):
        raise ValueError(f"side is 'server' or 'client', not {side!r}")
    t = series.elapsed()
    lines = [
        Series(state, list(zip(t, series.counts(state, side))), STATE_COLOURS.get(state, "black"), step=True)
        for state in series.states(side) if state != "LISTEN"
    ]
    top = max((y for line in lines for _x, y in line.points), default=0)
    title = "server's side (local port)" if side == "server" else "clients on this machine (remote port)"
    return line_chart(lines, title=title, xlabel="seconds", ylabel="sockets", xmax=_xmax(t),
                      ymax=max(1.0, top * 1.15), width=_WIDTH, height=_HEIGHT, empty="no connections")


def queue_chart(series: KernelSeries) -> str:
    """The listen queue over time, the level at which it is full, and how often it was."""
    t = series.elapsed()
    queue = [float(r.queue) if r.queue is not None else 0.0 for r in series.readings]
    lines = [Series("in the queue", list(zip(t, queue)), "#222222", step=True)]
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
                                "#d62728", dash="4 3", width=1.2))
            top = max(top, limit + 1.0)
    return line_chart(lines, title=title, xlabel="seconds", ylabel="connections", xmax=_xmax(t),
                      ymax=top * 1.15, width=_WIDTH, height=_HEIGHT, caption=caption, empty="nothing listens")


def kernel_charts(series: KernelSeries) -> tuple[str, str, str]:
    """(server's side, clients' side, listen queue) as SVG text."""
    return states_chart(series, "server"), states_chart(series, "client"), queue_chart(series)
