"""The nbgrader course built from the lessons (sockserve.workbook.course), and
the whole grading loop with the real nbgrader: generate the assignment, fill
it as three students would (the reference solutions; wrong answers from the
bank; the stubs left as they were), autograde, and read the grades from
nbgrader's gradebook.

nbgrader is the ``teach`` extra, installed with the ``test`` extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from wrong_answers import BANK

from sockserve.exercises import STUB_MESSAGE, describe
from sockserve.workbook.course import ANSWER_SUFFIX, BEGIN, CODE_STUB, END, build_course, reference_source

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: Two short lessons: five exercises, seven points.
LESSONS = ("01-architecture", "02-tcp")


def nbgrader(course: Path, *args: str) -> str:
    """Run ``nbgrader ARGS`` in the course folder (its alembic script must be on PATH)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def wrong_answer(exercise: str) -> str:
    """The bank's first wrong answer of *exercise* that the issue listed, else its first."""
    mine = [w for w in BANK if w.exercise == exercise]
    return next((w for w in mine if "(issue 25" in w.why), mine[0]).source


def submit(course: Path, assignment: str, student: str, answer_of: Any) -> None:
    """Copy the released notebook into submitted/STUDENT, each solution cell's source
    replaced by ``answer_of(exercise, released source)``."""
    released = course / "release" / assignment / f"{assignment}.ipynb"
    nb = json.loads(released.read_text())
    for cell in nb["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id", "")
        if cell["metadata"].get("nbgrader", {}).get("solution") and grade_id.endswith(ANSWER_SUFFIX):
            cell["source"] = answer_of(grade_id.removesuffix(ANSWER_SUFFIX), "".join(cell["source"]))
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True)
    (folder / f"{assignment}.ipynb").write_text(json.dumps(nb))


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The course built, generated, submitted by three students and autograded."""
    course = tmp_path_factory.mktemp("course")
    report = build_course(course, NOTEBOOKS, lessons=LESSONS)
    answers = {"ada": lambda name, released: reference_source(
                   NOTEBOOKS / "solutions" / f"{describe(name).lesson}.py", name, _answer_names(name)),
               "bob": lambda name, released: wrong_answer(name),
               "cy": lambda name, released: released}
    for assignment in LESSONS:
        nbgrader(course, "generate_assignment", assignment, "--force")
        for student, answer_of in answers.items():
            submit(course, assignment, student, answer_of)
        nbgrader(course, "autograde", assignment, "--force")
    from nbgrader.api import Gradebook

    grades: dict[str, Any] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for assignment in LESSONS:
            for student in answers:
                submission = gradebook.find_submission(assignment, student)
                cells = {name: gradebook.find_grade(name, assignment, assignment, student).score
                         for name, _ in report.assignments[assignment]}
                grades[(assignment, student)] = (submission.score, submission.max_score, cells)
    return {"course": course, "report": report, "grades": grades}


def _answer_names(name: str) -> tuple[str, ...]:
    from sockserve.workbook.exercisecells import exercise_cells

    return next(c.answer for c in exercise_cells(NOTEBOOKS / f"{describe(name).lesson}.ipynb") if c.name == name)


def test_the_course_has_a_solution_and_a_test_cell_per_exercise(tmp_path: Path) -> None:
    report = build_course(tmp_path, NOTEBOOKS)
    assert "04-concurrency" in report.assignments and "00-index" not in report.assignments
    assert sum(len(exercises) for exercises in report.assignments.values()) == 32
    nb = json.loads((tmp_path / "source" / "02-tcp" / "02-tcp.ipynb").read_text())
    meta = [(c["metadata"]["nbgrader"], "".join(c["source"])) for c in nb["cells"] if "nbgrader" in c["metadata"]]
    assert [m["grade_id"] for m, _ in meta] == ["tcp-upper-echo-answer", "tcp-upper-echo", "tcp-calculator-answer",
                                                "tcp-calculator", "tcp-rebind-answer", "tcp-rebind"]
    solution, test = meta[0], meta[1]
    assert solution[0]["solution"] and not solution[0]["grade"]
    assert solution[1].startswith("class UpperEcho(") and BEGIN in solution[1] and END in solution[1]
    assert "line.upper()" in solution[1].split(BEGIN)[1]  # the reference, hidden by generate_assignment
    assert test[0]["grade"] and test[0]["locked"] and test[0]["points"] == describe("tcp-upper-echo").difficulty
    assert 'check("tcp-upper-echo", UpperEcho)' in test[1] and "assert verdict.passed" in test[1]
    assert (tmp_path / "nbgrader_config.py").is_file() and (tmp_path / "source" / "02-tcp" / "data").is_dir()


def test_an_unknown_lesson_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such lesson: 99-nothing"):
        build_course(tmp_path, NOTEBOOKS, lessons=["99-nothing"])
    with pytest.raises(ValueError, match="no exercises"):
        build_course(tmp_path, NOTEBOOKS, lessons=["00-index"])


def test_the_released_notebook_hands_out_the_lessons_stubs_without_the_answers(graded: dict[str, Any]) -> None:
    released = json.loads((graded["course"] / "release" / "02-tcp" / "02-tcp.ipynb").read_text())
    answers = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) for c in released["cells"]
               if c["metadata"].get("nbgrader", {}).get("solution")}
    assert sorted(answers) == ["tcp-calculator-answer", "tcp-rebind-answer", "tcp-upper-echo-answer"]
    for name, answer in answers.items():
        stub = describe(name.removesuffix(ANSWER_SUFFIX)).stub.strip()
        assert answer == f"{stub}\n\n{CODE_STUB}", answer  # the lesson's stub, and no trace of the reference


def test_the_reference_solutions_get_full_marks(graded: dict[str, Any]) -> None:
    for assignment in LESSONS:
        score, most, cells = graded["grades"][(assignment, "ada")]
        assert most == graded["report"].points(assignment) and score == most, (assignment, cells)


def test_wrong_answers_from_the_bank_lose_those_points(graded: dict[str, Any]) -> None:
    for assignment in LESSONS:
        score, most, cells = graded["grades"][(assignment, "bob")]
        assert most > 0 and score == 0 and set(cells.values()) == {0}, (assignment, cells)
    autograded = graded["course"] / "autograded" / "bob" / "02-tcp" / "02-tcp.ipynb"
    outputs = json.dumps(json.loads(autograded.read_text()), ensure_ascii=False)
    assert "✘ tcp-calculator: " in outputs and "Next step" not in outputs  # each check's own hint, once


def test_stubs_left_as_they_were_score_nothing_and_say_why(graded: dict[str, Any]) -> None:
    for assignment in LESSONS:
        score, _, cells = graded["grades"][(assignment, "cy")]
        assert score == 0, cells
    autograded = graded["course"] / "autograded" / "cy" / "01-architecture" / "01-architecture.ipynb"
    assert STUB_MESSAGE in json.dumps(json.loads(autograded.read_text()), ensure_ascii=False)
