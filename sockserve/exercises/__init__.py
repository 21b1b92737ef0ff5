"""Workbook exercises: checkers a learner calls, with precise messages.

A lesson gives the learner a stub (a handler class to finish, a function to
write) and a line like::

    from sockserve.exercises import check
    check("tcp-upper-echo", UpperEcho)

which prints ``✔ tcp-upper-echo: ...`` when the answer is right and
``✘ tcp-upper-echo: <what is wrong>`` when it is not. ``check`` never raises
for a wrong answer, a crashing answer or a hanging answer: the learner always
gets a result within its time bound.

Checks teach in two steps. A failure first says what the code *did* and
which idea it misses (the *hint*); only when the same exercise fails again
does the message add the *fix* (``Next step: ...``). So the first message a
learner (or a saved notebook) shows never gives the answer away, and a
learner who is stuck still gets it. Every checker runs the learner's code
and judges what it does, so no message can be copied into a passing answer.

Writing a checker (in ``sockserve/exercises/<lessonmodule>.py``)::

    from sockserve.exercises import ExerciseFailed, exercise
    from sockserve.exercises.support import a_class

    @exercise("tcp-upper-echo", lesson="02-tcp",
              answer=a_class("UpperEcho", StreamRequestHandler, method="handle"))
    def _check_upper(handler: type) -> str | None:
        \"\"\"Finish UpperEcho: answer every line ... (the exercise's prompt).\"\"\"
        ...   # when wrong: raise ExerciseFailed("what happened, and the idea", fix="what to change")
        return "3 lines answered in upper case"   # optional success detail

A checker receives the learner's answer as positional arguments (and any
keyword arguments given to ``check``), raises :class:`ExerciseFailed` with a
hint that names what went wrong (and a *fix* for the later attempts), and
returns ``None`` or a short success note. Checkers start servers only on loopback or in a temporary directory,
bound every wait, and clean up (:func:`running` and :func:`converse` in
:mod:`sockserve.exercises.support` help). *answer* (``a_class`` or
``a_function`` from :mod:`~sockserve.exercises.support`) says what the answer
is: the stub the lesson hands out follows from it, and the first argument is
checked against it before the checker sees it; an exercise whose answer is
neither (a list, say) gives its *stub* as source text instead.

*lesson* is the notebook's stem (``"02-tcp"`` for ``notebooks/02-tcp.ipynb``);
the reference answers live in ``notebooks/solutions/<lesson>.py`` as
``SOLUTIONS`` and ``EMPTY_ATTEMPTS`` (exercise name -> tuple of answer
arguments), which ``tests/test_exercises.py`` runs for every exercise.

Run All is not an attempt: each exercise registers the *stub* its lesson
hands out (the cell's code without its ``check(...)`` line), and an answer
that is still that stub, unchanged (the same compiled code, see
:mod:`sockserve.exercises.stubs`), gets a reminder instead of a verdict and
does not count as a failure, so the first real attempt still gets the hint
alone.

Every verdict is also written to the learner's progress file
(:mod:`sockserve.exercises.progress`), which a teacher without nbgrader
collects with ``sockserve teach progress``.

Lesson modules are found lazily: every module in this package whose name does
not start with ``_`` (and is not one of the helper modules) is imported the first time a
name is looked up and not yet known, so adding a lesson needs no registry edit.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

__all__ = [
    "ExerciseFailed",
    "CheckResult",
    "Exercise",
    "exercise",
    "check",
    "exercises",
    "describe",
    "reset_attempts",
    "failed_attempts",
    "GENERIC_PREFIXES",
    "FIX_PREFIX",
    "STUB_MESSAGE",
    "DIFFICULTIES",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds ``check`` lets a checker run before it reports a hang.
DEFAULT_TIMEOUT = 30.0

#: Messages the framework writes itself (not the checker): a test uses these
#: to insist that an empty attempt fails with a checker's own, specific words.
GENERIC_PREFIXES = (
    "your code raised",
    "the check did not finish",
    "no exercise named",
    "the checker itself failed",
)

#: What joins a hint and its fix, from the second failed attempt on.
FIX_PREFIX = " Next step: "

#: Modules in this package that hold helpers, not exercises.
_NOT_LESSONS = frozenset({"support", "stubs", "progress"})

#: What a check of an unchanged stub says (it is not an attempt).
STUB_MESSAGE = ("this is still the stub the lesson hands out, so there is nothing to check yet (it does not "
                "count as an attempt): write your answer in the cell, then run it again")

#: The difficulties an exercise can have (the points nbgrader gives it, too).
DIFFICULTIES = {1: "short", 2: "medium", 3: "hard"}


class Answer(Protocol):
    """What an exercise's answer is (``a_class``, ``a_function`` in :mod:`.support`)."""

    @property
    def stub(self) -> str:
        """The source the lesson's exercise cell starts from."""

    def require(self, answer: Any) -> Any:
        """*answer* when it is what the exercise asks for; raises :class:`ExerciseFailed` otherwise."""


