"""Request timelines recorded in comparisons and traffic runs (experiment,
serve --timeline, lab models): every server kind, the cap, plain data."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import sockserve
from sockserve.cli.args import CliError
from sockserve.measure.experiment import RUN_TIMELINE_CAP, compare, run_one, timeline_cap
from sockserve.measure.results import Comparison, RunResult
from sockserve.cli.serve import start_timeline
from sockserve.core.timeline import Span
from sockserve.plots.timeline import most_at_once

KINDS = ("plain", "threading", "forking", "threadpool", "prefork", "asyncio")


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    # 4 clients, each request waiting 20 ms: enough to overlap where a model can
    return compare("io", servers=KINDS, clients=4, duration=0.4, max_requests=200,
                   workload_params={"delay_ms": 20}, timeline=True)


def _spans(run: RunResult) -> list[Span]:
    assert run.timeline is not None, f"{run.server}: no timeline came back"
    return [Span(*row) for row in run.timeline.to_dict()["spans"]]


def _lanes(spans: list[Span]) -> set[tuple[int, int]]:
    return {(s.pid, s.tid) for s in spans}


def test_every_server_kind_sends_its_spans_back(comparison: Comparison) -> None:
    assert [run.server for run in comparison.runs] == list(KINDS)
    for run in comparison.runs:
        spans = _spans(run)
        assert run.ok > 0 and len(spans) >= run.ok, (run.server, run.ok, len(spans))
        assert all(s.accepted <= s.started <= s.ended for s in spans), run.server
        assert run.timeline is not None and run.timeline.cap == RUN_TIMELINE_CAP
        assert not run.served_in_process


def test_each_model_shows_its_shape(comparison: Comparison) -> None:
    plain = _spans(comparison.run("plain"))
    assert len(_lanes(plain)) == 1 and most_at_once(plain) == 1  # one at a time, in one thread

    threading_ = _spans(comparison.run("threading"))
    assert len({pid for pid, _ in _lanes(threading_)}) == 1  # one process ...
    assert len(_lanes(threading_)) > 1 and most_at_once(threading_) > 1  # ... many threads at once

    forking = _spans(comparison.run("forking"))
    assert len({s.pid for s in forking}) == len(forking)  # a new process per request

    pool = _spans(comparison.run("threadpool"))
    assert 1 < len(_lanes(pool)) <= sockserve.ThreadPoolMixIn.pool_size  # fixed lanes, reused
    assert len(pool) > len(_lanes(pool))

    prefork = _spans(comparison.run("prefork"))
    assert 1 <= len({s.pid for s in prefork}) <= sockserve.PreForkMixIn.workers
    assert len(prefork) > len(_lanes(prefork))

    loop = _spans(comparison.run("asyncio"))
    assert len(_lanes(loop)) == 1 and most_at_once(loop) > 1  # one thread, connections overlapping


def test_the_timeline_is_plain_data_that_round_trips(comparison: Comparison, tmp_path: Any) -> None:
    run = comparison.run("threading")
    again_run = RunResult.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again_run.timeline is not None and run.timeline is not None
    assert again_run.timeline.to_dict() == run.timeline.to_dict()
    comparison.save(tmp_path / "c.json")
    again = Comparison.load(tmp_path / "c.json")
    assert [r.timeline and r.timeline.to_dict() for r in again.runs] == [
        r.timeline and r.timeline.to_dict() for r in comparison.runs]


def test_recording_is_off_by_default_and_the_cap_is_said_when_reached() -> None:
    off = run_one("threading", "echo", clients=2, duration=0.2, max_requests=20)
    assert off.timeline is None
    capped = compare("echo", servers=("forking",), clients=2, duration=0.3, max_requests=30, timeline=3)
    timeline = capped.runs[0].timeline
    assert timeline is not None and len(timeline) == 3
    assert timeline.dropped == capped.runs[0].ok - 3 > 0
    pytest.importorskip("matplotlib")
    from sockserve.lab import figures
    from sockserve.plots.timeline import plot_timelines

    try:
        fig = plot_timelines(capped)
        assert "cap of 3 reached" in fig.axes[0].get_title(loc="left")
    finally:
        figures.release_fonts()


def test_a_timeline_cap_must_be_a_positive_count() -> None:
    assert timeline_cap(False) is None and timeline_cap(True) == RUN_TIMELINE_CAP and timeline_cap(7) == 7
    with pytest.raises(ValueError, match="at least 1"):
        timeline_cap(0)
    with pytest.raises(ValueError, match="at least 1"):
        compare("echo", servers=("plain",), timeline=-1)

    class Server:
        stats = sockserve.ServerStats()

    with pytest.raises(CliError, match="--timeline must be at least 1"):
        start_timeline(Server(), 0)
    start_timeline(Server(), None)
    assert Server.stats.timeline is None


def test_a_traffic_run_records_the_timeline_of_a_server_in_this_notebook() -> None:
    pytest.importorskip("ipywidgets")
    from sockserve.lab.models import ServerModel
    from sockserve.lab.runs import TrafficModel

    server = ServerModel(kind="threading", workload="io", params={"delay_ms": 5})
    server.start()
    try:
        traffic = TrafficModel(server, clients=2, duration=0.3, rate=None, timeline=4)
        assert traffic.send().state == "running"
        deadline = time.monotonic() + 10
        while traffic.poll().state == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert traffic.result is not None and traffic.timeline is not None
        assert len(traffic.timeline["spans"]) == 4 and traffic.timeline["dropped"] > 0
        assert server.server is not None and server.server.stats.timeline is None  # recording stopped
    finally:
        server.stop()


def test_the_compare_panel_draws_the_timelines_it_was_asked_for() -> None:
    pytest.importorskip("ipywidgets")
    from sockserve.lab import figures
    from sockserve.lab.panels import ComparePanel

    plain = ComparePanel(workload="echo", servers=("plain",), clients=1, duration=0.5, key="t-timeline")
    asked = ComparePanel(workload="echo", servers=("plain",), clients=1, duration=0.5, key="t-timeline-on", timeline=5)
    try:
        assert plain._ui_timeline.layout.display == "none" == asked._ui_timeline.layout.display
        for panel in (plain, asked):
            panel.run()
            deadline = time.monotonic() + 60
            while (panel.model.running or panel._ui_run.disabled) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert panel.model.status().state == "done", panel.model.status().text
        assert plain._ui_timeline.layout.display == "none"  # not recorded, not drawn
        assert asked.model.comparison.runs[0].timeline is not None
        assert asked._ui_timeline.layout.display == ""
        assert bytes(asked._ui_timeline.value).startswith(b"\x89PNG")
    finally:
        plain.close()
        asked.close()
        figures.release_fonts()
