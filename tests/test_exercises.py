"""Every workbook exercise passes with its reference solution and fails,
with a specific message, on the stub the notebook hands the learner.

Reference answers: ``notebooks/solutions/<lesson>.py`` with ``SOLUTIONS`` and
``EMPTY_ATTEMPTS`` (exercise name -> tuple of answer arguments).
"""

from __future__ import annotations

import importlib.util
import inspect
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sockserve.exercises as ex
from sockserve.exercises import (
    FIX_PREFIX,
    GENERIC_PREFIXES,
    CheckResult,
    ExerciseFailed,
    check,
    exercises,
    failed_attempts,
    reset_attempts,
)

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
def test_empty_attempt_hints_first_and_points_at_the_fix_when_it_fails_again(name: str) -> None:
    """The stub the notebook hands out fails with the checker's own words: the
    first time a hint that does not give the answer away (none of the
    solution's GIVEAWAYS for this exercise), the second time the same hint
    and the fix."""
    lesson = ex.describe(name).lesson
    module = solutions_for(lesson)
    assert name in module.EMPTY_ATTEMPTS, f"{lesson}.py has no EMPTY_ATTEMPTS[{name!r}]"
    reset_attempts(name)
    first = check(name, *module.EMPTY_ATTEMPTS[name])
    assert not first.passed, f"the empty attempt passed: {first}"
    assert str(first).startswith(f"✘ {name}: ")
    hint = first.message
    assert len(hint) >= 30, f"message too short to help: {hint!r}"
    assert not hint.startswith(GENERIC_PREFIXES), (
        f"the checker should say what is wrong in its own words, not: {hint!r}"
    )
    assert FIX_PREFIX not in hint, f"the first failure already gives the fix: {hint!r}"
    for word in module.GIVEAWAYS.get(name, ()):
        assert word not in hint, f"the first failure gives the answer away ({word!r}): {hint!r}"
    assert failed_attempts(name) == 1
    second = check(name, *module.EMPTY_ATTEMPTS[name])
    assert not second.passed
    assert FIX_PREFIX in second.message and len(second.message) > len(FIX_PREFIX) + 20, second.message
    fix = second.message.split(FIX_PREFIX, 1)[1]
    assert fix not in hint, f"the fix was in the hint already: {second.message!r}"
    reset_attempts(name)


def test_every_exercise_has_its_giveaways_listed_and_they_are_in_the_solution() -> None:
    """GIVEAWAYS (exercise -> words a first hint must not say) covers every
    exercise, and each word is really part of the reference answer."""
    import inspect

    for name in ALL:
        module = solutions_for(ex.describe(name).lesson)
        assert name in module.GIVEAWAYS, f"{module.__name__} has no GIVEAWAYS[{name!r}]"
        source = inspect.getsource(module)
        for word in module.GIVEAWAYS[name]:
            assert word in source, f"{name}: giveaway {word!r} is not in the reference solutions"


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


def test_a_failure_shows_the_hint_then_the_hint_and_the_fix(scratch: Any) -> None:
    def wrong(x: int) -> None:
        if x != 2:
            raise ExerciseFailed(f"{x} is not the even prime", fix="use 2")

    scratch("scratch-two-step", wrong)
    reset_attempts("scratch-two-step")
    assert check("scratch-two-step", 3).message == "3 is not the even prime"
    assert check("scratch-two-step", 5).message == f"5 is not the even prime.{FIX_PREFIX}use 2"
    assert failed_attempts("scratch-two-step") == 2
    assert check("scratch-two-step", 2).passed
    reset_attempts("scratch-two-step")
    assert check("scratch-two-step", 7).message == "7 is not the even prime"
    reset_attempts()
    assert failed_attempts("scratch-two-step") == 0


def test_check_turns_every_kind_of_failure_into_a_result(scratch: Any) -> None:
    def wrong(x: int) -> None:
        if x != 2:
            raise ExerciseFailed(f"expected 2, got {x}")

    def crashing(fn: Any) -> None:
        fn()

    def noted(x: int) -> str:
        return f"{x} is fine"

    scratch("scratch-wrong", wrong)
    reset_attempts("scratch-wrong")
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


def test_every_lesson_has_an_exercise_where_the_student_writes_code() -> None:
    """Issue 13: besides lists and attributes, each lesson asks for a handler,
    a hook, a mixin or a small server: a reference answer that is a class
    defining a method of its own, or (lesson 08) a serve loop or coroutine
    the student writes as a function."""
    lessons = sorted({ex.describe(name).lesson for name in ALL})
    assert len(lessons) >= 7
    for lesson in lessons:
        module = solutions_for(lesson)
        writes = [
            name for name, answer in module.SOLUTIONS.items()
            if ex.describe(name).lesson == lesson and (
                (isinstance(answer[0], type)
                 and any(callable(v) and not k.startswith("__") for k, v in vars(answer[0]).items()))
                or inspect.isfunction(answer[0]))
        ]
        assert writes, f"{lesson}: no exercise where the student writes a handler, hook, mixin or server"
