"""How the root conftest.py spreads the run over workers: which tests share a unit."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _root_conftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHARED_FIXTURE = re.compile(r"@pytest\.fixture\([^)]*scope=[\"'](module|package|session)[\"']")


def test_every_module_with_a_shared_fixture_runs_whole() -> None:
    conftest = _root_conftest()
    shared = {
        f"tests/{path.name}"
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        if SHARED_FIXTURE.search(path.read_text())
    }
    assert shared, "the scan found no module-scoped fixture at all: is the pattern still right?"
    missing = shared - conftest.WHOLE_MODULES
    assert not missing, f"these modules make a fixture once per module, list them in WHOLE_MODULES: {missing}"


def test_units_of_functions_classes_whole_modules_and_lessons() -> None:
    unit_of = _root_conftest().unit_of
    # Tests of a module, and cases of a parametrized test, go wherever a worker is free.
    assert unit_of("tests/test_drain.py::test_a[TCPServer]") != unit_of("tests/test_drain.py::test_a[UDPServer]")
    assert unit_of("tests/test_drain.py::test_a[TCPServer]") != unit_of("tests/test_drain.py::test_b")
    # A class and a module with a module-scoped fixture are one unit each.
    assert unit_of("tests/test_x.py::TestThing::test_a") == unit_of("tests/test_x.py::TestThing::test_b[1]")
    assert unit_of("tests/test_course.py::test_a") == unit_of("tests/test_course.py::test_b") == "tests/test_course.py"
    # A lesson's cells share a kernel.
    assert unit_of("notebooks/04-concurrency.ipynb::Cell 3") == unit_of("notebooks/04-concurrency.ipynb::Cell 9")
    # The browser lessons go to two labs: alternate lessons, but 08 with the odd ones.
    lesson = "tests/test_browser_notebooks.py::test_notebook_runs_in_jupyterlab[{}]"
    assert unit_of(lesson.format("02-tcp")) == unit_of(lesson.format("04-concurrency"))
    assert unit_of(lesson.format("02-tcp")) != unit_of(lesson.format("03-udp-and-unix"))
    assert unit_of(lesson.format("08-a-server-from-scratch")) == unit_of(lesson.format("09-when-things-go-wrong"))
    assert unit_of(lesson.format("10-the-kernels-view")) == unit_of(lesson.format("00-index"))
    assert unit_of(lesson.format("12-next")) == unit_of(lesson.format("00-index"))
