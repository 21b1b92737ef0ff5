"""Every workbook exercise passes with its reference solution, fails every
answer in the bank of wrong answers (``tests/wrong_answers.py``) with a hint
that gives nothing away and a fix for the next attempt, and does not count
the lesson's unchanged stub as an attempt.

Reference answers: ``notebooks/solutions/<lesson>.py`` with ``SOLUTIONS``
(exercise name -> tuple of answer arguments) and ``GIVEAWAYS`` (exercise
name -> words a first hint must not say).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import inspect
import threading
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from wrong_answers import BANK, Wrong

import sockserve

import sockserve.exercises as ex
from sockserve.exercises import (
    FIX_PREFIX,
    GENERIC_PREFIXES,
    STUB_MESSAGE,
    CheckResult,
    ExerciseFailed,
    check,
    exercises,
    failed_attempts,
    reset_attempts,
)
from sockserve.exercises.stubs import stub_answer
from sockserve.exercises.support import a_class, a_function
from sockserve.workbook.exercisecells import exercise_cells

SOLUTIONS_DIR = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
NOTEBOOKS_DIR = SOLUTIONS_DIR.parent
PACKAGE = Path(ex.__file__).resolve().parent

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
#: Exercise name -> its cell in the lesson notebook.
CELLS = {cell.name: cell for nb in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb")) for cell in exercise_cells(nb)}


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


# -- the stub the lesson hands out -----------------------------------------------------------


def test_every_exercise_cell_of_every_lesson_is_registered_with_its_stub() -> None:
    """The stub registered with each exercise is the lesson cell's code before its check (one source of
    truth for what Run All runs, kept equal here), and every exercise has exactly one cell."""
    assert sorted(CELLS) == ALL
    for name in ALL:
        exercise, cell = ex.describe(name), CELLS[name]
        assert exercise.stub.strip() == cell.stub, (
            f"{name}: the stub registered in sockserve/exercises differs from the cell in "
            f"notebooks/{exercise.lesson}.ipynb:\n{exercise.stub}\n---\n{cell.stub}")
        assert exercise.difficulty in ex.DIFFICULTIES


@pytest.mark.parametrize("name", ALL)
def test_an_unchanged_stub_run_by_run_all_is_not_an_attempt(name: str) -> None:
    """Run All checks the stub: that says so and spends nothing, so the first real attempt gets the hint
    alone. The stub compiled anew (as a kernel does), with another comment, is still the stub; the same stub
    with any change of code is an attempt."""
    reset_attempts(name)
    stub = ex.describe(name).stub
    fresh = Wrong(name, "the stub", stub.replace("# your code here", "# my notes")).answer(CELLS[name].answer)
    for _ in range(2):
        result = check(name, *fresh)
        assert not result.passed and result.message == STUB_MESSAGE, result
    assert failed_attempts(name) == 0
    assert check(name, stub_answer(stub)).message == STUB_MESSAGE
    spaced = Wrong(name, "spaced", "\n\n" + stub.rstrip() + "\n\n").answer(CELLS[name].answer)
    assert check(name, *spaced).message == STUB_MESSAGE  # blank lines are not code
    reset_attempts(name)


def test_a_stub_with_a_change_of_code_is_an_attempt() -> None:
    stub = ex.describe("tcp-rebind").stub
    reset_attempts("tcp-rebind")
    changed = Wrong("tcp-rebind", "changed", stub.replace("pass", "request_queue_size = 7")).answer(
        ("RestartableServer",))
    result = check("tcp-rebind", *changed)
    assert not result.passed and result.message != STUB_MESSAGE and failed_attempts("tcp-rebind") == 1
    reset_attempts("tcp-rebind")


# -- the bank of wrong answers -----------------------------------------------------------------


def test_the_bank_holds_at_least_three_wrong_answers_per_exercise() -> None:
    counts = Counter(wrong.exercise for wrong in BANK)
    assert set(counts) == set(ALL), sorted(set(ALL) ^ set(counts))
    thin = {name: n for name, n in counts.items() if n < 3}
    assert not thin, f"fewer than three wrong answers: {thin}"
    issue = [wrong for wrong in BANK if "(issue 25" in wrong.why]
    assert len(issue) >= 15, len(issue)


# A wrong answer's own thread may die of the handler's exception (that is what is wrong with it).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("wrong", BANK, ids=[f"{w.exercise}: {w.why}" for w in BANK])
def test_every_wrong_answer_fails_with_a_hint_then_a_fix(wrong: Wrong) -> None:
    """The checker itself (not the framework) rejects the answer: its hint says what the code did without
    giving the answer away (no word of GIVEAWAYS that the answer does not already use), and its fix, shown
    from the second failure on, says what to change."""
    exercise = ex.describe(wrong.exercise)
    answer = wrong.answer(CELLS[wrong.exercise].answer)
    try:
        note = exercise.checker(*answer)
    except ExerciseFailed as exc:
        failure = exc
    else:
        pytest.fail(f"the wrong answer ({wrong.why}) passed: {note}")
    hint, fix = failure.hint, failure.fix
    assert len(hint) >= 30 and not hint.startswith(GENERIC_PREFIXES), hint
    assert FIX_PREFIX not in hint
    for word in solutions_for(exercise.lesson).GIVEAWAYS[wrong.exercise]:
        if word not in wrong.source:
            assert word not in hint, f"the first hint gives the answer away ({word!r}): {hint!r}"
    assert len(fix) >= 15, f"no fix for the second attempt: {fix!r}"
    assert fix not in hint
    assert failure.message(2).endswith(FIX_PREFIX + fix)


def test_every_failure_a_checker_can_raise_carries_its_fix() -> None:
    """Read from the source: every ExerciseFailed(...) in sockserve/exercises passes fix=, so no second
    attempt repeats the hint alone."""
    missing = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ExerciseFailed"
                    and not any(keyword.arg == "fix" for keyword in node.keywords)):
                missing.append(f"{path.name}:{node.lineno}")
    assert not missing, f"ExerciseFailed without a fix: {missing}"


def test_every_exercise_has_its_giveaways_listed_and_they_are_in_the_solution() -> None:
    """GIVEAWAYS (exercise -> words a first hint must not say) covers every
    exercise, and each word is really part of the reference answer."""
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


def test_an_answer_of_the_wrong_kind_is_refused_before_its_checker_runs(scratch: Any) -> None:
    """An exercise registered with answer= gets its stub from it, and its checker sees only an answer of
    that kind: a class derived from the base, a function, a coroutine function."""
    seen: list[Any] = []

    def check_echo(cls: type) -> None:
        """Finish Echo: answer every line
        with itself."""
        seen.append(cls)

    ex.exercise("scratch-class", lesson="99-scratch",
                answer=a_class("Echo", sockserve.StreamRequestHandler, method="handle"))(check_echo)
    assert ex.describe("scratch-class").prompt == "Finish Echo: answer every line with itself."
    with pytest.raises(ValueError, match="no prompt"):
        ex.exercise("scratch-silent", lesson="99-scratch", answer=a_function("f(x)"))(lambda x: None)
    ex.exercise("scratch-function", lesson="99-scratch", prompt="p", answer=a_function("f(x)"))(seen.append)
    ex.exercise("scratch-coroutine", lesson="99-scratch", prompt="p",
                answer=a_function("g(reader, writer)", coroutine=True))(seen.append)
    assert ex.describe("scratch-class").stub == (
        "class Echo(sockserve.StreamRequestHandler):\n    def handle(self):\n        pass  # your code here\n")
    assert ex.describe("scratch-function").stub == "def f(x):\n    pass  # your code here\n"
    assert ex.describe("scratch-coroutine").stub.startswith("async def g(reader, writer):\n")

    class NotAHandler:
        pass

    async def coroutine(reader: Any, writer: Any) -> None:
        pass

    def plain(reader: Any, writer: Any) -> None:
        pass

    for name, wrong, said in (("scratch-class", plain, "expected a StreamRequestHandler subclass"),
                              ("scratch-class", NotAHandler, "NotAHandler is not a StreamRequestHandler"),
                              ("scratch-function", NotAHandler, "expected a function f(x)"),
                              ("scratch-function", 3, "expected a function f(x)"),
                              ("scratch-coroutine", plain, "plain is a plain function")):
        with pytest.raises(ExerciseFailed, match=re.escape(said)):
            ex.describe(name).checker(wrong)
    assert seen == []
    for name, right in (("scratch-class", type("Right", (sockserve.StreamRequestHandler,), {})),
                        ("scratch-function", plain), ("scratch-coroutine", coroutine)):
        ex.describe(name).checker(right)
    assert [getattr(x, "__name__", x) for x in seen] == ["Right", "plain", "coroutine"]
    for name in ("scratch-class", "scratch-function", "scratch-coroutine"):
        ex._REGISTRY.pop(name, None)


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


def _failure(exercise: str, why: str) -> ExerciseFailed:
    (wrong,) = [w for w in BANK if w.exercise == exercise and w.why.startswith(why)]
    try:
        ex.describe(exercise).checker(*wrong.answer(CELLS[exercise].answer))
    except ExerciseFailed as exc:
        return exc
    raise AssertionError(f"{exercise}: {why} passed")


def test_the_hints_the_issue_found_misleading_are_reworded() -> None:
    """Issue 25's list: each of these said something untrue or useless to the learner who made the mistake."""
    finish = _failure("arch-counting-mixin", "overrides finish_request")
    assert "overrides finish_request" in finish.hint and "does not define any hook" not in finish.hint
    for exercise, why, wanted in (("tcp-upper-echo", "writes str", "bytes"),
                                  ("tcp-calculator", "no except ValueError", "except ValueError")):
        failure = _failure(exercise, why)
        assert wanted in failure.fix and "loop over the lines" not in failure.fix, failure.fix
    reverse = _failure("udp-reverse", "writes str")
    assert "TypeError" in reverse.hint and "wrote nothing" not in reverse.hint
    over = _failure("concurrency-ideal-throughput", "threads scale cpu work")
    assert "more than such a server can serve" in over.hint and "not the best" not in over.hint
    big = _failure("udp-big-datagrams", "max_packet_size = 12000")
    assert "16384" not in big.hint and "16 KiB" not in big.hint  # the value that passes is named by the fix only
    assert "16 KiB" in big.fix
    assert "one class attribute" in ex.describe("shutdown-quick-close").stub
