"""The lab's panels: ipywidgets views over the models in :mod:`.models`.

Each panel is a ``VBox``: put it last in a cell (or ``display`` it) to show
it. Its child widgets are private; its public surface is a few methods
(``start``/``stop``, ``send``, ``run``) that do what its buttons do, and the
``model`` it shows.

Threads: a button's click runs in the kernel's main thread. While something
runs, a panel's *ticker* thread polls the model a few times a second and
only assigns widget values (ipywidgets sends those as messages; no output
capture happens in that thread). A panel's ``close()`` (and
``sockserve.lab.stop_all()``, and running the panel's cell again) stops its
ticker and what its model runs.
"""

from __future__ import annotations

import html
import sys
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from ..measure.kinds import kind_names, resolve_kind
from ..measure.workloads import WORKLOAD_NAMES
from . import figures, livecharts, registry
from .models import FORK_NOTE, ServerModel, server_kinds
from .runs import CompareModel, TrafficModel, default_servers

__all__ = ["ServerPanel", "TrafficPanel", "ComparePanel"]

_TICK = 0.25  # seconds between status refreshes (4 per second)
_LIVE_TICK = 0.1  # the traffic panel's live charts: up to 10 redraws a second


class _Ticker:
    """Call *step* every *interval* seconds in a daemon thread until it
    returns False or :meth:`stop` is called."""

    def __init__(self, step: Callable[[], bool], name: str, interval: float = _TICK) -> None:
        self._step = step
        self._name = name
        self._interval = interval
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # A thread whose loop has ended (its event set) may still be tidying
        # up: start a new one rather than count on it.
        if self._thread is not None and self._thread.is_alive() and not self._stopped.is_set():
            return
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stopped,), name=self._name, daemon=True
        )
        self._thread.start()

    def _run(self, stopped: threading.Event) -> None:
        try:
            while not stopped.wait(self._interval):
                if not self._step():
                    stopped.set()  # done: a start() from now on makes a new thread
                    return
        except Exception as exc:  # a view must not die silently
            stopped.set()
            print(f"sockserve.lab: panel update failed: {exc!r}", file=sys.__stderr__)
        finally:
            figures.release_fonts()

    def stop(self, timeout: float = 0.5) -> None:
        """Stop ticking; wait at most *timeout* seconds for a step in progress
        (a step only assigns widget values, so it ends soon after anyway)."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


def _pre(text: str) -> str:
    return f"<pre style='margin:0;white-space:pre-wrap'>{html.escape(text)}</pre>"


class _Panel(w.VBox):  # type: ignore[misc]
    """What every panel shares: its registry slot and close()."""

    _slot: str

    def _claim(self, key: str | None) -> None:
        self._slot = key or registry.cell_slot(type(self).__name__)
        registry.claim(self._slot, self)

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the panel runs, then remove it from the page."""
        try:
            self.stop()
        finally:
            slot = getattr(self, "_slot", None)
            if slot is not None:
                registry.release(slot, self)
            super().close()


