"""The traffic panel's live SVG charts (sockserve.lab.livecharts, .svgchart):
told apart without colour, and described in words computed from the samples."""

from __future__ import annotations

import html
import re

from sockserve.lab import livecharts
from sockserve.lab.runs import Sample
from sockserve.lab.svgchart import Series, line_chart, side_by_side
from sockserve.plots.style import OUTCOME_STYLES


def _samples() -> list[Sample]:
    """Two seconds of load: 40 then 80 replies, 3 resets and a timeout in the second second."""
    return [
        Sample(1.0, 41, 40, 1, 2.0, 9.0, 4, 0, 2.0, 9.0, {"ok": 40, "reset": 1}, "peak"),
        Sample(2.0, 84, 80, 4, 2.5, 12.0, 6, 0, 3.0, 14.0, {"ok": 80, "reset": 3, "timeout": 1}, "peak"),
    ]


def test_each_chart_says_in_words_what_it_draws() -> None:
    samples = _samples()
    assert livecharts.describe_latency(samples) == (
        "Latency chart: 80 replies in 2.0 s, p50 2.5 ms and p99 12.0 ms over the whole run; "
        "the worst interval's p99 was 14.0 ms.")
    assert livecharts.describe_outcomes(samples) == "Outcomes chart: 80 ok, failed: 3 reset, 1 timeout, over 2.0 s."
    assert livecharts.describe_concurrency(samples) == (
        "Threads and children chart: at most 6 handler threads and 0 child processes alive at once.")
    assert livecharts.describe_latency([]) == "Latency chart: no replies yet."
    chart = livecharts.outcomes_chart(samples, 2.0)
    assert f'aria-label="{html.escape(livecharts.describe_outcomes(samples), quote=True)}"' in chart


def test_outcomes_differ_in_marker_and_dashes_not_only_in_colour() -> None:
    looks = list(OUTCOME_STYLES.values())
    assert len({marker for _c, marker, _l in looks}) == len(looks)
    assert len({str(line) for _c, _m, line in looks}) == len(looks)
    chart = livecharts.outcomes_chart(_samples(), 2.0)
    drawn = {title: dash for dash, title in re.findall(r'(?: stroke-dasharray="([^"]*)")?><title>([^<]+)</title>',
                                                        chart)}
    assert drawn["ok"] == "" and drawn["reset (failed)"] and drawn["timeout (failed)"]
    assert drawn["reset (failed)"] != drawn["timeout (failed)"]


def test_a_gap_in_a_series_breaks_its_line_and_charts_go_side_by_side() -> None:
    nan = float("nan")
    chart = line_chart([Series("s", [(0, 1.0), (1, 1.0), (2, nan), (3, 2.0), (4, 2.0)], "#000")],
                       title="t", xlabel="x", ylabel="y")
    assert chart.count("<polyline") == 2
    both = side_by_side([chart, chart])
    assert both.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="768" height="230"')
    assert both.count("<svg") == 3 and '<svg x="388" y="0"' in both
