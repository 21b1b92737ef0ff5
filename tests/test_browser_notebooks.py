"""Every lesson notebook, run top to bottom in JupyterLab in headless Chromium.

The lessons run as a student on Binder runs them: JupyterLab from the Binder
environment with the wheel installed (``packaging_support.binder_environment``,
made once per test run), pinned to one core as on a one-core Binder pod. The
lessons are shared by two labs (conftest.SECOND_LAB, each on its own worker, core
and Chromium: see the root conftest.py), each serving a temporary copy of
``notebooks/`` (outputs stripped, so nothing stale can pass for a fresh
result, and the committed notebooks are never touched), in one page, as a
student keeps one tab open (``LabPage``). For each ``notebooks/NN-*.ipynb`` the test opens it, runs all
cells, waits until every code cell has run (in order, in one fresh kernel) and
checks what a learner would see: no error output, and no traceback printed to
stderr (say by a server thread's ``handle_error``; plain warnings are fine),
except in cells tagged ``raises-exception`` (which must show theirs); no widget
stuck at "Loading widget..." and no raw ``VBox(...)`` repr. Cell numbers in
failure messages count every cell from 0, markdown included. A full-height screenshot of each goes
to ``test-artifacts/browser/notebooks/<name>.png``.

Needs /usr/bin/chromium; without it the tests are skipped, unless
SOCKSERVE_REQUIRE_BROWSER=1, when they fail (as in test_browser.py).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    LabURL,
    api_request,
    assert_widgets_rendered,
    jupyterlab,
    need_browser,
)
from packaging_support import BinderEnv, locked

# A test's time includes its fixtures': the first of a lab waits for the Binder
# environment (made once per run, bounded in packaging_support) and the lab.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(480)]

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "[0-9][0-9]-*.ipynb")))
ARTIFACTS = os.path.join(ROOT, "test-artifacts", "browser", "notebooks")
RUN_TIMEOUT = 180.0  # seconds for one notebook's run-all on one core, kernel start included
MAX_SHOT_HEIGHT = 30_000  # pixels; Chromium cannot capture much taller pages

# Windowing off: every cell is in the DOM, so the DOM checks and the screenshot see all of
# them; no blank space past the last cell; no news or update toast over the screenshot.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "scrollPastEnd": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

#: One poll of the open notebook: kernel status, each code cell's execution count,
#: and the indices of cells whose model holds an error output.
STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.model.cells;
  const counts = {}, errors = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    counts[i] = cell.executionCount;
    for (let j = 0; j < cell.outputs.length; j++) {
      if (cell.outputs.get(j).type === 'error') { errors.push(i); break; }
    }
  }
  return {status: kernel ? kernel.status : 'none', counts, errors};
}"""

