"""Real projects' test suites with ``socketserver`` swapped for sockserve, against the stdlib.

Each project's own tests run twice in one go, in the same environment: once
as they are (the standard library's ``socketserver``) and once with
``sys.modules["socketserver"] = sockserve`` installed by a
``sitecustomize.py`` before anything imports socketserver. The table gives
passed / failed / errors for each, and the tests that pass on the stdlib and
fail on sockserve.

    python benchmarks/bench_thirdparty.py --work /tmp/sockserve-thirdparty [--only werkzeug ...]
        [--source sliplib=/path/to/a/checkout] [--runs 1] [--timeout 900]

What it does, all under ``--work`` (nothing outside it is written):

1. gets each project's sdist from PyPI (``pip download --no-binary :all:
   --no-deps``), or uses ``--source NAME=DIR`` (sliplib's sdist has no tests and
   jsonrpclib-pelix's lacks a module they import: give each a checkout of its
   repository);
2. makes one virtual environment, installs the projects and what their tests
   need (PyPI only), and sockserve from this checkout (editable);
3. runs each suite with pytest (JUnit XML for the counts), stdlib then swapped.

No network but PyPI; the suites themselves talk to loopback only. Run by
hand; the figures depend on the machine's load (print ``uptime`` beside them).
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SITECUSTOMIZE = '''\
import os, sys
if os.environ.get("SOCKSERVE_SWAP") == "1":
    import sockserve
    sys.modules["socketserver"] = sockserve
    assert sys.modules["socketserver"] is sockserve
'''


@dataclass(frozen=True)
class Project:
    """One suite: its PyPI name, where its tests are inside the source, and
    what they need besides pytest."""

    name: str
    tests: tuple[str, ...]
    needs: tuple[str, ...] = ()
    pytest_args: tuple[str, ...] = ()


PROJECTS = {
    # (pytest-asyncio, installed for prometheus_client, warns at start-up, and
    # werkzeug's warnings-as-errors would stop the run: it is kept out.)
    "werkzeug": Project("werkzeug", ("tests",), ("pytest-timeout", "pytest-xprocess", "cryptography",
                                                 "ephemeral-port-reserve", "watchdog", "greenlet"),
                        ("-p", "no:asyncio")),
    "pytest-httpserver": Project("pytest-httpserver", ("tests",), ("requests", "toml")),
    # Its sdist lacks tests/utilities.py: give --source jsonrpclib-pelix=<a checkout>.
    "jsonrpclib-pelix": Project("jsonrpclib-pelix", ("tests",)),
    # dnslib's tests are the doctests of its modules (run_tests.sh runs each
    # file); server.py's start real UDP and TCP servers.
    "dnslib": Project("dnslib", ("dnslib",), (), ("--doctest-modules", "-p", "no:python")),
    "prometheus_client": Project("prometheus_client", ("tests",), ("pytest-asyncio", "asgiref")),
    "sliplib": Project("sliplib", ("tests",), ("pytest-mock", "semantic-version-check")),
    # Three more that subclass socketserver's servers (found by the earlier
    # run of issue 23): sshtunnel's forwarders (ThreadingTCPServer, Unix
    # ones included), python-osc's OSC servers (UDP and TCP, threading and
    # forking; its PyPI sdist does not build: give --source python-osc=<a
    # checkout>), pytest-localserver's HTTP server (through http.server).
    "sshtunnel": Project("sshtunnel", ("tests",), ("paramiko", "mock")),
    "python-osc": Project("python-osc", ("pythonosc/test",)),
    "pytest-localserver": Project("pytest-localserver", ("tests",), ("requests", "aiosmtpd"), ("-p", "no:asyncio")),
}


@dataclass
class Outcome:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    bad: set[str] = field(default_factory=set)
    note: str = ""

    def cell(self) -> str:
        return f"{self.passed}/{self.failed}/{self.errors}"


def sh(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        argv, capture_output=True, text=True, check=False, **kwargs)
    return result


def fetch(project: Project, work: str, sources: dict[str, str]) -> str:
    """The project's source folder (an unpacked sdist, or the --source given)."""
    if project.name in sources:
        return sources[project.name]
    sdists = os.path.join(work, "sdists")
    os.makedirs(sdists, exist_ok=True)
    prefix = project.name.replace("-", "_").lower()
    found = [p for p in glob.glob(os.path.join(sdists, "*.tar.gz"))
             if os.path.basename(p).replace("-", "_").lower().startswith(prefix + "_")]
    if not found:
        result = sh([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q",
                     "-d", sdists, project.name])
        if result.returncode:
            raise RuntimeError(f"pip download {project.name}: {result.stderr.strip()[-500:]}")
        found = [p for p in glob.glob(os.path.join(sdists, "*.tar.gz"))
                 if os.path.basename(p).replace("-", "_").lower().startswith(prefix + "_")]
    archive = sorted(found)[-1]
    folder = archive[:-len(".tar.gz")]
    if not os.path.isdir(folder):
        with tarfile.open(archive) as tar:
            tar.extractall(sdists, filter="data")
    return folder


