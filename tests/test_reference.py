"""sockserve.measure.reference and benchmarks/record_reference.py: the stored
run lesson 04 shows beside the student's, labelled as not theirs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from sockserve.measure.reference import REFERENCE_FILE, Reference, load_reference

ROOT = Path(__file__).resolve().parent.parent
STORED = ROOT / "notebooks" / REFERENCE_FILE


def test_the_stored_reference_loads_and_says_whose_it_is() -> None:
    reference = load_reference(STORED)
    recorded = reference.recorded
    assert [run.server for run in reference.cpu.runs] == ["plain", "threading", "forking"]
    assert reference.cpu.workload == "cpu" and reference.cpu.rounds >= 2
    assert reference.convoy is not None and reference.convoy.servers() == ["plain", "threading", "forking"]
    for key in ("created", "machine", "python", "usable_cores", "loadavg", "others_took", "quiet", "provisional"):
        assert key in recorded, key
    label = reference.label()
    assert label.startswith("Not your machine: a reference run recorded on ")
    assert f"with {recorded['usable_cores']:g} cores" in label
    assert f"other programs took {recorded['others_took']:.2f} of its" in label
    # A run from a busy machine is only ever a provisional stand-in, and says so.
    assert reference.quiet or (reference.provisional and "Provisional:" in label)
    # Its sentences are about its cores, never the reader's.
    text = reference.report()
    assert "your" not in text and "of its 2 cores" in text


def test_the_label_follows_what_was_recorded() -> None:
    quiet = Reference(load_reference(STORED).cpu, None, {
        "created": "2027-01-02T10:00:00+0000", "machine": "arm64", "python": "3.12.1", "usable_cores": 8.0,
        "loadavg": [0.05, 0.4], "others_took": 0.03, "quiet": True, "provisional": False})
    assert quiet.label() == ("Not your machine: a reference run recorded on 2027-01-02 on a quiet machine with "
                             "8 cores (arm64, Python 3.12.1, load average 0.05); other programs took 0.03 of its "
                             "8 cores during it.")


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("record_reference", ROOT / "benchmarks" / "record_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["record_reference"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("quiet, cores, provisional, written", [
    (True, 4.0, False, True),
    (False, 4.0, False, False),    # busy: refused
    (True, 1.0, False, False),     # one core: refused
    (False, 2.0, True, True),      # busy, but marked provisional
])
def test_the_recorder_refuses_a_busy_or_single_core_machine_unless_provisional(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        quiet: bool, cores: float, provisional: bool, written: bool) -> None:
    script = _script()
    stored = load_reference(STORED)

    def fake(**kwargs: Any) -> Reference:
        assert kwargs["provisional"] is provisional
        return Reference(stored.cpu, stored.convoy, {**stored.recorded, "quiet": quiet, "usable_cores": cores,
                                                     "provisional": provisional})

    monkeypatch.setattr(script, "record_reference", fake)
    out = tmp_path / "ref.json"
    status = script.main(["--out", str(out)] + (["--provisional"] if provisional else []))
    assert (status == 0) is written and out.exists() is written
    if not written:
        assert "not written" in capsys.readouterr().err
    else:
        assert load_reference(out).recorded["provisional"] is provisional
