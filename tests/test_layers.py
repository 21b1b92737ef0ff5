"""The package's folders are its layers, and imports point one way.

Each module's imports (at the top and inside functions alike) are read from
its source and checked against the layer of its folder: the core imports
only the standard library; every other layer only the ones below it (and
the third-party packages its extra brings, for plots and the teaching
layer).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sockserve

PACKAGE = Path(sockserve.__file__).resolve().parent

#: Folder -> its rank; a module may import from folders of a lower or equal rank.
RANKS = {
    "core": 0,
    "kernel": 1,
    "load": 2,
    "measure": 3,
    "plots": 4,
    "workbook": 5,
    "exercises": 5,
    "lab": 5,
    "cli": 6,
}
#: What each layer may import beyond the standard library and the package.
THIRD_PARTY = {
    "plots": {"matplotlib", "numpy"},
    "workbook": {"matplotlib", "IPython"},
    "exercises": {"matplotlib", "IPython"},
    "lab": {"ipywidgets", "traitlets", "IPython", "matplotlib", "numpy"},
}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or target in ("sockserve",):
                # "from . import x": x may be a submodule
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "sockserve":
        return None
    if len(parts) == 1 or parts[1] not in RANKS:
        return "top"  # sockserve itself (the core's facade) and __main__
    return parts[1]


def _violations() -> list[str]:
    problems = []
    stdlib = set(sys.stdlib_module_names)
    for module, path in _modules():
        here = _layer(module)
        rank = RANKS.get(here or "", -1)
        for line, target in _imports(module, path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}"
            top = target.split(".")[0]
            if top == "sockserve":
                there = _layer(target)
                if there == "top":
                    attribute = target.split(".")[1] if target.count(".") else ""
                    if attribute in ("__version__", ""):
                        continue  # the package's version, or "import sockserve": the core
                    if module == "sockserve.__main__" and target.startswith("sockserve.cli"):
                        continue
                    there = "core"
                if here == "top":
                    if there != "core" and module != "sockserve.__main__":
                        problems.append(where + " (the package's top imports the core only)")
                    continue
                if RANKS[there] > rank:  # type: ignore[index]
                    problems.append(where + f" (layer {here} may not import {there})")
            elif top not in stdlib and top not in THIRD_PARTY.get(here or "", set()) and here != "cli":
                problems.append(where + " (not the standard library)")
    return problems


def test_every_module_lives_in_a_layer_folder() -> None:
    loose = [module for module, _ in _modules()
             if _layer(module) == "top" and module not in ("sockserve", "sockserve.__main__")
             and not module.startswith("sockserve.notebooks")]
    assert loose == []


def test_imports_point_down_the_layers() -> None:
    assert _violations() == []


def test_the_check_sees_an_import_against_the_layers(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from ..plots import comparison\n")
    assert _imports("sockserve.core.bad", source) == [(2, "sockserve.plots")]
    assert _layer("sockserve.plots.comparison") == "plots"
    assert RANKS["plots"] > RANKS["core"]


def test_import_sockserve_loads_the_core_only() -> None:
    code = (
        "import sys, sockserve\n"
        "print(sorted(m for m in sys.modules if m.startswith('sockserve')))\n"
        "print(len(sockserve.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded, count = out.splitlines()
    outside = [m for m in ast.literal_eval(loaded) if m != "sockserve" and not m.startswith("sockserve.core")]
    assert outside == []
    assert int(count) == 29


@pytest.mark.parametrize("name", sockserve.__all__)
def test_public_names_report_the_package(name: str) -> None:
    public = getattr(sockserve, name)
    assert public.__module__ == "sockserve"
    assert getattr(sys.modules[public.__module__], public.__qualname__) is public


# The heavy general-purpose modules the core does without (issue 26: a forking
# server pays for its size on every fork): typing alone is ~0.9 MB of private
# memory; dataclasses brings inspect and ast; logging and contextlib are not needed.
NOT_LOADED = ("typing", "dataclasses", "inspect", "ast", "logging", "contextlib")


def test_import_sockserve_loads_no_heavy_stdlib_module() -> None:
    code = f"import sys, sockserve\nprint([m for m in {NOT_LOADED!r} if m in sys.modules])\n"
    # -S: no site packages (whose .pth hooks may import anything themselves).
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)}).stdout
    assert out.strip() == "[]", f"import sockserve loaded {out.strip()}"


def test_records_behave_as_typing_namedtuples() -> None:
    from sockserve.core.records import NamedTuple

    class Pair(NamedTuple):
        """Two numbers."""

        left: int
        right: int = 2

        @property
        def total(self) -> int:
            return self.left + self.right

    pair = Pair(1)
    assert pair == (1, 2) and pair.total == 3 and pair._replace(right=5).total == 6
    assert Pair._fields == ("left", "right") and Pair.__doc__ == "Two numbers."
    assert repr(pair) == "Pair(left=1, right=2)" and isinstance(pair, tuple)
    assert Pair.__qualname__.endswith("test_records_behave_as_typing_namedtuples.<locals>.Pair")