class ExerciseFailed(AssertionError):
    """Raised by a checker: the answer is wrong.

    ``ExerciseFailed(hint, fix=...)``: *hint* says what the answer did and
    which idea it misses, without naming the answer; *fix* says what to
    change. :func:`check` shows the hint on an exercise's first failure and
    the hint with the fix on every later one.
    """

    def __init__(self, hint: str, *, fix: str = "") -> None:
        super().__init__(hint)
        self.hint = hint
        self.fix = fix

    def message(self, attempt: int) -> str:
        """The text for the *attempt*-th failure (1 = the first)."""
        if attempt <= 1 or not self.fix:
            return self.hint
        hint = self.hint.rstrip()
        if not hint.endswith((".", "!", "?", ":")):
            hint += "."
        return f"{hint}{FIX_PREFIX}{self.fix}"


@dataclass(frozen=True)
class Exercise:
    """One registered exercise: its name, lesson, prompt and checker, the
    stub its lesson hands out (source text) and its difficulty (a key of
    :data:`DIFFICULTIES`)."""

    name: str
    lesson: str
    prompt: str
    checker: Callable[..., str | None]
    stub: str = ""
    difficulty: int = 1


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one answer. Shown as ``✔ name: ...`` or ``✘ name: ...``."""

    name: str
    passed: bool
    message: str

    def __str__(self) -> str:
        mark = "✔" if self.passed else "✘"
        return f"{mark} {self.name}: {self.message}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def __bool__(self) -> bool:
        return self.passed


_REGISTRY: dict[str, Exercise] = {}
_LOCK = threading.RLock()
_loaded_all = False
#: Failed checks so far, per exercise name (in this process: one kernel).
_FAILURES: dict[str, int] = {}


def failed_attempts(name: str) -> int:
    """How many times exercise *name* has failed so far in this process."""
    with _LOCK:
        return _FAILURES.get(name, 0)


def reset_attempts(name: str | None = None) -> None:
    """Forget the failed attempts of exercise *name* (of every exercise if
    None): its next failure shows the hint alone again."""
    with _LOCK:
        if name is None:
            _FAILURES.clear()
        else:
            _FAILURES.pop(name, None)


def _failed(name: str) -> int:
    """Count one more failure of *name*; return which attempt it was."""
    with _LOCK:
        _FAILURES[name] = _FAILURES.get(name, 0) + 1
        return _FAILURES[name]


def exercise(name: str, lesson: str, prompt: str = "", *, answer: Answer | None = None, stub: str = "",
             difficulty: int = 1) -> Callable[[F], F]:
    """Register the decorated function as the checker of exercise *name*.

    The checker is called as ``fn(*answer, **kw)``; it raises
    :class:`ExerciseFailed` when the answer is wrong and returns ``None`` or
    a short success note. *prompt* states the exercise (what the learner is
    asked to write); without it, the checker's docstring does, as one
    paragraph (as a click command's docstring is its help). *answer* says what the answer is: its stub is
    the exercise's, and the registered checker first passes the answer's
    first argument through ``answer.require``. Without it, *stub* is the
    code the lesson's exercise cell holds before its ``check(...)`` line
    (tests/test_exercises.py keeps the two equal). *difficulty* is 1
    (short), 2 (medium) or 3 (hard). Registering a name twice from
    different functions is an error (two lessons must not fight over one name).
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"exercise {name!r}: difficulty must be one of {sorted(DIFFICULTIES)}, not {difficulty!r}")
    if answer is not None and stub:
        raise ValueError(f"exercise {name!r}: give its answer or its stub, not both")

    def register(fn: F) -> F:
        statement = prompt or " ".join((fn.__doc__ or "").split())
        if not statement:
            raise ValueError(f"exercise {name!r}: no prompt (give one, or a docstring to its checker)")
        checker: Callable[..., str | None] = fn
        if answer is not None:
            kind = answer

            @functools.wraps(fn)
            def checker(first: Any, *rest: Any, **kw: Any) -> str | None:
                return fn(kind.require(first), *rest, **kw)  # type: ignore[no-any-return]

        with _LOCK:
            old = _REGISTRY.get(name)
            if old is not None and old.checker.__qualname__ != fn.__qualname__:
                raise ValueError(f"exercise {name!r} is already registered by {old.lesson}")
            _REGISTRY[name] = Exercise(name, lesson, statement, checker, answer.stub if answer else stub,
                                       difficulty)
        return fn

    return register


