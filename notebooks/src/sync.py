"""Re-sync lesson notebooks with their sources, then re-execute them.

Each notebook ``notebooks/NN-title.ipynb`` is paired by jupytext (see
``notebooks/jupytext.toml``) with a percent-format script
``notebooks/src/NN-title.py``: the script is what reviewers read, the notebook
(with its executed outputs) is what students open and what nbval checks.

    python notebooks/src/sync.py 02-tcp             # sync the pair, re-execute the notebook
    python notebooks/src/sync.py                    # ... every notebook
    python notebooks/src/sync.py --no-execute 02-tcp  # sync only (outputs kept where inputs match)

Syncing is ``jupytext --sync``: the more recently modified file of a pair gives
the inputs, the notebook keeps its outputs and metadata. A new lesson starts as
``src/NN-title.py`` alone. Execution runs each notebook with nbclient in a
fresh ``python3`` kernel whose working directory is ``notebooks/`` (as nbval
does), every cell bounded by ``--timeout`` seconds; a cell that raises stops
the run unless it is tagged ``raises-exception``. Needs the ``test`` extra
(jupytext, nbclient).

A live panel (an ipywidgets output) is not saved: without a kernel JupyterLab
could only show its raw repr (``ServerPanel(children=(HBox(...``). Its cell
keeps one line, :data:`RUN_THIS_CELL`, until the reader runs it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jupytext.cli
import nbformat
from nbclient import NotebookClient

SOURCES = Path(__file__).resolve().parent
NOTEBOOKS = SOURCES.parent
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RUN_THIS_CELL = "Run this cell to show the live panel here.\n"


def without_widgets(nb: nbformat.NotebookNode) -> None:
    """Replace each cell's saved widget outputs by one line saying to run it,
    and drop the saved widget state (it only serves those outputs)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if any(WIDGET_VIEW in output.get("data", {}) for output in cell.outputs):
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=RUN_THIS_CELL)]
    nb.metadata.pop("widgets", None)


def lessons() -> list[str]:
    """Every stem that has a notebook or a source."""
    stems = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")}
    stems |= {p.stem for p in SOURCES.glob("[0-9][0-9]-*.py")}
    return sorted(stems)


def sync(stem: str) -> Path:
    """``jupytext --sync`` on the pair of *stem*; return the notebook's path."""
    notebook, source = NOTEBOOKS / f"{stem}.ipynb", SOURCES / f"{stem}.py"
    existing = source if source.exists() else notebook
    if not existing.exists():
        raise SystemExit(f"sync.py: no {source.relative_to(NOTEBOOKS.parent)} nor {notebook.name}")
    status = jupytext.cli.jupytext(["--sync", "--quiet", str(existing)])
    if status:
        raise SystemExit(f"sync.py: jupytext --sync {existing} failed ({status})")
    return notebook


def execute(notebook: Path, timeout: float) -> float:
    """Run *notebook* top to bottom in place; return the seconds it took."""
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata.setdefault("kernelspec", KERNELSPEC)
    for cell in nb.cells:
        # nbconvert's per-cell timestamps change on every run and teach nothing.
        cell.metadata.pop("execution", None)
    began = time.monotonic()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    without_widgets(nb)
    nbformat.write(nb, notebook)
    return time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stems", nargs="*", help="notebook stems such as 02-tcp (default: every notebook)")
    parser.add_argument("--no-execute", action="store_true", help="sync the pairs without executing")
    parser.add_argument("--timeout", type=float, default=120, help="seconds allowed per cell (default 120)")
    args = parser.parse_args(argv)
    for stem in args.stems or lessons():
        stem = Path(stem).stem  # accept "02-tcp", "02-tcp.ipynb" or "src/02-tcp.py"
        notebook = sync(stem)
        if args.no_execute:
            print(f"synced {notebook.name}")
            continue
        took = execute(notebook, args.timeout)
        sync(stem)  # the executed notebook is now the newer file: the source is rewritten from it
        print(f"synced and executed {notebook.name} in {took:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
