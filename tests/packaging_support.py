"""The sdist and the wheel, built once per test run with ``python -m build``
from a clean copy of the working tree (so the checkout gets no ``build/`` or
``*.egg-info``), and the Binder environment made from them, once per test run
too: ``test_packaging`` checks what the distributions hold and that building
printed no warning; ``test_binder`` checks the Binder environment and its
``sockserve lab``; ``test_browser_notebooks`` runs every lesson in JupyterLab
served from that environment (the wheel, as a student on Binder gets it).

"Once per test run": the work is done in a folder every pytest-xdist worker of
the run shares (the fixtures in conftest.py pass it), under a lock, by
whichever worker asks first; the others wait for it and reuse the result.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What a copy of the working tree leaves out: environments, caches, build leftovers.
IGNORE = shutil.ignore_patterns(
    ".venv", ".venv-*", ".ci-*.log", ".git", "*.egg-info", "__pycache__", ".mypy_cache", ".pytest_cache",
    "test-artifacts", "build", "dist", ".ipynb_checkpoints", "*.sock", "sockserve-workbook",
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point a child at our venv or tree."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTEST_CURRENT_TEST")}
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env.update(extra)
    return env


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    output: str  # everything `python -m build` printed (stdout and stderr)
    seconds: float


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on *path* (a file made if missing) across processes."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_distributions(shared: Path) -> Built:
    """The sdist and the wheel of the working tree, built in *shared*/dist the
    first time any worker asks (``python -m build`` from a clean copy)."""
    import time

    out = shared / "dist"
    record = shared / "dist.json"
    with locked(shared / "dist.lock"):
        if not record.exists():
            work = Path(tempfile.mkdtemp(prefix="sockserve-dist-"))
            try:
                tree = work / "sockserve"
                shutil.copytree(ROOT, tree, ignore=IGNORE)
                began = time.monotonic()
                proc = subprocess.run(
                    [sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
                    cwd=work, env=clean_env(), capture_output=True, text=True, timeout=600,
                )
                took = time.monotonic() - began
            finally:
                shutil.rmtree(work, ignore_errors=True)
            output = proc.stdout + proc.stderr
            assert proc.returncode == 0, f"python -m build failed ({proc.returncode}):\n{output[-6000:]}"
            record.write_text(json.dumps({"output": output, "seconds": took}))
    done = json.loads(record.read_text())
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Built(sdist=sdist, wheel=wheel, output=done["output"], seconds=done["seconds"])


@dataclass(frozen=True)
class BinderEnv:
    """A venv built as ``binder/`` says, with the wheel installed over it."""

    venv: Path
    python: Path
    env: dict[str, str]  # the environment to run its programs in (its bin first on PATH, no PYTHONPATH)
    seconds: float  # how long making it took (the wheel's build not included)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    assert "DEPRECATION" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


def binder_environment(shared: Path) -> BinderEnv:
    """The Binder environment, made in *shared*/binder the first time any worker asks.

    As repo2docker does: a fresh venv, ``pip install -r binder/requirements.txt``,
    then ``binder/postBuild`` from the root of a copy of the working tree; then the
    built wheel over it (non-editable, ``--no-deps``), so what runs is the wheel a
    ``pip install sockserve[lab]`` would get, and no clone is in sight."""
    import time

    built = build_distributions(shared)
    base = shared / "binder"
    venv = base / "venv"
    env = clean_env(
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        MPLBACKEND="Agg",
    )
    python = venv / "bin" / "python"
    record = base / "made.json"
    with locked(shared / "binder.lock"):
        if not record.exists():
            began = time.monotonic()
            repo = base / "repo"
            shutil.rmtree(repo, ignore_errors=True)  # what an attempt that failed left
            shutil.rmtree(venv, ignore_errors=True)
            shutil.copytree(ROOT, repo, ignore=IGNORE)
            base_python = getattr(sys, "_base_executable", sys.executable)
            _run([base_python, "-m", "venv", str(venv)], base, env, 120)
            _run([str(python), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], repo, env, 600)
            _run([str(repo / "binder" / "postBuild")], repo, env, 300)
            _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(built.wheel)],
                 base, env, 300)
            shutil.rmtree(repo)
            record.write_text(json.dumps({"seconds": time.monotonic() - began}))
    return BinderEnv(venv=venv, python=python, env=env, seconds=json.loads(record.read_text())["seconds"])
