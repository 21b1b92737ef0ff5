"""The exercise cells of a lesson notebook, split into stub and check.

An exercise cell holds the code a learner starts from (the *stub*: a class
or function to finish, and the imports it needs) followed by the line that
checks it::

    from sockserve.exercises import check


    class UpperEcho(sockserve.StreamRequestHandler):
        def handle(self):
            pass  # your code here


    check("tcp-upper-echo", UpperEcho)

:func:`exercise_cells` finds every such cell (a code cell with a top-level
``check("name", ...)`` statement) and splits it: the stub is everything
before that statement except the import of ``check``; the check is that
statement and what follows it. The exercise registry keeps each stub
(``@exercise(..., stub=...)``) and the course builder turns the two parts
into nbgrader's solution and test cells. Standard library only (a notebook
is read as JSON).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ExerciseCell", "exercise_cells", "cell_source"]


@dataclass(frozen=True)
class ExerciseCell:
    """One exercise cell: where it is, its two parts, what it passes to ``check``."""

    name: str  # the exercise's name, the first argument of check()
    index: int  # the cell's position in the notebook
    source: str  # the whole cell
    stub: str  # the code before the check, without ``from sockserve.exercises import check``
    check: str  # the check statement and every line after it
    answer: tuple[str, ...]  # the names passed to check() after the exercise's name


def cell_source(cell: dict[str, Any]) -> str:
    """A notebook cell's source as one string (nbformat stores a list or a string)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _check_call(node: ast.stmt) -> ast.Call | None:
    value = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "check"
            and value.args and isinstance(value.args[0], ast.Constant) and isinstance(value.args[0].value, str)):
        return value
    return None


def _imports_check(node: ast.stmt) -> bool:
    return (isinstance(node, ast.ImportFrom) and node.module == "sockserve.exercises"
            and [alias.name for alias in node.names] == ["check"])


def split_cell(source: str, index: int = 0) -> ExerciseCell | None:
    """*source* split into stub and check, or None when it checks no exercise."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    lines = source.splitlines(keepends=True)
    for position, node in enumerate(tree.body):
        call = _check_call(node)
        if call is None:
            continue
        dropped = {line for before in tree.body[:position] if _imports_check(before)
                   for line in range(before.lineno, (before.end_lineno or before.lineno) + 1)}
        stub = "".join(line for number, line in enumerate(lines[:node.lineno - 1], start=1)
                       if number not in dropped)
        answer = tuple(arg.id for arg in call.args[1:] if isinstance(arg, ast.Name))
        first = call.args[0]
        assert isinstance(first, ast.Constant) and isinstance(first.value, str)  # _check_call saw to it
        name = first.value
        return ExerciseCell(name=name, index=index, source=source, stub=stub.strip("\n"),
                            check="".join(lines[node.lineno - 1:]).strip("\n"), answer=answer)
    return None


def exercise_cells(notebook: Path | str) -> list[ExerciseCell]:
    """Every exercise cell of *notebook* (an ``.ipynb`` path), in order."""
    data = json.loads(Path(notebook).read_text(encoding="utf-8"))
    found = []
    for index, cell in enumerate(data.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        split = split_cell(cell_source(cell), index)
        if split is not None:
            found.append(split)
    return found
