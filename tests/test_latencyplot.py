"""Each request's latency over time (sockserve.plots.latency)."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from sockserve.plots.latency import describe_latency_over_time, plot_latency_over_time  # noqa: E402


def test_one_series_per_run_told_apart_by_marker_and_described() -> None:
    import matplotlib.pyplot as plt

    closed = [(0.0, 1.0), (0.1, 50.0), (0.2, 1.0), (0.3, 1.2)]
    opened = [(0.0, 1.0), (0.1, 50.0), (0.11, 40.0), (0.12, 30.0), (0.4, 1.0)]
    ax = plot_latency_over_time({"closed loop": closed, "open loop": opened})
    try:
        first, second = ax.collections
        assert len(first.get_offsets()) == 4 and len(second.get_offsets()) == 5
        assert first.get_paths()[0] != second.get_paths()[0]  # different marker shapes
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["closed loop", "open loop"]
    finally:
        plt.close(ax.figure)
    assert describe_latency_over_time({"closed loop": closed, "open loop": opened}) == (
        "Each request's latency over time: closed loop: 4 requests due over 0.3 s, median 1.1 ms, nine in ten "
        "under 50.0 ms, the slowest 50.0 ms; open loop: 5 requests due over 0.4 s, median 30.0 ms, nine in ten "
        "under 50.0 ms, the slowest 50.0 ms.")
