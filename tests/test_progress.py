"""Each check(...) is kept in the learner's progress file, and ``sockserve teach
progress`` collects a class's files into one table (sockserve.exercises.progress)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sockserve
from sockserve.cli.main import main
from sockserve.exercises import check, describe, reset_attempts
from sockserve.exercises.progress import ENV, collect, read_progress
from sockserve.exercises.stubs import stub_answer


class RestartableServer(sockserve.TCPServer):
    allow_reuse_address = True


class Wrong(sockserve.TCPServer):
    request_queue_size = 9


@pytest.fixture
def progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home" / ".sockserve" / "progress.json"
    monkeypatch.setenv(ENV, str(path))
    monkeypatch.setenv("JUPYTERHUB_USER", "ada")
    reset_attempts("tcp-rebind")
    yield path
    reset_attempts("tcp-rebind")


def test_every_check_is_kept_and_a_stub_is_not_an_attempt(progress: Path) -> None:
    check("tcp-rebind", stub_answer(describe("tcp-rebind").stub))
    check("tcp-rebind", Wrong)
    entry = read_progress(progress)["exercises"]["tcp-rebind"]
    assert (entry["attempts"], entry["stub_runs"], entry["passed"], entry["first_passed"]) == (1, 1, False, None)
    assert check("tcp-rebind", RestartableServer).passed
    check("tcp-rebind", Wrong)  # a later failure does not take the pass away
    data = read_progress(progress)
    entry = data["exercises"]["tcp-rebind"]
    assert data["student"] == "ada" and entry["lesson"] == "02-tcp"
    assert entry["passed"] and entry["attempts"] == 3 and entry["first_passed"] is not None
    assert entry["message"].startswith("binding port")


def test_a_broken_file_is_moved_aside_not_overwritten(progress: Path) -> None:
    progress.parent.mkdir(parents=True)
    progress.write_text("{not json")
    check("tcp-rebind", Wrong)
    (broken,) = progress.parent.glob("progress.json.broken-*")
    assert broken.read_text() == "{not json"
    assert read_progress(progress)["exercises"]["tcp-rebind"]["attempts"] == 1


def test_recording_can_be_turned_off_and_never_fails_a_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "off")
    assert check("tcp-rebind", RestartableServer).passed
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(ENV, str(tmp_path / "file" / "progress.json"))  # under a file: cannot be written
    assert check("tcp-rebind", RestartableServer).passed


def _file(folder: Path, student: str, exercises: dict[str, dict[str, object]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "progress.json").write_text(json.dumps({"format": 1, "student": student, "exercises": exercises}))


def test_a_class_is_collected_into_one_table_and_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _file(tmp_path / "ada", "ada", {"tcp-rebind": {"lesson": "02-tcp", "passed": True, "attempts": 2}})
    _file(tmp_path / "bob", "bob", {"tcp-rebind": {"lesson": "02-tcp", "passed": False, "attempts": 3},
                                    "udp-reverse": {"lesson": "03", "passed": False, "attempts": 0, "stub_runs": 2}})
    _file(tmp_path / "bob" / "laptop", "bob", {"udp-reverse": {"lesson": "03", "passed": True, "attempts": 1}})
    (tmp_path / "notes.json").write_text('{"something": "else"}')
    table = collect(tmp_path, ["tcp-rebind", "udp-reverse", "tcp-calculator"])
    assert [s.student for s in table.students] == ["ada", "bob"]
    assert table.rows()[1:] == [["ada", "✔", "·", "·", "1/3"], ["bob", "✘3", "✔", "·", "1/3"]]
    assert table.skipped == ["notes.json"]
    assert main(["teach", "progress", str(tmp_path), "--csv", str(tmp_path / "class.csv")]) == 0
    shown = capsys.readouterr().out
    assert shown.splitlines()[0].split() == ["student", *describe_all(), "passed"]
    assert "bob" in shown and "(not a progress file, skipped: notes.json)" in shown
    assert "bob," in (tmp_path / "class.csv").read_text().splitlines()[2] and ",✘3," in (tmp_path / "class.csv").read_text()


def describe_all() -> list[str]:
    from sockserve.exercises import exercises

    return exercises()


def test_teach_progress_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["teach", "progress", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["teach", "progress", str(tmp_path)]) == 2
    assert "no progress file under" in capsys.readouterr().err


def test_teach_course_writes_a_course_and_refuses_an_unknown_lesson(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["teach", "course", str(tmp_path / "c"), "--lessons", "02-tcp"]) == 0
    assert "02-tcp: 4 points" in capsys.readouterr().out
    assert (tmp_path / "c" / "source" / "02-tcp" / "02-tcp.ipynb").is_file()
    assert main(["teach", "course", str(tmp_path / "d"), "--lessons", "99-none"]) == 2
    assert "no such lesson: 99-none" in capsys.readouterr().err and not (tmp_path / "d").exists()
