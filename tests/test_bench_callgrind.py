"""The machinery of benchmarks/bench_callgrind.py, without valgrind.

The benchmark itself runs by hand (callgrind makes Python ~50x slower); these
tests run its server program, client and arithmetic for a few requests, so a
change that breaks the harness shows here.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_callgrind.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_callgrind", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_callgrind"] = module  # dataclasses look the module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_callgrind", None)


def test_models_are_set_against_the_closest_stdlib_class(bench: ModuleType) -> None:
    assert bench.model("TCPServer") == bench.Model("TCPServer", "TCPServer", "tcp")
    assert bench.model("ThreadPoolTCPServer").stdlib == "ThreadingTCPServer"
    assert bench.model("ThreadPoolUnixStreamServer") == bench.Model(
        "ThreadPoolUnixStreamServer", "ThreadingUnixStreamServer", "unix"
    )
    assert bench.model("PreForkTCPServer").stdlib == "ForkingTCPServer"
    assert bench.model("ThreadingUnixDatagramServer").family == "unixdgram"
    assert bench.model("UDPServer").family == "udp"
    with pytest.raises(SystemExit, match="NoSuchServer"):
        bench.model("NoSuchServer")


def test_callgrind_files_are_summed_by_their_summary_lines(bench: ModuleType, tmp_path: Path) -> None:
    # A forked child's totals: line counts costs zeroed at the fork; only
    # summary: is what the file holds.
    (tmp_path / "callgrind.out.10").write_text("events: Ir\nsummary: 1000\nfn=a\n0 1000\ntotals: 1000\n")
    (tmp_path / "callgrind.out.11").write_text("events: Ir\nsummary: 250\nfn=b\n0 250\ntotals: 9999\n")
    assert bench.callgrind_total(tmp_path) == 1250
    (tmp_path / "callgrind.out.12").write_text("events: Ir\n")
    with pytest.raises(RuntimeError, match="no summary"):
        bench.callgrind_total(tmp_path)


def test_per_request_is_the_slope_between_two_runs(bench: ModuleType) -> None:
    small = bench.Run(10, instructions=5_000_000)
    large = bench.Run(30, instructions=7_000_000)
    assert bench.per_request(small, large, "instructions") == 100_000
    with pytest.raises(ValueError):
        bench.per_request(large, small, "instructions")


@pytest.mark.parametrize(
    ("name", "library", "persistent"),
    [
        ("TCPServer", "socketserver", False),
        ("ForkingTCPServer", "sockserve", False),
        ("UnixStreamServer", "socketserver", True),
        ("TCPServer", "floor", False),
        ("TCPServer", "floor+streams", True),
        ("ThreadingTCPServer", "floor", True),
        ("ForkingTCPServer", "floor", False),
        ("UDPServer", "floor", False),
        ("UnixStreamServer", "floor+streams", False),
        ("ThreadPoolTCPServer", "floor", False),
        ("PreForkTCPServer", "floor", True),
    ],
)
def test_a_server_run_serves_every_request_and_reports_its_page_faults(
    bench: ModuleType, tmp_path: Path, name: str, library: str, persistent: bool
) -> None:
    python = bench.real_python(sys.executable)
    runs = [
        bench.run_server(python, library, bench.model(name), n, valgrind=False, persistent=persistent,
                         cache=tmp_path)
        for n in (2, 6)
    ]
    assert [r.requests for r in runs] == [2, 6]
    assert all(r.instructions is None and r.faults > 0 for r in runs)
    assert math.isfinite(bench.per_request(runs[0], runs[1], "faults"))


def test_a_row_and_its_table(bench: ModuleType, tmp_path: Path) -> None:
    python = bench.real_python(sys.executable)
    row = bench.measure(
        bench.model("ThreadingTCPServer"), python, (0, 0), repeat=1, stats_off=False, faults=True,
        fault_requests=(2, 5), persistent=False, cache=tmp_path, valgrind=False,
    )
    assert len(row.stdlib_faults) == len(row.sockserve_faults) == 1
    assert row.stdlib_ir == row.sockserve_ir == row.floor_ir == [] and row.stats_off_ir is None
    assert row.floor == "threading" and row.over_floor() is None and row.structural() is None
    text = bench.table([row])
    assert text.splitlines()[0].split(" | ")[0].strip() == "model"
    assert "ThreadingTCPServer" in text and "n/a" in text
    assert "floor Ir/req" in text and "sockserve/floor" in text


def test_every_model_has_a_floor_that_says_what_it_is(bench: ModuleType) -> None:
    shapes = {name: bench.model(name).floor for name in bench.DEFAULT_MODELS}
    assert shapes == {
        "TCPServer": "plain", "ThreadingTCPServer": "threading", "ForkingTCPServer": "forking",
        "UDPServer": "plain", "UnixStreamServer": "plain", "ThreadPoolTCPServer": "pool",
        "PreForkTCPServer": "prefork",
    }
    assert set(shapes.values()) <= set(bench.FLOORS)
    row = bench.Row("TCPServer", "TCPServer", (1, 2), sockserve_ir=[300.0], floor_ir=[100.0], streams_ir=[250.0])
    assert row.over_floor() == 3.0 and row.structural() == 150.0
