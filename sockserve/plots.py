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

*runs* may be a :class:`~sockserve.experiment.Comparison`, a
:class:`~sockserve.experiment.RunResult`, a :class:`~sockserve.load.LoadResult`,
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

from .experiment import Comparison, RunResult

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


def plot_latency(runs_or_comparison: Any, ax: Axes | None = None) -> Axes:
    """Latency by percentile (log ms), one labelled line per run."""
    ax = _new_axes(ax)
    runs = as_runs(runs_or_comparison)
    top = 1.0
    for i, run in enumerate(runs):
        xs, ys = percentile_curve(run)
        if xs:
            top = max(top, max(xs))
        ax.plot(xs, ys, color=f"C{i}", label=run.server, linewidth=1.8)
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
    if runs:
        ax.legend(loc="best", fontsize="small")
    return ax


def plot_throughput(runs_or_comparison: Any, ax: Axes | None = None) -> Axes:
    """Successful requests per second, one labelled bar per run."""
    ax = _new_axes(ax)
    runs = as_runs(runs_or_comparison)
    names = [run.server for run in runs]
    values = [run.throughput_rps for run in runs]
    bars = ax.bar(range(len(runs)), values, color=[f"C{i}" for i in range(len(runs))],
                  tick_label=names)
    for bar, run in zip(bars, runs):
        bar.set_label(run.server)
    labels = [
        f"{run.throughput_rps:.0f}" + (f"\n{run.errors} errors" if run.errors else "")
        for run in runs
    ]
    ax.bar_label(bars, labels=labels, fontsize="small")
    ax.set_ylabel("requests per second (ok)")
    ax.set_title("Throughput")
    ax.margins(y=0.15)
    ax.grid(True, axis="y", alpha=0.3)
    return ax


def plot_concurrency(runs_or_comparison: Any, ax: Axes | None = None) -> Axes:
    """The server's threads (solid) and children (dashed) over time, per run.

    A run whose server never had a child process gets no children line.
    """
    ax = _new_axes(ax)
    runs = as_runs(runs_or_comparison)
    for i, run in enumerate(runs):
        if run.threads:
            ts, ns = zip(*run.threads)
            ax.plot(ts, ns, color=f"C{i}", drawstyle="steps-post",
                    label=f"{run.server} threads")
        if run.children and run.peak("children") > 0:
            ts, ns = zip(*run.children)
            ax.plot(ts, ns, color=f"C{i}", linestyle="--", drawstyle="steps-post",
                    label=f"{run.server} children")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("count")
    ax.set_title("Server threads and child processes")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if ax.get_lines():
        ax.legend(loc="upper left", fontsize="small")
    return ax


def plot_comparison(comparison: Any, fig: Figure | None = None) -> Figure:
    """Latency, throughput and concurrency side by side, in a new Figure
    (or in *fig*, an empty Figure: a background thread passes one made
    without pyplot, so that no inline backend shows it in some other cell)."""
    import matplotlib.pyplot as plt

    runs = as_runs(comparison)
    if fig is not None:
        lat, thr, conc = fig.subplots(1, 3)
    else:
        with plt.ioff():
            fig, (lat, thr, conc) = plt.subplots(1, 3, figsize=(16, 4.8), layout="constrained")
    plot_latency(runs, lat)
    plot_throughput(runs, thr)
    plot_concurrency(runs, conc)
    if runs:
        first = runs[0]
        how = (f"open loop, {first.rate:g} req/s" if first.mode == "open"
               else f"closed loop, {first.clients} clients")
        fig.suptitle(f"{first.workload} workload, {how}, {first.duration:g} s per server")
    return fig


def save_comparison_plot(comparison: Any, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Draw :func:`plot_comparison` and write it to *path* (format from the suffix)."""
    import matplotlib.pyplot as plt

    fig = plot_comparison(comparison)
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