class ServerPanel(_Panel):
    """Start and stop one server in the kernel, and watch its counters.

    ``ServerPanel(kind="threading", workload="echo", handler=None,
    host="127.0.0.1", port=0, path=None, key=None, **params)``. Pass
    ``handler=MyHandler`` to serve a handler class defined in the notebook.
    *key* names the panel's registry slot (default: the cell that made it).
    Buttons: ``Start``, ``Stop``; methods :meth:`start`, :meth:`stop`;
    :attr:`model` is the :class:`ServerModel`, :attr:`address` its address.
    """

    def __init__(
        self,
        kind: str = "threading",
        workload: str = "echo",
        handler: type | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str | None = None,
        key: str | None = None,
        **params: float,
    ) -> None:
        self.model = ServerModel(kind, workload, handler, host, port, path, **params)
        kinds = server_kinds()
        workloads = list(WORKLOAD_NAMES)
        if handler is not None:
            workloads.insert(0, handler.__name__)
        self._ui_kind = w.Dropdown(options=kinds, value=self.model.kind, description="server")
        self._ui_workload = w.Dropdown(
            options=workloads, value=self.model.workload_name, description="workload"
        )
        self._ui_host = w.Text(value=host, description="host")
        self._ui_port = w.IntText(value=port, description="port")
        self._ui_start = w.Button(description="Start", button_style="success", icon="play")
        self._ui_stop = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self._ui_status = w.HTML()
        self._ui_problems = w.HTML()
        self._ui_note = w.HTML()
        self._ui_start.on_click(lambda _button: self.start())
        self._ui_stop.on_click(lambda _button: self.stop())
        self._ui_kind.observe(lambda _change: self._show_choices(), names="value")
        self._ticker = _Ticker(self._tick, "sockserve-lab-server-panel")
        self._seen_errors = 0
        super().__init__(
            children=[
                w.HBox([self._ui_kind, self._ui_workload]),
                w.HBox([self._ui_host, self._ui_port]),
                w.HBox([self._ui_start, self._ui_stop]),
                self._ui_status,
                self._ui_problems,
                self._ui_note,
            ]
        )
        self.add_class("sockserve-server-panel")
        self._show_choices()
        self._show(self.model.status())
        self._claim(key)

    @property
    def address(self) -> Any:
        return self.model.address

    def start(self) -> None:
        """What ``Start`` does: apply the choices and serve."""
        model = self.model
        if model.running:
            return
        model.kind = self._ui_kind.value
        choice = self._ui_workload.value
        if model.handler is not None and choice == model.handler.__name__:
            pass  # keep serving the notebook's handler class
        else:
            model.handler, model.workload = None, choice
        model.host = self._ui_host.value
        model.port = int(self._ui_port.value)
        self._seen_errors = 0
        self._ui_problems.value = ""
        status = model.start()
        self._show(status)
        if status.state == "running":
            self._ticker.start()

    def stop(self) -> None:
        """What ``Stop`` does: stop the server, its threads and children."""
        self._ticker.stop()
        self.model.stop()
        self._show(self.model.status())

    def _tick(self) -> bool:
        status = self.model.status()
        self._show(status)
        return status.state == "running"

    def _show(self, status: Any) -> None:
        running = status.state == "running"
        colour = {"running": "green", "failed": "#b00"}.get(status.state, "grey")
        self._ui_status.value = (
            f"<span class='sockserve-status' data-state='{status.state}' "
            f"style='color:{colour}'>{html.escape(status.line())}</span>"
        )
        errors = self.model.errors()
        if errors and len(errors) != self._seen_errors:
            self._seen_errors = len(errors)
            shown = "".join(f"<li>{html.escape(e)}</li>" for e in errors[-3:])
            self._ui_problems.value = f"<b>Handler errors</b> ({len(errors)}):<ul>{shown}</ul>"
        for control in (self._ui_kind, self._ui_workload, self._ui_host, self._ui_port, self._ui_start):
            control.disabled = running
        self._ui_stop.disabled = not running
        if not running:
            self._show_choices()

    def _show_choices(self) -> None:
        info = resolve_kind(self._ui_kind.value)
        self._ui_host.disabled = self._ui_port.disabled = info.is_unix
        forking = info.concurrency in ("forking", "prefork")
        deadline = self.model.request_timeout
        notes = [f"Each request may take at most {deadline:g} s (request_timeout), so a silent client "
                 "cannot hold a worker for ever."] if deadline else []
        if forking:
            notes.append(FORK_NOTE)
        self._ui_note.value = "".join(f"<small>{html.escape(note)}</small><br>" for note in notes)


