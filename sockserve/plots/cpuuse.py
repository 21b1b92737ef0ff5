"""Figures of the CPU a comparison used, and of the convoy (matplotlib,
imported only when drawing).

``plot_cpu_use(comparison)``
    two panels: the cores each server kept busy, stacked with the load
    generator's and other programs' share of the usable cores (the figure
    that shows a single process stop at one core and a busy machine leave
    forking no room), and the work each server did per CPU second, with the
    spread of its rounds (the figure contention cannot move);
``plot_convoy(convoy)``
    the short requests' latency by percentile beside heavy ones, per server,
    with a heavy request's duration and the GIL's switch interval marked;
``describe_cpu_use``, ``describe_convoy``
    each figure's one-line text alternative, from the same data.

Series look as in :mod:`sockserve.plots.comparison` (:mod:`.style`): server
*i* has the same colour and hatch in every figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..measure.convoy import Convoy
from ..measure.results import Comparison
from .comparison import as_runs, label_above, plot_latency
from .style import bar_style

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_cpu_use", "plot_convoy", "describe_cpu_use", "describe_convoy"]

#: The shares that are not the server's: (label, face colour, hatch).
_GENERATOR = ("load generator", "#DDDDDD", "..")
_OTHERS = ("other programs", "#888888", "xx")


def _usable(comparison: Comparison) -> float | None:
    return comparison.runs[0].usable_cores if comparison.runs else None


def plot_cpu_use(comparison: Comparison, fig: Figure | None = None) -> Figure:
    """Cores kept busy (stacked: server, load generator, other programs) and
    requests per CPU second (with the rounds' range), one bar per server."""
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt

    runs = as_runs(comparison)
    if fig is not None:
        busy_ax, work_ax = fig.subplots(1, 2)
    else:
        with plt.ioff():
            fig, (busy_ax, work_ax) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    usable = _usable(comparison)
    xs = list(range(len(runs)))
    names = [run.server for run in runs]
    tops = []
    for i, run in enumerate(runs):
        cpu = run.cpu()
        look = bar_style(i)
        parts = [(cpu.server_cores or 0.0, f"{run.server}", str(look["color"]), str(look["hatch"])),
                 (cpu.generator_cores or 0.0, *_GENERATOR), (cpu.others_took or 0.0, *_OTHERS)]
        bottom = 0.0
        for value, label, colour, hatch in parts:
            busy_ax.bar(i, value, bottom=bottom, color=colour, hatch=hatch, edgecolor="black", linewidth=0.8,
                        label=label if label != run.server else None)
            bottom += value
        tops.append(bottom)
    if usable:
        busy_ax.axhline(usable, color="black", linestyle="dashed", linewidth=1.2,
                        label=f"the usable cores ({usable:g})")
    busy_ax.set_ylim(0, max(tops + [usable or 0.0, 1.0]) * 1.35)
    for i, run in enumerate(runs):
        cores = run.cpu().server_cores
        label_above(busy_ax, i, tops[i], "-" if cores is None else f"server {cores:.2f}", usable)
    busy_ax.set_xticks(xs, names)
    busy_ax.set_ylabel("cores (CPU seconds per second)")
    busy_ax.set_title("Cores kept busy: the server, then the others")
    handles, labels = busy_ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    busy_ax.legend(seen.values(), seen.keys(), loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3,
                   fontsize="small", frameon=False)
    busy_ax.grid(True, axis="y", alpha=0.3)
    _plot_work(work_ax, runs)
    return fig


def _plot_work(ax: Any, runs: list[Any]) -> None:
    """Requests per CPU second, the rounds' lowest to highest as an error bar."""
    values, lows, highs = [], [], []
    for run in runs:
        value = run.cpu().requests_per_cpu_s or 0.0
        per_round = [c.requests_per_cpu_s for c in run.round_cpu() if c.requests_per_cpu_s is not None]
        values.append(value)
        lows.append(value - min(per_round, default=value))
        highs.append(max(per_round, default=value) - value)
    bars = ax.bar(range(len(runs)), values, yerr=[lows, highs], capsize=6, linewidth=0.8,
                  tick_label=[run.server for run in runs], error_kw={"elinewidth": 1.2})
    for i, bar in enumerate(bars):
        look = bar_style(i)
        bar.set_facecolor(str(look["color"]))
        bar.set_hatch(str(look["hatch"]))
        bar.set_edgecolor(str(look["edgecolor"]))
    ax.set_ylim(0, max([v + h for v, h in zip(values, highs)] + [1.0]) * 1.25)
    for i, (value, high) in enumerate(zip(values, highs)):
        label_above(ax, i, value + high, f"{value:.0f}")
    ax.set_ylabel("requests served per CPU second")
    ax.set_title("Work per CPU second (bars: the rounds' range)")
    ax.grid(True, axis="y", alpha=0.3)


def describe_cpu_use(comparison: Comparison) -> str:
    """:func:`plot_cpu_use`'s figure in one line."""
    usable = _usable(comparison)
    parts = []
    for run in as_runs(comparison):
        cpu = run.cpu()
        if cpu.server_cores is None:
            parts.append(f"{run.server} unmeasured")
            continue
        text = f"{run.server} kept {cpu.server_cores:.2f} cores busy"
        if cpu.generator_cores is not None and cpu.others_took is not None:
            text += f" (load generator {cpu.generator_cores:.2f}, other programs {cpu.others_took:.2f})"
        if cpu.requests_per_cpu_s is not None:
            text += f" and served {cpu.requests_per_cpu_s:.0f} requests per CPU second"
        parts.append(text)
    where = f" of {usable:g} usable" if usable else ""
    return f"CPU use{where}: " + "; ".join(parts) + "."


def plot_convoy(convoy: Convoy, fig: Figure | None = None) -> Figure:
    """The short requests' latency by percentile, per server, beside heavy
    ones; dotted lines mark a heavy request's duration and the GIL's switch
    interval."""
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt

    if fig is not None:
        ax = fig.subplots()
    else:
        with plt.ioff():
            fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    plot_latency(convoy.short, ax)
    for ms, text, style in ((convoy.heavy_ms, f"one heavy request ({convoy.heavy_ms:g} ms)", ":"),
                            (convoy.switch_interval_ms, f"the GIL's switch interval ({convoy.switch_interval_ms:g} ms)",
                             (0, (1, 4)))):
        ax.axhline(ms, color="black", linestyle=style, linewidth=1.0, label=text)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize="small", frameon=False)
    ax.set_title(f"Short requests ({convoy.short_ms:g} ms of work) beside {convoy.heavy_clients} clients' "
                 f"{convoy.heavy_ms:g} ms requests")
    return fig


def describe_convoy(convoy: Convoy) -> str:
    """:func:`plot_convoy`'s figure in one line."""
    parts = []
    for run in convoy.short.runs:
        ms = run.latency_ms
        if run.ok <= 0 or not ms:
            parts.append(f"{run.server} no reply")
            continue
        parts.append(f"{run.server} median {ms['p50']:.1f} ms, p90 {ms['p90']:.1f} ms")
    return (f"Short requests' latency beside {convoy.heavy_ms:g} ms requests: " + "; ".join(parts)
            + f"; dotted lines at {convoy.heavy_ms:g} ms (a heavy request) and {convoy.switch_interval_ms:g} ms "
              "(the GIL's switch interval).")
