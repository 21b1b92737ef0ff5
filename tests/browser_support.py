"""Shared pieces of the real-browser tests: finding Chromium and running JupyterLab.

``test_browser.py`` (the lab panels) and ``test_browser_notebooks.py`` (every
lesson) both start a JupyterLab on a free loopback port, with
``expose_app_in_browser`` so the page can drive ``window.jupyterapp``, and
stop it by PID afterwards; this module is that one launcher.

The server runs as whoever runs the tests (root in CI), so it has a random
token: without it, any other local user could run code through it while
the tests run. The token travels in the environment (``JUPYTER_TOKEN``,
readable by the same user only), never on the command line (which every
user can read in /proc); pages are opened with :meth:`LabURL.link` (the
token in the query, which logs the browser in) and API calls made with
:func:`api_request` (the token in the Authorization header).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
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


class LabURL(str):
    """A running JupyterLab's base URL (``lab + "/api/kernels"`` works as
    for a str), with the token that every request needs."""

    token: str

    def __new__(cls, url: str, token: str) -> LabURL:
        made = super().__new__(cls, url)
        made.token = token
        return made

    def link(self, path: str) -> str:
        """The address of *path* (which may have a query) with the token, to open in a browser."""
        return f"{self}{path}{'&' if '?' in path else '?'}token={self.token}"


def api_request(url: str, token: str) -> urllib.request.Request:
    """A request for JupyterLab's REST API at *url*, authenticated by *token*."""
    return urllib.request.Request(url, headers={"Authorization": f"token {token}"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def jupyterlab(
    home: str, root: str, python: str = sys.executable, env: dict[str, str] | None = None,
    cpus: set[int] | None = None,
) -> Iterator[LabURL]:
    """Run JupyterLab serving *root*, with its runtime, workspace and settings
    directories under *home* (``home/.settings`` may be prepared beforehand;
    *home* should be private to this user, as ``tempfile.mkdtemp`` makes it:
    the runtime folder holds the token); yield its base URL with its token;
    stop it by PID (SIGTERM, then SIGKILL of its group).

    By default the lab is this venv's, with this checkout first on PYTHONPATH;
    given *python* and *env*, it is that environment's, run in *env* as it is.
    Given *cpus*, the lab (and so every kernel it starts) runs on those cores."""
    token = secrets.token_urlsafe(32)
    if env is None:
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    else:
        env = dict(env)
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(
        JUPYTER_TOKEN=token,
        JUPYTER_RUNTIME_DIR=os.path.join(home, ".runtime"),
        JUPYTERLAB_WORKSPACES_DIR=os.path.join(home, ".workspaces"),
        JUPYTERLAB_SETTINGS_DIR=os.path.join(home, ".settings"),
    )
    port = free_port()
    log_path = os.path.join(home, "lab.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            python, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=None if cpus is None else (lambda: os.sched_setaffinity(0, cpus)),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(api_request(url + "/api/status", token), timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    with open(log_path, "rb") as f:
                        raise RuntimeError("JupyterLab did not start:\n" + f.read().decode()[-3000:])
                time.sleep(0.3)
        yield LabURL(url, token)
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
