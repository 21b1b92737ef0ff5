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

Each state has one colour everywhere (:data:`STATE_COLOURS`), so a panel
and a lesson's static figure read the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..kernel.view import TCP_STATES, UNIX_STATES, KernelSeries

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["STATE_COLOURS", "plot_states", "plot_queue", "plot_kernel_view", "KernelView", "as_series"]

#: A fixed colour per state: handshake warm, established green, teardown cool, trouble red.
STATE_COLOURS: dict[str, str] = {
    "LISTEN": "#7f7f7f",
    "SYN-SENT": "#ff7f0e",
    "SYN-RECV": "#bcbd22",
    "ESTABLISHED": "#2ca02c",
    "FIN-WAIT-1": "#9edae5",
    "FIN-WAIT-2": "#17becf",
    "CLOSE-WAIT": "#d62728",
    "CLOSING": "#e377c2",
    "LAST-ACK": "#9467bd",
    "TIME-WAIT": "#1f77b4",
    "CLOSE": "#c7c7c7",
    "CONNECTING": "#bcbd22",
    "CONNECTED": "#2ca02c",
    "DISCONNECTING": "#17becf",
    "UNCONNECTED": "#c7c7c7",
}


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
    import matplotlib.pyplot as plt

    with plt.ioff():
        _, new = plt.subplots(figsize=size, layout="constrained")
    return new


class _StatesArtists:
    """One step line per state on one side, made once; :meth:`update` sets their data."""

    def __init__(self, ax: Axes, side: str) -> None:
        from matplotlib.ticker import MaxNLocator

        if side not in ("server", "client"):
            raise ValueError(f"side is 'server' or 'client', not {side!r}")
        self.ax, self.side = ax, side
        self.lines = {
            state: ax.plot([], [], drawstyle="steps-post", color=STATE_COLOURS.get(state, "black"),
                           linewidth=1.8, label=state, visible=False)[0]
            for state in _STATE_ORDER if state != "LISTEN"  # the one listening socket
        }
        self.empty = ax.text(0.5, 0.5, "no connections", ha="center", va="center", transform=ax.transAxes,
                             color="grey")
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
        shown = []
        for state, line in self.lines.items():
            counts = series.counts(state, self.side)
            visible = any(counts)
            line.set_visible(visible)
            line.set_data(t if visible else [], counts if visible else [])
            if visible:
                shown.append(state)
                top = max(top, *counts)
        self.ax.set_xlim(0, max(t[-1] if t else 0.0, 1.0))
        rows = (len(shown) + 1) // 2  # legend rows, above the data
        self.ax.set_ylim(0, top * (1.15 + 0.14 * rows) + 0.5)
        self.empty.set_visible(not shown)
        if tuple(shown) != self.shown:  # a legend only changes when a state appears or goes
            self.shown = tuple(shown)
            legend = self.ax.get_legend()
            if legend is not None:
                legend.remove()
            if shown:
                self.ax.legend([self.lines[s] for s in shown], shown, loc="upper left", fontsize=8, ncols=2)


class _QueueArtists:
    """The listen queue's line, its limit and the full moments, made once."""

    def __init__(self, ax: Axes) -> None:
        from matplotlib.patches import Patch
        from matplotlib.ticker import MaxNLocator

        self.ax = ax
        self.line = ax.plot([], [], drawstyle="steps-post", color="black", linewidth=1.8,
                            label="waiting for accept()")[0]
        self.limit = ax.axhline(0, color="#d62728", linestyle="--", linewidth=1, visible=False)
        self.full_patch = Patch(color="#d62728", alpha=0.15, label="full: new SYNs dropped")
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
                color="#d62728", alpha=0.15, linewidth=0)
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
            self.ax.legend(handles=handles, loc="upper left", fontsize=8)


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
        import matplotlib.pyplot as plt

        with plt.ioff():
            fig = plt.figure(figsize=(15, 3.8), layout="constrained")
    return KernelView(fig).update(series)
