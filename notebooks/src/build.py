"""Build workbook notebooks from their Python sources, then (optionally) run them.

Each lesson is authored as ``notebooks/src/NN-title.py`` in the "percent"
format: a line ``# %% [markdown]`` starts a Markdown cell (its lines start
with ``# ``), ``# %%`` starts a code cell, and ``# %% tags=["a", "b"]`` gives
the cell tags (``nbval-ignore-output``, ``raises-exception``).

    python notebooks/src/build.py 02-tcp            # write notebooks/02-tcp.ipynb (no outputs)
    python notebooks/src/build.py --execute 02-tcp  # ... and execute it in place
    python notebooks/src/build.py --execute         # every source here

The committed ``.ipynb`` files, executed, are what users open and what nbval
checks; this script only keeps their sources reviewable.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent
_MARKER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse(text: str) -> list[nbformat.NotebookNode]:
    cells: list[nbformat.NotebookNode] = []
    kind, tags, body = None, [], []  # type: ignore[var-annotated]

    def flush() -> None:
        if kind is None:
            return
        while body and not body[-1].strip():
            body.pop()
        source = "\n".join(body)
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = list(tags)
        cells.append(cell)

    for line in text.splitlines():
        match = _MARKER.match(line)
        if match:
            flush()
            kind = "markdown" if match["md"] else "code"
            tags = json.loads(match["tags"]) if match["tags"] else []
            body = []
            continue
        if kind == "markdown":
            body.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        elif kind == "code":
            body.append(line)
    flush()
    for number, cell in enumerate(cells, start=1):
        cell["id"] = f"cell-{number:02d}"
    return cells


def build(stem: str) -> Path:
    source = HERE / f"{stem}.py"
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(source.read_text())
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    target = NOTEBOOKS / f"{stem}.ipynb"
    nbformat.write(nb, target)
    return target


def execute(target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--inplace", "--ExecutePreprocessor.timeout=120", str(target)],
        check=True,
        cwd=NOTEBOOKS,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stems", nargs="*", help="lesson stems, e.g. 02-tcp (default: all sources)")
    parser.add_argument("--execute", action="store_true", help="run each built notebook in place")
    args = parser.parse_args()
    stems = args.stems or sorted(p.stem for p in HERE.glob("[0-9][0-9]-*.py"))
    for stem in stems:
        target = build(stem)
        print("built", target.relative_to(NOTEBOOKS.parent))
        if args.execute:
            execute(target)
            print("executed", target.relative_to(NOTEBOOKS.parent))


if __name__ == "__main__":
    main()
