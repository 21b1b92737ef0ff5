"""``sockserve teach``: tools for a teacher.

    sockserve teach course FOLDER [--lessons 02-tcp,04-concurrency] [--course-id ID]
    sockserve teach progress FOLDER [--csv PATH]

``course`` writes an nbgrader course from the lessons
(:mod:`sockserve.workbook.course`); ``progress`` collects the students'
progress files found under FOLDER into one table
(:mod:`sockserve.exercises.progress`). Bad input (no such lesson, no such
folder, an unwritable file) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .args import CliError, add_command

__all__ = ["add_teach_parser"]


# The teacher's tools import the workbook and the exercises when they run: together about 50 ms
# that no other command of the CLI should pay at its start.


def _workbook() -> Path:
    from ..workbook import launch  # on use: see above

    source = launch.clone_workbook() or launch.shipped_workbook()
    if source is None:
        raise CliError("this installation has no workbook (sockserve/notebooks is missing); reinstall it")
    return source


def cmd_course(args: argparse.Namespace) -> int:
    from ..workbook.course import build_course  # on use: see above

    lessons = [name.strip() for name in args.lessons.split(",") if name.strip()] if args.lessons else None
    try:
        report = build_course(Path(args.folder).expanduser(), _workbook(), lessons=lessons,
                              course_id=args.course_id)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write the course into {args.folder}: {exc.strerror or exc}") from None
    print("\n".join(report.lines()))
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from ..exercises import exercises  # on use: see above
    from ..exercises.progress import collect  # on use: see above

    try:
        table = collect(Path(args.folder).expanduser(), exercises())
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    if not table.students:
        raise CliError(f"no progress file under {args.folder} (each student's is ~/.sockserve/progress.json)")
    if args.csv:
        try:
            Path(args.csv).write_text(table.csv(), encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.csv}: {exc.strerror or exc}") from None
    print(table.table())
    return 0


def add_teach_parser(sub: Any) -> None:
    """Add ``teach course`` and ``teach progress`` to the subcommands *sub*."""
    teach = sub.add_parser("teach", help="for teachers: an nbgrader course, the class's progress",
                           description="Tools for teaching a class with the workbook (see notebooks/TEACHING.md).")
    actions = teach.add_subparsers(dest="action", metavar="ACTION", required=True)
    course = add_command(
        actions, "course", cmd_course, "write an nbgrader course from the lessons",
        "Write an nbgrader course into FOLDER: one assignment per lesson, each exercise a solution cell (the "
        "lesson's stub, the reference hidden) and an autograded test cell worth its difficulty in points. "
        "Then: nbgrader generate_assignment LESSON.")
    course.add_argument("folder", metavar="FOLDER")
    course.add_argument("--lessons", default="", help="comma-separated lessons (default: every lesson with "
                                                      "exercises), e.g. 02-tcp,04-concurrency")
    course.add_argument("--course-id", default="sockserve", help="nbgrader's course id (default sockserve)")
    progress = add_command(
        actions, "progress", cmd_progress, "collect the students' progress files into one table",
        "Read every progress file under FOLDER (each student's ~/.sockserve/progress.json, copied there, at "
        "any depth) and print one row per student: ✔ passed, ✘N failed N times, · not tried.")
    progress.add_argument("folder", metavar="FOLDER")
    progress.add_argument("--csv", metavar="PATH", help="also write the table as CSV")
