"""The kernel panel (sockserve.lab.kernel) and its model (sockserve.lab.kernelmodel), headless."""

from __future__ import annotations

import html
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sockserve.kernel import view as kv
from sockserve.lab import registry, stop_all
from sockserve.lab.kernelmodel import KernelModel
from sockserve.lab.models import ServerModel

ROOT = Path(__file__).resolve().parent.parent
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net is Linux's")


def wait_for(predicate: Any, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_the_model_imports_no_widgets_or_plots() -> None:
    code = (
        "import sys, sockserve.lab, sockserve.lab.kernelmodel, sockserve.kernel.view; "
        "print([m for m in ('ipywidgets', 'matplotlib', 'numpy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@linux_only
def test_the_model_waits_for_a_server_model_then_watches_it() -> None:
    server = ServerModel(kind="threading", workload="echo")
    model = KernelModel(server, rate=20, window=5)
    try:
        assert model.start().state == "waiting"
        assert model in registry.tracked()
        server.start()
        assert wait_for(lambda: model.status().state == "watching")
        with socket.create_connection(server.address, timeout=5) as client:
            client.sendall(b"hello\n")
            assert client.recv(16) == b"hello\n"
            assert wait_for(lambda: model.series().readings[-1].count("ESTABLISHED", "client") == 1)
        status = model.status()
        assert status.target == f"127.0.0.1:{server.address[1]}"
        assert "LISTEN 1" in status.text
        # the window bounds what is kept: 5 s at 20 readings a second
        assert model.series().readings and len(model.series().readings) <= 101
    finally:
        model.stop()
        server.stop()
    assert model.status().state == "stopped" and model not in registry.tracked()
    assert model.series().readings  # the readings stay after stop
    model.stop()  # idempotent


@linux_only
def test_the_model_says_why_it_stopped_for_a_datagram_server() -> None:
    server = ServerModel(kind="threading-udp", workload="echo")
    model = KernelModel(server, rate=20)
    try:
        model.start()
        server.start()
        assert wait_for(lambda: not model.running)
        status = model.status()
        assert status.state == "stopped" and "datagram server" in status.text
    finally:
        model.stop()
        server.stop()


def test_the_model_says_not_available_where_there_is_no_proc_net(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kv, "PROC_NET", str(tmp_path))
    model = KernelModel(8000)
    status = model.start()
    assert status.state == "unavailable" and status.text == kv.NOT_AVAILABLE
    assert "not available on this system" in status.text
    assert not model.running and model not in registry.tracked()


def test_a_bad_target_or_window_fails_in_one_line() -> None:
    with pytest.raises(TypeError, match="cannot watch"):
        KernelModel(2.5)
    with pytest.raises(ValueError, match="window"):
        KernelModel(8000, window=0)


# -- the panel (ipywidgets) ------------------------------------------------------------

w = pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

from sockserve.lab import KernelPanel, ServerPanel  # noqa: E402
from sockserve.lab.kernelcharts import describe_kernel_view, kernel_charts, queue_chart, states_chart  # noqa: E402


def buttons(panel: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(widget: Any) -> None:
        if isinstance(widget, w.Button):
            found[widget.description] = widget
        for child in getattr(widget, "children", ()):
            walk(child)

    walk(panel)
    return found


@linux_only
def test_the_panel_plots_a_server_panel_live_and_stops() -> None:
    server = ServerPanel(kind="threading", workload="echo", key="t-kernel-server")
    panel = KernelPanel(server, rate=20, key="t-kernel")
    try:
        assert "no connections" in panel._ui_server.value
        assert isinstance(panel, w.VBox)
        assert {"Watch", "Stop"} <= set(buttons(panel))
        assert wait_for(lambda: "waiting" in panel._ui_status.value)
        assert buttons(panel)["Watch"].disabled and not buttons(panel)["Stop"].disabled
        server.start()
        with socket.create_connection(server.address, timeout=5) as client:
            client.sendall(b"hi\n")
            assert client.recv(8) == b"hi\n"
            assert wait_for(lambda: "ESTABLISHED 1" in panel._ui_status.value)
        assert wait_for(lambda: "ESTABLISHED" in panel._ui_client.value)
        assert panel._ui_server.value.startswith("<svg") and "listen queue" in panel._ui_queue.value
        buttons(panel)["Stop"].click()
        assert not panel.model.running
        assert "stopped" in panel._ui_status.value and not buttons(panel)["Watch"].disabled
        buttons(panel)["Watch"].click()
        assert wait_for(lambda: panel.model.status().state == "watching")
    finally:
        panel.close()
        server.close()
    assert not panel.model.running


def test_the_panel_shows_the_sentence_where_there_is_no_proc_net(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kv, "PROC_NET", str(tmp_path))
    panel = KernelPanel(8000, key="t-kernel-none")
    try:
        assert "not available on this system" in panel._ui_status.value
        assert buttons(panel)["Watch"].disabled and buttons(panel)["Stop"].disabled
        assert panel._ui_charts.layout.display == "none"
    finally:
        panel.close()


@linux_only
def test_rerunning_the_cell_or_stop_all_stops_the_panel() -> None:
    first = KernelPanel(8000, key="t-kernel-cell")
    assert wait_for(lambda: first.model.running)
    second = KernelPanel(8000, key="t-kernel-cell")
    try:
        assert not first.model.running and second.model.running
        assert stop_all() >= 1
        assert not second.model.running and registry.tracked() == []
    finally:
        second.close()
        first.close()


def test_the_charts_show_each_state_seen_and_when_the_queue_was_full() -> None:
    readings = tuple(
        kv.KernelReading(float(i), {"LISTEN": 1, "ESTABLISHED": min(i, 3)}, {"SYN-SENT": max(0, i - 3)},
                         min(i, 3), 2)
        for i in range(6)
    )
    series = kv.KernelSeries("127.0.0.1:8000", readings)
    server, client, queue = kernel_charts(series)
    assert server == states_chart(series, "server") and server.startswith("<svg")
    assert ">ESTABLISHED</text>" in server and ">LISTEN</text>" not in server
    assert ">SYN-SENT</text>" in client and "clients on this machine" in client
    assert "listen queue (backlog 2)" in queue and ">full at 3</text>" in queue
    assert "full in 3 of 6 readings" in queue
    assert "never full" in queue_chart(kv.KernelSeries("x", readings[:2]))
    assert "no connections" in states_chart(kv.KernelSeries("x", ()), "client")
    with pytest.raises(ValueError, match="side"):
        states_chart(series, "both")


def test_states_of_equal_count_are_drawn_apart_and_described() -> None:
    # three clients in SYN-SENT beside three ESTABLISHED: both lines must show
    readings = tuple(kv.KernelReading(float(i), {"LISTEN": 1}, {"SYN-SENT": 3, "ESTABLISHED": 3}, 0, 2)
                     for i in range(4))
    series = kv.KernelSeries("127.0.0.1:8000", readings)
    client = states_chart(series, "client")
    lines = re.findall(r'<polyline points="([^"]+)" fill="none" stroke="([^"]+)" stroke-width="[^"]+"'
                       r'( stroke-dasharray="[^"]+")?><title>([^<]+)</title>', client)
    heights = {title: {float(point.split(",")[1]) for point in points.split()} for points, _c, _d, title in lines}
    assert heights["SYN-SENT"].isdisjoint(heights["ESTABLISHED"])  # equal counts, drawn apart
    dashes = {title: dash for _p, _c, dash, title in lines}
    assert dashes["SYN-SENT"] != dashes["ESTABLISHED"]
    assert "px up or down so equal counts show" in client
    alt = html.escape(f"clients on this machine (remote port): {describe_kernel_view(series)}", quote=True)
    assert f'aria-label="{alt}"' in client
