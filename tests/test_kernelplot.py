"""Pictures of the kernel's view (sockserve.plots.kernel): what each plot draws."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from sockserve.plots import kernel as kernelplot  # noqa: E402
from sockserve.kernel.view import KernelReading, KernelSeries  # noqa: E402
from sockserve.lab import figures  # noqa: E402


@pytest.fixture
def fig() -> Iterator[Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 3))
    FigureCanvasAgg(figure)
    yield figure
    figures.release_fonts()  # drawing opened font files in this thread


def _series() -> KernelSeries:
    # a burst against backlog 2: three queued (full), three SYNs dropped, then drained
    rows = [
        ({"LISTEN": 1}, {}, 0),
        ({"LISTEN": 1, "ESTABLISHED": 3}, {"ESTABLISHED": 3, "SYN-SENT": 3}, 3),
        ({"LISTEN": 1, "ESTABLISHED": 2, "TIME-WAIT": 1}, {"ESTABLISHED": 2, "SYN-SENT": 3}, 2),
        ({"LISTEN": 1, "TIME-WAIT": 3}, {}, 0),
    ]
    return KernelSeries("127.0.0.1:8000", tuple(
        KernelReading(10.0 + i * 0.5, server, client, queue, 2) for i, (server, client, queue) in enumerate(rows)))


def _visible_lines(ax: Any) -> dict[str, list[int | None]]:
    """State -> the count each reading draws (None: no line there); lines
    are moved a little apart, so the drawn value is the count plus a small offset."""
    import math

    return {line.get_label(): [None if math.isnan(y) else round(y) for y in line.get_ydata()]
            for line in ax.get_lines() if line.get_visible()}


def test_states_draw_one_line_per_state_seen_without_listen(fig: Any) -> None:
    ax = kernelplot.plot_states(_series(), "server", fig.add_subplot(1, 2, 1))
    # no line along zero before a state appears; the drop to zero is drawn
    assert _visible_lines(ax) == {"ESTABLISHED": [None, 3, 2, 0], "TIME-WAIT": [None, None, 1, 3]}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ESTABLISHED", "TIME-WAIT"]
    established = next(line for line in ax.get_lines() if line.get_label() == "ESTABLISHED")
    assert list(established.get_xdata()) == [0.0, 0.5, 1.0, 1.5]  # seconds from the first reading
    client = kernelplot.plot_states(_series(), "client", fig.add_subplot(1, 2, 2))
    assert set(_visible_lines(client)) == {"SYN-SENT", "ESTABLISHED"}
    assert "clients" in client.get_title()
    with pytest.raises(ValueError, match="side"):
        kernelplot.plot_states(_series(), "both", fig.add_subplot(1, 2, 2))


def test_states_of_equal_count_stay_apart_by_place_marker_and_line_style(fig: Any) -> None:
    # SYN-SENT 3 beside ESTABLISHED 3 on the clients' side: both must be seen.
    ax = kernelplot.plot_states(_series(), "client", fig.add_subplot())
    lines = {line.get_label(): line for line in ax.get_lines() if line.get_visible()}
    sent, established = lines["SYN-SENT"], lines["ESTABLISHED"]
    assert sent.get_ydata()[1] != established.get_ydata()[1]  # equal counts, drawn apart
    assert abs(sent.get_ydata()[1] - established.get_ydata()[1]) < 0.5  # ... still reading as 3
    assert sent.get_marker() != established.get_marker()
    assert sent.get_linestyle() != established.get_linestyle()
    assert "moved apart" in ax.get_xlabel()


def test_the_text_alternative_says_what_each_side_held_and_when() -> None:
    text = kernelplot.describe_kernel_view(_series())
    assert text.startswith("The kernel's view of 127.0.0.1:8000, 4 readings over 1.50 s")
    assert "server's side: ESTABLISHED up to 3 (0.50 to 1.00 s), TIME-WAIT up to 3 (1.00 to 1.50 s)" in text
    assert "clients' side: SYN-SENT up to 3 (0.50 to 1.00 s), ESTABLISHED up to 3 (0.50 to 1.00 s)" in text
    assert "listen queue: at most 3 (backlog 2), full in 1 of 4 readings" in text


def test_the_queue_shows_its_limit_and_when_it_was_full(fig: Any) -> None:
    ax = kernelplot.plot_queue(_series(), fig.add_subplot())
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines() if line.get_visible()}
    assert lines["waiting for accept()"] == [0, 3, 2, 0]
    assert lines["full at 3 (Linux: backlog + 1)"] == [3, 3]
    assert "backlog 2" in ax.get_title()
    assert len(ax.collections) == 1  # the shaded full moments
    assert "full: new SYNs dropped" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_a_live_view_updates_its_artists_in_place(fig: Any) -> None:
    view = kernelplot.KernelView(fig)
    series = _series()
    view.update(KernelSeries(series.target, series.readings[:1]))
    server_ax = fig.axes[0]
    lines_before = list(server_ax.get_lines())
    assert _visible_lines(server_ax) == {}
    assert server_ax.texts[0].get_visible()  # "no connections"
    view.update(series)
    assert list(server_ax.get_lines()) == lines_before  # the same artists, new data
    assert _visible_lines(server_ax)["ESTABLISHED"] == [None, 3, 2, 0]
    assert not server_ax.texts[0].get_visible()
    assert len(fig.axes) == 3 and "127.0.0.1:8000" in fig.get_suptitle()
    assert len(fig.axes[2].collections) == 1  # the old shading was replaced, not added to
    view.update(series)
    assert len(fig.axes[2].collections) == 1


def test_plot_kernel_view_takes_a_series_or_its_dict(fig: Any) -> None:
    out = kernelplot.plot_kernel_view(_series().to_dict(), fig)
    assert out is fig and len(fig.axes) == 3
    with pytest.raises(TypeError, match="KernelSeries"):
        kernelplot.as_series([1, 2])
