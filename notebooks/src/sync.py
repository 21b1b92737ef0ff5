"""Re-sync lesson notebooks with their sources, then re-execute them.

Each notebook ``notebooks/NN-title.ipynb`` is paired by jupytext (see
``notebooks/jupytext.toml``) with a percent-format script
``notebooks/src/NN-title.py``: the script is what reviewers read, the notebook
(with its executed outputs) is what students open and what nbval checks.

    python notebooks/src/sync.py 02-tcp             # sync the pair, re-execute, save if the machine was quiet
    python notebooks/src/sync.py                    # ... every notebook
    python notebooks/src/sync.py --no-execute 02-tcp  # sync only (outputs kept where inputs match)
    python notebooks/src/sync.py --force 02-tcp     # development: save even if the machine was busy

Syncing is ``jupytext --sync``: the more recently modified file of a pair gives
the inputs, the notebook keeps its outputs and metadata. A new lesson starts as
``src/NN-title.py`` alone. Execution runs each notebook with nbclient in a
fresh ``python3`` kernel whose working directory is ``notebooks/`` (as nbval
does), every cell bounded by ``--timeout`` seconds; a cell that raises stops
the run unless it is tagged ``raises-exception``. Needs the ``test`` extra
(jupytext, nbclient).

**A busy machine's outputs are not saved.** The saved outputs are the
workbook's documentation, and a figure measured while other programs took
the cores says more about them than about the servers. While a notebook
runs, :class:`sockserve.measure.machine.BusyMeter` measures the CPU that
*other* programs took from the cores this process may use (``/proc/stat``
for the CPUs of its affinity, minus this process and its children, with a
cgroup CPU quota respected). Above :data:`BUSY_THRESHOLD` (a quarter of the
usable cores, changed with ``--busy-threshold``) the notebook is left as it
was and the command ends with status 1, saying what was measured.
``--force`` saves anyway, for development, and the notebook's metadata says
it was forced. Every saved notebook records, under ``metadata.sockserve.
executed_on``, the cores it ran on and what other programs took.

**Panels are saved as pictures.** A live panel (an ipywidgets output) cannot
be shown without a kernel. After the last cell, one more (not saved) asks
every panel for a picture of its final state
(:func:`sockserve.lab.saved.static_views`: its figure or charts, and its
status in words), which replaces the widget output. A widget output with no
such picture keeps one line, :data:`RUN_THIS_CELL`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import jupytext.cli
import nbformat
from nbclient import NotebookClient

from sockserve.measure.machine import Busy, BusyMeter  # the kernel needs sockserve installed anyway

SOURCES = Path(__file__).resolve().parent
NOTEBOOKS = SOURCES.parent

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RUN_THIS_CELL = "Run this cell to show the live panel here.\n"
#: Outputs are not saved when other programs took more than this share of the usable cores.
BUSY_THRESHOLD = 0.25
#: The extra last cell: every panel's picture, by widget model id, as JSON on stdout.
SNAPSHOT_CODE = (
    "import json as _sockserve_json, sys as _sockserve_sys\n"
    "_sockserve_panels = _sockserve_sys.modules.get('sockserve.lab.saved')\n"
    "print(_sockserve_json.dumps(_sockserve_panels.static_views() if _sockserve_panels else {}))\n"
)


def _output(bundle: dict[str, Any]) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data=bundle)


def without_widgets(nb: nbformat.NotebookNode, views: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """Replace each saved widget output by the picture of its final state
    (*views*: widget model id -> mimebundles, from ``static_views()``), or,
    for a widget with none, by one line saying to run the cell; drop the
    saved widget state (it only serves those outputs)."""
    views = views or {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not any(WIDGET_VIEW in output.get("data", {}) for output in cell.outputs):
            continue
        kept: list[nbformat.NotebookNode] = []
        asked = False
        for output in cell.outputs:
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                kept.append(output)
            elif str(view.get("model_id")) in views:
                kept += [_output(bundle) for bundle in views[str(view["model_id"])]]
            elif not asked:
                kept.append(nbformat.v4.new_output("stream", name="stdout", text=RUN_THIS_CELL))
                asked = True
        cell.outputs = kept
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


def _views_from(cell: nbformat.NotebookNode) -> dict[str, list[dict[str, Any]]]:
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    try:
        found = json.loads(text.strip() or "{}")
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def record(nb: nbformat.NotebookNode, busy: Busy, threshold: float, forced: bool) -> None:
    """Write where the outputs were measured into the notebook's metadata."""
    nb.metadata.setdefault("sockserve", {})["executed_on"] = {
        **busy.to_dict(), "busy_threshold": threshold, "forced": forced}


def verdict(busy: Busy, threshold: float) -> str:
    """"" when *busy* allows saving, else why not, in one sentence."""
    if not busy.measured:
        return ""
    if busy.other_share > threshold:
        return (f"{busy.describe()}: more than the {threshold:.0%} allowed, so the outputs measure the other "
                "programs as much as the lesson")
    return ""


def execute(notebook: Path, timeout: float) -> tuple[nbformat.NotebookNode, Busy, float]:
    """Run *notebook* top to bottom; return it (widget outputs replaced by
    pictures), what other programs took meanwhile, and the seconds it took.
    Nothing is written."""
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata.setdefault("kernelspec", KERNELSPEC)
    for cell in nb.cells:
        # nbconvert's per-cell timestamps change on every run and teach nothing.
        cell.metadata.pop("execution", None)
    nb.cells.append(nbformat.v4.new_code_cell(SNAPSHOT_CODE))
    meter = BusyMeter().start()
    began = time.monotonic()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        busy = meter.stop()
    took = time.monotonic() - began
    snapshot = nb.cells.pop()
    without_widgets(nb, _views_from(snapshot))
    return nb, busy, took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stems", nargs="*", help="notebook stems such as 02-tcp (default: every notebook)")
    parser.add_argument("--no-execute", action="store_true", help="sync the pairs without executing")
    parser.add_argument("--timeout", type=float, default=120, help="seconds allowed per cell (default 120)")
    parser.add_argument("--busy-threshold", type=float, default=BUSY_THRESHOLD,
                        help="largest share of the usable cores other programs may take while a notebook "
                             f"runs for its outputs to be saved (default {BUSY_THRESHOLD})")
    parser.add_argument("--force", action="store_true",
                        help="save the outputs even if the machine was busy (development only; the "
                             "notebook's metadata records that the save was forced)")
    args = parser.parse_args(argv)
    refused = 0
    for stem in args.stems or lessons():
        stem = Path(stem).stem  # accept "02-tcp", "02-tcp.ipynb" or "src/02-tcp.py"
        notebook = sync(stem)
        if args.no_execute:
            print(f"synced {notebook.name}")
            continue
        nb, busy, took = execute(notebook, args.timeout)
        why = verdict(busy, args.busy_threshold)
        if why and not args.force:
            refused += 1
            print(f"NOT SAVED {notebook.name}: {why}. Run it again on a quieter machine, or pass --force "
                  "(development only).", file=sys.stderr)
            continue
        record(nb, busy, args.busy_threshold, forced=bool(why))
        nbformat.write(nb, notebook)
        sync(stem)  # the executed notebook is now the newer file: the source is rewritten from it
        print(f"synced and executed {notebook.name} in {took:.1f} s ({busy.describe()}"
              + ("; saved only because of --force" if why else "") + ")")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
