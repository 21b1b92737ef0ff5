"""The three panels in a real JupyterLab, driven in headless Chromium.

Starts JupyterLab on a free loopback port with a generated notebook, runs all
cells, clicks Start, Send, Run comparison and Stop, and checks what a learner
would see: rendered widgets (never "Loading widget..." or a raw ``VBox(...)``),
a status line whose counters move, plots that change, and a summary table.
Screenshots go to ``test-artifacts/browser/``.

Needs /usr/bin/chromium (``apt-get install chromium``); without it the test
is skipped, unless SOCKSERVE_REQUIRE_BROWSER=1, when it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    LabURL,
    assert_widgets_rendered,
    jupyterlab,
    need_browser,
)

pytestmark = [pytest.mark.browser, pytest.mark.allow_leaks, pytest.mark.timeout(240)]

ARTIFACTS = os.path.join(ROOT, "test-artifacts", "browser")

CELLS = [
    "from sockserve.lab import ServerPanel, TrafficPanel, ComparePanel, stop_all",
    'server = ServerPanel(kind="threading", workload="io")\nserver',
    "traffic = TrafficPanel(server, clients=4, duration=2.0)\ntraffic",
    'compare = ComparePanel(workload="echo", servers=("plain", "threading", "forking"), clients=2, duration=0.5)\ncompare',
]


@pytest.fixture
def lab() -> Iterator[LabURL]:
    """JupyterLab serving a temp dir holding lab.ipynb; yields its base URL."""
    need_browser()
    import nbformat

    home = tempfile.mkdtemp(prefix="sockserve-lab-browser-")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, os.path.join(home, "lab.ipynb"))
    try:
        with jupyterlab(home, home) as url:
            yield url
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _image(page: Any, panel: str, index: int = 0) -> str:
    return str(page.locator(f".{panel} img").nth(index).get_attribute("src"))


def test_panels_in_jupyterlab(lab: LabURL) -> None:
    from playwright.sync_api import expect, sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = lambda page, name: page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)  # noqa: E731
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(60_000)
            page.goto(lab.link("/lab/tree/lab.ipynb"))
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            # Wait for the kernel, then run every cell.
            page.wait_for_function(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " return w && w.sessionContext && w.sessionContext.session &&"
                " w.sessionContext.session.kernel &&"
                " w.sessionContext.session.kernel.connectionStatus === 'connected' }"
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            server, traffic, compare = (
                page.locator(".sockserve-server-panel"),
                page.locator(".sockserve-traffic-panel"),
                page.locator(".sockserve-compare-panel"),
            )
            for panel in (server, traffic, compare):
                expect(panel).to_be_visible(timeout=90_000)
            assert_widgets_rendered(page)
            shot(page, "1-panels")

            status = page.locator(".sockserve-status")
            expect(status).to_have_attribute("data-state", "stopped")
            server.get_by_role("button", name="Start").click()
            expect(status).to_have_attribute("data-state", "running")
            expect(status).to_contain_text("serving on 127.0.0.1:")
            expect(status).to_contain_text("requests 0,")
            shot(page, "2-started")

            chart = ".sockserve-traffic-panel svg.sockserve-chart"
            blank_latency = page.locator(chart).first.inner_html()
            traffic.get_by_role("button", name="Send").click()
            # Live: the counters and the charts (inline SVG) change while the load runs.
            expect(status).not_to_contain_text("requests 0,", timeout=30_000)
            page.wait_for_function(
                "([sel, old]) => document.querySelector(sel).innerHTML !== old",
                arg=[chart, blank_latency], timeout=30_000,
            )
            assert page.locator(chart).count() == 3
            running_summary = page.locator(".sockserve-summary")
            shot(page, "3-sending")
            expect(running_summary).to_have_attribute("data-state", "done", timeout=60_000)
            expect(running_summary).to_contain_text("requests")
            assert re.search(r"requests [1-9]\d*", status.inner_text())
            shot(page, "4-sent")

            blank_compare = _image(page, "sockserve-compare-panel", 0)
            compare.get_by_role("button", name="Run comparison").click()
            table = page.locator(".sockserve-table")
            expect(table).to_have_attribute("data-state", "done", timeout=90_000)
            for name in ("plain", "threading", "forking"):
                expect(table).to_contain_text(name)
            assert _image(page, "sockserve-compare-panel", 0) != blank_compare
            shot(page, "5-compared")

            server.get_by_role("button", name="Stop").click()
            expect(status).to_have_attribute("data-state", "stopped")
            assert_widgets_rendered(page)
            shot(page, "6-stopped")

            # Running the server's cell again stops the server it made before.
            server.get_by_role("button", name="Start").click()
            expect(status).to_have_attribute("data-state", "running")
            port = int(re.search(r"127\.0\.0\.1:(\d+)", status.inner_text()).group(1))
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            page.evaluate(
                "() => { const nb = window.jupyterapp.shell.currentWidget.content;"
                " nb.activeCellIndex = 1;"
                " return window.jupyterapp.commands.execute('notebook:run-cell'); }"
            )
            expect(page.locator(".sockserve-status")).to_have_attribute("data-state", "stopped")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=2).close()
                except ConnectionRefusedError:
                    break
                time.sleep(0.2)
            else:
                pytest.fail(f"the first panel's server still listens on port {port}")
            assert_widgets_rendered(page)
            shot(page, "7-cell-rerun")
        finally:
            browser.close()


def test_jupyterlab_refuses_whoever_lacks_its_token(lab: LabURL) -> None:
    """The tests' JupyterLab runs as root in CI: without its token, another
    local user gets nothing from it (issue 24 item 11); with it, the API answers."""
    import json
    import urllib.error
    import urllib.request

    from browser_support import api_request

    for path in ("/api/kernels", "/api/contents"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(lab + path, timeout=10)
        assert refused.value.code == 403
        refused.value.close()
    with urllib.request.urlopen(api_request(lab + "/api/kernels", lab.token), timeout=10) as reply:
        assert json.loads(reply.read()) == []
    from pathlib import Path

    shown = []  # every user can read every process's command line
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if lab.token.encode() in cmdline.read_bytes():
                shown.append(cmdline)
        except OSError:
            pass
    assert shown == []
