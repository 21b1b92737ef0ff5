"""The workbook's notebooks and their jupytext sources (``notebooks/src/*.py``)
say the same thing, and the notebooks are executed.

A pair is in sync when jupytext, writing the notebook as a percent script with
the folder's ``jupytext.toml``, produces exactly the committed source: a
source edited without re-syncing the notebook fails here, and so does a
notebook edited (in JupyterLab without jupytext, say) without its source.
``python notebooks/src/sync.py LESSON`` repairs either.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SYNC = "python notebooks/src/sync.py"
STEMS = sorted({p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")}
               | {p.stem for p in (NOTEBOOKS / "src").glob("[0-9][0-9]-*.py")})


def as_source(notebook: Path) -> str:
    """The percent script jupytext writes for *notebook* with the folder's configuration."""
    config = load_jupytext_config(str(notebook))
    assert config is not None, f"no jupytext configuration applies to {notebook}"
    return str(jupytext.writes(nbformat.read(notebook, as_version=4), fmt="py:percent", config=config))


def test_every_notebook_has_a_source_and_every_source_a_notebook() -> None:
    assert "00-index" in STEMS and len(STEMS) >= 8, STEMS
    for stem in STEMS:
        assert (NOTEBOOKS / f"{stem}.ipynb").is_file(), f"notebooks/src/{stem}.py has no notebook: run {SYNC} {stem}"
        assert (NOTEBOOKS / "src" / f"{stem}.py").is_file(), f"{stem}.ipynb has no source: run {SYNC} {stem}"


def test_the_folder_pairs_notebooks_with_percent_scripts_in_src() -> None:
    config = load_jupytext_config(str(NOTEBOOKS / "00-index.ipynb"))
    assert config is not None and config.formats == ["ipynb,src//py:percent"], config


@pytest.mark.parametrize("stem", STEMS)
def test_pair_is_in_sync(stem: str) -> None:
    notebook, source = NOTEBOOKS / f"{stem}.ipynb", NOTEBOOKS / "src" / f"{stem}.py"
    expected = as_source(notebook)
    actual = source.read_text(encoding="utf-8")
    if expected != actual:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True),
            f"from notebooks/{stem}.ipynb", f"notebooks/src/{stem}.py", n=1,
        ))
        pytest.fail(f"notebooks/{stem}.ipynb and its source differ; run {SYNC} {stem}\n{diff[:4000]}")


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_is_executed_and_tags_survive_the_source(stem: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    unexecuted = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.execution_count is None]
    assert code and not unexecuted, f"{stem}.ipynb has unexecuted cells {unexecuted}: run {SYNC} {stem}"
    # What nbval reads (tags) must come back from the source unchanged.
    from_source = jupytext.read(NOTEBOOKS / "src" / f"{stem}.py")
    assert [c.metadata.get("tags", []) for c in from_source.cells] == [c.metadata.get("tags", []) for c in nb.cells]


def test_the_check_catches_a_source_edited_without_syncing(tmp_path: Path) -> None:
    """The detector itself: a one-word change on either side is a difference."""
    copy = tmp_path / "notebooks"
    (copy / "src").mkdir(parents=True)
    (copy / "jupytext.toml").write_bytes((NOTEBOOKS / "jupytext.toml").read_bytes())
    stem = STEMS[1]
    (copy / f"{stem}.ipynb").write_bytes((NOTEBOOKS / f"{stem}.ipynb").read_bytes())
    source = (NOTEBOOKS / "src" / f"{stem}.py").read_text(encoding="utf-8")
    assert as_source(copy / f"{stem}.ipynb") == source
    nb = nbformat.read(copy / f"{stem}.ipynb", as_version=4)
    nb.cells[-1].source += "\n# edited in the notebook only"
    nbformat.write(nb, copy / f"{stem}.ipynb")
    assert as_source(copy / f"{stem}.ipynb") != source
    # ... and sync.py (jupytext --sync, the newer file wins) brings the source along.
    (copy / "src" / f"{stem}.py").write_text(source, encoding="utf-8")
    (copy / "src" / "sync.py").write_bytes((NOTEBOOKS / "src" / "sync.py").read_bytes())
    os.utime(copy / "src" / f"{stem}.py", (1, 1))
    proc = subprocess.run([sys.executable, str(copy / "src" / "sync.py"), "--no-execute", stem],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    synced = (copy / "src" / f"{stem}.py").read_text(encoding="utf-8")
    assert synced.rstrip().endswith("# edited in the notebook only") and synced == as_source(copy / f"{stem}.ipynb")
