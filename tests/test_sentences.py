"""The lessons' outcome sentences (sockserve.workbook.sentences), computed from results."""

from __future__ import annotations

from typing import Any

from sockserve.core.timeline import Timeline
from sockserve.measure.results import RunResult
from sockserve.workbook import sentences


def test_failures_say_how_many_and_why() -> None:
    # lesson 07's prefork run on main: 4 of 100 requests still waiting when the run ended
    prefork = RunResult("prefork", "io", 100, 4, 78.0, {}, outcomes={"ok": 96, "timeout": 4},
                        load={"examples": {"timeout": "still in flight when the run ended"}})
    assert sentences.failures(prefork) == (
        "4 of its 100 requests failed: 4 timeout (still in flight when the run ended)")
    fine = RunResult("threading", "io", 454, 0, 433.0, {}, outcomes={"ok": 454, "timeout": 0})
    assert sentences.failures(fine) == "none of its 454 requests failed"
    assert sentences.outcome_words({"ok": 7, "reset": 17, "timeout": 6, "error": 0}) == "17 reset, 6 timeout"


class _Closed:
    def __init__(self, slowest_ms: float) -> None:
        self.slowest = slowest_ms

    def latency_ms(self) -> dict[str, float]:
        return {"p50": 1.0, "max": self.slowest}


def test_the_slowest_request_is_set_against_the_work_it_asked_for() -> None:
    # lesson 05 on main: p99 85 ms, max 94 ms, for at most 50 ms of work, beside "where nothing queues"
    busy: Any = _Closed(94.4)
    assert sentences.slowest_against_work(busy, 50) == (
        "The slowest request took 94 ms for at most 50 ms of work: 44 ms more. With one client no request "
        "waits behind another, so that time went to the machine: the server's process waited for a core, "
        "or ran slower than when the work was calibrated.")
    quiet: Any = _Closed(52.0)
    assert sentences.slowest_against_work(quiet, 50).endswith(
        "about the work itself, since with one client no request waits behind another.")
    assert "requests may have waited for each other" in sentences.slowest_against_work(quiet, 50, clients=4)


def test_a_run_over_connections_counts_lines_and_connections() -> None:
    # lesson 08 on main: "31 requests answered" above a timeline titled "plain: 8 requests"
    timeline = Timeline(100, origin=0.0)
    for i in range(8):
        timeline.record(i * 0.01, i * 0.01, 0.5, 1, 1, 0)
    run = RunResult("plain", "slow", 31, 0, 62.0, {"p50": 21.2, "max": 505.0}, clients=8,
                    outcomes={"ok": 31}, timeline=timeline.to_dict())
    assert sentences.lines_and_connections(run) == (
        "plain: 31 request lines answered over 8 connections, half of them within 21.2 ms, "
        "the slowest after 505.0 ms")


def test_connections_are_counted_from_a_timeline_object_over_every_round() -> None:
    # lesson 08 after the rounds came: two rounds of 8 persistent connections
    # drew 16 spans while the sentence said "over 8 connections" (the clients).
    timeline = Timeline(100, origin=0.0)
    for i in range(16):
        timeline.record(i * 0.01, i * 0.01, 0.5, 1, 1, 0)
    run = RunResult("plain", "slow", 38, 0, 62.0, {"p50": 21.2, "max": 253.3}, clients=8,
                    outcomes={"ok": 38}, timeline=timeline)
    assert "38 request lines answered over 16 connections" in sentences.lines_and_connections(run)
