"""Plots of the kernel's view of a server (matplotlib, imported only when drawing).

The same functions serve the notebooks, the lab's ``KernelPanel`` and
scripts; each takes a :class:`~sockserve.kernel.view.KernelSeries` (or its
dict) and draws into *ax* when given, else into a new figure made inside
``plt.ioff()``:

``plot_states(series, side="server", ax=None)``
    sockets per TCP state over time, one step line per state seen (LISTEN
    is left out: it is the one listening socket). *side* is "server"
    (local port = the server's) or "client" (remote port = the server's).
``plot_queue(series, ax=None)``
    the listen queue's length over time, its maximum, and the moments it
    was full (shaded): new SYNs are dropped then.
``plot_kernel_view(series, fig=None)``
    the three side by side; returns the Figure.
``KernelView(fig)``
    the same three, drawn once and then brought up to date with
    ``update(series)`` (``set_data`` on the existing artists), for a live
    panel that re-draws a few times a second.

``describe_kernel_view(series)``
    the figure's text alternative: one sentence computed from the same
    readings (when each state was seen, how many at most, how often the
    queue was full), for a lesson to print under the figure.

Each state has one look everywhere (:data:`sockserve.plots.style.STATE_STYLES`:
a colour, a marker and a line style), so a panel and a lesson's static
figure read the same way, without colour too. Lines of states with equal
counts would hide each other: each line is drawn a little above or below
the count (the x label says by how much), and its markers mark it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..kernel.view import TCP_STATES, UNIX_STATES, KernelSeries
from .style import MIN_FONT_SIZE, OUTCOME_STYLES, REFERENCE, STATE_STYLES, state_style

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["STATE_COLOURS", "plot_states", "plot_queue", "plot_kernel_view", "KernelView", "as_series",
           "describe_kernel_view", "state_offsets", "FULL_COLOUR"]

#: The colour of each state (its marker and line style: :data:`~sockserve.plots.style.STATE_STYLES`).
STATE_COLOURS: dict[str, str] = {state: colour for state, (colour, _m, _l) in STATE_STYLES.items()}
#: The queue's limit and its full moments: vermillion, dashed and hatched.
FULL_COLOUR = OUTCOME_STYLES["refused"][0]
#: Lines are moved apart by this fraction of the y axis each.
_OFFSET_STEP = 0.025


def state_offsets(count: int, top: float) -> list[float]:
    """How far (in sockets) each of *count* lines is moved up or down so that
    lines with equal counts stay apart on an axis up to *top*: evenly
    spread around 0, at most a few percent of the axis."""
    step = _OFFSET_STEP * max(top, 1.0)
    return [(i - (count - 1) / 2) * step for i in range(count)]


def _span(times: list[float], counts: list[int]) -> tuple[float, float] | None:
    seen = [t for t, n in zip(times, counts) if n]
    return (seen[0], seen[-1]) if seen else None


def _drawn(counts: list[int], offset: float) -> list[float]:
    """The y values of one state's line: its counts moved by *offset*, and
    nothing where the state had no socket for two readings in a row (a
    line along zero would bury the others); the reading where it falls to
    zero stays, so the drop shows."""
    nan = float("nan")
    return [n + offset if n or (i and counts[i - 1]) else nan for i, n in enumerate(counts)]


def describe_kernel_view(series: Any) -> str:
    """The kernel view in one sentence, from the readings the figure draws:
    for each side, each state seen (most sockets at once, from when to when),
    and the listen queue (its peak, its maximum, how many readings found it
    full)."""
    series = as_series(series)
    t = series.elapsed()
    if not t:
        return f"The kernel's view of {series.target or 'the server'}: no readings."
    parts = []
    for side, name in (("server", "server's side"), ("client", "clients' side")):
        seen = []
        for state in series.states(side):
            if state == "LISTEN":
                continue
            counts = series.counts(state, side)
            span = _span(t, counts)
            if span is not None:
                seen.append(f"{state} up to {max(counts)} ({span[0]:.2f} to {span[1]:.2f} s)")
        parts.append(f"{name}: " + (", ".join(seen) if seen else "no connections"))
    queue = [r.queue or 0 for r in series.readings]
    maxima = [r.queue_max for r in series.readings if r.queue_max is not None]
    full = sum(r.queue_full for r in series.readings)
    text = f"listen queue: at most {max(queue, default=0)}"
    if maxima:
        text += f" (backlog {max(maxima)})"
    text += f", full in {full} of {len(series.readings)} readings" if full else ", never full"
    parts.append(text)
    return (f"The kernel's view of {series.target or 'the server'}, {len(t)} readings over {t[-1]:.2f} s: "
            + "; ".join(parts) + ".")


def as_series(obj: Any) -> KernelSeries:
    """A KernelSeries from a series or its ``to_dict()``."""
    if isinstance(obj, KernelSeries):
        return obj
    if isinstance(obj, Mapping):
        return KernelSeries.from_dict(obj)
    raise TypeError(f"cannot plot {type(obj).__name__}: pass a KernelSeries (a KernelSampler's series())")


_STATE_ORDER = TCP_STATES + tuple(s for s in UNIX_STATES if s not in TCP_STATES)


def _new_axes(ax: Axes | None, size: tuple[float, float] = (6, 3.5)) -> Axes:
    if ax is not None:
        return ax
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt

    with plt.ioff():
        _, new = plt.subplots(figsize=size, layout="constrained")
    return new


class _StatesArtists:
    """One step line per state on one side, made once; :meth:`update` sets their data."""

    def __init__(self, ax: Axes, side: str) -> None:
        # matplotlib is optional: imported when drawing
        from matplotlib.ticker import MaxNLocator

        if side not in ("server", "client"):
            raise ValueError(f"side is 'server' or 'client', not {side!r}")
        self.ax, self.side = ax, side
        self.lines = {
            state: ax.plot([], [], drawstyle="steps-post", linewidth=1.8, markersize=5, label=state,
                           visible=False, **state_style(state))[0]  # type: ignore[arg-type]
            for state in _STATE_ORDER if state != "LISTEN"  # the one listening socket
        }
        self.empty = ax.text(0.5, 0.5, "no connections", ha="center", va="center", transform=ax.transAxes,
                             color="#444444", fontsize=10)
        self.shown: tuple[str, ...] | None = None
        ax.set_xlabel("seconds")
        ax.set_ylabel("sockets")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.set_title("server's side (local port)" if side == "server"
                     else "clients on this machine (remote port)", fontsize=10)

    def update(self, series: KernelSeries) -> None:
        t = series.elapsed()
        top = 1
        counted: dict[str, list[int]] = {}
        for state in self.lines:
            counts = series.counts(state, self.side)
            if any(counts):
                counted[state] = counts
                top = max(top, *counts)
        shown = list(counted)
        offsets = dict(zip(shown, state_offsets(len(shown), top)))
        every = max(1, len(t) // 15)  # about 15 markers a line: enough to tell it, few enough to read
        for state, line in self.lines.items():
            drawn = _drawn(counted[state], offsets[state]) if state in counted else []
            line.set_visible(state in counted)
            line.set_data(t if drawn else [], drawn)
            line.set_markevery(every)
        self.ax.set_xlim(0, max(t[-1] if t else 0.0, 1.0))
        rows = (len(shown) + 1) // 2  # legend rows, above the data
        self.ax.set_ylim(min(0.0, *offsets.values()) if offsets else 0.0, top * (1.15 + 0.14 * rows) + 0.5)
        spread = max((abs(v) for v in offsets.values()), default=0.0)
        self.ax.set_xlabel("seconds" + (f"\n(lines moved apart by up to ±{spread:.2g} so equal counts show)"
                                        if len(shown) > 1 else ""))
        self.empty.set_visible(not shown)
        if tuple(shown) != self.shown:  # a legend only changes when a state appears or goes
            self.shown = tuple(shown)
            legend = self.ax.get_legend()
            if legend is not None:
                legend.remove()
            if shown:
                self.ax.legend([self.lines[s] for s in shown], shown, loc="upper left", fontsize=MIN_FONT_SIZE + 1,
                               ncols=2)


class _QueueArtists:
    """The listen queue's line, its limit and the full moments, made once."""

    def __init__(self, ax: Axes) -> None:
        # matplotlib is optional: imported when drawing
        from matplotlib.patches import Patch
        from matplotlib.ticker import MaxNLocator

        self.ax = ax
        self.line = ax.plot([], [], drawstyle="steps-post", color=REFERENCE, linewidth=1.8,
                            label="waiting for accept()")[0]
        self.limit = ax.axhline(0, color=FULL_COLOUR, linestyle="--", linewidth=1.4, visible=False)
        self.full_patch = Patch(facecolor=FULL_COLOUR, alpha=0.25, hatch="//", edgecolor=FULL_COLOUR,
                                label="full: new SYNs dropped")
        self.spans: Any = None
        self.legend_key: tuple[object, ...] | None = None
        ax.set_xlabel("seconds")
        ax.set_ylabel("connections")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)

    def update(self, series: KernelSeries) -> None:
        t = series.elapsed()
        queue = [r.queue if r.queue is not None else 0 for r in series.readings]
        self.line.set_data(t, queue)
        maxima = [r.queue_max for r in series.readings if r.queue_max is not None]
        peak = max(queue, default=0)
        top = max(peak, 1)
        title = "listen queue"
        limit_shown = False
        if maxima:
            limit = max(maxima)
            title += f" (backlog {limit})"
            if limit <= 4 * max(peak, 1):  # the limit only where it is on the same scale
                limit_shown = True
                self.limit.set_ydata([limit + 1, limit + 1])
                self.limit.set_label(f"full at {limit + 1} (Linux: backlog + 1)")
                top = max(top, limit + 1)
        self.limit.set_visible(limit_shown)
        if self.spans is not None:
            self.spans.remove()
            self.spans = None
        full = [r.queue_full for r in series.readings]
        if any(full):
            self.spans = self.ax.fill_between(
                t, 0, 1, where=full, step="post", transform=self.ax.get_xaxis_transform(),
                facecolor=FULL_COLOUR, edgecolor=FULL_COLOUR, hatch="//", alpha=0.25, linewidth=0)
        self.ax.set_xlim(0, max(t[-1] if t else 0.0, 1.0))
        self.ax.set_ylim(0, top * (1.2 + 0.14 * (1 + limit_shown + any(full))) + 0.5)  # room for the legend
        self.ax.set_title(title, fontsize=10)
        key = (limit_shown, self.limit.get_label(), any(full))
        if key != self.legend_key:
            self.legend_key = key
            handles: list[Any] = [self.line]
            if limit_shown:
                handles.append(self.limit)
            if any(full):
                handles.append(self.full_patch)
            legend = self.ax.get_legend()
            if legend is not None:
                legend.remove()
            self.ax.legend(handles=handles, loc="upper left", fontsize=MIN_FONT_SIZE + 1)


