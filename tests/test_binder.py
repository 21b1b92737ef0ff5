"""A fresh environment, outside the repository, as a student gets it: built
exactly as ``binder/`` says, with the wheel ``python -m build`` made.

repo2docker installs ``binder/requirements.txt`` and then runs the executable
``binder/postBuild`` from the repository root (with a ``binder/`` folder the
top-level ``pyproject.toml`` is ignored, so postBuild installs the package).
``packaging_support.binder_environment`` does the same, once per test run, in a
temporary directory from a copy of the working tree, then installs the built
wheel over it, so what runs is the wheel a ``pip install sockserve[lab]`` would
get (non-editable, no clone in sight). Here the test checks that
``sockserve lab --no-browser`` copies the shipped workbook into
``./sockserve-workbook`` and serves it: the index URL it prints answers, the
index notebook is there, every lesson and the teacher's guide are copied and
the solutions are not; the process is stopped by its PID.

Every lesson then runs in that same environment, in JupyterLab in headless
Chromium, each lab pinned to one core as on a one-core Binder pod:
``test_browser_notebooks`` (so the test run executes the workbook twice, not
three times: there, and under nbval in the development venv).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from packaging_support import ROOT, BinderEnv

BINDER = ROOT / "binder"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the lab (by PID), then SIGKILL to its session if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_binder_folder_is_complete() -> None:
    assert (BINDER / "requirements.txt").is_file()
    post = BINDER / "postBuild"
    assert post.is_file() and post.stat().st_mode & stat.S_IXUSR, "binder/postBuild must be executable"
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"binder/requirements.txt must pin exact versions: {line!r}"
    assert "pip install" in post.read_text() and "." in post.read_text()


# The environment is made once per run (pip bounded at 600 s): the run's 300 s
# default would cut it short on a busy machine.
@pytest.mark.timeout(900)
def test_the_wheel_in_a_binder_environment_serves_the_workbook(binder_env: BinderEnv, tmp_path: Path) -> None:
    home = tmp_path / "home"  # the student's current directory: no clone here
    home.mkdir()
    env = dict(
        binder_env.env,
        HOME=str(home),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    where = subprocess.run(
        [str(binder_env.python), "-c", "import sockserve, sockserve.lab, sockserve.exercises; print(sockserve.__file__)"],
        cwd=home, env=env, capture_output=True, text=True, timeout=60,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(binder_env.venv)), f"the lessons would import {where.stdout}"

    # sockserve lab: copy the workbook out of the wheel, serve its index.
    port = _free_port()
    log_path = tmp_path / "lab.log"
    with open(log_path, "wb") as log:
        lab = subprocess.Popen([str(binder_env.venv / "bin" / "sockserve"), "lab", "--no-browser", "--port", str(port)],
                               cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        pattern = re.compile(rf"http://127\.0\.0\.1:{port}/lab/tree/00-index\.ipynb\?token=(\w+)")
        deadline = time.monotonic() + 120
        while not (found := pattern.search(log_path.read_text(errors="replace"))):
            assert lab.poll() is None, f"sockserve lab exited ({lab.returncode}):\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no index URL within 120 s:\n{log_path.read_text()}"
            time.sleep(0.25)
        # jupyter_server prints its URL before it listens (it binds in a callback
        # of the loop it starts next), so a quick first GET can be refused: as a
        # student reloads, ask again while the lab runs (failed once in CI).
        while True:
            try:
                status, page = _get(found.group(0))
                break
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, ConnectionRefusedError):
                    raise
                assert lab.poll() is None, f"sockserve lab exited ({lab.returncode}):\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"refused for 120 s:\n{log_path.read_text()}"
                time.sleep(0.25)
        assert status == 200 and b"JupyterLab" in page
        status, body = _get(f"http://127.0.0.1:{port}/api/contents/00-index.ipynb?token={found.group(1)}")
        assert status == 200 and b'"type": "notebook"' in body and b"The sockserve workbook" in body
    finally:
        _stop(lab)
    said = log_path.read_text(errors="replace")
    folder = home / "sockserve-workbook"
    assert f"sockserve lab: workbook folder {folder}" in said, said
    assert re.search(r"sockserve lab: copied \d+ files", said), said
    assert ("passing --allow-root" in said) == (os.geteuid() == 0), said

    lessons = sorted(p.name for p in folder.glob("*.ipynb"))
    assert lessons == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for name in lessons:  # the wheel's copies are the lessons of this tree, byte for byte
        assert (folder / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes(), name
    assert not (folder / "solutions").exists()  # a student's copy: the solutions are the teacher's
    assert (folder / "TEACHING.md").read_bytes() == (ROOT / "notebooks" / "TEACHING.md").read_bytes()
    print(f"\nBinder environment made in {binder_env.seconds:.0f} s")
