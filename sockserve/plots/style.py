"""One look for every figure: colours a colour-blind reader tells apart,
and a second cue (marker, line style, hatch) for a reader who sees none.

Every plotting module takes its series styles from here, so the same run,
state or outcome looks the same in every figure, in print and on screen.
The palette is Okabe and Ito's (2008), chosen to stay distinct under the
common colour-vision deficiencies; black is kept for reference lines.
Plain data: no matplotlib import.
"""

from __future__ import annotations

__all__ = ["PALETTE", "MARKERS", "LINESTYLES", "HATCHES", "series_style", "bar_style"]

#: Okabe-Ito: orange, sky blue, bluish green, yellow, blue, vermillion,
#: reddish purple, grey.
PALETTE: tuple[str, ...] = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999",
)
#: One marker per series, distinct in outline (filled markers can hide each other).
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Line styles, for series whose markers are too dense to read.
LINESTYLES: tuple[object, ...] = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)))
#: Bar hatches, so bars read apart in grey print.
HATCHES: tuple[str, ...] = ("", "//", "\\\\", "xx", "..", "++", "oo", "--")


def series_style(index: int) -> dict[str, object]:
    """Matplotlib keyword arguments for line series number *index*: a
    colour, a marker and a line style, all three different per series."""
    return {
        "color": PALETTE[index % len(PALETTE)],
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
    }


def bar_style(index: int) -> dict[str, object]:
    """Matplotlib keyword arguments for bar number *index*: a colour, a
    hatch and a black edge (a hatch needs an edge to show)."""
    return {
        "color": PALETTE[index % len(PALETTE)],
        "hatch": HATCHES[index % len(HATCHES)],
        "edgecolor": "black",
    }
