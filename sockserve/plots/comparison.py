"""Plots of load runs and comparisons (matplotlib, imported only when drawing).

The same functions serve the notebooks, the widgets and the command line:

``plot_latency(runs, ax=None)``
    latency by percentile, one line per run: x is the percentile on a
    "nines" scale (50%, 90%, 99%, 99.9%), y the latency in ms on a log
    scale, so the tail is as visible as the median.
``plot_throughput(runs, ax=None)``
    successful requests per second, one bar per run (errors noted).
``plot_concurrency(runs, ax=None)``
    the server's threads (solid) and child processes (dashed) over time.
``plot_comparison(comparison)``
    the three side by side; returns the Figure.
``save_comparison_plot(comparison, path)``
    draw and write a PNG (or any format matplotlib knows by the suffix).
``describe_latency``, ``describe_throughput``, ``describe_concurrency``, ``describe_comparison``
    each figure's one-line text alternative, computed from the same data:
    print it after the figure, for a reader who cannot see it.

*runs* may be a :class:`~sockserve.measure.experiment.Comparison`, a
:class:`~sockserve.measure.experiment.RunResult`, a :class:`~sockserve.load.LoadResult`,
a dict loaded from a comparison's JSON, or a list of any of these. Each
``plot_*`` draws into *ax* when given and returns it; without *ax* it makes
a new figure inside ``plt.ioff()`` (so nothing pops up or is displayed twice
in a notebook) and the caller shows or saves ``ax.figure``. Run *i* has the
same look in every plot (:mod:`sockserve.plots.style`: a colour-blind-safe
colour, and a marker, line style or hatch as well), so the panels read
together in colour and in grey.

``import sockserve.plots`` costs nothing: matplotlib is imported inside the
functions.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..measure.experiment import Comparison, RunResult
from .style import bar_style, series_style

if TYPE_CHECKING:  # only for annotations; never imported at run time here
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_latency",
    "plot_throughput",
    "plot_concurrency",
    "plot_comparison",
    "save_comparison_plot",
    "as_runs",
    "percentile_curve",
    "describe_latency",
    "describe_throughput",
    "describe_concurrency",
    "describe_comparison",
]

#: (fraction, label) ticks of the percentile axis.
_NINES_TICKS = ((0.0, "0%"), (0.5, "50%"), (0.9, "90%"), (0.99, "99%"),
                (0.999, "99.9%"), (0.9999, "99.99%"))


def as_runs(obj: Any) -> list[RunResult]:
    """Whatever the plot functions accept, as a list of RunResult."""
    if isinstance(obj, Comparison):
        return list(obj.runs)
    if isinstance(obj, RunResult):
        return [obj]
    if isinstance(obj, dict):
        if "runs" in obj:
            return list(Comparison.from_dict(obj).runs)
        return [RunResult.from_dict(obj)]
    if hasattr(obj, "spec") and hasattr(obj, "latency"):  # a LoadResult
        spec = obj.spec
        label = f"{spec.transport} {spec.workload}"
        return [RunResult.from_load(label, obj)]
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        return [run for item in obj for run in as_runs(item)]
    raise TypeError(f"cannot plot {type(obj).__name__}: pass a Comparison, RunResult or LoadResult")


def _nines(fraction: float) -> float:
    """Position of a fraction on the nines axis: 0.9 -> 1, 0.99 -> 2, ..."""
    return -math.log10(max(1.0 - fraction, 1e-9))


def percentile_curve(run: RunResult) -> tuple[list[float], list[float]]:
    """(x on the nines scale, latency ms) points of a run's percentile plot.

    From the latency histogram when the run has one (a step per bucket),
    else from its summary percentiles. Empty lists for a run with no
    successful request.
    """
    hist = run.latency_histogram()
    if hist is not None and hist.count:
        cap = math.log10(hist.count) if hist.count > 1 else 1.0
        xs: list[float] = []
        ys: list[float] = []
        seen = 0
        for upper, n in hist.buckets():
            ms = min(max(upper, hist.min), hist.max) * 1000.0
            start = min(_nines(seen / hist.count), cap)
            seen += n
            end = min(_nines(seen / hist.count), cap) if seen < hist.count else cap
            xs += [start, end]
            ys += [ms, ms]
        return xs, ys
    lat = run.latency_ms
    if not lat or not run.requests or run.requests == run.errors:
        return [], []
    points = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p999")]
    xs = [_nines(q) for q, key in points if key in lat]
    ys = [float(lat[key]) for _, key in points if key in lat]
    if "max" in lat:
        xs.append(max(xs[-1] + 0.5, math.log10(max(run.requests, 10))))
        ys.append(float(lat["max"]))
    return xs, ys


def _new_axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt

    with plt.ioff():
        _, new = plt.subplots(figsize=(6, 4), layout="constrained")
    return new


def _style(i: int) -> dict[str, Any]:
    """Run *i*'s colour and marker (its line style is the series' own)."""
    look = series_style(i)
    return {"color": look["color"], "marker": look["marker"]}


def _legend_below(ax: Axes, entries: int, offset: float = -0.16) -> None:
    """A legend under the axes, never over the data."""
    if entries:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, offset), ncol=min(entries, 3),
                  fontsize="small", frameon=False)


def plot_latency(runs_or_comparison: Any, ax: Axes | None = None) -> Axes:
    """Latency by percentile (log ms), one line per run, each with its own
    colour and marker; the legend sits under the axes."""
    ax = _new_axes(ax)
    runs = as_runs(runs_or_comparison)
    top = 1.0
    for i, run in enumerate(runs):
        xs, ys = percentile_curve(run)
        if xs:
            top = max(top, max(xs))
        # A marker every few steps: enough to tell coinciding lines apart.
        every = max(1, len(xs) // 8)
        look: dict[str, Any] = series_style(i)
        ax.plot(xs, ys, label=_label(run), linewidth=1.8, markevery=(i % every, every),
                markersize=5, **look)
    # matplotlib is optional: imported when drawing
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    # Plain numbers (2, 5, 10, 20 ms) read better than 2x10^0 on a latency axis.
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.margins(y=0.08)
    ticks = [(_nines(q), text) for q, text in _NINES_TICKS if _nines(q) <= top + 0.01]
    ax.set_xticks([x for x, _ in ticks], [text for _, text in ticks])
    ax.set_xlim(0, max(top, 1.0))
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency by percentile")
    ax.grid(True, which="both", alpha=0.3)
    _legend_below(ax, len(runs))
    return ax


def _label(run: RunResult) -> str:
    """A run's name, marked when its figures are not valid."""
    if run.over_limit:
        return f"{run.server} (above the physical limit!)"
    return run.server


