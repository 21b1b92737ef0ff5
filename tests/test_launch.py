"""``sockserve lab`` (sockserve.workbook.launch): finding the workbook, copying it
without overwriting a user's changes, the JupyterLab command line, and what
happens without the ``lab`` extra. The real thing (a wheel in a fresh venv
serving the index) is in test_binder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from sockserve.workbook import launch
from sockserve.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def shipped(tmp_path: Path) -> Path:
    """A small stand-in for the shipped workbook."""
    source = tmp_path / "shipped"
    (source / "solutions").mkdir(parents=True)
    (source / "00-index.ipynb").write_text("index v1")
    (source / "01-a.ipynb").write_text("lesson v1")
    (source / "solutions" / "01-a.py").write_text("answers v1")
    (source / "data").mkdir()
    (source / "data" / "costs.json").write_text("{}")
    (source / "TEACHING.md").write_text("the guide")
    (source / "sanitize.cfg").write_text("not part of the workbook")
    (source / "src").mkdir()
    (source / "src" / "01-a.py").write_text("not part of the workbook")
    return source


def test_this_checkout_is_a_clone_and_its_notebooks_are_the_workbook() -> None:
    assert launch.clone_workbook() == ROOT / "notebooks"
    assert launch.shipped_workbook() is None  # sockserve/notebooks exists only in a wheel


def test_first_copy_is_a_student_release_without_solutions(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    report = launch.copy_workbook(shipped(tmp_path), folder)
    assert report.copied == ["00-index.ipynb", "01-a.ipynb", "TEACHING.md", "data/costs.json"]
    assert not (report.updated or report.kept or report.unchanged)
    assert (folder / "01-a.ipynb").read_text() == "lesson v1"
    assert not (folder / "solutions").exists()
    assert not (folder / "sanitize.cfg").exists() and not (folder / "src").exists()
    manifest = json.loads((folder / launch.MANIFEST).read_text())
    assert sorted(manifest) == report.copied
    assert report.lines()[1].startswith("copied 4 files: 00-index.ipynb, 01-a.ipynb, TEACHING.md, data/costs.json")


def test_a_teachers_copy_adds_the_solutions_only_when_asked(tmp_path: Path) -> None:
    source, folder = shipped(tmp_path), tmp_path / "mine"
    launch.copy_workbook(source, folder)
    report = launch.copy_workbook(source, folder, solutions=True)
    assert report.copied == ["solutions/01-a.py"] and len(report.unchanged) == 4
    assert (folder / "solutions" / "01-a.py").read_text() == "answers v1"


def test_a_changed_file_is_kept_an_untouched_one_updated_a_deleted_one_restored(tmp_path: Path) -> None:
    source = shipped(tmp_path)
    folder = tmp_path / "mine"
    launch.copy_workbook(source, folder, solutions=True)
    (folder / "01-a.ipynb").write_text("my notes")            # the student's work
    (folder / "00-index.ipynb").unlink()                      # removed by the student
    (source / "01-a.ipynb").write_text("lesson v2")           # a newer release
    (source / "solutions" / "01-a.py").write_text("answers v2")
    report = launch.copy_workbook(source, folder, solutions=True)
    assert report.kept == ["01-a.ipynb"] and (folder / "01-a.ipynb").read_text() == "my notes"
    assert report.updated == ["solutions/01-a.py"]
    assert (folder / "solutions" / "01-a.py").read_text() == "answers v2"
    assert report.copied == ["00-index.ipynb"]
    text = "\n".join(report.lines())
    assert "kept 1 file you changed" in text and "01-a.ipynb" in text and "updated 1 file" in text
    # Still kept the next time (the manifest remembers what was shipped, not what is there) ...
    assert launch.copy_workbook(source, folder, solutions=True).kept == ["01-a.ipynb"]
    # ... until the student puts the shipped text back, which is then theirs to update.
    (folder / "01-a.ipynb").write_text("lesson v1")
    assert launch.copy_workbook(source, folder, solutions=True).updated == ["01-a.ipynb"]
    again = launch.copy_workbook(source, folder, solutions=True)
    assert len(again.unchanged) == 5 and again.lines()[-1] == "all 5 files already up to date"


def test_a_file_that_was_there_before_any_copy_is_never_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "01-a.ipynb").write_text("someone else's notebook")
    report = launch.copy_workbook(shipped(tmp_path), folder)
    assert report.kept == ["01-a.ipynb"] and (folder / "01-a.ipynb").read_text() == "someone else's notebook"


def test_jupyter_command_binds_loopback_opens_the_index_and_allows_root_only_as_root(tmp_path: Path) -> None:
    argv = launch.jupyter_command(tmp_path, port=9999, no_browser=True, extra=["--debug"], is_root=False)
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path}" in argv and "--ServerApp.ip=127.0.0.1" in argv
    assert "--LabApp.default_url=/lab/tree/00-index.ipynb" in argv
    assert "--ServerApp.port=9999" in argv and "--no-browser" in argv and argv[-1] == "--debug"
    assert "--allow-root" not in argv
    assert "--allow-root" in launch.jupyter_command(tmp_path, port=None, no_browser=False, extra=[], is_root=True)


def test_install_command_names_this_python_and_the_clone() -> None:
    command = launch.install_command()
    assert command.startswith(sys.executable) and "-m pip install -e" in command and command.endswith("[lab]'")
    assert str(ROOT) in command


def test_lab_without_the_extra_prints_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    real = launch.importlib.util.find_spec
    monkeypatch.setattr(launch.importlib.util, "find_spec",
                        lambda name, *a: None if name == "jupyterlab" else real(name, *a))
    assert main(["lab", "--no-browser"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "jupyterlab not installed" in line and launch.install_command() in line


def test_lab_rejects_a_bad_port_before_anything(capsys: pytest.CaptureFixture[str]) -> None:
    for port in ("70000", "0", "-1"):
        assert main(["lab", "--port", port]) == 2
        assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize("panel", ["ServerPanel", "TrafficPanel", "ComparePanel", "KernelPanel"])
def test_panels_without_ipywidgets_raise_an_import_error_that_names_the_command(panel: str) -> None:
    code = ("import sys; sys.modules['ipywidgets'] = None\n"
            f"try:\n    from sockserve.lab import {panel}\n"
            "except ImportError as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.startswith(f"ImportError sockserve.lab.{panel} needs the lab extra (ipywidgets is not installed)")
    assert launch.install_command() in out


def test_readme_and_index_start_the_lab_with_sockserve_lab() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- lab-command -->", 1)[1].split("<!-- /lab-command -->", 1)[0]
    (command,) = [line for line in block.splitlines() if line and not line.startswith("```")]
    assert command == 'python3 -m venv .venv && .venv/bin/pip install -e ".[lab]" && .venv/bin/sockserve lab'
    assert command in (ROOT / "notebooks" / "src" / "00-index.py").read_text()


# -- every link in a copied workbook resolves inside the copy --------------------------------------

_MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def links_in(path: Path) -> list[str]:
    """Every link target in a notebook (markdown cells, and HTML or markdown outputs) or a markdown file."""
    if path.suffix == ".md":
        texts = [path.read_text(encoding="utf-8")]
    else:
        nb = json.loads(path.read_text(encoding="utf-8"))
        texts = []
        for cell in nb["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if cell["cell_type"] == "markdown":
                texts.append(source)
            for output in cell.get("outputs", []):
                for kind in ("text/html", "text/markdown"):
                    data = output.get("data", {}).get(kind)
                    if data:
                        texts.append("".join(data) if isinstance(data, list) else data)
    return [target for text in texts for pattern in (_MARKDOWN_LINK, _HTML_LINK) for target in pattern.findall(text)]


def broken_links(folder: Path) -> list[str]:
    broken = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".ipynb", ".md") or not path.is_file():
            continue
        for target in links_in(path):
            if re.match(r"^([a-z][a-z0-9+.-]*:|#|data:)", target, re.IGNORECASE):
                continue  # a web address, a mail address, an anchor in the same page, inline data
            local = unquote(target.split("#", 1)[0].split("?", 1)[0])
            resolved = (path.parent / local).resolve()
            if not resolved.exists() or folder.resolve() not in (resolved, *resolved.parents):
                broken.append(f"{path.relative_to(folder)}: {target}")
    return broken


@pytest.mark.parametrize("solutions", [False, True], ids=["student", "teacher"])
def test_every_link_in_a_copied_workbook_resolves_inside_the_copy(tmp_path: Path, solutions: bool) -> None:
    folder = tmp_path / "copy"
    source = launch.clone_workbook()
    assert source is not None
    launch.copy_workbook(source, folder, solutions=solutions)
    assert (folder / launch.GUIDE).is_file() and (folder / launch.INDEX).is_file()
    assert (folder / "solutions").is_dir() is solutions
    assert sum(len(links_in(p)) for p in folder.glob("*.ipynb")) >= 10  # the index links every lesson
    assert broken_links(folder) == []


def test_the_link_check_finds_a_link_that_leaves_the_copy(tmp_path: Path) -> None:
    """The detector itself: a link to a missing file, and one out of the folder, are both caught."""
    (tmp_path / "a.md").write_text("[ok](b.md) [gone](solutions/x.py) [out](../elsewhere.md) [web](https://x.org)")
    (tmp_path / "b.md").write_text("<a href='a.md#top'>back</a> <img src='missing.png'>")
    (tmp_path.parent / "elsewhere.md").write_text("outside")
    assert broken_links(tmp_path) == ["a.md: solutions/x.py", "a.md: ../elsewhere.md", "b.md: missing.png"]
