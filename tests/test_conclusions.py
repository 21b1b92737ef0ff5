"""sockserve.measure.conclusions: sentences computed from the numbers beside them."""

from __future__ import annotations

from typing import Any

import pytest

from sockserve.measure.conclusions import (
    conclusions,
    expected_speedup,
    how_many,
    latency_sentences,
    report,
    speedup,
    speedup_text,
)
from sockserve.measure.limits import Cores
from sockserve.measure.results import Comparison, RunResult


def run(server: str, rps: float, *, cores: float = 1.0, work_ms: float = 10.0,
        wait_ms: float = 0.0, clients: int = 8, **extra: Any) -> RunResult:
    return RunResult(
        server=server, workload="cpu" if work_ms else ("io" if wait_ms else "echo"),
        requests=int(rps * 2), errors=0, throughput_rps=rps,
        latency_ms={"p50": 0.8, "p90": 55.0, "p99": 120.0, "max": 300.0},
        concurrency=server, clients=clients, duration=2.0, elapsed=2.0, work_ms=work_ms,
        wait_ms=wait_ms, cores=Cores(cores, max(1, int(cores))).to_dict(), **extra,
    )


def texts(comparison: Comparison) -> list[str]:
    return [c.text for c in conclusions(comparison)]


def test_one_core_cpu_work_threading_and_forking_cannot_beat_plain() -> None:
    cmp = Comparison(runs=[run("plain", 96.0), run("threading", 93.0), run("forking", 90.0)])
    found = conclusions(cmp)
    assert [c.key for c in found] == ["limit", "limit"]
    assert found[0].text == ("On your 1 core, threading cannot beat plain on cpu work (the GIL lets one "
                             "thread run Python at a time): measured 0.97x (93 vs 96 req/s).")
    assert "forking cannot beat plain on cpu work (there is no second core" in found[1].text
    assert found[1].value == pytest.approx(90 / 96)


def test_a_ratio_the_cores_do_not_allow_is_called_noise() -> None:
    cmp = Comparison(runs=[run("plain", 50.0), run("forking", 79.0)])
    (only,) = conclusions(cmp)
    assert "cannot beat plain" in only.text and "measured 1.58x" in only.text
    assert "measure again" in only.text


def test_many_cores_let_processes_win_on_cpu_work() -> None:
    cmp = Comparison(runs=[run("plain", 95.0, cores=4), run("threading", 94.0, cores=4),
                           run("forking", 330.0, cores=4)])
    lines = texts(cmp)
    assert lines[0].startswith("On your 4 cores, threading cannot beat plain on cpu work (the GIL")
    assert lines[1] == ("On your 4 cores, forking can run cpu work in parallel, up to 4x plain: "
                        "measured 3.5x (330 vs 95 req/s).")


def test_waiting_requests_report_the_measured_speedup() -> None:
    cmp = Comparison(runs=[run("plain", 89.0, work_ms=0, wait_ms=10),
                           run("forking", 312.0, work_ms=0, wait_ms=10)])
    assert speedup(cmp, "forking") == pytest.approx(312 / 89)
    assert speedup_text(cmp, "forking") == "forking: 3.5x plain's throughput (312 vs 89 req/s)"
    (line,) = texts(cmp)
    assert line.startswith("On waiting requests forking served 3.5x as many requests per second as plain")
    assert "At most 8x is possible with 8 clients." in line


def test_an_invalid_run_is_named_and_left_out_of_every_ratio() -> None:
    cmp = Comparison(runs=[run("plain", 50.0), run("asyncio", 124.6)])
    found = conclusions(cmp)
    assert [c.key for c in found] == ["invalid"]
    assert "asyncio's 124.6 req/s is more than your 1 core can do (100 req/s" in found[0].text
    assert speedup(cmp, "asyncio") is None
    assert "no valid ratio" in speedup_text(cmp, "asyncio")


def test_tiny_requests_generator_and_children() -> None:
    plain = run("plain", 4000.0, work_ms=0, generator_cpu_s=1.2, server_cpu_s=0.7)
    forking = run("forking", 900.0, work_ms=0, children=[[0.0, 3.0], [0.1, 11.0]])
    found = conclusions(Comparison(runs=[plain, forking]))
    keys = [c.key for c in found]
    assert keys == ["speedup", "generator", "children"]
    assert "forking served fewer requests per second than plain (measured 0.23x" in found[0].text
    assert "load generator used more of the CPU" in found[1].text
    assert "up to 11 children alive at once with only 8 clients" in found[2].text
    assert report(Comparison(runs=[plain, forking])).splitlines() == [c.text for c in found]


def test_expected_speedup_before_measuring() -> None:
    base = run("plain", 1.0, cores=2)
    assert expected_speedup("threading", base) == 1.0
    assert expected_speedup("forking", base) == 2.0
    assert expected_speedup("forking", run("plain", 1.0, cores=16, clients=4)) == 4.0
    assert expected_speedup("threading", run("plain", 1.0, work_ms=0, wait_ms=10)) == 8.0
    assert expected_speedup("threading", run("plain", 1.0, work_ms=0)) is None


def test_counts_and_latencies_in_words() -> None:
    assert how_many(17, 30) == "17 of 30, more than half"
    assert how_many(0, 30) == "none of 30"
    assert how_many(30, 30) == "all 30"
    assert how_many(2, 30) == "2 of 30, fewer than one in ten"
    assert how_many(15, 30) == "15 of 30, about half"
    assert latency_sentences(run("plain", 1.0)) == [
        "Half of the requests took under 0.80 ms.", "Nine requests in ten took under 55 ms.",
        "Ninety-nine in a hundred took under 120 ms.", "The slowest took 300 ms."]
    assert latency_sentences({"p50": 12.345}) == ["Half of the requests took under 12 ms."]


def test_a_busy_neighbour_explains_a_win_the_cores_do_not_allow() -> None:
    # One core shared with another program: 8 forked children win a larger
    # share of it than one plain server; per CPU second the work is the same.
    plain = run("plain", 50.0, server_cpu_s=1.0)        # half the core, 2 s
    forking = run("forking", 85.0, server_cpu_s=1.75)   # 0.875 of the core
    (only,) = conclusions(Comparison(runs=[plain, forking]))
    assert "forking cannot beat plain on cpu work" in only.text and "measured 1.70x" in only.text
    assert "forking used 0.88 of a core, plain only 0.50" in only.text
    assert "Per CPU second they did about the same work: 97 vs 100 requests." in only.text