def plot_throughput(runs_or_comparison: Any, ax: Axes | None = None) -> Axes:
    """Successful requests per second, one labelled bar per run.

    Each bar has its run's colour and hatch. Its limit (the most its cores,
    clients or workers allow, see :mod:`sockserve.measure.results`) is drawn
    over it as a dashed line whenever it is known, and the axis reaches it;
    the bar's label sits where no line strikes it through. A bar above its
    limit is faded and labelled ``!`` and "above the limit"; a bar the load
    generator held down is labelled ``~``. Errors are noted under the number.
    """
    ax = _new_axes(ax)
    runs = as_runs(runs_or_comparison)
    names = [run.server for run in runs]
    values = [run.throughput_rps for run in runs]
    bars = ax.bar(range(len(runs)), values, tick_label=names, linewidth=0.8)
    limits = [run.limit().rps for run in runs]
    for i, (bar, run) in enumerate(zip(bars, runs)):
        look = bar_style(i)
        bar.set_facecolor(str(look["color"]))
        bar.set_hatch(str(look["hatch"]))
        bar.set_edgecolor(str(look["edgecolor"]))
        bar.set_label(run.server)
        if run.over_limit:
            bar.set_alpha(0.45)
        limit = limits[i]
        if limit is not None:
            x = bar.get_x()
            ax.hlines(limit, x - 0.05, x + bar.get_width() + 0.05, colors="black",
                      linestyles="dashed", linewidth=1.2)
    top = max([v for v in values] + [v for v in limits if v is not None] + [1.0])
    ax.set_ylim(0, top * 1.3)
    for bar, run, limit in zip(bars, runs, limits):
        _label_bar(ax, bar, run, limit)
    ax.set_ylabel("requests per second (ok)")
    ax.set_title("Throughput")
    ax.grid(True, axis="y", alpha=0.3)
    if any(limit is not None for limit in limits):
        ax.set_xlabel("dashed: the most the cores, the clients or the server's workers allow", fontsize="small")
    return ax


def _bar_text(run: RunResult) -> str:
    value = run.throughput_rps
    text = f"{value:.0f}" if value >= 10 else f"{value:.1f}"
    text += run.throughput_text()[len(f"{value:.1f}"):]  # the mark, if any
    if run.errors:
        text += f"\n{run.errors} errors"
    if run.over_limit:
        text += "\nabove the limit"
    elif run.generator_bound:
        text += "\ngenerator-bound"
    return text


