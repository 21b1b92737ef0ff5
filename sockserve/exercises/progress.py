"""Each learner's progress file, and a class's files collected into one table.

Every :func:`sockserve.exercises.check` writes its verdict to the learner's
progress file, so a teacher without nbgrader can see who passed what:
students hand in (or the teacher copies from their home folders) their
files, and ``sockserve teach progress FOLDER`` prints one table.

Where the file is: the environment variable ``SOCKSERVE_PROGRESS`` names it
(``off`` turns recording off); by default it is
``~/.sockserve/progress.json``, one per home folder, so one per student on
a JupyterHub. The student's name is ``JUPYTERHUB_USER`` when set (on a hub),
else the login name.

The file is JSON::

    {"format": 1, "student": "ada",
     "exercises": {"tcp-upper-echo": {"lesson": "02-tcp", "passed": true, "attempts": 2,
                                      "stub_runs": 1, "first_passed": "2026-...", "last": "2026-...",
                                      "message": "3 lines answered in upper case, ..."}}}

``attempts`` counts the checks that were attempts (an unchanged stub is
not); ``passed`` stays true once the exercise passed. Writing is atomic and
locked (several lessons open at once write one file); a file that is not
valid JSON is moved aside (``.broken``), never overwritten, and recording
never makes a check fail: an unwritable file is skipped.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import fcntl
import getpass
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import CheckResult

__all__ = ["ENV", "FORMAT", "progress_path", "student_name", "record", "read_progress", "collect",
           "ClassProgress", "StudentProgress"]

#: The environment variable that names the progress file ("off": do not record).
ENV = "SOCKSERVE_PROGRESS"
#: The file's format number.
FORMAT = 1


def progress_path() -> Path | None:
    """Where this learner's verdicts go (None: recording is off)."""
    chosen = os.environ.get(ENV, "")
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen).expanduser()
    return Path.home() / ".sockserve" / "progress.json"


def student_name() -> str:
    """The learner: ``JUPYTERHUB_USER`` on a hub, else the login name."""
    name = os.environ.get("JUPYTERHUB_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return f"uid{os.getuid()}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_progress(path: Path) -> dict[str, Any]:
    """The progress file at *path*; ``ValueError`` when it is not one."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not (isinstance(data, dict) and isinstance(data.get("student"), str)
            and isinstance(data.get("exercises"), dict)):
        raise ValueError(f"{path} is not a sockserve progress file (no student and exercises)")
    return data


def record(name: str, lesson: str, result: CheckResult, *, attempt: bool) -> None:
    """Add one verdict on exercise *name* to the learner's file (never raises for I/O)."""
    path = progress_path()
    if path is None:
        return
    try:
        with _locked(path):
            data = _load_or_start(path)
            entry = data["exercises"].setdefault(name, {"lesson": lesson, "passed": False, "attempts": 0,
                                                        "stub_runs": 0, "first_passed": None})
            now = _now()
            if attempt:
                entry["attempts"] += 1
            else:
                entry["stub_runs"] += 1
            if result.passed and not entry["passed"]:
                entry["passed"], entry["first_passed"] = True, now
            entry["last"], entry["message"] = now, result.message
            partial = path.with_name(f".{path.name}.partial")
            partial.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(partial, path)
    except OSError:
        pass  # a read-only home must not break the lesson


def _load_or_start(path: Path) -> dict[str, Any]:
    if path.exists():
        try:
            return read_progress(path)
        except ValueError:
            os.replace(path, path.with_name(path.name + f".broken-{int(path.stat().st_mtime)}"))
    return {"format": FORMAT, "student": student_name(), "exercises": {}}


# -- collecting a class's files ------------------------------------------------------------


@dataclass
class StudentProgress:
    """One student's verdicts, merged from every file of theirs."""

    student: str
    exercises: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def merge(self, exercises: dict[str, Any]) -> None:
        for name, entry in exercises.items():
            if not isinstance(entry, dict):
                continue
            mine = self.exercises.setdefault(name, {"lesson": entry.get("lesson", ""), "passed": False,
                                                    "attempts": 0})
            mine["passed"] = bool(mine["passed"] or entry.get("passed"))
            mine["attempts"] += int(entry.get("attempts", 0))

    def cell(self, name: str) -> str:
        """``✔``, ``✘N`` (N attempts, none passed) or ``·`` (not tried)."""
        entry = self.exercises.get(name)
        if entry is None or (not entry["passed"] and not entry["attempts"]):
            return "·"
        return "✔" if entry["passed"] else f"✘{entry['attempts']}"

    def passed(self) -> int:
        return sum(1 for entry in self.exercises.values() if entry["passed"])


@dataclass
class ClassProgress:
    """A class's progress: one row per student, one column per exercise."""

    students: list[StudentProgress]
    exercises: list[str]
    skipped: list[str]  # files that are not progress files, with the reason

    def rows(self) -> list[list[str]]:
        """Header and one row per student: name, a cell per exercise, passed/total."""
        rows = [["student", *self.exercises, "passed"]]
        for student in self.students:
            rows.append([student.student, *(student.cell(n) for n in self.exercises),
                         f"{student.passed()}/{len(self.exercises)}"])
        return rows

    def table(self) -> str:
        """The rows as aligned text (exercise names as column headers)."""
        rows = self.rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * width for width in widths))
        lines += [f"(not a progress file, skipped: {reason})" for reason in self.skipped]
        return "\n".join(lines)

    def csv(self) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(self.rows())
        return out.getvalue()


def collect(folder: Path, exercise_order: list[str] | None = None) -> ClassProgress:
    """Every progress file under *folder* (any ``*.json``, at any depth),
    merged per student. Columns follow *exercise_order* (every exercise
    registered, when given) and then any other exercise a file names."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    by_student: dict[str, StudentProgress] = {}
    skipped: list[str] = []
    for path in sorted(folder.rglob("*.json")):
        try:
            data = read_progress(path)
        except (OSError, ValueError) as exc:
            skipped.append(f"{path.relative_to(folder)}: {exc}" if isinstance(exc, OSError)
                           else f"{path.relative_to(folder)}")
            continue
        student = by_student.setdefault(data["student"], StudentProgress(data["student"]))
        student.merge(data["exercises"])
        student.files.append(str(path.relative_to(folder)))
    order = list(exercise_order or [])
    seen = {name for s in by_student.values() for name in s.exercises}
    order += sorted(seen - set(order))
    return ClassProgress(sorted(by_student.values(), key=lambda s: s.student), order, skipped)
