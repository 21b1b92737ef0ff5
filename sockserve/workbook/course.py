"""Build an nbgrader course from the workbook's lessons.

``sockserve teach course FOLDER`` (:func:`build_course`) writes an nbgrader
course directory with one assignment per lesson that has exercises::

    FOLDER/nbgrader_config.py
    FOLDER/source/02-tcp/02-tcp.ipynb     (+ data/ when the lesson reads it)
    ...

Each exercise cell of a lesson (see :mod:`sockserve.workbook.exercisecells`)
becomes two cells:

* a **solution cell** (``grade_id`` ``<exercise>-answer``): the lesson's stub,
  then the reference solution between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``, which ``nbgrader generate_assignment`` replaces by a
  one-line comment, so the released cell is the stub the lesson hands out;
* an **autograded test cell** (``grade_id`` the exercise's name, locked),
  worth the exercise's difficulty in points: it runs the lesson's
  ``check(...)``, prints the verdict and asserts it passed. A student whose
  check fails (or who left the stub) gets 0 for it; the verdict printed in
  the autograded notebook says why.

Every other cell is copied as it is. Then the usual nbgrader loop applies
(``nbgrader generate_assignment 02-tcp``, release, collect,
``nbgrader autograde 02-tcp``, ``nbgrader export``). nbgrader itself is the
``teach`` extra (``pip install "sockserve[teach]"``); this module only writes
files (standard library only).
"""

from __future__ import annotations

import ast
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exercises import describe
from .exercisecells import ExerciseCell, cell_source, split_cell

__all__ = ["BEGIN", "END", "CODE_STUB", "CourseReport", "build_course", "reference_source", "course_notebook",
           "ANSWER_SUFFIX"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
#: What replaces a solution in the released notebook (below the lesson's stub).
CODE_STUB = "# YOUR ANSWER: change the stub above (and run the check cell below)"
#: A solution cell's grade_id is the exercise's name and this.
ANSWER_SUFFIX = "-answer"

CONFIG = '''"""nbgrader configuration of the sockserve course (written by `sockserve teach course`)."""

c = get_config()  # noqa: F821 - nbgrader provides it
c.CourseDirectory.course_id = {course_id!r}
# A released solution cell keeps the lesson's stub above this line.
c.ClearSolutions.code_stub = {{"python": {stub!r}}}
# Lessons start servers and measure: allow each cell its time.
c.Execute.timeout = 300
'''


@dataclass
class CourseReport:
    """What :func:`build_course` wrote: per assignment, its exercises and points."""

    root: Path
    assignments: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def points(self, assignment: str) -> int:
        return sum(points for _, points in self.assignments[assignment])

    def lines(self) -> list[str]:
        out = [f"nbgrader course in {self.root} ({len(self.assignments)} assignments)"]
        for name, exercises in self.assignments.items():
            listed = ", ".join(f"{exercise} ({points})" for exercise, points in exercises)
            out.append(f"  {name}: {self.points(name)} points: {listed}")
        out.append(f"next: cd {self.root} && nbgrader generate_assignment ASSIGNMENT")
        return out


def reference_source(solutions: Path, name: str, answer_names: Sequence[str]) -> str:
    """The reference answer to exercise *name* as code for a notebook cell:
    the imports of the solutions file *solutions*, the definitions its
    ``SOLUTIONS[name]`` names, and ``lesson_name = solution_name`` where the
    lesson calls the answer otherwise."""
    text = solutions.read_text(encoding="utf-8")
    tree = ast.parse(text)
    defined: dict[str, ast.stmt] = {}
    imports: list[str] = []
    solution_names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(ast.get_source_segment(text, node) or "")
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            defined[node.name] = node
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
            if target == "SOLUTIONS" and isinstance(node.value, ast.Dict):
                for key, value in zip(node.value.keys, node.value.values):
                    if isinstance(key, ast.Constant) and key.value == name and isinstance(value, ast.Tuple):
                        solution_names = [elt.id for elt in value.elts if isinstance(elt, ast.Name)]
            else:
                defined[target] = node
    if not solution_names:
        raise KeyError(f"{solutions.name} has no SOLUTIONS[{name!r}]")
    parts = ["\n".join(imports)] if imports else []
    parts += [ast.get_source_segment(text, defined[n]) or "" for n in solution_names]
    aliases = [f"{mine} = {theirs}" for mine, theirs in zip(answer_names, solution_names) if mine != theirs]
    if aliases:
        parts.append("\n".join(aliases))
    return "\n\n\n".join(parts)


def _cell(cell_type: str, source: str, cell_id: str, nbgrader: dict[str, Any] | None = None) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": cell_type, "id": cell_id, "metadata": {}, "source": source}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    if nbgrader is not None:
        cell["metadata"]["nbgrader"] = {"schema_version": 3, "task": False, **nbgrader}
    return cell


def _test_source(split: ExerciseCell) -> str:
    """The check statement made into an autograder test: keep the verdict, print it, assert it passed."""
    tree = ast.parse(split.check)
    first = tree.body[0]
    call = ast.get_source_segment(split.check, first.value) if isinstance(first, (ast.Expr, ast.Assign)) else None
    if isinstance(first, ast.Assign) and isinstance(first.targets[0], ast.Name):
        verdict = first.targets[0].id
    else:
        verdict = "verdict"
    rest = [ast.get_source_segment(split.check, node) or "" for node in tree.body[1:]
            if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Name))]  # a bare name only displays
    lines = ["from sockserve.exercises import check", "", f"{verdict} = {call}", f"print({verdict})",
             f"assert {verdict}.passed, {verdict}.message", *rest]
    return "\n".join(lines)


