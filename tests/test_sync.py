"""notebooks/src/sync.py: panels saved as pictures, and no outputs saved from a busy machine.

sync.py is a script, loaded here from its file; its notebook execution is
replaced by a stand-in that says how busy the machine was, so these tests
run in a moment and check what is saved, and when."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest

from sockserve.measure.machine import Busy

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture
def sync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lesson_sync_under_test", NOTEBOOKS / "src" / "sync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _busy(share: float) -> Busy:
    return Busy(seconds=30.0, cores_usable=2.0, cores_source="affinity", own_cores=0.5,
                other_cores=2.0 * share, loadavg=1.0)


def _panel_notebook(sync: ModuleType) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("display(server, traffic)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={sync.WIDGET_VIEW: {"model_id": model},
                                                                 "text/plain": "ServerPanel(...)"})
                    for model in ("m-server", "m-traffic")]
    nb.cells = [cell]
    return nb


def test_a_panel_is_saved_as_the_picture_of_its_final_state(sync: ModuleType) -> None:
    nb = _panel_notebook(sync)
    views = {"m-server": [{"text/plain": "Server panel: threading (echo) serving"}],
             "m-traffic": [{"image/svg+xml": "<svg/>", "text/plain": "Latency chart: 12 replies"},
                           {"text/plain": "Latency chart: 12 replies"}]}
    sync.without_widgets(nb, views)
    outputs = nb.cells[0].outputs
    assert [list(o["data"]) for o in outputs] == [["text/plain"], ["image/svg+xml", "text/plain"], ["text/plain"]]
    assert all(sync.WIDGET_VIEW not in o["data"] for o in outputs)
    # A panel with no picture (not alive at the end) keeps the one line, once per cell.
    nb = _panel_notebook(sync)
    sync.without_widgets(nb, {"m-server": views["m-server"]})
    assert [o.get("text") for o in nb.cells[0].outputs] == [None, sync.RUN_THIS_CELL]


def test_the_last_extra_cell_hands_over_the_pictures_as_json(sync: ModuleType) -> None:
    cell = nbformat.v4.new_code_cell(sync.SNAPSHOT_CODE)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text='{"m": [{"text/plain": "x"}]}\n')]
    assert sync._views_from(cell) == {"m": [{"text/plain": "x"}]}
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="not json\n")]
    assert sync._views_from(cell) == {}


def _run_main(sync: ModuleType, tmp_path: Path, share: float, monkeypatch: pytest.MonkeyPatch,
              *flags: str) -> tuple[int, nbformat.NotebookNode]:
    notebook = tmp_path / "99-test.ipynb"
    old = nbformat.v4.new_notebook()
    old.cells = [nbformat.v4.new_code_cell("print(1)")]
    old.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="old output\n")]
    nbformat.write(old, notebook)
    fresh = nbformat.v4.new_notebook()
    fresh.cells = [nbformat.v4.new_code_cell("print(1)")]
    fresh.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="new output\n")]

    def execute(path: Path, timeout: float) -> tuple[Any, Busy, float]:
        assert path == notebook
        return fresh, _busy(share), 30.0

    monkeypatch.setattr(sync, "sync", lambda stem: notebook)
    monkeypatch.setattr(sync, "execute", execute)
    status = sync.main([*flags, "99-test"])
    return status, nbformat.read(notebook, as_version=4)


def test_outputs_measured_on_a_busy_machine_are_not_saved(sync: ModuleType, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    status, saved = _run_main(sync, tmp_path, 0.6, monkeypatch)
    assert status == 1
    assert saved.cells[0].outputs[0]["text"] == "old output\n"  # left as it was
    err = capsys.readouterr().err
    assert "NOT SAVED 99-test.ipynb" in err and "1.20 of the 2 cores" in err and "25%" in err


def test_a_quiet_machine_saves_and_records_cores_and_load(sync: ModuleType, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    status, saved = _run_main(sync, tmp_path, 0.1, monkeypatch)
    assert status == 0 and saved.cells[0].outputs[0]["text"] == "new output\n"
    record = saved.metadata["sockserve"]["executed_on"]
    assert record["cores"] == 2.0 and record["other_cores"] == pytest.approx(0.2)
    assert record["busy_threshold"] == sync.BUSY_THRESHOLD == 0.25 and record["forced"] is False


def test_force_saves_a_busy_run_and_says_so_in_the_notebook(sync: ModuleType, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    status, saved = _run_main(sync, tmp_path, 0.6, monkeypatch, "--force")
    assert status == 0 and saved.cells[0].outputs[0]["text"] == "new output\n"
    assert saved.metadata["sockserve"]["executed_on"]["forced"] is True
    # A threshold of one's own choosing.
    status, saved = _run_main(sync, tmp_path, 0.6, monkeypatch, "--busy-threshold", "0.7")
    assert status == 0 and saved.metadata["sockserve"]["executed_on"]["forced"] is False
