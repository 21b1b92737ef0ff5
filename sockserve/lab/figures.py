"""PNG pictures for the panels (matplotlib, imported only here and on use).

The panels show plots as ``ipywidgets.Image`` values (PNG bytes): that works
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
from collections.abc import Sequence
from typing import Any

from .runs import Sample

__all__ = [
    "png", "live_latency_png", "live_concurrency_png", "comparison_png", "blank_png", "release_fonts",
]

_DPI = 72


def _figure(width: float = 5.0, height: float = 2.6) -> Any:
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
    from matplotlib import font_manager

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


def live_latency_png(samples: Sequence[Sample], duration: float) -> bytes:
    """Latency so far (p50 and p99, ms) against time."""
    fig = _figure()
    ax = fig.add_subplot()
    t = [s.elapsed for s in samples if s.p50_ms is not None]
    ax.plot(t, [s.p50_ms for s in samples if s.p50_ms is not None], label="p50", color="tab:blue", marker=".")
    t99 = [s.elapsed for s in samples if s.p99_ms is not None]
    ax.plot(t99, [s.p99_ms for s in samples if s.p99_ms is not None], label="p99", color="tab:red", marker=".")
    ax.set_xlim(0, max(duration, t[-1] if t else 0.0))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"latency, {samples[-1].requests if samples else 0} requests", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def live_concurrency_png(samples: Sequence[Sample], duration: float) -> bytes:
    """Server threads and child processes against time."""
    fig = _figure()
    ax = fig.add_subplot()
    t = [s.elapsed for s in samples]
    threads = [s.threads if s.threads is not None else 0 for s in samples]
    children = [s.children if s.children is not None else 0 for s in samples]
    ax.step(t, threads, where="post", label="threads", color="tab:green")
    ax.step(t, children, where="post", label="children", color="tab:purple")
    ax.set_xlim(0, max(duration, t[-1] if t else 0.0))
    ax.set_ylim(bottom=0, top=max([1, *threads, *children]) * 1.15)
    ax.set_xlabel("seconds")
    ax.set_ylabel("count")
    ax.set_title("server threads and children", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def comparison_png(comparison: Any) -> bytes:
    """The side-by-side comparison figure from :mod:`sockserve.plots`."""
    from .. import plots

    fig = plots.plot_comparison(comparison, fig=_figure(16, 4.8))
    try:
        return png(fig)
    finally:
        _forget(fig)


def _forget(fig: Any) -> None:
    """Drop *fig* from pyplot's list if it was made through pyplot."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)  # a no-op for a figure pyplot does not know
