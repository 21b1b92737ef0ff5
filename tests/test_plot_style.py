"""The shared figure style: every series differs in more than its colour."""

from __future__ import annotations

from sockserve.plots import style


def test_neighbouring_series_differ_in_colour_marker_and_line_style() -> None:
    for index in range(len(style.PALETTE) - 1):
        this, that = style.series_style(index), style.series_style(index + 1)
        assert this["color"] != that["color"]
        assert this["marker"] != that["marker"]
        assert this["linestyle"] != that["linestyle"]


def test_bars_differ_by_hatch_as_well_as_colour() -> None:
    hatches = [style.bar_style(i)["hatch"] for i in range(len(style.HATCHES))]
    colours = [style.bar_style(i)["color"] for i in range(len(style.PALETTE))]
    assert len(set(hatches)) == len(hatches)
    assert len(set(colours)) == len(colours)
    assert all(style.bar_style(i)["edgecolor"] == "black" for i in range(3))


def test_the_palette_has_no_red_green_pair_by_name() -> None:
    # Okabe-Ito: no pure red (#FF0000) or pure green (#00FF00) to confuse.
    assert not {"#FF0000", "#00FF00", "red", "green"} & {c.upper() for c in style.PALETTE}
