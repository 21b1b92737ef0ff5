"""The lab's panels: ipywidgets views over the models in :mod:`.models`.

Each panel is a ``VBox``: put it last in a cell (or ``display`` it) to show
it. Its child widgets are private; its public surface is a few methods
(``start``/``stop``, ``send``, ``run``) that do what its buttons do, and the
``model`` it shows.

A panel takes its model's settings (:mod:`.settings`), as keywords or as
one object, and passes them down: ``ServerPanel(kind="forking")`` or
``ServerPanel(ServerSettings(kind="forking"))``; only its own knobs
(``key``, a traffic panel's ``target``) are its own arguments.

Threads: a button's click runs in the kernel's main thread. While something
runs, a panel's *ticker* thread polls the model a few times a second and
only assigns widget values (ipywidgets sends those as messages; no output
capture happens in that thread). A panel's ``close()`` (and
``sockserve.lab.stop_all()``, and running the panel's cell again) stops its
ticker and what its model runs.

A saved notebook cannot show a live widget: each panel's ``static_view()``
is a picture of its present state (its figure or charts, with their text
alternative, and its status in words), which
:func:`sockserve.lab.saved.static_views` collects for ``notebooks/src/sync.py``.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w  # type: ignore[import-untyped]

from ..measure.kinds import kind_names, resolve_kind
from ..measure.workloads import WORKLOAD_NAMES
from ..plots.timeline import describe_timelines
from . import figures, livecharts, registry
from .models import FORK_NOTE, ServerModel, server_kinds
from .runs import CompareModel, TrafficModel, default_servers
from .saved import SAVED_NOTE, StaticView, png, remember, text
from .settings import CompareSettings, ServerSettings, TrafficSettings, settings_of
from .svgchart import side_by_side
from .ticker import LIVE_TICK, Ticker

__all__ = ["ServerPanel", "TrafficPanel", "ComparePanel", "seconds_box"]

def seconds_box(value: float, description: str) -> Any:
    """A box for a duration in seconds that shows and keeps exactly *value*
    (a slider would round it to its step: 0.8 shown as 1.00, and measured
    as 1 s once the page sends the rounded value back)."""
    return w.BoundedFloatText(value=float(value), min=0.1, max=600.0, step=0.1, description=description)




def _pre(text: str) -> str:
    return f"<pre style='margin:0;white-space:pre-wrap'>{html.escape(text)}</pre>"


class _Panel(w.VBox):  # type: ignore[misc]
    """What every panel shares: its registry slot, close() and static_view()."""

    _slot: str

    def _claim(self, key: str | None) -> None:
        self._slot = key or registry.cell_slot(type(self).__name__)
        registry.claim(self._slot, self)
        remember(self)

    def static_view(self) -> StaticView:  # pragma: no cover - overridden
        """The panel's present state as mimebundles (pictures with their text
        alternative, then its status in words)."""
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the panel runs, then remove it from the page. (A panel
        whose constructor failed, on a bad setting, has nothing to stop.)"""
        if not hasattr(self, "_slot"):
            super().close()
            return
        try:
            self.stop()
        finally:
            slot = getattr(self, "_slot", None)
            if slot is not None:
                registry.release(slot, self)
            super().close()


