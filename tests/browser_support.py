"""Shared pieces of the real-browser tests: finding Chromium and running JupyterLab.

``test_browser.py`` (the lab panels) and ``test_browser_notebooks.py`` (every
lesson) both start a JupyterLab on a free loopback port, without a token,
with ``expose_app_in_browser`` so the page can drive ``window.jupyterapp``,
and stop it by PID afterwards; this module is that one launcher.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def need_browser() -> None:
    """Skip without Chromium, or fail when SOCKSERVE_REQUIRE_BROWSER=1 (as in CI)."""
    if os.path.exists(CHROMIUM):
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("SOCKSERVE_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " and SOCKSERVE_REQUIRE_BROWSER=1")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def jupyterlab(home: str, root: str) -> Iterator[str]:
    """Run JupyterLab serving *root*, with its runtime, workspace and settings
    directories under *home* (``home/.settings`` may be prepared beforehand);
    yield its base URL; stop it by PID (SIGTERM, then SIGKILL of its group)."""
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(
        PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
        JUPYTER_RUNTIME_DIR=os.path.join(home, ".runtime"),
        JUPYTERLAB_WORKSPACES_DIR=os.path.join(home, ".workspaces"),
        JUPYTERLAB_SETTINGS_DIR=os.path.join(home, ".settings"),
    )
    port = free_port()
    log_path = os.path.join(home, "lab.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            "--IdentityProvider.token=", "--ServerApp.password=",
            f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/api/status", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    with open(log_path, "rb") as f:
                        raise RuntimeError("JupyterLab did not start:\n" + f.read().decode()[-3000:])
                time.sleep(0.3)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def assert_widgets_rendered(page: Any) -> None:
    """No widget left as "Loading widget..." and no raw ``VBox(...)``-style repr."""
    text = str(page.locator(".jp-OutputArea").all_inner_texts())
    assert "Loading widget" not in text, text[:2000]
    assert not re.search(r"\b(VBox|HBox|ServerPanel|TrafficPanel|ComparePanel)\(", text), text[:2000]
