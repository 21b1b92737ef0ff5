"""sockserve.measure.results: a result that beats the physical limit is flagged
everywhere it is shown; one the generator held down says so."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sockserve.measure.limits import Cores
from sockserve.measure.results import GENERATOR_MARK, OVER_LIMIT_MARK, PARTIAL_MARK, Comparison, RunResult
from sockserve.measure.usage import RoundFigures


def run(server: str, rps: float, *, concurrency: str | None = None, cores: float = 1.0,
        work_ms: float = 10.0, wait_ms: float = 0.0, clients: int = 8, **extra: Any) -> RunResult:
    seconds = 2.0
    requests = int(rps * seconds)
    return RunResult(
        server=server, workload="cpu" if work_ms else "io", requests=requests, errors=0,
        throughput_rps=rps, latency_ms={"p50": 1.0, "p90": 2.0, "p99": 3.0, "p999": 3.0, "max": 4.0},
        concurrency=concurrency or server, clients=clients, duration=seconds, elapsed=seconds,
        work_ms=work_ms, wait_ms=wait_ms, cores=Cores(cores, max(1, int(cores))).to_dict(),
        workload_params={"work_ms": work_ms, "iterations_per_ms": 15000.0}, **extra,
    )


def test_a_throughput_above_what_the_cores_can_do_is_flagged_everywhere() -> None:
    # The case: asyncio at 124.6 req/s of 10 ms CPU requests on one core.
    bad = run("asyncio", 124.6, server_cpu_s=2.0 * 0.6)
    good = run("plain", 97.0, server_cpu_s=1.9)
    assert bad.over_limit and not good.over_limit
    assert bad.limit().rps == pytest.approx(100.0)
    (flag,) = bad.flags()
    assert "124.6 req/s is above the most that is possible, 100.0 req/s" in flag
    assert "1 core at 10 ms of CPU per request" in flag
    assert "not the 10 ms calibrated" in flag  # measured 4.8 ms of CPU per request
    assert good.flags() == []
    assert bad.throughput_text() == "124.6" + OVER_LIMIT_MARK
    assert good.throughput_text() == "97.0"
    # JSON carries the verdict beside the number.
    data = json.loads(json.dumps(bad.to_dict()))
    assert data["over_limit"] is True and data["limit_rps"] == pytest.approx(100.0)
    assert data["flags"] == bad.flags()
    assert RunResult.from_dict(data) == bad  # derived keys are not fields
    comparison = Comparison(runs=[good, bad], workload="cpu",
                            calibration={"iterations_per_ms": 15000.0, "clock": "thread_time"})
    table = comparison.table()
    row = next(line for line in table.splitlines() if line.startswith("asyncio"))
    assert "124.6!" in row.split()
    assert f"{OVER_LIMIT_MARK} asyncio: 124.6 req/s is above" in table
    assert "150,000 loop iterations, the same in every server" in table
    assert "cores the servers could use: 1 core" in table
    assert comparison.to_dict()["flags"] == comparison.flags() == bad.flags()


@pytest.mark.parametrize("case", [
    # (server, rps, concurrency, cores, work_ms, wait_ms, clients): each beats a bound
    ("threading", 150.0, "threading", 4.0, 10.0, 0.0, 8),   # the GIL: one core of Python
    ("forking", 450.0, "forking", 4.0, 10.0, 0.0, 8),       # four cores
    ("plain", 130.0, "plain", 4.0, 0.0, 10.0, 8),           # one at a time, 10 ms each
    ("threading", 500.0, "threading", 4.0, 0.0, 10.0, 4),   # 4 clients x 100/s
])
def test_every_bound_flags_a_result_beyond_it(case: tuple[Any, ...]) -> None:
    server, rps, concurrency, cores, work_ms, wait_ms, clients = case
    result = run(server, rps, concurrency=concurrency, cores=cores, work_ms=work_ms,
                 wait_ms=wait_ms, clients=clients)
    assert result.over_limit, result.limit()
    assert result.throughput_text().endswith(OVER_LIMIT_MARK)
    assert result.flags() and "not a valid measurement" in result.flags()[0]
    within = run(server, result.limit().rps or 0.0, concurrency=concurrency, cores=cores,
                 work_ms=work_ms, wait_ms=wait_ms, clients=clients)
    assert not within.over_limit and within.flags() == []


def test_a_run_the_generator_held_down_says_so() -> None:
    # One core; the generator used 0.6 of it, the server 0.35: the cores
    # were busy and the generator took the larger share.
    echo = run("plain", 5000.0, work_ms=0.0, generator_cpu_s=1.2, server_cpu_s=0.7)
    assert echo.generator_bound and not echo.over_limit
    assert echo.throughput_text() == "5000.0" + GENERATOR_MARK
    assert "load generator was the bottleneck" in echo.flags()[0]
    assert echo.generator_cpu_ms == pytest.approx(1.2 * 1000 / 10000)
    # About as much as the server on a busy core (0.45 vs 0.46 of it) counts too.
    even = run("plain", 3000.0, work_ms=0.0, generator_cpu_s=0.9, server_cpu_s=0.92)
    assert even.generator_bound
    # A server that used most of the core is its own limit.
    server_bound = run("plain", 3000.0, work_ms=0.0, generator_cpu_s=0.5, server_cpu_s=1.3)
    assert not server_bound.generator_bound
    # On four cores the same figures leave room: not the generator's limit.
    roomy = run("plain", 5000.0, work_ms=0.0, cores=4.0, generator_cpu_s=1.2, server_cpu_s=0.7)
    assert not roomy.generator_bound
    # A generator that used most of its one core is the limit anywhere.
    busy = run("plain", 5000.0, work_ms=0.0, cores=4.0, generator_cpu_s=1.7, server_cpu_s=0.5)
    assert busy.generator_bound
    # Unmeasured: nothing claimed.
    assert not run("plain", 5000.0, work_ms=0.0).generator_bound


def test_results_without_context_are_shown_as_before() -> None:
    bare = RunResult(server="plain", workload="echo", requests=10, errors=0, throughput_rps=1e6,
                     latency_ms={})
    assert bare.limit().rps is None and not bare.over_limit and bare.flags() == []
    assert bare.throughput_text() == "1000000.0"


def test_calibration_drift_and_cancel_are_flagged() -> None:
    comparison = Comparison(runs=[run("plain", 90.0)], workload="cpu",
                            calibration={"iterations_per_ms": 10000, "measured_after": 13000})
    assert comparison.calibration_drift() == pytest.approx(0.3)
    assert any("speed changed during the comparison" in f for f in comparison.flags())
    comparison.calibration["measured_after"] = 10500
    comparison.cancelled = True
    assert comparison.flags() == ["stopped before the end: no run was cut short"]


def test_a_stopped_comparison_marks_the_rows_it_cut_short() -> None:
    """The footnote's mark is on the row it is about (issue 23: it was on none)."""
    cut = run("threading", 80.0)
    cut.partial = True
    cut.rounds = [RoundFigures(requests=40, ok=40, elapsed=0.5, throughput_rps=80.0, p50_ms=1.0, p90_ms=2.0,
                               cancelled=True)]
    comparison = Comparison(runs=[run("plain", 90.0), cut], workload="cpu", cancelled=True,
                            servers=["plain", "threading", "forking"], rounds=3)
    table = comparison.table().splitlines()
    rows = {line.split()[0]: line for line in table[2:4]}
    assert set(rows) == {"plain", "threading" + PARTIAL_MARK}
    footnote = [line for line in table if line.startswith(PARTIAL_MARK + " stopped")]
    assert footnote == [f"{PARTIAL_MARK} stopped before the end: threading{PARTIAL_MARK} ran "
                        "1 of 3 rounds, the last cut short; forking did not run"]


