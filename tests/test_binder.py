"""Binder, simulated: a fresh virtual environment built exactly as ``binder/``
says, then every notebook executed in that environment's kernel.

repo2docker installs ``binder/requirements.txt`` and then runs the executable
``binder/postBuild`` from the repository root; with a ``binder/`` folder the
top-level ``pyproject.toml`` is ignored, so postBuild must install the package.
This test does the same in a temporary directory, from a copy of the working
tree (without ``.venv``, ``.git`` and build leftovers), so it proves that the
pinned requirements resolve, that the installed package (not the source tree)
is what the notebooks import, and that every notebook runs there without an
error (cells tagged ``raises-exception`` may raise; nothing else may).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "*.egg-info", "__pycache__", ".mypy_cache", ".pytest_cache",
    "test-artifacts", "build", "dist", ".ipynb_checkpoints", "*.sock",
)

# Runs inside the Binder venv: execute each notebook with nbclient, in the
# venv's own "python3" kernel, with a bound on every cell.
RUNNER = textwrap.dedent(
    """
    import sys, time
    import nbformat
    from nbclient import NotebookClient

    for path in sys.argv[1:]:
        nb = nbformat.read(path, as_version=4)
        began = time.monotonic()
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
        print(f"ok {path} {time.monotonic() - began:.1f}s", flush=True)
    """
)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return proc.stdout


def test_binder_folder_is_complete() -> None:
    assert (BINDER / "requirements.txt").is_file()
    post = BINDER / "postBuild"
    assert post.is_file() and post.stat().st_mode & stat.S_IXUSR, "binder/postBuild must be executable"
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"binder/requirements.txt must pin exact versions: {line!r}"
    assert "pip install" in post.read_text() and "." in post.read_text()


def test_notebooks_run_in_an_environment_built_as_binder_says(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=IGNORE)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["MPLBACKEND"] = "Agg"
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")

    base_python = getattr(sys, "_base_executable", sys.executable)
    _run([base_python, "-m", "venv", str(venv)], tmp_path, env, 120)
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], repo, env, 600)
    _run([str(repo / "binder" / "postBuild")], repo, env, 300)

    where = _run(
        [python, "-c", "import sockserve, sockserve.lab, sockserve.exercises; print(sockserve.__file__)"],
        tmp_path, env, 60,
    ).strip()
    assert str(venv) in where, f"the notebooks would import sockserve from {where}, not the installed package"

    notebooks = sorted((repo / "notebooks").glob("*.ipynb"))
    assert notebooks and notebooks[0].name == "00-index.ipynb", notebooks
    # Two kernels at a time (a Binder machine and CI both have 2 cores);
    # each notebook still runs alone in its own kernel.
    halves = [notebooks[0::2], notebooks[1::2]]
    procs = [
        subprocess.Popen([python, "-c", RUNNER, *map(str, half)], cwd=repo / "notebooks", env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for half in halves
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"a notebook failed in the Binder environment:\n{out}\n{err[-6000:]}"
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    done = "".join(outputs)
    assert done.count("ok ") == len(notebooks), done