#: Points between a bar (or a limit line) and the label above it.
_LABEL_GAP = 3.0


def _label_bar(ax: Axes, bar: Any, run: RunResult, limit: float | None) -> None:
    """Label *bar* above its top, or above its limit line when the line
    would strike the label through (the line runs just above the bar)."""
    label_above(ax, bar.get_x() + bar.get_width() / 2, bar.get_height(), _bar_text(run), limit)


def label_above(ax: Axes, x: float, top: float, text: str, line: float | None = None) -> None:
    """Write *text* centred above *top* at *x*, in small type; when a
    horizontal *line* runs just above *top*, where it would strike the text
    through, above the line instead. Call it once the y limits are set."""
    y = top
    if line is not None and line >= top:
        fig: Any = ax.figure
        low, high = ax.get_ylim()
        axes_px = ax.get_position().height * fig.get_figheight() * fig.dpi * 0.75  # layout shrinks it
        lines = text.count("\n") + 1
        label_pt = lines * 1.25 * _font_points() + _LABEL_GAP
        needed = label_pt * fig.dpi / 72.0 / max(axes_px, 1.0) * (high - low)
        if line - top < needed:
            y = line
    ax.annotate(text, (x, y), xytext=(0, _LABEL_GAP), textcoords="offset points", ha="center",
                va="bottom", fontsize="small")


def _font_points() -> float:
    # matplotlib is optional: imported when drawing
    from matplotlib.font_manager import FontProperties

    return float(FontProperties(size="small").get_size_in_points())


def _offsets(count: int, step: float = 0.08) -> list[float]:
    """Small vertical offsets, centred on 0, one per run: lines of equal
    counts stay apart (the caption says so)."""
    return [(i - (count - 1) / 2) * step for i in range(count)]


def concurrency_caption(runs: list[RunResult]) -> str:
    """What the concurrency plot shows, in words (its x label)."""
    peak = [run for run in runs if run.sampling == "peak"]
    if peak and len(peak) == len(runs):
        what = (f"handler threads and children: the most alive at once in each "
                f"{peak[0].sample_interval:g} s, as each server counted them")
    else:
        what = "threads and children of the server process, read every 0.05 s"
    if len(runs) > 1:
        what += "; lines offset by up to \u00b1" + f"{abs(_offsets(len(runs))[0]):.2g} so equal counts stay apart"
    return what


def children_notes(runs: list[RunResult]) -> list[str]:
    """Why a run shows more children than it had clients, when it does."""
    notes = []
    for run in runs:
        kids = run.peak("children")
        if run.mode == "closed" and run.clients and kids > run.clients:
            notes.append(f"{run.server}: up to {kids} children for {run.clients} clients: a child "
                         "lives on after its reply until the server reaps it")
    return notes


def plot_concurrency(runs_or_comparison: Any, ax: Axes | None = None) -> Axes:
    """The server's threads (solid) and children (dashed) over time, per run.

    Each run has its colour and marker, and is offset a little up or down so
    equal counts do not hide one another (the x label says by how much, and
    whether the counts are per-interval peaks or instant samples). A run
    whose server never had a child process gets no children line. More
    children than clients is explained on the plot.
    """
    ax = _new_axes(ax)
    runs = as_runs(runs_or_comparison)
    offsets = _offsets(len(runs)) if len(runs) > 1 else [0.0]
    peak = bool(runs) and all(run.sampling == "peak" for run in runs)
    top = 1.0
    for i, run in enumerate(runs):
        style = _style(i)
        every = max(1, len(run.threads) // 10)
        if run.threads:
            ts, ns = zip(*run.threads)
            top = max(top, max(ns))
            ax.plot(ts, [n + offsets[i] for n in ns], drawstyle="steps-post", markevery=every,
                    markersize=4, label=f"{run.server} {'handler ' if peak else ''}threads", **style)
        if run.children and run.peak("children") > 0:
            ts, ns = zip(*run.children)
            top = max(top, max(ns))
            ax.plot(ts, [n + offsets[i] for n in ns], linestyle="--", drawstyle="steps-post",
                    markevery=every, markersize=4, markerfacecolor="none",
                    label=f"{run.server} children", **style)
    caption = textwrap.fill(concurrency_caption(runs), 64)
    ax.set_xlabel("time (s)\n" + caption, fontsize="small")
    ax.set_ylabel("count")
    ax.set_title("Server threads and child processes" + (" (peak per interval)" if peak else ""))
    # matplotlib is optional: imported when drawing
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    notes = children_notes(runs)
    # Head room for the notes, so they never cover a line.
    ax.set_ylim(bottom=-0.3, top=top * (1.25 + 0.12 * len(notes)) + 0.5)
    ax.grid(True, alpha=0.3)
    if notes:
        ax.text(0.01, 0.98, "\n".join(textwrap.fill(n, 70) for n in notes), transform=ax.transAxes,
                va="top", ha="left", fontsize="x-small",
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})
    _legend_below(ax, len(ax.get_lines()), offset=-0.3)
    return ax


