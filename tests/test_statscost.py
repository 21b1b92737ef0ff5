"""statscost: what statistics cost per request, read from bench_callgrind's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sockserve.measure.statscost import counting_cost_sentences, counting_cost_table, load_counting_costs

STORED = Path(__file__).resolve().parent.parent / "notebooks" / "data" / "callgrind.json"


def _write(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"python": "3.11.7", "machine": "x86_64", "mode": "new connection per request",
                                "rows": rows}))
    return path


def test_rows_average_the_estimates_and_skip_models_without_a_stats_off_run(tmp_path: Path) -> None:
    path = _write(tmp_path, [
        {"model": "TCPServer", "stdlib_model": "TCPServer", "stdlib_ir": [100.0, 110.0],
         "sockserve_ir": [90.0, 92.0], "stats_off_ir": [80.0, 82.0]},
        {"model": "UDPServer", "stdlib_model": "UDPServer", "stdlib_ir": [50.0], "sockserve_ir": [40.0],
         "stats_off_ir": None},
    ])
    costs = load_counting_costs(path)
    assert [row.model for row in costs.rows] == ["TCPServer"]
    row = costs.rows[0]
    assert (row.counted, row.uncounted, row.stdlib) == (91.0, 81.0, 105.0)
    assert row.cost == 10.0
    assert row.share == pytest.approx(10 / 91)
    assert "TCPServer" in counting_cost_table(costs) and "11.0%" in counting_cost_table(costs)


def test_the_sentences_name_the_cheapest_and_dearest_and_any_model_dearer_than_the_stdlib(tmp_path: Path) -> None:
    path = _write(tmp_path, [
        {"model": "A", "stdlib_ir": [100.0], "sockserve_ir": [90.0], "stats_off_ir": [89.0]},
        {"model": "B", "stdlib_ir": [100.0], "sockserve_ir": [120.0], "stats_off_ir": [90.0]},
    ])
    sentences = counting_cost_sentences(load_counting_costs(path))
    assert "from 1.1% of a request (A, 1 instructions) to 25.0% (B, 30 instructions)" in sentences[1]
    assert sentences[2].startswith("With statistics on, B cost more")
    path = _write(tmp_path, [{"model": "A", "stdlib_ir": [100.0], "sockserve_ir": [90.0], "stats_off_ir": [89.0]}])
    assert "no more instructions per request" in counting_cost_sentences(load_counting_costs(path))[2]


def test_a_run_without_any_stats_off_figure_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"model": "A", "stdlib_ir": [1.0], "sockserve_ir": [1.0], "stats_off_ir": None}])
    with pytest.raises(ValueError, match="collect_stats = False"):
        load_counting_costs(path)


def test_the_stored_run_that_lesson_05_shows_covers_every_model() -> None:
    import sys

    sys.path.insert(0, str(STORED.parent.parent.parent / "benchmarks"))
    try:
        from bench_callgrind import DEFAULT_MODELS
    finally:
        sys.path.pop(0)
    costs = load_counting_costs(STORED)
    assert sorted(row.model for row in costs.rows) == sorted(DEFAULT_MODELS)
    assert all(row.uncounted <= row.counted for row in costs.rows)