#: Which rendered cells show a traceback (the DOM view of the same check, by cell index).
DOM_ERRORS_JS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.widgets;
  const found = [];
  cells.forEach((cell, i) => {
    if (cell.model.type !== 'code') return;
    const text = Array.from(cell.node.querySelectorAll('.jp-OutputArea-output'))
      .map(n => n.innerText).join('\\n');
    if (/Traceback \\(most recent call last\\)/.test(text) && /Error|Exception/.test(text)) found.push(i);
  });
  return found;
}"""


def _notebook_id(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _strip_outputs(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        notebook = json.load(f)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    with open(path, "w", encoding="utf-8") as f:
        json.dump(notebook, f, indent=1)


def _tagged(path: str, tag: str) -> set[int]:
    with open(path, encoding="utf-8") as f:
        cells = json.load(f)["cells"]
    return {i for i, cell in enumerate(cells) if tag in cell.get("metadata", {}).get("tags", [])}


def _api(lab: LabURL, path: str) -> Any:
    with urllib.request.urlopen(api_request(lab + path, lab.token), timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def _claim_core(run_dir: Path) -> int:
    """A core for this lab: the first lab of the run gets the first usable core,
    the next the next (so the two labs of a run do not share one)."""
    cores = sorted(os.sched_getaffinity(0))
    counter = run_dir / "browser-lab-cores"
    with locked(run_dir / "browser-lab-cores.lock"):
        taken = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(taken + 1))
    return cores[taken % len(cores)]


@pytest.fixture(scope="module")
def lab(binder_env: BinderEnv, run_dir: Path) -> Iterator[LabURL]:
    """JupyterLab from the Binder environment (the wheel, packaging_support),
    pinned to one core as on a one-core Binder pod, serving a stripped temporary
    copy of notebooks/; yields its base URL."""
    need_browser()
    home = tempfile.mkdtemp(prefix="sockserve-nb-browser-")
    root = os.path.join(home, "notebooks")
    shutil.copytree(
        os.path.join(ROOT, "notebooks"), root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    )
    for path in glob.glob(os.path.join(root, "*.ipynb")):
        _strip_outputs(path)
    settings = os.path.join(home, ".settings")
    for plugin, values in LAB_SETTINGS.items():
        target = os.path.join(settings, plugin + ".jupyterlab-settings")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            json.dump(values, f)
    try:
        with jupyterlab(home, root, str(binder_env.python), binder_env.env, {_claim_core(run_dir)}) as url:
            yield url
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(lab: LabURL) -> Iterator[Any]:
    """One headless Chromium for the module (its lessons share one page: see LabPage)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class LabPage:
    """One JupyterLab page for a lab's lessons, as a student keeps one tab open:
    each lesson is opened in it, run, and closed (its kernel shut down) before
    the next. Loading the application once instead of once per lesson saves
    time, not much CPU (measured, this module alone on two workers: 132 s ->
    117-119 s, 120 -> 117-118 CPU-s: Chromium's work is the lessons' outputs).
    A lesson that fails leaves the page discarded, so the next lesson starts
    from a fresh load."""

    def __init__(self, lab: LabURL, browser: Any) -> None:
        self.lab, self.browser = lab, browser
        self._page: Any = None

    def open(self, name: str) -> Any:
        """The page, showing notebook *name* (nothing else open), viewport reset."""
        if self._page is None:
            page = self.browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(self.lab.link(f"/lab/tree/{name}?reset"))  # reset: no layout from an earlier run
            self._page = page
        else:
            page = self._page
            page.set_viewport_size({"width": 1280, "height": 1000})
            page.evaluate("name => window.jupyterapp.commands.execute('docmanager:open', {path: name})", name)
        page.wait_for_function(
            "name => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return w && w.context && w.context.path === name && w.content && w.content.widgets &&"
            " w.content.widgets.length > 0 }",
            arg=name,
        )
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        return page

    def close_lesson(self) -> None:
        """Shut the lesson's kernel down and close every document (unsaved, no dialog)."""
        page = self._page
        if page is None:
            return
        try:
            _shut_down_kernels(page, self.lab)
        finally:
            page.evaluate("() => { for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) w.dispose(); }")

    def discard(self) -> None:
        if self._page is not None:
            try:
                _shut_down_kernels(self._page, self.lab)
            finally:
                self._page.close()
                self._page = None


@pytest.fixture(scope="module")
def lab_page(lab: LabURL, browser: Any) -> Iterator[LabPage]:
    holder = LabPage(lab, browser)
    try:
        yield holder
    finally:
        holder.discard()


def _shut_down_kernels(page: Any, lab: LabURL) -> None:
    """Shut every session's kernel down (from the page, which holds the XSRF cookie the
    server wants for a DELETE) and wait until the server lists no kernel."""
    page.evaluate("() => window.jupyterapp.serviceManager.sessions.shutdownAll()")
    deadline = time.monotonic() + 20
    while _api(lab, "/api/kernels") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _api(lab, "/api/kernels"), "a kernel outlived its notebook"


