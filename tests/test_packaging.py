"""Packaging: ``python -m build`` makes an sdist and a wheel without a warning,
with an SPDX license and the LICENSE file, and the wheel ships the workbook
(lessons, the teacher's guide and the solutions) for ``sockserve lab`` to copy out."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import sockserve
from packaging_support import ROOT, Built, clean_env

#: Lines the machine's own configuration makes every pip print (an extra
#: index that is not there) and setuptools' note that PYTHONDONTWRITEBYTECODE
#: is set: not ours to fix, and no deprecation.
ENVIRONMENT_NOISE = [
    re.compile(r"WARNING: Location '.*' is ignored"),
    re.compile(r"warning: (build_py|install_lib): byte-compiling is disabled"),
]


def test_build_prints_no_warning_and_no_deprecation(distributions: Built) -> None:
    built = distributions
    flagged = [line for line in built.output.splitlines()
               if re.search(r"warn|deprecat|!!", line, re.IGNORECASE)
               and not any(noise.search(line) for noise in ENVIRONMENT_NOISE)]
    assert not flagged, "python -m build warned:\n" + "\n".join(flagged)


def test_pyproject_declares_an_spdx_license_and_a_backend_that_supports_it() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["license"] == "MIT"
    assert config["project"]["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    (requirement,) = config["build-system"]["requires"]
    match = re.fullmatch(r"setuptools>=(\d+)\.(\d+)\.(\d+)", requirement)
    assert match and tuple(map(int, match.groups())) >= (77, 0, 3), requirement
    assert not any(c.startswith("License ::") for c in config["project"]["classifiers"])


def test_wheel_metadata_has_the_license_expression_and_file(distributions: Built) -> None:
    with zipfile.ZipFile(distributions.wheel) as wheel:
        names = wheel.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(wheel.read(metadata_name))
        assert metadata["License-Expression"] == "MIT"
        assert metadata.get_all("License-File") == ["LICENSE"]
        assert metadata["License"] is None
        licence = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licence and wheel.read(licence[0]) == (ROOT / "LICENSE").read_bytes()


def test_wheel_holds_every_module_and_the_workbook_and_nothing_else_of_notebooks(distributions: Built) -> None:
    with zipfile.ZipFile(distributions.wheel) as wheel:
        names = set(wheel.namelist())
        modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "sockserve").rglob("*.py")}
        assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
        assert "sockserve/py.typed" in names
        shipped = {n.removeprefix("sockserve/notebooks/") for n in names if n.startswith("sockserve/notebooks/")}
        lessons = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        solutions = {f"solutions/{p.name}" for p in (ROOT / "notebooks" / "solutions").glob("*.py")}
        solutions |= {f"data/{p.name}" for p in (ROOT / "notebooks" / "data").glob("*.json")}
        solutions.add("TEACHING.md")
        assert "00-index.ipynb" in lessons and len(solutions) >= 7
        assert shipped == lessons | solutions, sorted(shipped ^ (lessons | solutions))
        for name in shipped:
            assert wheel.read(f"sockserve/notebooks/{name}") == (ROOT / "notebooks" / name).read_bytes(), name


def test_sdist_holds_the_license_and_the_workbook(distributions: Built) -> None:
    with tarfile.open(distributions.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        for needed in ("LICENSE", "pyproject.toml", "README.md", "notebooks/00-index.ipynb",
                       "notebooks/solutions/02-tcp.py", "sockserve/__init__.py"):
            assert needed in names, needed
        (pkg_info,) = [m for m in sdist.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")]
        extracted = sdist.extractfile(pkg_info)
        assert extracted is not None
        assert email.message_from_bytes(extracted.read())["License-Expression"] == "MIT"


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory, distributions: Built) -> tuple[str, dict[str, str]]:
    """A fresh venv with the wheel alone (no extra): its python and the environment to run it in."""
    venv = tmp_path_factory.mktemp("wheel") / "venv"
    env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(venv))
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
                              str(distributions.wheel)], env=env, capture_output=True, text=True,
                             timeout=300)
    assert install.returncode == 0 and "DEPRECATION" not in install.stdout + install.stderr, install
    return python, env


def test_installed_without_the_lab_extra_the_lab_says_what_to_install(
    tmp_path: Path, wheel_venv: tuple[str, dict[str, str]]
) -> None:
    """The wheel alone (no extra) in a fresh venv: the core works, ``sockserve
    lab`` and the panels name the exact command that installs the extra."""
    python, env = wheel_venv
    venv = Path(python).parent.parent
    expected = f"{python} -m pip install 'sockserve[lab]'"
    for command in ([str(venv / "bin" / "sockserve"), "lab"], [python, "-m", "sockserve", "lab", "--no-browser"]):
        lab = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert lab.returncode == 2 and lab.stdout == "", lab
        (line,) = lab.stderr.strip().splitlines()
        assert line.startswith("sockserve lab: error: the lab needs the lab extra") and line.endswith(expected)
    assert not (tmp_path / "sockserve-workbook").exists()  # nothing copied before the check
    panel = subprocess.run([python, "-c", "from sockserve.lab import ServerPanel"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert panel.returncode == 1
    assert panel.stderr.strip().splitlines()[-1] == (
        "ImportError: sockserve.lab.ServerPanel needs the lab extra (ipywidgets is not installed); "
        f"install it with: {expected}")
    version = subprocess.run([str(venv / "bin" / "sockserve"), "--version"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"sockserve {sockserve.__version__}"



def test_installed_from_the_wheel_the_workbook_runs_its_child_processes(
    tmp_path: Path, wheel_venv: tuple[str, dict[str, str]]
) -> None:
    """The lessons' helpers that start a Python of their own (lesson 06's
    exit demo) import the installed sockserve in it, from any folder."""
    python, env = wheel_venv
    code = ("from sockserve.workbook import exit_with_handler_running as demo; "
            "print(demo(False, 0.2)); print(demo(True, 0.2))")
    run = subprocess.run([python, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    waited, killed = run.stdout.splitlines()
    assert "waited" in waited and "killed" in killed

def test_the_pythons_claimed_are_the_ones_ci_tests() -> None:
    """requires-python, the version classifiers and the Pythons .ci/other-pythons
    looks for (beside the main one) say the same range."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    claimed = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"]
               if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert claimed, "no Programming Language :: Python :: 3.X classifier"
    assert project["requires-python"] == f">={claimed[0]}"
    minors = [int(version.split(".")[1]) for version in claimed]
    assert minors == list(range(minors[0], minors[-1] + 1)), claimed
    looked_for = re.search(r"^for version in ([\d. ]+); do$", (ROOT / ".ci" / "other-pythons").read_text(), re.M)
    assert looked_for is not None and looked_for.group(1).split() == claimed