def _load_all() -> None:
    """Import every lesson module of this package (once)."""
    global _loaded_all
    with _LOCK:
        if _loaded_all:
            return
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_") or info.name in _NOT_LESSONS:
                continue
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded_all = True


def _lookup(name: str) -> Exercise | None:
    with _LOCK:
        found = _REGISTRY.get(name)
    if found is None:
        _load_all()
        with _LOCK:
            found = _REGISTRY.get(name)
    return found


def exercises(lesson: str | None = None) -> list[str]:
    """Names of the registered exercises (of one *lesson*), sorted."""
    _load_all()
    with _LOCK:
        return sorted(
            name for name, ex in _REGISTRY.items() if lesson is None or ex.lesson == lesson
        )


def describe(name: str) -> Exercise:
    """The registered :class:`Exercise` called *name* (KeyError if none)."""
    found = _lookup(name)
    if found is None:
        raise KeyError(_unknown(name))
    return found


def _unknown(name: str) -> str:
    known = ", ".join(exercises()) or "(none)"
    return f"no exercise named {name!r}; the exercises are: {known}"


#: The fix for an answer that raised, shown from its second failure on.
_RAISED_FIX = ("call your code by hand in a new cell with the same arguments to see the whole traceback, "
               "and fix the line it names")


def _describe_exception(exc: BaseException) -> str:
    """One line saying what the learner's code raised, and where."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    # The innermost frame outside sockserve is the learner's own code.
    for frame in reversed(frames):
        if "/sockserve/" not in frame.filename.replace("\\", "/"):
            where = f" (in {frame.name}, line {frame.lineno})"
            break
    text = str(exc) or "(no message)"
    if isinstance(exc, NotImplementedError):
        return f"your code raised NotImplementedError{where}: {text}; replace the stub with your answer"
    return f"your code raised {type(exc).__name__}{where}: {text}"


def check(name: str, *answer: Any, timeout: float = DEFAULT_TIMEOUT, **kw: Any) -> CheckResult:
    """Run exercise *name*'s checker on *answer* and return the verdict.

    Never raises for a wrong answer: an :class:`ExerciseFailed` (or a plain
    ``AssertionError``) becomes a failed result with its message (the hint
    on the exercise's first failure, the hint and the fix on later ones);
    any other
    exception raised by the answer becomes a failed result naming it; a
    checker that runs longer than *timeout* seconds (an answer that hangs)
    becomes a failed result saying so. An unknown *name* is a failed result
    listing the known names.
    """
    found = _lookup(name)
    if found is None:
        return CheckResult(name, False, _unknown(name))
    if found.stub and is_unchanged_stub(found.stub, answer):
        result = CheckResult(name, False, STUB_MESSAGE)
        progress.record(found.name, found.lesson, result, attempt=False)
        return result
    outcome: list[CheckResult] = []

    def failed(hint: str, fix: str) -> None:
        outcome.append(CheckResult(name, False, ExerciseFailed(hint, fix=fix).message(_failed(name))))

    def run() -> None:
        try:
            note = found.checker(*answer, **kw)
        except ExerciseFailed as exc:
            outcome.append(CheckResult(name, False, exc.message(_failed(name)) or "wrong answer"))
        except AssertionError as exc:
            failed(str(exc) or "an assertion failed", _RAISED_FIX)
        except BaseException as exc:  # SystemExit from an answer, too
            failed(_describe_exception(exc), _RAISED_FIX)
        else:
            outcome.append(CheckResult(name, True, note or "correct"))

    # A separate (daemon) thread, so an answer that never returns cannot
    # hang the notebook: the learner gets a verdict after *timeout* seconds.
    worker = threading.Thread(target=run, name=f"check {name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        hung = ExerciseFailed(
            f"the check did not finish within {timeout:g} s: your code seems to wait "
            "forever (a read with no timeout? a loop that never ends?)",
            fix="find the call that waits: every read needs a timeout or an end (b'' from recv, the end of "
            "self.rfile), and every loop a way out",
        )
        outcome.append(CheckResult(name, False, hung.message(_failed(name))))
    progress.record(found.name, found.lesson, outcome[0], attempt=True)
    return outcome[0]


# Imported last: both use the names defined above.
from . import progress  # noqa: E402
from .stubs import is_unchanged_stub  # noqa: E402
