"""How one test run is spread over parallel workers (pytest-xdist).

The suite mostly waits (on servers, subprocesses, kernels, a browser), so
``-n auto`` (pyproject's addopts) starts two workers per usable core, and
``--dist loadscope`` hands each worker whole *units*, refined here:

* a test module (or test class) is one unit, so its module-scoped fixtures
  are made once and its tests run in file order;
* a lesson run by nbval is one unit (its cells share one kernel, in order);
* ``test_packaging`` and ``test_binder`` are one unit: they share the wheel,
  which ``packaging_support.build_distributions`` builds once per process;
* ``test_browser_notebooks`` is two units (even and odd lessons), each with
  its own JupyterLab and Chromium, so the longest module runs on two workers.

Units are started longest first (``LONG_FIRST``: measured, each keeps a worker
busy for half a minute or more), then in collection order, so that the long
ones overlap everything else instead of queueing at the end. The order only
changes how long the run takes, never what it checks.

This file sits at the top of the repository, not in ``tests/``, so that it
governs ``pytest notebooks/`` too. The fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

#: Units that each keep a worker busy for half a minute or more, in the order
#: they are started (prefixes of node ids).
LONG_FIRST = (
    "tests/test_browser_notebooks.py",
    "tests/test_binder.py",
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

#: Modules that run in the same unit as another (they share work in-process).
SAME_UNIT = {"tests/test_packaging.py": "tests/test_binder.py"}

_LESSON = re.compile(r"^tests/test_browser_notebooks\.py::.*\[(\d+)-")


def unit_of(nodeid: str) -> str:
    """The unit a test runs in: the same string for tests that must share a worker."""
    path, _, rest = nodeid.partition("::")
    if path in SAME_UNIT:
        return SAME_UNIT[path]
    lesson = _LESSON.match(nodeid)
    if lesson:
        return f"{path} ({'odd' if int(lesson.group(1)) % 2 else 'even'} lessons)"
    if path.endswith(".ipynb"):
        return path
    cls = rest.split("::", 1)[0]
    return f"{path}::{cls}" if "::" in rest and cls[:1].isupper() else path


def _rank(item: pytest.Item) -> int:
    for rank, prefix in enumerate(LONG_FIRST):
        if item.nodeid.startswith(prefix):
            return rank
    return len(LONG_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long units first; collection order otherwise (a stable sort)."""
    if config.pluginmanager.hasplugin("xdist"):
        items.sort(key=_rank)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per usable core (PYTEST_XDIST_AUTO_NUM_WORKERS
    overrides), since most tests spend most of their time waiting."""
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

    return UnitScheduling(config, log)