def plot_comparison(comparison: Any, fig: Figure | None = None) -> Figure:
    """Latency, throughput and concurrency side by side, in a new Figure
    (or in *fig*, an empty Figure: a background thread passes one made
    without pyplot, so that no inline backend shows it in some other cell).

    The title names the workload, the load and the cores; any flag (a run
    above its physical limit, a generator that was the bottleneck, a
    stopped comparison) is printed under the panels."""
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt

    runs = as_runs(comparison)
    if fig is not None:
        lat, thr, conc = fig.subplots(1, 3)
    else:
        with plt.ioff():
            fig, (lat, thr, conc) = plt.subplots(1, 3, figsize=(16, 5.6), layout="constrained")
    plot_latency(runs, lat)
    plot_throughput(runs, thr)
    plot_concurrency(runs, conc)
    title = _title(runs)
    if title:
        fig.suptitle(title)
    flags = comparison.flags() if isinstance(comparison, Comparison) else [
        text for run in runs for text in run.flags()]
    if flags:
        lines = [textwrap.fill(f"! {text}", 200) for text in flags]
        fig.supxlabel("\n".join(lines), fontsize="small", ha="left", x=0.01, color="#a00")
    return fig


def _title(runs: list[RunResult]) -> str:
    """The figure's title: the workload, the load, the cores."""
    if not runs:
        return ""
    first = runs[0]
    how = (f"open loop, {first.rate:g} req/s" if first.mode == "open"
           else f"closed loop, {first.clients} clients")
    cores = first.usable_cores
    where = f", {cores:g} core{'' if cores == 1 else 's'}" if cores else ""
    rounds = f" in {len(first.rounds)} rounds" if len(first.rounds) > 1 else ""
    return f"{first.workload} workload, {how}, {first.duration:g} s per server{rounds}{where}"


def save_comparison_plot(comparison: Any, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Draw :func:`plot_comparison` and write it to *path* (format from the suffix)."""
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt

    fig = plot_comparison(comparison)
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


# -- text alternatives: each figure in one line, from the same data ----------------


def _ms_words(value: float) -> str:
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def describe_latency(runs_or_comparison: Any) -> str:
    """The latency figure in one line: each run's median, p99 and slowest."""
    parts = []
    for run in as_runs(runs_or_comparison):
        ms = run.latency_ms
        if not ms or run.ok <= 0:
            parts.append(f"{run.server} no reply")
            continue
        parts.append(f"{run.server} median {_ms_words(ms['p50'])}, p99 {_ms_words(ms.get('p99', ms['p50']))}, "
                     f"slowest {_ms_words(ms.get('max', ms['p50']))}")
    return "Latency by percentile: " + "; ".join(parts) + "."


def describe_throughput(runs_or_comparison: Any) -> str:
    """The throughput figure in one line: each bar's value, mark and limit."""
    parts = []
    for run in as_runs(runs_or_comparison):
        limit = run.limit().rps
        text = f"{run.server} {_bar_text(run).replace(chr(10), ', ')} req/s"
        if limit is not None:
            text += f" (limit {limit:.0f})"
        parts.append(text)
    return "Throughput: " + "; ".join(parts) + "."


def describe_concurrency(runs_or_comparison: Any) -> str:
    """The threads-and-children figure in one line: each run's peaks."""
    runs = as_runs(runs_or_comparison)
    what = "handler threads" if runs and all(r.sampling == "peak" for r in runs) else "threads"
    parts = []
    for run in runs:
        text = f"{run.server} at most {run.peak('threads')} {what}"
        if run.peak("children"):
            text += f" and {run.peak('children')} children"
        parts.append(text)
    return "Server threads and child processes: " + "; ".join(parts) + "."


def describe_comparison(comparison: Any) -> str:
    """:func:`plot_comparison`'s figure in one line: its title, then each panel."""
    runs = as_runs(comparison)
    title = _title(runs)
    return " ".join(part for part in (f"{title}." if title else "", describe_latency(runs),
                                       describe_throughput(runs), describe_concurrency(runs)) if part)