class TrafficPanel(_Panel):
    """Send load at a server and watch latency, threads and children live.

    ``TrafficPanel(target, *, mode="closed", clients=4, rate=200.0,
    duration=3.0, connection="new", transport="tcp", workload=None,
    key=None, timeline=False)``: *target* is a :class:`ServerPanel`, a :class:`ServerModel`
    or an address. Button ``Send``; method :meth:`start_load`; :attr:`model` is
    the :class:`TrafficModel` (its ``result`` is the last LoadResult). With
    *timeline* (True or a cap) and a server of this notebook as the target,
    each run ends with its request timeline drawn (one lane per worker).
    """

    def __init__(
        self,
        target: Any,
        *,
        mode: str = "closed",
        clients: int = 4,
        rate: float = 200.0,
        duration: float = 3.0,
        connection: str = "new",
        transport: str = "tcp",
        workload: str | None = None,
        key: str | None = None,
        timeline: bool | int = False,
    ) -> None:
        self._target_panel = target if isinstance(target, ServerPanel) else None
        model_target = target.model if isinstance(target, ServerPanel) else target
        self.model = TrafficModel(
            model_target, transport=transport, workload=workload, mode=mode,
            clients=clients, rate=rate, duration=duration, connection=connection,
            timeline=timeline,
        )
        self._ui_timeline = _timeline_image()
        self._timeline_shown: Any = None
        self._ui_target = w.HTML()
        self._ui_mode = w.ToggleButtons(options=["closed", "open"], value=mode, description="loop")
        self._ui_clients = w.IntSlider(value=clients, min=1, max=64, description="clients")
        self._ui_rate = w.FloatText(value=rate, description="rate /s")
        self._ui_duration = w.FloatSlider(value=duration, min=0.5, max=30, step=0.5, description="seconds")
        self._ui_connection = w.ToggleButtons(
            options=["new", "persistent"], value=connection, description="connection"
        )
        self._ui_send = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self._ui_stop = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self._ui_progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress")
        self._ui_cap = w.HTML()
        self._ui_latency = w.HTML(value=livecharts.latency_chart([], duration))
        self._ui_outcomes = w.HTML(value=livecharts.outcomes_chart([], duration))
        self._ui_concurrency = w.HTML(value=livecharts.concurrency_chart([], duration))
        self._ui_summary = w.HTML()
        self._drawn = 0  # samples drawn so far
        self._ui_send.on_click(lambda _button: self.start_load())
        self._ui_stop.on_click(lambda _button: self.stop())
        self._ui_mode.observe(lambda _change: self._show_mode(), names="value")
        self._ui_duration.observe(lambda _change: self._show_cap(), names="value")
        self._ticker = _Ticker(self._tick, "sockserve-lab-traffic-panel", interval=_LIVE_TICK)
        self.redraws = 0  # live chart redraws so far (to measure the update rate)
        super().__init__(
            children=[
                self._ui_target,
                w.HBox([self._ui_mode, self._ui_connection]),
                w.HBox([self._ui_clients, self._ui_rate, self._ui_duration]),
                self._ui_cap,
                w.HBox([self._ui_send, self._ui_stop, self._ui_progress]),
                w.HBox([self._ui_latency, self._ui_outcomes, self._ui_concurrency],
                       layout=w.Layout(flex_flow="row wrap")),
                self._ui_summary,
                self._ui_timeline,
            ]
        )
        self.add_class("sockserve-traffic-panel")
        self._show_mode()
        self._show_target()
        self._show_cap()
        self._ui_summary.value = _pre(self.model.status().text)
        self._claim(key)

    def start_load(self) -> None:
        """What ``Send`` does: start a load run with the current choices."""
        model = self.model
        if model.running:
            return
        model.mode = self._ui_mode.value
        model.clients = int(self._ui_clients.value)
        model.rate = float(self._ui_rate.value)
        model.duration = float(self._ui_duration.value)
        model.connection = self._ui_connection.value
        self._show_target()
        self._show_cap()
        status = model.send()
        self._drawn = 0
        self._show(status, plots=True)
        if status.state == "running":
            self._ui_send.disabled = True
            self._ui_stop.disabled = False
            self._ticker.start()

    def stop(self) -> None:
        """What ``Stop`` does: end a run in progress within about a second
        and show its partial result."""
        self._ticker.stop()
        self.model.stop()
        self._show(self.model.poll(), plots=True)
        self._ui_send.disabled = False
        self._ui_stop.disabled = True

    def _tick(self) -> bool:
        status = self.model.poll()
        finished = status.state in ("done", "stopped", "failed")
        self._show(status, plots=True)
        if finished:
            self._ui_send.disabled = False
            self._ui_stop.disabled = True
        return not finished

    def _show(self, status: Any, plots: bool) -> None:
        self._ui_progress.value = status.fraction
        self._ui_progress.bar_style = {"done": "success", "stopped": "warning",
                                       "failed": "danger"}.get(status.state, "")
        self._ui_summary.value = (
            f"<div class='sockserve-summary' data-state='{status.state}'>{_pre(status.text)}</div>"
        )
        samples = list(self.model.samples)
        if plots and samples and (len(samples) != self._drawn or status.state != "running"):
            # SVG text, redrawn at every new sample: well under a millisecond.
            duration = self.model.duration
            self._ui_latency.value = livecharts.latency_chart(samples, duration)
            self._ui_outcomes.value = livecharts.outcomes_chart(samples, duration)
            self._ui_concurrency.value = livecharts.concurrency_chart(samples, duration)
            self._drawn = len(samples)
            self.redraws += 1
        timeline = self.model.timeline
        if status.state != "running" and timeline is not None and timeline is not self._timeline_shown:
            self._timeline_shown = timeline
            _show_timeline(self._ui_timeline, {"this run": timeline})

    def _show_cap(self) -> None:
        self.model.duration = float(self._ui_duration.value)
        self._ui_cap.value = f"<small class='sockserve-cap'>{html.escape(self.model.cap_text())}</small>"

    def _show_mode(self) -> None:
        closed = self._ui_mode.value == "closed"
        self._ui_clients.description = "clients" if closed else "in flight"
        self._ui_rate.disabled = closed

    def _show_target(self) -> None:
        target = self.model.target
        if isinstance(target, ServerModel):
            where = target.status()
            text = f"target: {where.kind} server " + (
                f"on {where.address}" if where.address else "(not running yet)"
            )
        else:
            text = f"target: {target!r} ({self.model.transport})"
        self._ui_target.value = html.escape(text)