def test_a_pool_is_limited_by_its_workers_not_only_by_the_clients() -> None:
    """Lesson 07's pools: 24 clients, 50 ms waits; 8 threads allow 160 req/s, 4 processes 80."""
    pool = run("threadpool", 150.0, work_ms=0.0, wait_ms=50.0, clients=24, bound=8)
    prefork = run("prefork", 100.0, work_ms=0.0, wait_ms=50.0, clients=24, bound=4)
    assert pool.limit().rps == pytest.approx(160.0) and "at most 8 requests at once" in pool.limit().reason
    assert prefork.limit().rps == pytest.approx(80.0) and prefork.over_limit
    unbounded = run("threading", 400.0, work_ms=0.0, wait_ms=50.0, clients=24)
    assert unbounded.limit().rps == pytest.approx(480.0)


def test_cpu_figures_survive_json_and_say_who_used_the_cpu() -> None:
    measured = run("forking", 150.0, cores=2.0, server_cpu_s=3.2, generator_cpu_s=0.4, busy_cpu_s=4.6,
                   busy_cpus=2, cpu_window_s=2.0)
    data = json.loads(json.dumps(measured.to_dict()))
    assert data["parallelism"] == pytest.approx(1.6)
    assert data["requests_per_cpu_s"] == pytest.approx(300 / 3.2)
    assert data["generator_cores"] == pytest.approx(0.2)
    assert data["others_cores"] == pytest.approx(0.5) and data["others_took"] == pytest.approx(0.5)
    assert RunResult.from_dict(data) == measured


def test_the_table_says_what_each_column_means() -> None:
    comparison = Comparison(runs=[run("plain", 90.0, sampling="peak", sample_interval=0.1)], workload="cpu")
    text = comparison.table()
    header = text.splitlines()[0].split()
    for column in ("cores", "gen", "others", "threads", "children"):
        assert column in header
    assert "cores: its CPU seconds per second" in text and "others: the usable cores other programs took" in text
    assert "threads, children: the most handler threads and child processes alive at once in any 0.1 s" in text
    instant = Comparison(runs=[run("plain", 90.0)], workload="cpu").table()
    assert "threads, children: the most threads of the server process (the serving thread and helpers" in instant


def test_a_run_slower_than_its_calibration_says_so() -> None:
    slow = run("plain", 60.0, server_cpu_s=120 * 0.0149)   # 14.9 ms of CPU for 10 ms of work
    assert slow.cpu_slowdown == pytest.approx(1.49)
    assert any("took 14.9 ms of CPU, 1.5x the 10 ms calibrated" in f for f in slow.flags())
    fine = run("plain", 90.0, server_cpu_s=180 * 0.0105)
    assert fine.flags() == []
    forking = run("forking", 50.0, server_cpu_s=100 * 0.016)  # a fork per request costs CPU too
    assert forking.cpu_slowdown is None and forking.flags() == []
