"""PNG pictures for the panels (matplotlib, imported only here and on use).

The comparison panel shows its figure as an ``ipywidgets.Image`` value (PNG
bytes; the traffic panel's live charts are SVG, see :mod:`.livecharts`): that works
in any JupyterLab without a front-end extension (ipympl is not needed), and a
background thread may assign an Image's value. Figures are made with
``matplotlib.figure.Figure`` and the Agg canvas directly, never through
``pyplot``'s global figure list, so drawing in a panel's thread touches no
shared state and never pops up a window or an inline copy.

The final comparison picture comes from :func:`sockserve.plots.plot_comparison`,
the same function the notebooks and the command line use.
"""

from __future__ import annotations

import functools
import gc
import io
import sys
from typing import Any

from ..plots import comparison as plots
from ..plots import timeline as timelineplot

__all__ = [
    "png", "comparison_png", "timeline_png", "blank_png", "release_fonts",
]

#: 100 dots per inch: a figure's 8-point text is 11 pixels tall at its own size.
_DPI = 100


def _figure(width: float = 5.0, height: float = 2.6) -> Any:
    # matplotlib (the lab extra) is imported when a panel first draws, not when the lab is imported.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig: Any) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def release_fonts() -> None:
    """Close the font files matplotlib keeps open for drawing threads.

    matplotlib caches open fonts per thread, so each short-lived panel thread
    that draws leaves its own copies open (until the cache of 64 entries
    overflows). A panel's thread calls this once when it ends; the fonts sit
    in reference cycles, hence the collection."""
    if "matplotlib.font_manager" not in sys.modules:
        return
    from matplotlib import font_manager  # already imported (checked above): the lab extra's, on use

    cached = getattr(font_manager, "_get_font", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()
        gc.collect()  # the fonts sit in reference cycles


@functools.lru_cache(maxsize=16)
def blank_png(title: str) -> bytes:
    """An empty plot with a title, shown before any data arrives (drawn
    once per title: a new panel opens no font files)."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
    return png(fig)


def comparison_png(comparison: Any) -> bytes:
    """The side-by-side comparison figure from :mod:`sockserve.plots`."""
    fig = plots.plot_comparison(comparison, fig=_figure(16, 4.8))
    try:
        return png(fig)
    finally:
        _forget(fig)


def timeline_png(timelines: Any, unit: str | None = None) -> bytes:
    """The request timelines (a comparison's, or ``{label: timeline}``) from
    :mod:`sockserve.plots.timeline` (*unit*: what a span is, see there)."""
    fig = timelineplot.plot_timelines(timelines, fig=_figure(), unit=unit)
    try:
        return png(fig)
    finally:
        _forget(fig)


def _forget(fig: Any) -> None:
    """Drop *fig* from pyplot's list if it was made through pyplot."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)  # a no-op for a figure pyplot does not know
