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
(``model.series()`` holds the readings, for :mod:`sockserve.plots.kernel`).

Where ``/proc/net`` does not exist (not Linux), the panel shows
:data:`sockserve.kernel.view.NOT_AVAILABLE` and nothing else.

Threads: the ticker thread reads the model four times a second and only
assigns widget values; the charts (SVG text, :mod:`.kernelcharts`) are
re-drawn only when new readings arrived. :mod:`sockserve.plots.kernel` draws
the same pictures with matplotlib, for a lesson's static figure. Like
every lab panel it claims its cell's registry slot, so running the cell
again stops the old panel, and ``stop_all()`` stops it.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from .kernelcharts import describe_kernel_view, kernel_charts
from .kernelmodel import KernelModel
from .panels import _Panel
from .saved import SAVED_NOTE, StaticView
from .ticker import TICK, Ticker
from .svgchart import side_by_side

__all__ = ["KernelPanel"]



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
        self._ui_server = w.HTML()
        self._ui_client = w.HTML()
        self._ui_queue = w.HTML()
        self._ui_charts = w.HBox([self._ui_server, self._ui_client, self._ui_queue],
                                 layout=w.Layout(flex_flow="row wrap"))
        self._ui_watch.on_click(lambda _button: self.watch())
        self._ui_stop.on_click(lambda _button: self.stop())
        self._ticker = Ticker(self._tick, "sockserve-lab-kernel-panel", interval=TICK)
        self._drawn = (-1, -1.0)  # (readings, time of the last) already drawn
        super().__init__(children=[w.HBox([self._ui_watch, self._ui_stop]), self._ui_status, self._ui_charts])
        self.add_class("sockserve-kernel-panel")
        self._claim(key)
        self._show(plot=True)
        if watch:
            self.watch()

    def watch(self) -> None:
        """What ``Watch`` does: start sampling and charting."""
        status = self.model.start()
        self._show(plot=False)
        if status.state != "unavailable":
            self._ticker.start()

    def stop(self) -> None:
        """What ``Stop`` does: stop sampling; the last charts stay."""
        self._ticker.stop()
        self.model.stop()
        self._show(plot=True)

    def _tick(self) -> bool:
        self._show(plot=True)
        return self.model.running

    def static_view(self) -> StaticView:
        status = self.model.status()
        view: StaticView = [{"text/plain": f"Kernel panel {SAVED_NOTE}: {status.text}"}]
        series = self.model.series()
        if status.state != "unavailable" and series.readings:
            alt = describe_kernel_view(series)
            view.append({"image/svg+xml": side_by_side(kernel_charts(series)), "text/plain": alt})
            view.append({"text/plain": alt})
        return view

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
            self._ui_charts.layout.display = "none"
            return
        series = self.model.series()
        last = series.readings[-1].at if series.readings else -1.0
        if plot and (len(series.readings), last) != self._drawn:
            server, client, queue = kernel_charts(series)
            self._ui_server.value, self._ui_client.value, self._ui_queue.value = server, client, queue
            self._drawn = (len(series.readings), last)