def course_notebook(notebook: dict[str, Any], solutions: Path | None) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """The nbgrader source version of a lesson *notebook* (parsed JSON) and
    its graded exercises as (name, points). *solutions* is the lesson's
    solutions file (None: solution cells hold the stub alone)."""
    cells: list[dict[str, Any]] = []
    graded: list[tuple[str, int]] = []
    for index, cell in enumerate(notebook.get("cells", [])):
        split = split_cell(cell_source(cell), index) if cell.get("cell_type") == "code" else None
        if split is None:
            copied = {"id": f"cell-{index}", **cell}
            if copied.get("cell_type") == "code":
                copied.update(outputs=[], execution_count=None)
            cells.append(copied)
            continue
        points = describe(split.name).difficulty
        answer = reference_source(solutions, split.name, split.answer) if solutions is not None else ""
        source = f"{split.stub}\n\n{BEGIN}\n{answer}\n{END}" if answer else split.stub
        cells.append(_cell("code", source, f"{split.name}{ANSWER_SUFFIX}", {"solution": True, "grade": False, "locked": False,
                                            "grade_id": f"{split.name}{ANSWER_SUFFIX}"}))
        cells.append(_cell("code", _test_source(split), f"{split.name}-check", {"solution": False, "grade": True, "locked": True,
                                                         "grade_id": split.name, "points": points}))
        graded.append((split.name, points))
    out = {**notebook, "cells": cells}
    out["metadata"] = {k: v for k, v in notebook.get("metadata", {}).items() if k != "widgets"}
    out["nbformat"], out["nbformat_minor"] = 4, max(int(notebook.get("nbformat_minor", 5)), 5)  # 4.5: cell ids
    return out, graded


def build_course(root: Path, workbook: Path, *, lessons: Sequence[str] | None = None,
                 course_id: str = "sockserve") -> CourseReport:
    """Write an nbgrader course into *root* from the lessons in *workbook*
    (a folder with ``NN-title.ipynb``, ``solutions/`` and ``data/``): one
    assignment per lesson with exercises (all, or those named in *lessons*).
    Overwrites the source notebooks it writes, nothing else. Raises
    ``ValueError`` for a lesson that does not exist or has no exercises."""
    available = {p.stem: p for p in sorted(workbook.glob("[0-9][0-9]-*.ipynb"))}
    wanted = list(lessons) if lessons else list(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise ValueError(f"no such lesson: {', '.join(unknown)} (the lessons are: {', '.join(available)})")
    report = CourseReport(root=root)
    for stem in wanted:
        notebook = json.loads(available[stem].read_text(encoding="utf-8"))
        solutions = workbook / "solutions" / f"{stem}.py"
        converted, graded = course_notebook(notebook, solutions if solutions.is_file() else None)
        if not graded:
            if lessons:
                raise ValueError(f"lesson {stem} has no exercises to grade")
            continue
        folder = root / "source" / stem
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.ipynb").write_text(json.dumps(converted, indent=1, ensure_ascii=False) + "\n",
                                              encoding="utf-8")
        data = workbook / "data"
        if data.is_dir():
            shutil.copytree(data, folder / "data", dirs_exist_ok=True)
        report.assignments[stem] = graded
    (root / "nbgrader_config.py").write_text(CONFIG.format(course_id=course_id, stub=CODE_STUB), encoding="utf-8")
    return report
