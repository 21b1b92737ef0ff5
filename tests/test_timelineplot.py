"""Request timelines drawn (sockserve.plots.timeline): lanes, waiting and running, errors, the cap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from sockserve.plots import timeline as timelineplot  # noqa: E402
from sockserve.lab import figures  # noqa: E402
from sockserve.measure.results import Comparison, RunResult  # noqa: E402
from sockserve.core.timeline import Span, Timeline  # noqa: E402


@pytest.fixture
def fig() -> Iterator[Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4))
    FigureCanvasAgg(figure)
    yield figure
    figures.release_fonts()


def _pool_timeline() -> Timeline:
    """Two worker threads of one process; the second request waits 5 ms
    for a worker, the fourth ends in an error."""
    t = Timeline(100, origin=0.0)
    t.record(1.000, 1.001, 1.010, 50, 51, 0)
    t.record(1.000, 1.005, 1.012, 50, 52, 0)
    t.record(1.011, 1.012, 1.020, 50, 51, 0)
    t.record(1.013, 1.013, 1.030, 50, 52, 1)
    return t


def _labels(ax: Any) -> list[str]:
    return [label.get_text() for label in ax.get_yticklabels()]


def _bars(ax: Any) -> list[Any]:
    from matplotlib.collections import PolyCollection

    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_one_lane_per_worker_in_the_order_they_first_ran(fig: Any) -> None:
    ax = fig.add_subplot()
    timelineplot.plot_timeline(_pool_timeline(), ax=ax)
    assert _labels(ax) == ["tid 51", "tid 52"]  # one process: lanes named by thread
    assert timelineplot.worker_lanes(_pool_timeline().spans()) == [(50, 51), (50, 52)]


def test_forked_children_are_lanes_named_by_process() -> None:
    spans = [Span(0.0, 0.002, 0.010, pid, pid, 0) for pid in (901, 902, 903)]
    figure = timelineplot.plot_timeline(spans)
    assert _labels(figure.axes[0]) == ["pid 901", "pid 902", "pid 903"]
    assert figure.axes[0].get_ylabel() == "3 processes"


def test_waiting_and_running_are_drawn_apart(fig: Any) -> None:
    ax = fig.add_subplot()
    timelineplot.plot_timeline(_pool_timeline(), ax=ax)
    colours = {tuple(round(c, 3) for c in bar.get_facecolor()[0]) for bar in _bars(ax)}
    from matplotlib.colors import to_rgba

    assert {tuple(round(c, 3) for c in to_rgba(timelineplot.WAIT_COLOUR)),
            tuple(round(c, 3) for c in to_rgba(timelineplot.RUN_COLOUR))} == colours
    # the second request waited 5 ms: accepted at 0 ms, its handler from 5 to 12 ms
    widths = sorted(round(w, 3) for bar in _bars(ax) for path in bar.get_paths()
                    for w in [path.vertices[:, 0].max() - path.vertices[:, 0].min()])
    assert 5.0 in widths and 7.0 in widths


def test_errors_are_marked_where_the_request_ended(fig: Any) -> None:
    ax = fig.add_subplot()
    timelineplot.plot_timeline(_pool_timeline(), ax=ax)
    marks = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(marks) == 1
    assert list(marks[0].get_xdata()) == pytest.approx([30.0])  # ms after the first accept


def test_requests_that_overlap_in_one_thread_share_its_lane(fig: Any) -> None:
    # an event loop: three connections open at once, all on thread 7
    spans = [Span(0.0, 0.0, 0.030, 5, 7, 0), Span(0.001, 0.001, 0.020, 5, 7, 0),
             Span(0.002, 0.002, 0.010, 5, 7, 0)]
    ax = fig.add_subplot()
    timelineplot.plot_timeline(spans, ax=ax)
    assert _labels(ax) == ["tid 7"]
    running = [bar for bar in _bars(ax) if bar.get_facecolor()[0][2] < 0.8]
    tops = sorted({round(path.vertices[:, 1].min(), 3) for bar in running for path in bar.get_paths()})
    assert len(tops) == 3  # stacked side by side inside the one lane
    assert min(tops) >= -0.4 and max(tops) < 0.4


def test_the_cap_is_said_when_reached(fig: Any) -> None:
    t = Timeline(2, origin=0.0)
    for i in range(5):
        t.record(i, i + 0.1, i + 0.2, 1, 1, 0)
    ax = fig.add_subplot()
    timelineplot.plot_timeline(t, ax=ax)
    title = ax.get_title(loc="left")
    assert "cap of 2 reached" in title and "3 more not recorded" in title
    ax2 = fig.add_subplot(2, 1, 2)
    timelineplot.plot_timeline(_pool_timeline(), ax=ax2)
    assert "cap" not in ax2.get_title(loc="left")


def test_takes_a_timeline_its_dict_or_spans() -> None:
    t = _pool_timeline()
    for form in (t, t.to_dict(), t.spans(), [tuple(s) for s in t.spans()]):
        assert timelineplot.as_timeline(form).spans() == t.spans()
    with pytest.raises(TypeError, match="pass a Timeline"):
        timelineplot.as_timeline(42)


def test_an_empty_timeline_says_so(fig: Any) -> None:
    ax = fig.add_subplot()
    timelineplot.plot_timeline(Timeline(10), ax=ax)
    assert "no requests recorded" in [text.get_text() for text in ax.texts]


def test_a_comparison_draws_one_panel_per_run_with_a_timeline(fig: Any) -> None:
    def run(server: str, timeline: Any) -> RunResult:
        return RunResult(server, "io", 4, 0, 10.0, {}, timeline=timeline)

    comparison = Comparison([run("plain", _pool_timeline().to_dict()), run("forking", None),
                             run("threading", _pool_timeline().to_dict())], workload="io")
    drawn = timelineplot.plot_timelines(comparison, fig=fig)
    assert drawn is fig
    assert [ax.get_title(loc="left").split(":")[0] for ax in fig.axes] == ["plain", "threading"]
    with pytest.raises(ValueError, match="timeline=True"):
        timelineplot.plot_timelines(Comparison([run("forking", None)]))


def test_the_panel_picture_is_a_png() -> None:
    try:
        data = figures.timeline_png({"a run": _pool_timeline()})
    finally:
        figures.release_fonts()
    assert data.startswith(b"\x89PNG")


def test_a_run_keeps_its_timeline_as_plain_data() -> None:
    import json

    run = RunResult("plain", "io", 4, 0, 10.0, {}, timeline=_pool_timeline())
    data = json.loads(json.dumps(run.to_dict()))
    assert data["timeline"] == _pool_timeline().to_dict()  # JSON: the timeline's own dict
    again = RunResult.from_dict(data)
    assert isinstance(again.timeline, Timeline)  # read back once, as a Timeline
    assert again.timeline.spans() == _pool_timeline().spans()
    assert RunResult("plain", "io", 4, 0, 10.0, {}).timeline is None  # nothing unless recorded


def _thread_per_request(count: int = 200, at_once: int = 8) -> list[Span]:
    """A thread per request: *count* requests of 20 ms, *at_once* at a time, each on a new thread."""
    spans = []
    for i in range(count):
        start = (i // at_once) * 0.021 + (i % at_once) * 0.001
        spans.append(Span(start, start + 0.0005, start + 0.020, 7, 1000 + i, 0))
    return spans


def test_hundreds_of_one_request_threads_share_rows_and_the_figure_stays_short() -> None:
    spans = _thread_per_request()
    rows = timelineplot.lane_rows(spans)
    assert len(rows) == 8 and sum(len(row) for row in rows) == 200
    for row in rows:  # no two requests of a row overlap
        members = sorted((s for s in spans if (s.pid, s.tid) in row), key=lambda s: s.accepted)
        assert all(a.ended <= b.accepted for a, b in zip(members, members[1:]))
    figure = timelineplot.plot_timeline(spans)
    try:
        assert figure.get_size_inches()[1] < 5  # 200 lanes would be 45 inches
        ax = figure.axes[0]
        assert _labels(ax)[0] == "25 threads" and "200 threads\nin 8 rows" == ax.get_ylabel()
        assert "200 requests on 200 threads, drawn 8 rows deep" in ax.get_title(loc="left")
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)
    # A few workers keep a lane each.
    assert timelineplot.lane_rows(_pool_timeline().spans()) == [[(50, 51)], [(50, 52)]]


def test_the_text_alternative_counts_what_the_figure_draws() -> None:
    text = timelineplot.describe_timelines({"pool": _pool_timeline(), "threading": _thread_per_request()})
    assert text.startswith("Timelines: pool: 4 requests on 2 threads, at most 2 running at once, "
                           "the longest waited 5.0 ms before its handler started, 1 ended in error (crosses)")
    assert "threading: 200 requests on 200 threads (drawn in 8 rows: a row holds threads that ran one " \
           "after another), at most 8 running at once" in text


def test_a_run_over_persistent_connections_counts_connections() -> None:
    def run(server: str, connection: str) -> RunResult:
        return RunResult(server, "slow", 30, 0, 60.0, {}, timeline=_pool_timeline().to_dict(),
                         load={"spec": {"connection": connection}})

    comparison = Comparison([run("plain", "persistent"), run("threading", "new")], workload="slow")
    assert timelineplot.units_of(comparison) == {"plain": "connection", "threading": "request"}
    figure = timelineplot.plot_timelines(comparison)
    try:
        assert [ax.get_title(loc="left") for ax in figure.axes] == ["plain: 4 connections", "threading: 4 requests"]
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)
    assert "plain: 4 connections on 2 threads" in timelineplot.describe_timelines(comparison)
