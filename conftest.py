"""How one test run is spread over parallel workers (pytest-xdist).

The suite mostly waits (on servers, subprocesses, kernels, a browser), so
``-n auto`` (pyproject's addopts) starts two workers per usable core, and
``--dist loadscope`` hands each worker whole *units*, refined here:

* a test (one parametrized case) is one unit, so the long modules and the
  long parametrized tests spread over the workers; a module listed in ``WHOLE_MODULES``
  (it has a module-scoped fixture: tests/test_units.py finds them) or a
  test class is one unit, so such a fixture is made once and its tests run
  in file order;
* a lesson run by nbval is one unit (its cells share one kernel, in order);
* ``test_browser_notebooks`` is two units (two labs, ``SECOND_LAB``), each with
  its own JupyterLab (from the Binder environment, pinned to its own core)
  and Chromium, so the longest module runs on two workers. The wheel and the
  Binder environment are made once per run (``packaging_support``): by the
  controller as the run starts (see below), else by the first worker to ask.

Units are started longest first (``LONG_FIRST``: measured, each keeps a worker
busy for half a minute or more), then in collection order, so that the long
ones overlap everything else instead of queueing at the end. The order only
changes how long the run takes, never what it checks. The units that need
the Binder environment (the lessons in the browser, the wheel's test) are
held back while the controller makes it (it starts when the run starts:
``pytest_sessionstart``), and handed out first once it is made, so no
worker sits waiting for it (measured: it takes 30 s alone, 77 s beside the
run, and the two lessons' workers had waited for it 75-95 s each).

It also marks ``extras`` the tests that need more than the package (whose
dependencies are the standard library) and pytest: CI runs every test on its
main Python, and ``--without-extras`` (the others, without even importing
the modules that need an extra) on the other Pythons (``.ci/other-pythons``).

This file sits at the top of the repository, not in ``tests/``, so that it
governs ``pytest notebooks/`` too. The fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any

import pytest

#: Units that each keep a worker busy for half a minute or more, in the order
#: they are started (prefixes of node ids).
LONG_FIRST = (
    "tests/test_browser_notebooks.py",  # held back while the Binder environment is made: see below
    "tests/test_course.py",
    "tests/test_reliability_resources.py",
    "tests/test_servecommand.py",
    "tests/test_typing.py",
    "tests/test_browser.py",
    "notebooks/04-",
    "notebooks/05-",
    "notebooks/06-",
    "tests/test_reliability_lifecycle.py",
    "tests/test_hostile.py",
    "tests/test_lab_fork_stress.py",
)

#: Modules run whole by one worker: their tests share a module-scoped fixture
#: (made once per worker that runs any of them).
WHOLE_MODULES = frozenset({
    "tests/test_bench_callgrind.py",
    "tests/test_browser_notebooks.py",
    "tests/test_course.py",
    "tests/test_lesson_concurrency.py",
    "tests/test_packaging.py",
    "tests/test_plots.py",
    "tests/test_timeline_runs.py",
})

#: Test modules that need an optional dependency throughout: the lab extra
#: (JupyterLab, ipywidgets, matplotlib), a notebook tool (nbval, nbformat,
#: nbclient, jupytext), Chromium or build. The lessons (nbval) are such too.
EXTRAS_MODULES = (
    "tests/test_browser.py",
    "tests/test_browser_notebooks.py",
    "tests/test_notebook_sources.py",
    "tests/test_packaging.py",
    "tests/test_plots.py",
    "tests/test_kernelplot.py",
    "tests/test_timelineplot.py",
    "tests/test_lab_panels.py",
    "tests/test_lab_kernel.py",
    "tests/test_lab_fork_stress.py",
    "tests/test_lesson_concurrency.py",
    "tests/test_saved_notebooks.py",
    "tests/test_sync.py",
)
#: Single tests that need one (regular expressions matched at the start of node ids).
EXTRAS_TESTS = tuple(re.compile(pattern) for pattern in (
    r"tests/test_binder\.py::test_the_wheel_",
    r"tests/test_typing\.py::test_mypy_",
    r"tests/test_backlog\.py::test_plot_",
    r"tests/test_diagrams\.py::test_drawings_",
    r"tests/test_cli\.py::test_compare_writes_json_and_a_plot",
    r"tests/test_cli\.py::test_bad_input_is_one_line_and_status_2\[.*(image format|has no extension)",
    r"tests/test_cli_oneline\.py::test_the_reworded_messages\[.*--plot",
    r"tests/test_course\.py::test_(the_released_notebook|the_reference_solutions|wrong_answers|stubs_left)",
    r"tests/test_launch\.py::test_lab_without_the_extra_prints_the_install_command",
    r"tests/test_workbook\.py::test_sync_replaces_saved_widget_outputs",
    r"tests/test_workbook\.py::test_shutdown_latencies_measure_every_class_and_poll_and_the_plot_draws_them",
    r"tests/test_workbook\.py::test_show_displays_a_figure_once_and_closes_it",
    r"tests/test_timeline_runs\.py::test_recording_is_off_by_default_and_the_cap_is_said_when_reached",
    r"tests/test_timeline_runs\.py::test_a_traffic_run_records_the_timeline_of_a_server_in_this_notebook",
    r"tests/test_timeline_runs\.py::test_the_compare_panel_draws_the_timelines_it_was_asked_for",
    r"tests/test_reliability_lifecycle\.py::test_everything_that_picks_a_host_defaults_to_loopback",
))


def needs_extras(nodeid: str) -> bool:
    path = nodeid.split("::", 1)[0]
    return (path.endswith(".ipynb") or path in EXTRAS_MODULES
            or any(pattern.match(nodeid) for pattern in EXTRAS_TESTS))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--without-extras", action="store_true",
        help="run only the tests that need nothing but the package and pytest (not those marked extras)",
    )


def pytest_ignore_collect(collection_path: Any, config: pytest.Config) -> bool | None:
    """With --without-extras, modules that need an extra are not even imported."""
    if config.getoption("--without-extras"):
        relative = os.path.relpath(str(collection_path), str(config.rootpath))
        if relative in EXTRAS_MODULES or relative.endswith(".ipynb"):
            return True
    return None


_LESSON = re.compile(r"^tests/test_browser_notebooks\.py::.*\[(\d+)-")

#: The lessons of the browser's second lab; the others (and after 10, the even
#: ones) go to the first. Alternate lessons, but 08 with the odd ones: 04 takes
#: 40 s in the browser, two to four times another lesson (measured, one run:
#: 00 02 04 06 10 took 90 s, 01 03 05 07 08 09 89 s; even and odd, 105 and 74 s).
SECOND_LAB = frozenset({1, 3, 5, 7, 8, 9})


def unit_of(nodeid: str) -> str:
    """The unit a test runs in: the same string for tests that must share a worker."""
    path, _, rest = nodeid.partition("::")
    lesson = _LESSON.match(nodeid)
    if lesson:
        number = int(lesson.group(1))
        second = number in SECOND_LAB if number <= max(SECOND_LAB) else number % 2 == 1
        return f"{path} ({'second' if second else 'first'} lab)"
    if path.endswith(".ipynb") or path in WHOLE_MODULES or not rest:
        return path
    first = rest.split("::", 1)[0]
    if "::" in rest and first[:1].isupper():
        return f"{path}::{first}"  # a test class
    return nodeid  # a test (one parametrized case)


def _rank(item: pytest.Item) -> int:
    for rank, prefix in enumerate(LONG_FIRST):
        if item.nodeid.startswith(prefix):
            return rank
    return len(LONG_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``extras``; long units first, collection order otherwise (a stable sort)."""
    kept = []
    for item in items:
        if needs_extras(item.nodeid):
            item.add_marker(pytest.mark.extras)
            if config.getoption("--without-extras"):
                continue
        kept.append(item)
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    if config.pluginmanager.hasplugin("xdist"):
        items.sort(key=_rank)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per usable core (PYTEST_XDIST_AUTO_NUM_WORKERS
    overrides), since most tests spend most of their time waiting. Five per
    two cores was faster (measured, the whole run, one right after the other:
    four 239 s, five 209 s), but in one CI run of ten with five an nbval
    kernel died before it answered kernel_info (eleven cells of 02-tcp in
    error), which more kernels starting at once make likelier: kept at two."""
    given = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if given:
        return int(given)
    return 2 * len(os.sched_getaffinity(0))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` with the units of :func:`unit_of`."""
    if config.getvalue("dist") != "loadscope":
        return None  # another --dist asked for: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            """The next unit in order, but not one that needs the Binder
            environment while it is being made, if another unit is left."""
            making = config.stash.get(_PREBUILD, None)
            if making is not None and making.is_alive():
                for scope in self.workqueue:
                    if not scope.startswith(_BINDER_USERS):
                        self.workqueue.move_to_end(scope, last=False)
                        break
            super()._assign_work_unit(node)

    return UnitScheduling(config, log)


#: The units that need the Binder environment (prefixes of their names): the
#: lessons in the browser and the wheel's test.
_BINDER_USERS = ("tests/test_browser_notebooks.py", "tests/test_binder.py::test_the_wheel_")


def _runs_binder_users(config: pytest.Config) -> bool:
    if config.getoption("--without-extras") or config.option.keyword:
        return False  # with -k, which tests run is known only once collected: made if one asks
    root = os.path.dirname(os.path.abspath(__file__))
    for arg in config.args:
        path = os.path.relpath(os.path.abspath(arg.split("::", 1)[0]), root)
        if any(user.split("::")[0] == path or user.startswith(path.rstrip("/") + "/") or path == "."
               for user in _BINDER_USERS):
            return True
    return False


_PREBUILD = pytest.StashKey[threading.Thread]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """In the controller of a parallel run that includes the tests needing the
    Binder environment, start making it now, in a thread, in the folder the
    workers share (``run_dir``; packaging_support makes it once per run, under
    a lock: a worker that needs it before it is ready waits, and one that finds
    it failed makes it again and reports why)."""
    config = session.config
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("dsession"):
        return
    if not _runs_binder_users(config):
        return
    tests = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from packaging_support import binder_environment

    shared = config._tmp_path_factory.getbasetemp()  # what the workers' run_dir is (xdist's own basetemp)

    def make() -> None:
        try:
            binder_environment(shared)
        except BaseException:  # noqa: BLE001 - the worker that needs it tries again and reports
            pass

    thread = threading.Thread(target=make, name="sockserve-binder-environment", daemon=True)
    thread.start()
    config.stash[_PREBUILD] = thread


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The controller waits for the environment it started making (unless the
    run was interrupted), so no pip outlives the run."""
    thread = session.config.stash.get(_PREBUILD, None)
    if thread is not None and exitstatus != pytest.ExitCode.INTERRUPTED:
        thread.join()
