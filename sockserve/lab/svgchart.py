"""Small live line charts as SVG text: cheap enough to redraw ten times a second.

The panels' live plots are redrawn many times a second while load runs, on
machines with one core that the server and the load generator also need.
Drawing them with matplotlib would cost tens of milliseconds of CPU each;
these charts are a few hundred lines of text, made in well under a
millisecond, and shown in an ``ipywidgets.HTML``. (The final comparison
figure still comes from :mod:`sockserve.plots`.)

:func:`line_chart` draws :class:`Series` (lines, steps, markers, dashes)
on linear axes with a few round ticks, a title, and the legend *below* the
plot area, never over the data. Plain functions of plain data: no widgets,
no threads, no matplotlib.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Series", "line_chart", "nice_ticks", "side_by_side", "MARKERS"]

_FONT = "font-family:sans-serif;font-size:11px"


@dataclass(frozen=True)
class Series:
    """One line: ``points`` are (x, y); ``step`` draws a staircase (counts);
    ``dash`` an SVG dash pattern ("4 3"), ``marker`` one of :data:`MARKERS`
    or ""; ``offset`` shifts the line up by that many pixels (so lines with
    equal values stay apart; the caption says so)."""

    label: str
    points: Sequence[tuple[float, float]]
    color: str
    dash: str = ""
    marker: str = ""
    step: bool = False
    width: float = 1.8
    offset: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About *count* round tick values from *low* to *high*."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"


#: Marker shapes, named as matplotlib names them (so :mod:`sockserve.plots.style` serves both).
MARKERS: dict[str, tuple[tuple[float, float], ...]] = {
    "s": ((-3, -3), (3, -3), (3, 3), (-3, 3)),
    "^": ((0, -4), (3.5, 2.5), (-3.5, 2.5)),
    "v": ((0, 4), (3.5, -2.5), (-3.5, -2.5)),
    "D": ((0, -4), (3.5, 0), (0, 4), (-3.5, 0)),
    "d": ((0, -4), (2.5, 0), (0, 4), (-2.5, 0)),
    "P": ((-1.2, -4), (1.2, -4), (1.2, -1.2), (4, -1.2), (4, 1.2), (1.2, 1.2), (1.2, 4), (-1.2, 4),
          (-1.2, 1.2), (-4, 1.2), (-4, -1.2), (-1.2, -1.2)),
    "X": ((-3.4, -2.0), (-2.0, -3.4), (0, -1.4), (2.0, -3.4), (3.4, -2.0), (1.4, 0), (3.4, 2.0), (2.0, 3.4),
          (0, 1.4), (-2.0, 3.4), (-3.4, 2.0), (-1.4, 0)),
    "x": ((-3.0, -1.8), (-1.8, -3.0), (0, -1.2), (1.8, -3.0), (3.0, -1.8), (1.2, 0), (3.0, 1.8), (1.8, 3.0),
          (0, 1.2), (-1.8, 3.0), (-3.0, 1.8), (-1.2, 0)),
    "*": ((0, -4.5), (1.1, -1.5), (4.3, -1.4), (1.8, 0.6), (2.7, 3.6), (0, 1.8), (-2.7, 3.6), (-1.8, 0.6),
          (-4.3, -1.4), (-1.1, -1.5)),
}


def _marker(kind: str, x: float, y: float, color: str) -> str:
    shape = MARKERS.get(kind)
    if shape is None:
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>'
    points = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in shape)
    return f'<polygon points="{points}" fill="{color}" stroke="#222" stroke-width="0.4"/>'


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    xmax: float | None = None,
    ymax: float | None = None,
    width: int = 380,
    height: int = 230,
    caption: str = "",
    empty: str = "no data yet",
    description: str = "",
) -> str:
    """An SVG line chart (a string) of *series* on axes from 0.

    The x axis runs to *xmax* (or the largest x), the y axis to *ymax* (or
    10% above the largest y). The legend sits under the axes, one entry
    per series; *caption* (e.g. what the offsets mean) goes under it.
    *description* (the chart's text alternative) becomes the image's
    accessible name (``aria-label`` and ``<title>``); default: the title.
    """
    left, right, top = 46, 10, 22
    legend_rows = math.ceil(len(series) / 3) if series else 0
    caption_rows = 1 if caption else 0
    bottom = 34 + 15 * legend_rows + 13 * caption_rows
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if math.isfinite(y)]
    x_hi = max([xmax or 0.0, *xs, 1e-9])
    y_hi = ymax if ymax is not None else max([*ys, 0.0]) * 1.1
    if not y_hi > 0:
        y_hi = 1.0
    yticks = nice_ticks(0.0, y_hi, 4)
    y_hi = max(y_hi, yticks[-1])
    xticks = nice_ticks(0.0, x_hi, 5)

    def px(x: float) -> float:
        return left + plot_w * (x / x_hi)

    def py(y: float) -> float:
        return top + plot_h * (1.0 - min(max(y, 0.0), y_hi) / y_hi)

    alt = html.escape(description or title, quote=True)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" style="{_FONT}" class="sockserve-chart" role="img" '
           f'aria-label="{alt}"><title>{alt}</title>',
           f'<text x="{width / 2:.0f}" y="14" text-anchor="middle" font-size="12">'
           f'{html.escape(title)}</text>']
    for t in yticks:
        y = py(t)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in xticks:
        if t > x_hi + 1e-9:
            continue
        x = px(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 13}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h + 26}" text-anchor="middle">'
               f'{html.escape(xlabel)}</text>')
    out.append(f'<text transform="translate(11 {top + plot_h / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{html.escape(ylabel)}</text>')
    if not any(s.points for s in series):
        out.append(f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" '
                   f'text-anchor="middle" fill="grey">{html.escape(empty)}</text>')
    for s in series:
        # A value that is not finite (NaN) breaks the line: nothing is drawn there.
        segments: list[list[tuple[float, float]]] = [[]]
        previous: tuple[float, float] | None = None
        for x, y in s.points:
            if not math.isfinite(y):
                if segments[-1]:
                    segments.append([])
                previous = None
                continue
            point = (px(x), py(y) - s.offset)
            if s.step and previous is not None:
                segments[-1].append((point[0], previous[1]))
            segments[-1].append(point)
            previous = point
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        for coords in segments:
            if not coords:
                continue
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            out.append(f'<polyline points="{path}" fill="none" stroke="{s.color}" '
                       f'stroke-width="{s.width}"{dash}><title>{html.escape(s.label)}</title></polyline>')
        if s.marker:
            for x, y in s.points[-40:] if len(s.points) > 40 else s.points:
                if math.isfinite(y):
                    out.append(_marker(s.marker, px(x), py(y) - s.offset, s.color))
    # The legend, under the x label: never over the data.
    row_y = top + plot_h + 42
    col_w = (width - left) / 3
    for i, s in enumerate(series):
        x = left + (i % 3) * col_w
        y = row_y + 15 * (i // 3)
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f'<line x1="{x:.0f}" x2="{x + 18:.0f}" y1="{y - 4}" y2="{y - 4}" stroke="{s.color}" '
                   f'stroke-width="{s.width}"{dash}/>')
        if s.marker:
            out.append(_marker(s.marker, x + 9, y - 4, s.color))
        out.append(f'<text x="{x + 22:.0f}" y="{y}">{html.escape(s.label)}</text>')
    if caption:
        out.append(f'<text x="{left}" y="{height - 4}" fill="#444" font-size="11">'
                   f'{html.escape(caption)}</text>')
    out.append("</svg>")
    return "".join(out)


def side_by_side(charts: Sequence[str], gap: int = 8) -> str:
    """Several SVG charts (from :func:`line_chart`) as one SVG, left to right:
    one picture to save where a panel showed them side by side."""
    sizes = []
    for chart in charts:
        found = re.match(r'<svg[^>]* width="(\d+)" height="(\d+)"', chart)
        if found is None:
            raise ValueError("side_by_side takes charts made by line_chart")
        sizes.append((int(found.group(1)), int(found.group(2))))
    width = sum(w for w, _ in sizes) + gap * max(0, len(sizes) - 1)
    height = max((h for _, h in sizes), default=0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">']
    x = 0
    for chart, (w, _h) in zip(charts, sizes):
        out.append(chart.replace("<svg ", f'<svg x="{x}" y="0" ', 1))
        x += w + gap
    out.append("</svg>")
    return "".join(out)
