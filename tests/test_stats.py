"""ServerStats: counting, snapshots, subscriptions, thread safety."""

from __future__ import annotations

import json
import queue
import threading

import pytest

from sockserve.core.stats import Outcome, ServerStats, outcome_of


def test_outcomes_are_classified() -> None:
    assert outcome_of(None) is Outcome.OK
    assert outcome_of(ConnectionResetError()) is Outcome.DISCONNECT
    assert outcome_of(BrokenPipeError()) is Outcome.DISCONNECT
    assert outcome_of(TimeoutError()) is Outcome.TIMEOUT
    assert outcome_of(ValueError()) is Outcome.ERROR
    assert outcome_of(SystemExit()) is Outcome.ERROR


def test_snapshot_is_json_and_consistent() -> None:
    stats = ServerStats()
    stats.note_accepted()
    stats.note_accepted()
    stats.note_rejected()
    stats.request_started()
    stats.request_started()
    stats.request_finished(Outcome.OK, 0.002)
    snap = json.loads(json.dumps(stats.snapshot()))
    assert snap["accepted"] == 2
    assert snap["rejected"] == 1
    assert snap["started"] == 2
    assert snap["completed"] == 1
    assert snap["active"] == 1
    assert snap["peak_active"] == 2
    assert snap["handler_time"]["count"] == 1
    assert snap["handler_time_ms"]["max"] == pytest.approx(2.0)


def test_counting_is_thread_safe() -> None:
    stats = ServerStats()

    def work() -> None:
        for _ in range(2000):
            stats.request_started()
            stats.request_finished(Outcome.OK, 0.0001)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.started == stats.completed == 16000
    assert stats.active == 0
    assert stats.handler_time.count == 16000


def test_disabled_stats_count_nothing() -> None:
    stats = ServerStats()
    stats.enabled = False
    stats.note_accepted()
    stats.request_started()
    stats.request_finished(Outcome.ERROR, 0.1)
    assert stats.snapshot()["accepted"] == stats.started == stats.errors == 0


def test_subscription_feeds_snapshots_until_closed() -> None:
    stats = ServerStats()
    feed: queue.Queue[dict] = queue.Queue()
    with stats.subscribe(feed.put, interval=0.01) as sub:
        stats.note_accepted()
        first = feed.get(timeout=5)
        while first["accepted"] == 0:
            first = feed.get(timeout=5)
    assert sub.closed
    assert first["accepted"] == 1
    with pytest.raises(ValueError):
        stats.subscribe(feed.put, interval=0)


def test_reset_keeps_gauges() -> None:
    stats = ServerStats()
    stats.request_started()
    stats.request_finished(Outcome.ERROR, 0.1)
    stats.request_started()
    stats.set_threads(+1)
    stats.reset()
    assert stats.errors == stats.started == 0
    assert stats.active == 1 and stats.threads == 1
    assert stats.handler_time.count == 0
