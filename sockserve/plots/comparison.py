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

*runs* may be a :class:`~sockserve.measure.experiment.Comparison`, a
:class:`~sockserve.measure.experiment.RunResult`, a :class:`~sockserve.load.LoadResult`,
a dict loaded from a comparison's JSON, or a list of any of these. Each
``plot_*`` draws into *ax* when given and returns it; without *ax* it makes
a new figure inside ``plt.ioff()`` (so nothing pops up or is displayed twice
in a notebook) and the caller shows or saves ``ax.figure``. Run *i* has
colour ``C<i>`` in every plot, so the panels read together.

``import sockserve.plots`` costs nothing: matplotlib is imported inside the
functions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..measure.experiment import Comparison, RunResult

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
    import matplotlib.pyplot as plt

    with plt.ioff():
        _, new = plt.subplots(figsize=(6, 4), layout="constrained")
    return new


#: One marker per run (with its colour ``C<i>``), so runs stay apart
#: where their lines coincide, in colour or in grey print.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _style(i: int) -> dict[str, Any]:
    return {"color": f"C{i}", "marker": MARKERS[i % len(MARKERS)]}


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
        ax.plot(xs, ys, label=_label(run), linewidth=1.8, markevery=(i % every, every),
                markersize=5, **_style(i))
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

    A bar above its run's physical limit (see :mod:`sockserve.measure.results`) is
    hatched and grey-edged, labelled with ``!``, and the limit is drawn over
    it as a dashed line; a bar the load generator held down is labelled
    ``~``. Errors are noted under the number.
    """
    ax = _new_axes(ax)
    runs = as_runs(runs_or_comparison)
    names = [run.server for run in runs]
    values = [run.throughput_rps for run in runs]
    bars = ax.bar(range(len(runs)), values, color=[f"C{i}" for i in range(len(runs))],
                  tick_label=names)
    labels = []
    for bar, run in zip(bars, runs):
        bar.set_label(run.server)
        text = f"{run.throughput_rps:.0f}" if run.throughput_rps >= 10 else f"{run.throughput_rps:.1f}"
        text += run.throughput_text()[len(f"{run.throughput_rps:.1f}"):]  # the mark, if any
        if run.errors:
            text += f"\n{run.errors} errors"
        if run.over_limit:
            bar.set_hatch("//")
            bar.set_edgecolor("black")
            bar.set_alpha(0.45)
            text += "\nabove the limit"
        elif run.generator_bound:
            text += "\ngenerator-bound"
        limit = run.limit().rps
        if limit is not None and (run.over_limit or limit < 1.6 * max(values or [0])):
            x = bar.get_x()
            ax.hlines(limit, x - 0.05, x + bar.get_width() + 0.05, colors="black",
                      linestyles="dashed", linewidth=1.2)
        labels.append(text)
    ax.bar_label(bars, labels=labels, fontsize="small")
    ax.set_ylabel("requests per second (ok)")
    ax.set_title("Throughput")
    ax.margins(y=0.2)
    ax.grid(True, axis="y", alpha=0.3)
    if any(run.limit().rps is not None for run in runs):
        ax.set_xlabel("dashed: the most the cores (or clients) allow", fontsize="small")
    return ax


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
    import textwrap

    caption = textwrap.fill(concurrency_caption(runs), 64)
    ax.set_xlabel("time (s)\n" + caption, fontsize="small")
    ax.set_ylabel("count")
    ax.set_title("Server threads and child processes" + (" (peak per interval)" if peak else ""))
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
    if runs:
        first = runs[0]
        how = (f"open loop, {first.rate:g} req/s" if first.mode == "open"
               else f"closed loop, {first.clients} clients")
        cores = first.usable_cores
        where = f", {cores:g} core{'' if cores == 1 else 's'}" if cores else ""
        fig.suptitle(f"{first.workload} workload, {how}, {first.duration:g} s per server{where}")
    flags = comparison.flags() if isinstance(comparison, Comparison) else [
        text for run in runs for text in run.flags()]
    if flags:
        import textwrap

        lines = [textwrap.fill(f"! {text}", 200) for text in flags]
        fig.supxlabel("\n".join(lines), fontsize="small", ha="left", x=0.01, color="#a00")
    return fig


def save_comparison_plot(comparison: Any, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Draw :func:`plot_comparison` and write it to *path* (format from the suffix)."""
    import matplotlib.pyplot as plt

    fig = plot_comparison(comparison)
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
