"""``sockserve lab``: open JupyterLab on the workbook's index.

Where the workbook comes from:

* **a clone** (the package runs from a source tree, as after
  ``pip install -e .``): the tree's own ``notebooks/`` is opened in place;
* **an installed wheel**: the wheel ships the lessons, the teacher's guide
  and the reference solutions as ``sockserve/notebooks``; :func:`copy_workbook`
  copies them into a folder of the user's (``./sockserve-workbook`` by
  default) and JupyterLab opens that copy, so the lessons a student edits and
  saves are their own files.

The copy is a **student release**: the lessons, the data they read and the
teacher's guide (:data:`WORKBOOK_FILES`), without the reference solutions.
A teacher asks for those explicitly (``sockserve lab --solutions``, or
``copy_workbook(..., solutions=True)``), and they land in ``solutions/``
(:data:`SOLUTION_FILES`). No lesson links to the solutions, so every link in
either copy resolves inside it.

Copying never overwrites a file the user changed. A manifest in the folder
(:data:`MANIFEST`) records the hash of every file as it was shipped; on the
next run a file whose content still has that hash is the user's untouched copy
and is updated when the shipped version changed, while a file with any other
content is kept as it is (and said so). Nothing is ever deleted.

:func:`jupyter_command` builds the JupyterLab command line: bound to
127.0.0.1, with ``--allow-root`` (and a note saying why) when run as root,
since JupyterLab otherwise refuses to start there. :func:`missing_lab_modules`
and :func:`install_command` let the caller say exactly what to install when
the ``lab`` extra is missing. Standard library only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "INDEX",
    "MANIFEST",
    "DEFAULT_FOLDER",
    "LAB_MODULES",
    "WORKBOOK_FILES",
    "SOLUTION_FILES",
    "GUIDE",
    "CopyReport",
    "clone_workbook",
    "shipped_workbook",
    "copy_workbook",
    "missing_lab_modules",
    "install_command",
    "jupyter_command",
]

#: The notebook JupyterLab opens first.
INDEX = "00-index.ipynb"
#: The teacher's guide, beside the lessons.
GUIDE = "TEACHING.md"
#: Written in the user's workbook folder: shipped path -> sha256 of the shipped content.
MANIFEST = ".sockserve-workbook.json"
#: Where an installed package copies the workbook, relative to the current directory.
DEFAULT_FOLDER = "sockserve-workbook"
#: What the ``lab`` extra brings, by import name.
LAB_MODULES = ("jupyterlab", "ipywidgets", "matplotlib")

_PACKAGE = Path(__file__).resolve().parent.parent


def clone_workbook() -> Path | None:
    """``notebooks/`` of the source tree this package runs from, or None when
    the package is installed (not run from a clone)."""
    root = _PACKAGE.parent
    notebooks = root / "notebooks"
    if (notebooks / INDEX).is_file() and (root / "pyproject.toml").is_file():
        return notebooks
    return None


def shipped_workbook() -> Path | None:
    """The workbook an installed wheel carries (``sockserve/notebooks``), if any."""
    shipped = _PACKAGE / "notebooks"
    return shipped if (shipped / INDEX).is_file() else None


@dataclass
class CopyReport:
    """What :func:`copy_workbook` did, file by file (paths relative to the folder)."""

    folder: Path
    copied: list[str] = field(default_factory=list)  # new in the folder
    updated: list[str] = field(default_factory=list)  # untouched by the user, replaced by a newer shipped version
    kept: list[str] = field(default_factory=list)  # changed by the user (or not ours): left alone
    unchanged: list[str] = field(default_factory=list)  # already the shipped version

    def lines(self) -> list[str]:
        """Human-readable lines, one per non-empty category."""
        out = [f"workbook folder {self.folder}"]
        for label, names in (("copied", self.copied), ("updated", self.updated)):
            if names:
                out.append(f"{label} {_count(names)}: {_listing(names)}")
        if self.kept:
            out.append(
                f"kept {_count(self.kept)} you changed, as they are (the shipped version differs; "
                f"rename or delete yours to get it): {_listing(self.kept)}"
            )
        if self.unchanged and not (self.copied or self.updated or self.kept):
            out.append(f"all {_count(self.unchanged)} already up to date")
        return out


def _count(names: list[str]) -> str:
    return f"{len(names)} file" + ("" if len(names) == 1 else "s")


def _listing(names: list[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: What the student release is, relative to the workbook's folder (the wheel ships these, too).
WORKBOOK_FILES = ("*.ipynb", "data/*.json", GUIDE)
#: What only a teacher's copy adds: the reference solutions.
SOLUTION_FILES = ("solutions/*.py",)


def _shipped_files(source: Path, solutions: bool) -> list[str]:
    patterns = WORKBOOK_FILES + (SOLUTION_FILES if solutions else ())
    return sorted({p.relative_to(source).as_posix() for pattern in patterns for p in source.glob(pattern)})


def copy_workbook(source: Path, folder: Path, *, solutions: bool = False) -> CopyReport:
    """Copy the workbook in *source* into *folder* (created if needed) without
    overwriting a file the user changed; return what was done. The reference
    solutions are copied only with *solutions* (a teacher's copy).

    Raises ``OSError`` when the folder cannot be created or written (the
    caller reports it in one line).
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST
    try:
        recorded: dict[str, str] = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(recorded, dict):
            recorded = {}
    except (OSError, ValueError):
        recorded = {}
    report = CopyReport(folder=folder)
    manifest = dict(recorded)
    for name in _shipped_files(source, solutions):
        shipped = source / name
        target = folder / name
        wanted = _digest(shipped)
        if not target.exists():
            _write(target, shipped.read_bytes())
            report.copied.append(name)
        else:
            present = _digest(target)
            if present == wanted:
                report.unchanged.append(name)
            elif recorded.get(name) == present:
                _write(target, shipped.read_bytes())
                report.updated.append(name)
            else:
                report.kept.append(name)
                continue  # the manifest keeps what we last wrote there
        manifest[name] = wanted
    _write(manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return report


def _write(target: Path, data: bytes) -> None:
    """Write atomically: a reader (or a crash) never sees half a notebook."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)


def missing_lab_modules() -> list[str]:
    """The ``lab`` extra's modules that cannot be imported here."""
    return [name for name in LAB_MODULES if importlib.util.find_spec(name) is None]


def install_command() -> str:
    """The exact command that installs the ``lab`` extra into this Python."""
    python = shlex.quote(sys.executable)
    clone = clone_workbook()
    if clone is not None:
        return f"{python} -m pip install -e {shlex.quote(str(clone.parent) + '[lab]')}"
    return f"{python} -m pip install 'sockserve[lab]'"


def jupyter_command(folder: Path, *, port: int | None, no_browser: bool,
                    extra: list[str], is_root: bool) -> list[str]:
    """The JupyterLab command that serves *folder* on 127.0.0.1 and opens its index."""
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}", "--ServerApp.ip=127.0.0.1",
            # The URL JupyterLab prints (and opens) is then the index itself.
            f"--LabApp.default_url=/lab/tree/{INDEX}"]
    if port is not None:
        argv += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if no_browser:
        argv.append("--no-browser")
    if is_root:
        argv.append("--allow-root")
    return argv + extra
