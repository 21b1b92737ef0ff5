"""The sdist and the wheel, built once per test run with ``python -m build``
from a clean copy of the working tree (so the checkout gets no ``build/`` or
``*.egg-info``): ``test_packaging`` checks what they hold and that building
printed no warning, ``test_binder`` installs the wheel into a fresh venv."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What a copy of the working tree leaves out: environments, caches, build leftovers.
IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "*.egg-info", "__pycache__", ".mypy_cache", ".pytest_cache",
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


@functools.cache
def build_distributions() -> Built:
    import time

    work = Path(tempfile.mkdtemp(prefix="sockserve-dist-"))
    atexit.register(shutil.rmtree, work, True)
    tree = work / "sockserve"
    shutil.copytree(ROOT, tree, ignore=IGNORE)
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(tree)],
        cwd=work, env=clean_env(), capture_output=True, text=True, timeout=600,
    )
    took = time.monotonic() - began
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"python -m build failed ({proc.returncode}):\n{output[-6000:]}"
    (sdist,) = (work / "dist").glob("*.tar.gz")
    (wheel,) = (work / "dist").glob("*.whl")
    return Built(sdist=sdist, wheel=wheel, output=output, seconds=took)
