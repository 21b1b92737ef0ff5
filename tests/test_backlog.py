"""The listen backlog experiment (sockserve.workbook.backlog)."""

from __future__ import annotations

import socket
import socketserver
import sys

import pytest

import sockserve
from sockserve.workbook.backlog import (
    BACKLOG_OUTCOMES,
    BacklogRun,
    compare_backlogs,
    describe_backlog,
    effective_somaxconn,
    plot_backlog,
    run_backlog,
)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the drop-and-retransmit behaviour of a full accept queue is Linux's",
)


def _run(**fields: object) -> BacklogRun:
    base: dict[str, object] = dict(
        label="x", backlog=5, clients=4, delay_ms=10.0, window=0.9,
        replies=(0.1, 0.5, 1.2, None), outcomes=("ok", "ok", "ok", "reset"),
    )
    base.update(fields)
    return BacklogRun(**base)  # type: ignore[arg-type]


def test_counts_split_replies_by_the_window() -> None:
    run = _run()
    assert (run.ok, run.in_window, run.late) == (3, 2, 1)
    assert run.dropped is None and _run(retransmits=(0, 0, 1, 2)).dropped == 2
    assert run.counts() == {"ok": 3, "reset": 1, "refused": 0, "timeout": 0, "error": 0}
    assert list(run.counts()) == list(BACKLOG_OUTCOMES)
    assert run.summary() == "x: 2 of 4 answered within 0.9 s, 1 later; 1 reset"


def test_a_deep_backlog_answers_the_whole_burst_promptly() -> None:
    run = run_backlog(socket.SOMAXCONN, clients=20, delay_ms=5, window=2.0, wait=10.0)
    assert run.backlog == socket.SOMAXCONN
    assert run.outcomes == ("ok",) * 20
    if run.dropped is None:  # no TCP_INFO: only the clock can tell
        assert run.in_window == 20 and run.late == 0
    else:  # what keeps a burst from being prompt: no client was dropped and had to send again
        assert run.retransmits == (0,) * 20
    # one request at a time: the replies are spread by about delay_ms each
    times = sorted(t for t in run.replies if t is not None)
    assert times[-1] - times[0] >= 19 * 0.005 * 0.8


@linux_only
def test_a_backlog_of_five_drops_part_of_the_burst() -> None:
    run = run_backlog(5, clients=24, delay_ms=10, window=0.9, wait=1.6)
    assert run.backlog == 5 and run.label == "backlog 5"
    # the queue holds backlog + 1 (and one more for each the server accepts
    # during the burst); the rest are dropped and must send their SYN (or
    # request) again, about 1 s later, or are reset, so the window cannot
    # hold them all
    assert len(run.retransmits) == 24
    assert run.retransmits.count(0) >= 6 and run.dropped
    assert run.in_window < 24
    assert run.late + (run.clients - run.ok) > 0


def test_the_class_backlog_is_used_when_none_is_given() -> None:
    run = run_backlog(None, clients=3, delay_ms=1, server_class=socketserver.TCPServer, label="stdlib")
    assert run.backlog == 5 and run.label == "stdlib"
    assert run.ok == 3
    assert run_backlog(None, clients=2, delay_ms=1).backlog == sockserve.TCPServer.request_queue_size


def test_compare_backlogs_runs_each_in_order() -> None:
    runs = compare_backlogs((7, 64), clients=2, delay_ms=1)
    assert [r.backlog for r in runs] == [7, 64]
    assert all(r.ok == 2 for r in runs)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="clients"):
        run_backlog(5, clients=0)
    with pytest.raises(ValueError, match="window"):
        run_backlog(5, window=2.0, wait=1.0)


def test_effective_somaxconn_is_a_positive_bound() -> None:
    assert 0 < effective_somaxconn() <= socket.SOMAXCONN


def test_plot_draws_one_line_per_run_and_the_window() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = plot_backlog([_run(), _run(label="y", replies=(0.1, 0.2, 0.3, 0.4), outcomes=("ok",) * 4)])
    try:
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels[:2] == ["x: 2 in window, 1 failed", "y: 4 in window"]
        assert "window (0.9 s)" in labels
        xs, ys = ax.get_lines()[0].get_data()
        assert list(ys) == [0, 1, 2, 3] and list(xs) == [0.0, 0.1, 0.5, 1.2]
        # The runs climb together at first: they differ by marker and line style, not colour alone.
        first, second = ax.get_lines()[:2]
        assert first.get_marker() != second.get_marker() and first.get_linestyle() != second.get_linestyle()
    finally:
        plt.close(ax.figure)


def test_the_text_alternative_says_when_replies_came_and_where_none_did() -> None:
    run = _run()
    assert run.silence() == (0.5, 1.2)
    assert describe_backlog([run, _run(label="y", replies=(0.1, 0.2, 0.3, 0.4), outcomes=("ok",) * 4)]) == (
        "Clients answered over time: x: 2 of 4 answered within 0.9 s, 1 later, the last after 1.20 s, 1 reset; "
        "no reply from 0.50 to 1.20 s; y: 4 of 4 answered within 0.9 s, the last after 0.40 s.")
    assert _run(replies=(None,) * 4, outcomes=("reset",) * 4).silence() == (0.0, 0.0)
