"""Every workbook exercise passes with its reference solution and fails,
with a specific message, on the stub the notebook hands the learner.

Reference answers: ``notebooks/solutions/<lesson>.py`` with ``SOLUTIONS`` and
``EMPTY_ATTEMPTS`` (exercise name -> tuple of answer arguments).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sockserve.exercises as ex
from sockserve.exercises import GENERIC_PREFIXES, CheckResult, ExerciseFailed, check, exercises

SOLUTIONS_DIR = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
NOTEBOOKS_DIR = SOLUTIONS_DIR.parent

_loaded: dict[str, ModuleType] = {}


def solutions_for(lesson: str) -> ModuleType:
    """Import ``notebooks/solutions/<lesson>.py`` (once)."""
    if lesson not in _loaded:
        path = SOLUTIONS_DIR / f"{lesson}.py"
        assert path.is_file(), f"no reference solutions for lesson {lesson}: {path} is missing"
        spec = importlib.util.spec_from_file_location(f"solutions_{lesson.replace('-', '_')}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[lesson] = module
    return _loaded[lesson]


ALL = exercises()


def test_there_are_exercises_for_every_lesson_with_a_solutions_file() -> None:
    lessons = {ex.describe(name).lesson for name in ALL}
    assert len(ALL) >= 3, f"too few exercises registered: {ALL}"
    for path in SOLUTIONS_DIR.glob("*.py"):
        assert path.stem in lessons, f"{path.name} has solutions but no exercise names that lesson"
        assert (NOTEBOOKS_DIR / f"{path.stem}.ipynb").is_file(), f"no notebook for {path.name}"


@pytest.mark.parametrize("name", ALL)
def test_reference_solution_passes(name: str) -> None:
    lesson = ex.describe(name).lesson
    module = solutions_for(lesson)
    assert name in module.SOLUTIONS, f"{lesson}.py has no SOLUTIONS[{name!r}]"
    result = check(name, *module.SOLUTIONS[name])
    assert result.passed, str(result)
    assert str(result).startswith(f"✔ {name}: ")


@pytest.mark.parametrize("name", ALL)
def test_empty_attempt_fails_with_a_specific_message(name: str) -> None:
    lesson = ex.describe(name).lesson
    module = solutions_for(lesson)
    assert name in module.EMPTY_ATTEMPTS, f"{lesson}.py has no EMPTY_ATTEMPTS[{name!r}]"
    result = check(name, *module.EMPTY_ATTEMPTS[name])
    assert not result.passed, f"the empty attempt passed: {result}"
    assert str(result).startswith(f"✘ {name}: ")
    message = result.message
    assert len(message) >= 30, f"message too short to help: {message!r}"
    assert not message.startswith(GENERIC_PREFIXES), (
        f"the checker should say what is wrong in its own words, not: {message!r}"
    )


def test_every_exercise_has_a_prompt_and_a_known_lesson() -> None:
    for name in ALL:
        exercise = ex.describe(name)
        assert exercise.prompt.strip(), name
        assert (NOTEBOOKS_DIR / f"{exercise.lesson}.ipynb").is_file(), (
            f"{name}: lesson {exercise.lesson!r} has no notebook"
        )


# -- the framework itself ------------------------------------------------------


@pytest.fixture
def scratch() -> Any:
    """Register throwaway exercises and remove them afterwards."""
    names: list[str] = []

    def add(name: str, fn: Any) -> None:
        ex.exercise(name, lesson="99-scratch", prompt="scratch")(fn)
        names.append(name)

    yield add
    for name in names:
        ex._REGISTRY.pop(name, None)


def test_check_turns_every_kind_of_failure_into_a_result(scratch: Any) -> None:
    def wrong(x: int) -> None:
        if x != 2:
            raise ExerciseFailed(f"expected 2, got {x}")

    def crashing(fn: Any) -> None:
        fn()

    def noted(x: int) -> str:
        return f"{x} is fine"

    scratch("scratch-wrong", wrong)
    scratch("scratch-crash", crashing)
    scratch("scratch-noted", noted)

    assert check("scratch-wrong", 2) == CheckResult("scratch-wrong", True, "correct")
    bad = check("scratch-wrong", 3)
    assert not bad and str(bad) == "✘ scratch-wrong: expected 2, got 3"
    assert repr(bad) == str(bad)

    def stub() -> None:
        raise NotImplementedError("write me")

    crashed = check("scratch-crash", stub)
    assert not crashed.passed
    assert "NotImplementedError (in stub, line" in crashed.message and "write me" in crashed.message
    assert str(check("scratch-noted", 7)) == "✔ scratch-noted: 7 is fine"

    unknown = check("no-such-exercise")
    assert not unknown.passed and "scratch-wrong" in unknown.message


def test_check_reports_a_hang_within_its_timeout(scratch: Any) -> None:
    release = threading.Event()

    def hangs() -> None:
        release.wait(10)

    scratch("scratch-hang", hangs)
    try:
        result = check("scratch-hang", timeout=0.2)
    finally:
        release.set()
    assert not result.passed
    assert result.message.startswith("the check did not finish within 0.2 s")


def test_registering_one_name_from_two_checkers_is_refused(scratch: Any) -> None:
    scratch("scratch-twice", lambda: None)

    def other() -> None:
        pass

    with pytest.raises(ValueError, match="already registered"):
        ex.exercise("scratch-twice", lesson="99-other", prompt="x")(other)
