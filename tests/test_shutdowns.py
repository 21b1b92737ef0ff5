"""How long shutdown() takes (sockserve.workbook.shutdowns): fresh random
moments, and sentences that say what the rounds showed, whatever they showed."""

from __future__ import annotations

import socketserver
from typing import Any

import pytest

import sockserve
from sockserve.workbook import shutdowns


def test_each_call_draws_new_random_moments_unless_seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    seeds: list[Any] = []
    monkeypatch.setattr(shutdowns, "shutdown_latency",
                        lambda cls, poll_interval, rounds, seed: seeds.append(seed) or [0.0] * rounds)
    classes = {"a": sockserve.TCPServer}
    shutdowns.shutdown_latencies(classes, (0.1,), rounds=2)
    shutdowns.shutdown_latencies(classes, (0.1,), rounds=2)
    assert seeds[0] != seeds[1]  # a fresh seed each time the lesson's cell runs
    seeds.clear()
    shutdowns.shutdown_latencies(classes, (0.1,), rounds=2, seed=1)
    shutdowns.shutdown_latencies(classes, (0.1,), rounds=2, seed=1)
    assert seeds[0] == seeds[1]


def test_the_standard_librarys_shutdown_waits_within_its_poll_interval() -> None:
    took = shutdowns.shutdown_latency(socketserver.TCPServer, poll_interval=0.05, rounds=3)
    assert len(took) == 3 and all(0 <= t for t in took)


def _results(stdlib: dict[float, list[float]]) -> dict[str, dict[float, list[float]]]:
    return {"socketserver": stdlib, "sockserve": {poll: [0.0002, 0.0003] for poll in stdlib}}


def test_a_trend_is_stated_only_when_the_medians_show_it() -> None:
    grows = _results({0.05: [0.01, 0.03], 0.5: [0.2, 0.3]})
    stdlib, ours = shutdowns.shutdown_sentences(grows)
    assert stdlib.startswith("socketserver: its median grew with the poll_interval: medians 20.0, 250 ms")
    assert stdlib.endswith("no round waited longer than its poll_interval.")
    assert ours.startswith("sockserve: every one of 4 rounds took under 0.30 ms, whatever the poll_interval")
    # The saved notebook of main: medians 37.9, 66.7, 39.4, 98.7 ms. No trend may be claimed.
    wobbly = _results({0.05: [0.0379], 0.1: [0.0667], 0.25: [0.0394], 0.5: [0.0987]})
    stdlib = shutdowns.shutdown_sentences(wobbly)[0]
    assert "did not grow steadily" in stdlib and "grew with" not in stdlib
    late = _results({0.05: [0.01, 0.2], 0.5: [0.2, 0.3]})
    assert "1 of 4 rounds waited more than 20 ms longer than their poll_interval" in \
        shutdowns.shutdown_sentences(late)[0]
    assert shutdowns.describe_shutdown_latencies(grows).startswith(
        "shutdown() times by poll_interval: socketserver 0.05 s: median 20.0 ms (10.0 to 30.0), 0.5 s: median 250 ms")
