"""The kernel panel: what the kernel holds for one server, plotted live.

``KernelPanel(target, *, rate=5.0, window=30.0, watch=True, key=None)``
shows, for a server started by a ``ServerPanel`` (or any server object, a
port or a Unix socket path), the number of sockets in each TCP state on the
server's side and on the side of clients on this machine, and the listen
queue (length, maximum, full moments) over the last *window* seconds, while
traffic runs. Made in a cell it starts watching at once (``watch=False``
waits for the ``Watch`` button); a ``ServerPanel`` that is not started yet
is waited for. Buttons ``Watch`` and ``Stop``; methods :meth:`watch`,
:meth:`stop`; :attr:`model` is the :class:`~.kernelmodel.KernelModel`
(``model.series()`` holds the readings, for :mod:`sockserve.kernelplot`).

Where ``/proc/net`` does not exist (not Linux), the panel shows
:data:`sockserve.kernelview.NOT_AVAILABLE` and nothing else.

Threads: the ticker thread reads the model about three times a second and
only assigns widget values; the plot is re-drawn only when new readings
arrived. Like every lab panel it claims its cell's registry slot, so running
the cell again stops the old panel, and ``stop_all()`` stops it.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from . import figures
from .kernelmodel import KernelModel
from .panels import _Panel, _Ticker

__all__ = ["KernelPanel", "kernel_view_png", "new_kernel_view"]

_TICK = 0.3  # seconds between refreshes: about three a second


def kernel_view_png(series: Any, view: Any = None) -> bytes:
    """The panel's picture of *series* as PNG bytes (no pyplot: safe in a
    thread). Pass the :class:`~sockserve.kernelplot.KernelView` from
    :func:`new_kernel_view` to update its artists instead of drawing anew."""
    if view is None:
        view = new_kernel_view()
    return figures.png(view.update(series))


def new_kernel_view() -> Any:
    """A KernelView in a Figure made without pyplot, sized for the panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..kernelplot import KernelView

    # A fixed layout: the constrained one would measure every label on each
    # redraw, doubling the cost of a picture drawn a few times a second.
    fig = Figure(figsize=(14, 3.4), dpi=72)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.14, top=0.84, wspace=0.18)
    FigureCanvasAgg(fig)
    return KernelView(fig)


class KernelPanel(_Panel):
    """Watch one server's sockets in the kernel: states over time and the listen queue.

    See the module docstring for the arguments; *key* names the registry
    slot (default: the cell that made the panel).
    """

    def __init__(
        self,
        target: Any,
        *,
        rate: float = 5.0,
        window: float = 30.0,
        watch: bool = True,
        key: str | None = None,
    ) -> None:
        self.model = KernelModel(target, rate=rate, window=window)
        self._ui_watch = w.Button(description="Watch", button_style="primary", icon="eye")
        self._ui_stop = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self._ui_status = w.HTML()
        self._ui_figure = w.Image(
            value=figures.blank_png("the kernel's view"), format="png",
            layout=w.Layout(max_width="100%", height="auto", align_self="flex-start"),
        )
        self._ui_watch.on_click(lambda _button: self.watch())
        self._ui_stop.on_click(lambda _button: self.stop())
        self._ticker = _Ticker(self._tick, "sockserve-lab-kernel-panel", interval=_TICK)
        self._drawn = (-1, -1.0)  # (readings, time of the last) already drawn
        self._view: Any = None  # the figure, made on the first picture
        super().__init__(children=[w.HBox([self._ui_watch, self._ui_stop]), self._ui_status, self._ui_figure])
        self.add_class("sockserve-kernel-panel")
        self._claim(key)
        if watch:
            self.watch()
        else:
            self._show(plot=False)

    def watch(self) -> None:
        """What ``Watch`` does: start sampling and plotting."""
        status = self.model.start()
        self._show(plot=False)
        if status.state != "unavailable":
            self._ticker.start()

    def stop(self) -> None:
        """What ``Stop`` does: stop sampling and draw the last picture, which stays."""
        self._ticker.stop()
        self.model.stop()
        try:
            self._show(plot=True)
        finally:
            figures.release_fonts()  # drawn in the caller's thread: close its font files

    def _tick(self) -> bool:
        self._show(plot=True)
        return self.model.running

    def _show(self, plot: bool) -> None:
        status = self.model.status()
        running = status.state in ("watching", "waiting")
        self._ui_watch.disabled = running or status.state == "unavailable"
        self._ui_stop.disabled = not running
        colour = {"watching": "green", "unavailable": "#b00"}.get(status.state, "grey")
        self._ui_status.value = (
            f"<span class='sockserve-status' data-state='{status.state}' style='color:{colour}'>"
            f"{html.escape(status.text)}</span>"
        )
        if status.state == "unavailable":
            self._ui_figure.layout.display = "none"
            return
        series = self.model.series()
        last = series.readings[-1].at if series.readings else -1.0
        if plot and series.readings and (len(series.readings), last) != self._drawn:
            if self._view is None:
                self._view = new_kernel_view()
            self._ui_figure.value = kernel_view_png(series, self._view)
            self._drawn = (len(series.readings), last)
