"""Drop-in proof: CPython's own socketserver tests, run against sockserve.

The interpreter's ``test.test_socketserver`` is imported with
``sys.modules["socketserver"] = sockserve`` in a fresh subprocess, so every
server class it builds is sockserve's. Only ``MiscTestCase.test_all`` is left
out: it checks that each public object's ``__module__`` is literally
``"socketserver"``, which a different package cannot satisfy.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

EXCLUDED = {"test.test_socketserver.MiscTestCase.test_all"}

RUNNER = textwrap.dedent(
    """
    import json, sys, unittest
    import sockserve
    sys.modules["socketserver"] = sockserve
    import test.support
    test.support.verbose = False
    import test.test_socketserver as suite_module
    assert suite_module.socketserver is sockserve
    excluded = set(json.loads(sys.argv[1]))

    def without(suite):
        kept = unittest.TestSuite()
        for item in suite:
            if isinstance(item, unittest.TestSuite):
                kept.addTest(without(item))
            elif item.id() not in excluded:
                kept.addTest(item)
        return kept

    tests = without(unittest.defaultTestLoader.loadTestsFromModule(suite_module))
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(tests)
    print(json.dumps({
        "run": result.testsRun,
        "failures": [t.id() for t, _ in result.failures],
        "errors": [t.id() for t, _ in result.errors],
        "skipped": [[t.id(), why] for t, why in result.skipped],
    }))
    """
)


def _has_stdlib_tests() -> bool:
    try:
        return importlib.util.find_spec("test.test_socketserver") is not None
    except ImportError:
        return False


@pytest.mark.skipif(
    not _has_stdlib_tests(),
    reason="this interpreter ships no 'test' package (Debian: install libpython3-testsuite)",
)
def test_cpython_socketserver_suite_passes_on_sockserve() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(sorted(EXCLUDED))],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failures"] == [], proc.stderr[-4000:]
    assert report["errors"] == [], proc.stderr[-4000:]
    # The suite has well over 20 tests on every supported version; a tiny
    # number would mean it was not really loaded.
    assert report["run"] >= 20
    # Forking and Unix sockets exist here, so nothing should be skipped for
    # lack of them; list any skip so a reader sees it.
    assert report["skipped"] == [], report["skipped"]
