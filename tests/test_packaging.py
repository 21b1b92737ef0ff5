"""Packaging: ``python -m build`` makes an sdist and a wheel without a warning,
with an SPDX license and the LICENSE file, and the wheel ships the workbook
(lessons and solutions) for ``sockserve lab`` to copy out."""

from __future__ import annotations

import email
import re
import sys
import tarfile
import zipfile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from packaging_support import ROOT, build_distributions

#: Lines the machine's own configuration makes every pip print (an extra
#: index that is not there) and setuptools' note that PYTHONDONTWRITEBYTECODE
#: is set: not ours to fix, and no deprecation.
ENVIRONMENT_NOISE = [
    re.compile(r"WARNING: Location '.*' is ignored"),
    re.compile(r"warning: (build_py|install_lib): byte-compiling is disabled"),
]


def test_build_prints_no_warning_and_no_deprecation() -> None:
    built = build_distributions()
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


def test_wheel_metadata_has_the_license_expression_and_file() -> None:
    with zipfile.ZipFile(build_distributions().wheel) as wheel:
        names = wheel.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(wheel.read(metadata_name))
        assert metadata["License-Expression"] == "MIT"
        assert metadata.get_all("License-File") == ["LICENSE"]
        assert metadata["License"] is None
        licence = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licence and wheel.read(licence[0]) == (ROOT / "LICENSE").read_bytes()


def test_wheel_holds_every_module_and_the_workbook_and_nothing_else_of_notebooks() -> None:
    with zipfile.ZipFile(build_distributions().wheel) as wheel:
        names = set(wheel.namelist())
        modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "sockserve").rglob("*.py")}
        assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
        assert "sockserve/py.typed" in names
        shipped = {n.removeprefix("sockserve/notebooks/") for n in names if n.startswith("sockserve/notebooks/")}
        lessons = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        solutions = {f"solutions/{p.name}" for p in (ROOT / "notebooks" / "solutions").glob("*.py")}
        assert "00-index.ipynb" in lessons and len(solutions) >= 7
        assert shipped == lessons | solutions, sorted(shipped ^ (lessons | solutions))
        for name in shipped:
            assert wheel.read(f"sockserve/notebooks/{name}") == (ROOT / "notebooks" / name).read_bytes(), name


def test_sdist_holds_the_license_and_the_workbook() -> None:
    with tarfile.open(build_distributions().sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        for needed in ("LICENSE", "pyproject.toml", "README.md", "notebooks/00-index.ipynb",
                       "notebooks/solutions/02-tcp.py", "sockserve/__init__.py"):
            assert needed in names, needed
        (pkg_info,) = [m for m in sdist.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")]
        extracted = sdist.extractfile(pkg_info)
        assert extracted is not None
        assert email.message_from_bytes(extracted.read())["License-Expression"] == "MIT"
