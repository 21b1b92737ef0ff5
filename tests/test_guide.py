"""The teacher's guide (notebooks/TEACHING.md) covers every lesson and every
exercise as the package registers them, and it and the index say what the
workbook needs from the platform."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sockserve.exercises import DIFFICULTIES, describe, exercises

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
GUIDE = (NOTEBOOKS / "TEACHING.md").read_text(encoding="utf-8")


def test_every_lesson_has_objectives_minutes_and_a_demo() -> None:
    for notebook in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        number = notebook.stem[:2]
        if number == "00":
            continue
        section = GUIDE.split(f"\n### {number} · ", 1)
        assert len(section) == 2, f"the guide has no section for lesson {notebook.stem}"
        body = section[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        for part in ("**Objectives**", "**Minutes**: Run All ", "**Demo rather than assign**"):
            assert part in body, f"lesson {notebook.stem}: no {part}"
        assert re.search(r"Run All \d+(\.\d)? s", body), f"lesson {notebook.stem}: no measured time"


def test_every_exercise_is_in_the_guide_with_its_registered_difficulty() -> None:
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (short|medium|hard) \|", GUIDE, re.MULTILINE))
    assert sorted(rows) == exercises()
    for name, said in rows.items():
        assert said == DIFFICULTIES[describe(name).difficulty], f"{name}: the guide says {said}"


def test_the_guide_has_the_plan_the_platform_and_the_class_on_a_hub() -> None:
    for needed in ("Session 1", "Session 2", "**Homework**", "Linux", "macOS", "`/proc`", "`fork()`",
                   "Unix sockets", "CPU limits per user", "Stagger the heavy comparisons", "Stored reference runs",
                   "Binder", "sockserve teach progress", "nbgrader generate_assignment"):
        assert needed in GUIDE, needed


def test_the_index_says_what_the_workbook_needs() -> None:
    index = json.loads((NOTEBOOKS / "00-index.ipynb").read_text(encoding="utf-8"))
    text = "".join("".join(cell["source"]) for cell in index["cells"] if cell["cell_type"] == "markdown")
    for needed in ("**Linux**", "**macOS**", "`fork()`", "Unix sockets", "`/proc`", "(TEACHING.md)"):
        assert needed in text, needed
