"""One look for every figure: colours a colour-blind reader tells apart,
and a second cue (marker, line style, hatch) for a reader who sees none.

Every plotting module takes its series styles from here, so the same run,
state or outcome looks the same in every figure, in print and on screen.
The palette is Okabe and Ito's (2008), chosen to stay distinct under the
common colour-vision deficiencies; black is kept for reference lines.
Plain data: no matplotlib import.
"""

from __future__ import annotations

__all__ = [
    "PALETTE", "MARKERS", "LINESTYLES", "HATCHES", "series_style", "bar_style",
    "OUTCOME_STYLES", "outcome_style", "STATE_STYLES", "state_style", "svg_dash", "MIN_FONT_SIZE",
    "REFERENCE", "REFERENCE_LINESTYLE",
]

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


#: The smallest font, in points, any figure uses for text a reader must read
#: (tick labels, legends, in-chart notes): 8 pt is 11 px at 100 dpi.
MIN_FONT_SIZE = 8.0
#: Reference lines (limits, windows, poll intervals): black, dashed, never a series colour.
REFERENCE = "#000000"
REFERENCE_LINESTYLE = "--"

Style = tuple[str, str, object]  # (colour, marker, line style)

#: How each request ended, one look everywhere: ok is solid blue with
#: circles; each failure has its own colour, marker and broken line, so
#: "ok" and "refused" never differ by red and green alone.
OUTCOME_STYLES: dict[str, Style] = {
    "ok": (PALETTE[4], "o", "-"),
    "refused": (PALETTE[5], "s", "--"),
    "reset": (PALETTE[0], "^", "-."),
    "timeout": (PALETTE[6], "D", ":"),
    "error": (PALETTE[7], "v", (0, (5, 1))),
}

#: One look per socket state. States seen together (SYN-SENT beside
#: ESTABLISHED, CLOSE-WAIT beside FIN-WAIT-2, TIME-WAIT after both) differ in
#: colour, marker and line style; Unix states borrow their TCP counterpart's.
STATE_STYLES: dict[str, Style] = {
    "LISTEN": (REFERENCE, "", "-"),
    "SYN-SENT": (PALETTE[0], "^", "--"),
    "SYN-RECV": (PALETTE[7], "v", ":"),
    "ESTABLISHED": (PALETTE[4], "o", "-"),
    "FIN-WAIT-1": (PALETTE[6], "P", (0, (5, 1))),
    "FIN-WAIT-2": (PALETTE[2], "X", (0, (3, 1, 1, 1, 1, 1))),
    "CLOSE-WAIT": (PALETTE[5], "s", "-."),
    "CLOSING": (PALETTE[3], "*", (0, (8, 2))),
    "LAST-ACK": (PALETTE[7], "D", (0, (1, 3))),
    "TIME-WAIT": (PALETTE[1], "D", ":"),
    "CLOSE": (PALETTE[7], "x", (0, (1, 3))),
    "CONNECTING": (PALETTE[0], "^", "--"),
    "CONNECTED": (PALETTE[4], "o", "-"),
    "DISCONNECTING": (PALETTE[6], "P", (0, (5, 1))),
    "UNCONNECTED": (PALETTE[7], "x", (0, (1, 3))),
}


def _as_kwargs(style: Style) -> dict[str, object]:
    colour, marker, linestyle = style
    return {"color": colour, "marker": marker, "linestyle": linestyle}


def outcome_style(name: str) -> dict[str, object]:
    """Matplotlib keyword arguments for the series of outcome *name*
    (an unknown outcome looks like "error")."""
    return _as_kwargs(OUTCOME_STYLES.get(name, OUTCOME_STYLES["error"]))


def state_style(name: str) -> dict[str, object]:
    """Matplotlib keyword arguments for the series of socket state *name*."""
    return _as_kwargs(STATE_STYLES.get(name, (REFERENCE, "o", "-")))


def svg_dash(linestyle: object, width: float = 1.8) -> str:
    """An SVG ``stroke-dasharray`` for a matplotlib line style ("" for solid),
    the dashes scaled to a line *width* pixels wide."""
    named: dict[str, tuple[float, ...]] = {"-": (), "solid": (), "--": (3.7, 1.6), "dashed": (3.7, 1.6),
                                           "-.": (6.4, 1.6, 1.0, 1.6), "dashdot": (6.4, 1.6, 1.0, 1.6),
                                           ":": (1.0, 1.65), "dotted": (1.0, 1.65)}
    if isinstance(linestyle, str):
        pattern = named.get(linestyle, ())
    elif isinstance(linestyle, tuple) and len(linestyle) == 2 and isinstance(linestyle[1], tuple):
        pattern = tuple(float(x) for x in linestyle[1])
    else:
        pattern = ()
    scale = max(width, 1.0)
    return " ".join(f"{x * scale:g}" for x in pattern)