class ServerPanel(_Panel):
    """Start and stop one server in the kernel, and watch its counters.

    ``ServerPanel(settings=None, /, *, key=None, **choices)``: the server is
    a :class:`~.settings.ServerSettings` (``kind``, ``workload`` or
    ``handler``, ``host``, ``port``, ``path``, ``params``), as an object or
    as keywords. Pass ``handler=MyHandler`` to serve a handler class defined
    in the notebook. *key* names the panel's registry slot (default: the
    cell that made it). Buttons: ``Start``, ``Stop``; methods :meth:`start`,
    :meth:`stop`; :attr:`model` is the :class:`ServerModel`,
    :attr:`address` its address.
    """

    def __init__(self, settings: ServerSettings | None = None, /, *, key: str | None = None,
                 **choices: Any) -> None:
        self.model = ServerModel(settings_of(ServerSettings, settings, choices, "ServerPanel"))
        given = self.model.settings
        kinds = server_kinds()
        workloads = list(WORKLOAD_NAMES)
        if given.handler is not None:
            workloads.insert(0, given.handler.__name__)
        self._ui_kind = w.Dropdown(options=kinds, value=given.kind, description="server")
        self._ui_workload = w.Dropdown(options=workloads, value=given.workload_name, description="workload")
        self._ui_host = w.Text(value=given.host, description="host")
        self._ui_port = w.IntText(value=given.port, description="port")
        self._ui_start = w.Button(description="Start", button_style="success", icon="play")
        self._ui_stop = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self._ui_status = w.HTML()
        self._ui_problems = w.HTML()
        self._ui_note = w.HTML()
        self._ui_start.on_click(lambda _button: self.start())
        self._ui_stop.on_click(lambda _button: self.stop())
        self._ui_kind.observe(lambda _change: self._show_choices(), names="value")
        self._ticker = Ticker(self._tick, "sockserve-lab-server-panel")
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
        given = model.settings
        choice = self._ui_workload.value
        served: dict[str, Any] = {}
        if given.handler is None or choice != given.handler.__name__:
            served = {"handler": None, "workload": choice}  # else: keep the notebook's handler class
        model.settings = dataclasses.replace(given, kind=self._ui_kind.value, host=self._ui_host.value,
                                             port=int(self._ui_port.value), **served)
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

    def static_view(self) -> StaticView:
        status = self.model.status()
        lines = [f"Server panel {SAVED_NOTE}:", status.line()]
        lines += [f"handler error: {e}" for e in self.model.errors()[-3:]]
        return [text("\n".join(lines))]

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

    ``TrafficPanel(target, settings=None, /, *, key=None, **choices)``:
    *target* is a :class:`ServerPanel`, a :class:`ServerModel` or an
    address; the load is a :class:`~.settings.TrafficSettings` (``mode``,
    ``clients``, ``rate``, ``duration``, ``connection``, ``transport``,
    ``workload``, ``timeline``, ...), as an object or as keywords. Button
    ``Send``; method :meth:`start_load`; :attr:`model` is the
    :class:`TrafficModel` (its ``result`` is the last LoadResult). With
    ``timeline`` (True or a cap) and a server of this notebook as the
    target, each run ends with its request timeline drawn (one lane per
    worker). The target line follows the server: it says where the server
    serves as soon as it starts, and when it stops.
    """

    def __init__(self, target: Any, settings: TrafficSettings | None = None, /, *, key: str | None = None,
                 **choices: Any) -> None:
        self._target_panel = target if isinstance(target, ServerPanel) else None
        model_target = target.model if isinstance(target, ServerPanel) else target
        self.model = TrafficModel(model_target, settings_of(TrafficSettings, settings, choices, "TrafficPanel"))
        given = self.model.settings
        self._ui_timeline = _timeline_image()
        self._timeline_shown: Any = None
        self._ui_target = w.HTML()
        self._ui_mode = w.ToggleButtons(options=["closed", "open"], value=given.mode, description="loop")
        self._ui_clients = w.IntSlider(value=given.clients, min=1, max=64, description="clients")
        self._ui_rate = w.FloatText(value=given.rate or 0.0, description="rate /s")
        self._ui_duration = seconds_box(given.duration, "seconds")
        self._ui_connection = w.ToggleButtons(
            options=["new", "persistent"], value=given.connection, description="connection"
        )
        self._ui_send = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self._ui_stop = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self._ui_progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress")
        self._ui_cap = w.HTML()
        self._ui_latency = w.HTML(value=livecharts.latency_chart([], given.duration))
        self._ui_outcomes = w.HTML(value=livecharts.outcomes_chart([], given.duration))
        self._ui_concurrency = w.HTML(value=livecharts.concurrency_chart([], given.duration))
        self._ui_summary = w.HTML()
        self._drawn = 0  # samples drawn so far
        self._ui_send.on_click(lambda _button: self.start_load())
        self._ui_stop.on_click(lambda _button: self.stop())
        self._ui_mode.observe(lambda _change: self._show_mode(), names="value")
        self._ui_duration.observe(lambda _change: self._show_cap(), names="value")
        self._ticker = Ticker(self._tick, "sockserve-lab-traffic-panel", interval=LIVE_TICK)
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
        self._stop_following: Callable[[], None] | None = None
        if isinstance(model_target, ServerModel):  # the target line follows the server's start and stop
            self._stop_following = model_target.on_change(self._show_target)
        self._claim(key)

    def start_load(self) -> None:
        """What ``Send`` does: start a load run with the current choices."""
        model = self.model
        if model.running:
            return
        model.settings = self._choices()
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

    def close(self) -> None:
        following = getattr(self, "_stop_following", None)
        if following is not None:
            following()
            self._stop_following = None
        super().close()

    def _choices(self) -> TrafficSettings:
        """The model's settings with the widgets' values."""
        return dataclasses.replace(
            self.model.settings, mode=self._ui_mode.value, clients=int(self._ui_clients.value),
            rate=float(self._ui_rate.value), duration=float(self._ui_duration.value),
            connection=self._ui_connection.value)

    def static_view(self) -> StaticView:
        if not self.model.running:  # a run that ended may not be drawn yet: take it in and draw it here
            self._ticker.stop()
            self._tick()
        samples = list(self.model.samples)
        duration = self.model.duration
        view: StaticView = [text(f"Traffic panel {SAVED_NOTE}: {html.unescape(self._ui_target.value)}")]
        if samples:  # charts with nothing drawn in them would say nothing
            charts = side_by_side([livecharts.latency_chart(samples, duration),
                                   livecharts.outcomes_chart(samples, duration),
                                   livecharts.concurrency_chart(samples, duration)])
            alt = livecharts.describe_charts(samples)
            view += [{"image/svg+xml": charts, "text/plain": alt}, text(alt)]
        view.append(text(self.model.status().text))
        if self._timeline_shown is not None:
            timelines = {"this run": self._timeline_shown}
            unit = self._unit()
            view.append(png(figures.timeline_png(timelines, unit), ""))
            view.append(text(describe_timelines(timelines, unit)))
        return view

    def _unit(self) -> str:
        return "connection" if self.model.settings.connection == "persistent" else "request"

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
            _show_timeline(self._ui_timeline, {"this run": timeline}, self._unit())

    def _show_cap(self) -> None:
        self.model.settings = dataclasses.replace(self.model.settings, duration=float(self._ui_duration.value))
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
                f"on {where.address}" if where.address else "(not running: press Start on its panel)"
            )
        else:
            text = f"target: {target!r} ({self.model.settings.transport})"
        self._ui_target.value = html.escape(text)


#: How a stale figure looks: greyed out, under a label saying so.
_STALE_CSS = (
    "<style>.sockserve-stale img, img.sockserve-stale "
    "{opacity: 0.35; filter: grayscale(100%);}</style>"
)


class ComparePanel(_Panel):
    """One click runs plain vs threading vs forking (and more) side by side.

    ``ComparePanel(settings=None, /, *, key=None, **choices)``: the
    comparison is a :class:`~.settings.CompareSettings` (``workload``,
    ``servers``, ``clients``, ``duration`` per server, ``connection``,
    ``timeline``, ``workload_params``), as an object or as keywords; buttons
    ``Run comparison`` and ``Stop``; methods :meth:`run` and :meth:`stop`;
    :attr:`model` is the :class:`CompareModel` (``comparison`` when done;
    ``model.wait()`` blocks until then). Each server and the load run in
    their own processes, not in the kernel. While a new comparison runs,
    the previous figure stays, greyed and labelled as the previous result.
    With ``timeline`` (True or a cap per server) the result ends with each
    server's request timeline drawn.
    """

    def __init__(self, settings: CompareSettings | None = None, /, *, key: str | None = None,
                 **choices: Any) -> None:
        self.model = CompareModel(settings_of(CompareSettings, settings, choices, "ComparePanel"))
        given = self.model.settings
        self._ui_timeline = _timeline_image()
        options = list(dict.fromkeys([*default_servers(), *kind_names(), *given.servers]))
        self._ui_workload = w.Dropdown(options=list(WORKLOAD_NAMES), value=given.workload,
                                       description="workload")
        self._ui_servers = w.SelectMultiple(options=options, value=given.servers, rows=4, description="servers")
        self._ui_clients = w.IntSlider(value=given.clients, min=1, max=64, description="clients")
        self._ui_duration = seconds_box(given.duration, "s each")
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
        self._ticker = Ticker(self._tick, "sockserve-lab-compare-panel")
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
        model.settings = dataclasses.replace(
            model.settings, workload=self._ui_workload.value, servers=tuple(self._ui_servers.value),
            clients=int(self._ui_clients.value), duration=float(self._ui_duration.value))
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
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.stop()
        super().close()

    def static_view(self) -> StaticView:
        if not self.model.running and self.model.comparison is not self._shown:
            # Ended, but the ticker has not drawn it yet: draw it here, once the ticker is done.
            self._ticker.stop()
            self._finish(self.model.status())
        status = self.model.status()
        view: StaticView = [text(f"Comparison panel {SAVED_NOTE}:")]
        comparison = self._shown
        if comparison is not None:
            view.append(png(self._ui_figure.value, "The comparison's figure: latency, throughput, threads "
                             "and children of each server; the table below holds its figures."))
            view.append(text(status.text))
            if any(run.timeline for run in comparison.runs):
                view.append(png(figures.timeline_png(comparison), ""))
                view.append(text(describe_timelines(comparison, None)))
        else:
            view.append(text(status.text))
        return view

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


def _show_timeline(image: Any, timelines: Any, unit: str | None = None) -> None:
    image.value = figures.timeline_png(timelines, unit)
    image.layout.display = ""