def prepare(work: str, sources: dict[str, str], projects: list[Project]) -> tuple[str, dict[str, str]]:
    """The environment's python and each project's source folder."""
    venv = os.path.join(work, "venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        sh([sys.executable, "-m", "venv", venv])
    folders = {p.name: fetch(p, work, sources) for p in projects}
    needs = sorted({"pytest", "pytest-timeout", *(n for p in projects for n in p.needs)})
    result = sh([python, "-m", "pip", "install", "-q", *needs, *folders.values(), "-e", HERE])
    if result.returncode:
        raise RuntimeError(f"pip install: {result.stderr.strip()[-2000:]}")
    swap = os.path.join(work, "swap")
    os.makedirs(swap, exist_ok=True)
    with open(os.path.join(swap, "sitecustomize.py"), "w", encoding="utf-8") as out:
        out.write(SITECUSTOMIZE)
    return python, folders


def run_suite(python: str, project: Project, folder: str, work: str, swapped: bool,
              timeout: float) -> Outcome:
    label = "sockserve" if swapped else "stdlib"
    report = os.path.join(work, f"{project.name}-{label}.xml")
    env = dict(os.environ, PYTHONPATH=os.path.join(work, "swap"), SOCKSERVE_SWAP="1" if swapped else "0",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    argv = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=120", f"--junitxml={report}",
            "-o", "addopts=", *project.pytest_args, *project.tests]
    # Which socketserver the suite's interpreter really gets (the swap must hold).
    probe = sh([python, "-c", "import socketserver; print(socketserver.__name__)"], env=env, cwd=folder)
    began = time.monotonic()
    try:
        result = sh(argv, env=env, cwd=folder, timeout=timeout)
        tail = result.stdout.strip().splitlines()[-1:] if result.stdout.strip() else []
    except subprocess.TimeoutExpired:
        return Outcome(note=f"timed out after {timeout:g} s", seconds=timeout)
    outcome = Outcome(seconds=time.monotonic() - began, note=f"socketserver is {probe.stdout.strip()}")
    if not os.path.exists(report):
        outcome.note += f"; no report: {' '.join(tail)} {result.stderr.strip()[-300:]}"
        return outcome
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "error" in kinds:
            outcome.errors += 1
            outcome.bad.add(name)
        elif "failure" in kinds:
            outcome.failed += 1
            outcome.bad.add(name)
        elif "skipped" in kinds:
            outcome.skipped += 1
        else:
            outcome.passed += 1
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/sockserve-thirdparty", help="where everything goes")
    parser.add_argument("--only", nargs="*", choices=sorted(PROJECTS))
    parser.add_argument("--source", action="append", default=[], metavar="NAME=DIR",
                        help="use this source folder instead of the sdist (sliplib needs one)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each suite on each side")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per suite run")
    args = parser.parse_args()
    sources = dict(item.split("=", 1) for item in args.source)
    projects = [PROJECTS[name] for name in (args.only or PROJECTS)]
    os.makedirs(args.work, exist_ok=True)
    python, folders = prepare(args.work, sources, projects)
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; each cell passed/failed/errors; runs {args.runs}")
    print(f"{'project':<20} {'stdlib':>14} {'sockserve':>14} {'s stdlib':>9} {'s ours':>8}  "
          "fail only on sockserve")
    for project in projects:
        for run in range(args.runs):
            stdlib = run_suite(python, project, folders[project.name], args.work, False, args.timeout)
            ours = run_suite(python, project, folders[project.name], args.work, True, args.timeout)
            only_ours = sorted(ours.bad - stdlib.bad)
            shown = ", ".join(name.rsplit(".", 1)[-1] for name in only_ours[:6])
            more = f" (+{len(only_ours) - 6})" if len(only_ours) > 6 else ""
            print(f"{project.name:<20} {stdlib.cell():>14} {ours.cell():>14} {stdlib.seconds:9.1f} "
                  f"{ours.seconds:8.1f}  {len(only_ours)}: {shown}{more}", flush=True)
            for side, outcome in (("stdlib", stdlib), ("sockserve", ours)):
                if "socketserver is" not in outcome.note or "no report" in outcome.note:
                    print(f"    {side}: {outcome.note}")
            with open(os.path.join(args.work, f"{project.name}-only-sockserve.txt"), "w") as out:
                out.write("\n".join(only_ours) + "\n")


if __name__ == "__main__":
    main()