def _run_all(page: Any, name: str, expected_errors: set[int]) -> dict[str, Any]:
    """Run every cell of the open notebook; return the final STATE_JS poll (early if a
    cell outside *expected_errors* failed and stopped the run)."""
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return w && w.content && w.content.model && w.sessionContext && w.sessionContext.session &&"
        " w.sessionContext.session.kernel &&"
        " w.sessionContext.session.kernel.connectionStatus === 'connected' }"
    )
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + RUN_TIMEOUT
    stopped_polls = 0
    while True:
        state: dict[str, Any] = page.evaluate(STATE_JS)
        idle = state["status"] == "idle"
        done = idle and all(n is not None for n in state["counts"].values())
        # An unexpected error stops the run (the kernel aborts the queued cells): once the
        # kernel has stayed idle with one showing, return rather than wait for the timeout.
        stopped_polls = stopped_polls + 1 if idle and set(map(int, state["errors"])) - expected_errors else 0
        if done or stopped_polls >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if stopped_polls >= 3:
        return state
    if not done:
        pending = [i for i, n in state["counts"].items() if n is None]
        pytest.fail(
            f"{name}: not finished after {RUN_TIMEOUT:.0f} s: kernel {state['status']},"
            f" cells without an execution count {pending}, cells with an error output {state['errors']}"
        )
    return state


def _screenshot(page: Any, name: str) -> None:
    """Grow the viewport until the notebook no longer scrolls, then capture the page from the top.

    JupyterLab fits its panels to the window, so a full-page screenshot alone shows one
    screenful; the notebook's own scroll area holds the rest."""
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    for _ in range(3):
        overflow = page.evaluate(
            "() => { const outer = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');"
            " outer.scrollTop = 0; return outer.scrollHeight - outer.clientHeight; }"
        )
        height = page.viewport_size["height"]
        if overflow <= 0 or height >= MAX_SHOT_HEIGHT:
            break
        page.set_viewport_size({"width": 1280, "height": min(height + int(overflow) + 20, MAX_SHOT_HEIGHT)})
        page.wait_for_timeout(300)  # one layout and paint at the new size
    os.makedirs(ARTIFACTS, exist_ok=True)
    # Bytes, written here: Playwright's own file writing would start an executor thread.
    png = page.screenshot(full_page=True)
    with open(os.path.join(ARTIFACTS, f"{name}.png"), "wb") as f:
        f.write(png)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_notebook_id)
def test_notebook_runs_in_jupyterlab(lab_page: LabPage, path: str) -> None:
    name = os.path.basename(path)
    expected_errors = _tagged(path, "raises-exception")
    passed = False
    try:
        page = lab_page.open(name)
        state = _run_all(page, name, expected_errors)

        # Widgets render asynchronously after the cell that displays them has finished.
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            page.wait_for_function(
                "() => !Array.from(document.querySelectorAll('.jp-OutputArea'))"
                ".some(n => n.innerText.includes('Loading widget'))",
                timeout=30_000,
            )
        except PlaywrightTimeout:
            pass  # _assert_widgets_rendered below reports what is stuck
        _screenshot(page, _notebook_id(path))

        errors = {int(i) for i in state["errors"]}
        shown = set(page.evaluate(DOM_ERRORS_JS))
        unexpected = sorted((errors | shown) - expected_errors)
        texts = page.evaluate(
            "ids => ids.map(i => window.jupyterapp.shell.currentWidget.content.widgets[i]"
            ".node.innerText.slice(-1500))",
            unexpected,
        )
        assert not unexpected, f"{name}: error output in cell(s) {unexpected}:\n" + "\n---\n".join(texts)
        counts = [state["counts"][i] for i in sorted(state["counts"], key=int)]
        assert counts == list(range(1, len(counts) + 1)), f"{name}: cells ran out of order: {counts}"
        missing = sorted(expected_errors - errors)
        assert not missing, f"{name}: cell(s) {missing} are tagged raises-exception but showed no error"
        assert_widgets_rendered(page)
        passed = True
    finally:
        if passed:
            lab_page.close_lesson()
        else:
            lab_page.discard()