#: How a stale figure looks: greyed out, under a label saying so.
_STALE_CSS = (
    "<style>.sockserve-stale img, img.sockserve-stale "
    "{opacity: 0.35; filter: grayscale(100%);}</style>"
)


class ComparePanel(_Panel):
    """One click runs plain vs threading vs forking (and more) side by side.

    ``ComparePanel(workload="io", servers=None, *, clients=8, duration=2.0,
    key=None, timeline=False)``; buttons ``Run comparison`` and ``Stop``; methods
    :meth:`run` and :meth:`stop`; :attr:`model` is the :class:`CompareModel`
    (``comparison`` when done; ``model.wait()`` blocks until then). Each
    server and the load run in their own processes, not in the kernel.
    While a new comparison runs, the previous figure stays, greyed and
    labelled as the previous result. With *timeline* (True or a cap per
    server) the result ends with each server's request timeline drawn.
    """

    def __init__(
        self,
        workload: str = "io",
        servers: tuple[str, ...] | None = None,
        *,
        clients: int = 8,
        duration: float = 2.0,
        key: str | None = None,
        timeline: bool | int = False,
    ) -> None:
        self.model = CompareModel(workload, servers, clients=clients, duration=duration, timeline=timeline)
        self._ui_timeline = _timeline_image()
        choices = list(dict.fromkeys([*default_servers(), *kind_names()]))
        self._ui_workload = w.Dropdown(options=list(WORKLOAD_NAMES), value=workload, description="workload")
        self._ui_servers = w.SelectMultiple(
            options=choices, value=tuple(self.model.servers), rows=4, description="servers"
        )
        self._ui_clients = w.IntSlider(value=clients, min=1, max=64, description="clients")
        self._ui_duration = w.FloatSlider(value=duration, min=0.5, max=10, step=0.5, description="s each")
        self._ui_run = w.Button(description="Run comparison", button_style="primary", icon="balance-scale",
                             layout=w.Layout(width="auto"))
        self._ui_stop = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self._ui_progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress")
        self._ui_stale = w.HTML()
        self._ui_figure = w.Image(
            value=figures.blank_png("comparison"), format="png",
            layout=w.Layout(max_width="100%", height="auto", align_self="flex-start"),
        )
        self._ui_table = w.HTML(value=_pre(self.model.status().text))
        self._ui_run.on_click(lambda _button: self.run())
        self._ui_stop.on_click(lambda _button: self.stop())
        self._ticker = _Ticker(self._tick, "sockserve-lab-compare-panel")
        self._has_figure = False
        self._shown: Any = None  # the comparison whose figure is shown
        super().__init__(
            children=[
                w.HTML(_STALE_CSS),
                w.HBox([self._ui_workload, self._ui_servers]),
                w.HBox([self._ui_clients, self._ui_duration]),
                w.HBox([self._ui_run, self._ui_stop, self._ui_progress]),
                self._ui_stale,
                self._ui_figure,
                self._ui_table,
                self._ui_timeline,
            ]
        )
        self.add_class("sockserve-compare-panel")
        self._claim(key)

    @property
    def stale(self) -> bool:
        """True while the figure shown is a previous comparison's."""
        return "sockserve-stale" in self._ui_figure._dom_classes

    def run(self) -> None:
        """What ``Run comparison`` does."""
        model = self.model
        if model.running:
            return
        model.workload = self._ui_workload.value
        model.servers = tuple(self._ui_servers.value) or default_servers()
        model.clients = int(self._ui_clients.value)
        model.duration = float(self._ui_duration.value)
        self._ui_run.disabled = True
        self._ui_stop.disabled = False
        if self._has_figure:
            self._ui_figure.add_class("sockserve-stale")
            self._ui_stale.value = (
                "<b class='sockserve-stale-label'>Previous comparison, shown greyed until the new "
                "one ends:</b>")
        self._show(model.run())
        self._ticker.start()

    def stop(self) -> None:
        """What ``Stop`` does: end a running comparison within about a second
        (its servers stop in the background); the partial result is shown."""
        self._ui_stop.disabled = True
        self.model.stop()
        # The ticker goes on until the model reports the end, then draws the
        # partial result (in its thread, not in this click's).
        self._ui_table.value = _pre(self.model.status().text)

    def close(self) -> None:
        self._ticker.stop()
        super().close()

    def _tick(self) -> bool:
        status = self.model.status()
        self._show(status)
        if status.state in ("done", "stopped", "failed") and not self.model.running:
            self._finish(status)
            return False
        return True

    def _finish(self, status: Any) -> None:
        self._ui_run.disabled = False
        self._ui_stop.disabled = True
        self._show(status)

    def _show(self, status: Any) -> None:
        self._ui_progress.value = status.fraction
        self._ui_progress.bar_style = {"done": "success", "stopped": "warning",
                                       "failed": "danger"}.get(status.state, "")
        comparison = self.model.comparison
        if status.state in ("done", "stopped") and comparison is not None and comparison is not self._shown:
            self._shown = comparison
            self._ui_figure.value = figures.comparison_png(comparison)
            if any(run.timeline for run in comparison.runs):
                _show_timeline(self._ui_timeline, comparison)
            self._has_figure = True
            self._ui_figure.remove_class("sockserve-stale")
            self._ui_stale.value = ""
        elif status.state in ("stopped", "failed") and comparison is None and self.stale:
            self._ui_stale.value = (
                "<b class='sockserve-stale-label'>Previous comparison (the new one did not "
                "finish):</b>")
        self._ui_table.value = (
            f"<div class='sockserve-table' data-state='{status.state}'>{_pre(status.text)}</div>"
        )


def _timeline_image() -> Any:
    """The (hidden until drawn) image of a run's request timeline."""
    return w.Image(format="png", layout=w.Layout(display="none", max_width="100%", height="auto",
                                                 align_self="flex-start"))


def _show_timeline(image: Any, timelines: Any) -> None:
    image.value = figures.timeline_png(timelines)
    image.layout.display = ""