def plot_states(series: Any, side: str = "server", ax: Axes | None = None) -> Axes:
    """Sockets per state over time on *side* ("server" or "client")."""
    ax = _new_axes(ax)
    _StatesArtists(ax, side).update(as_series(series))
    return ax


def plot_queue(series: Any, ax: Axes | None = None) -> Axes:
    """The listen queue over time: current length, the limit, full moments shaded."""
    ax = _new_axes(ax)
    _QueueArtists(ax).update(as_series(series))
    return ax


class KernelView:
    """The three plots of :func:`plot_kernel_view` in *fig*, made once;
    :meth:`update` redraws them for a newer series (a live panel's way)."""

    def __init__(self, fig: Figure) -> None:
        server_ax, client_ax, queue_ax = fig.subplots(1, 3)
        self.fig = fig
        self.parts: tuple[Any, ...] = (
            _StatesArtists(server_ax, "server"), _StatesArtists(client_ax, "client"), _QueueArtists(queue_ax))

    def update(self, series: Any) -> Figure:
        series = as_series(series)
        for part in self.parts:
            part.update(series)
        last = series.readings[-1] if series.readings else None
        what = "nothing listens" if last is not None and not last.listening else "listening"
        self.fig.suptitle(f"the kernel's view of {series.target or 'the server'} ({what})", fontsize=11)
        return self.fig


def plot_kernel_view(series: Any, fig: Figure | None = None) -> Figure:
    """Server's side, client's side and the listen queue side by side (a
    new Figure, or *fig*: an empty Figure, e.g. one made without pyplot)."""
    if fig is None:
        # matplotlib is optional: imported when drawing
        import matplotlib.pyplot as plt

        with plt.ioff():
            fig = plt.figure(figsize=(15, 3.8), layout="constrained")
    return KernelView(fig).update(series)
