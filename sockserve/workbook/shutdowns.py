"""How long ``shutdown()`` takes: measured, drawn, and said in words.

:func:`shutdown_latency` times ``shutdown()`` of any TCPServer-like class
(sockserve's or the standard library's) a few times, each after a random
moment of serving; :func:`shutdown_latencies` does it for several classes
and poll intervals; :func:`plot_shutdown_latencies` draws the result
(matplotlib, imported only when drawing); :func:`describe_shutdown_latencies`
is the figure's text alternative and :func:`shutdown_sentences` says what
the figures show, computed from them, whatever they show: a median of a
few random moments is itself random, so a lesson never states a trend it
did not measure.

The random moments come from a fresh seed unless one is given: rerunning
a lesson's cell measures new moments.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..core.handlers import StreamRequestHandler
from ..plots.style import MIN_FONT_SIZE, REFERENCE, bar_style, series_style

__all__ = ["shutdown_latency", "shutdown_latencies", "plot_shutdown_latencies",
           "describe_shutdown_latencies", "shutdown_sentences"]

HOST = "127.0.0.1"
Results = dict[str, dict[float, list[float]]]


def shutdown_latency(
    server_class: type, poll_interval: float = 0.5, rounds: int = 5, seed: int | None = None
) -> list[float]:
    """Seconds ``shutdown()`` took, *rounds* times, for *server_class*.

    Each round serves on a fresh loopback port and waits a random moment
    (from *seed*; None: a fresh one each call) before calling
    ``shutdown()``, so a loop that only checks for shutdown between
    ``poll_interval`` ticks is caught at a random point of its tick. Works
    for the standard library's classes too.
    """
    rng = random.Random(seed)
    took: list[float] = []
    for _ in range(rounds):
        server = server_class((HOST, 0), StreamRequestHandler)
        thread = threading.Thread(target=server.serve_forever, args=(poll_interval,), daemon=True)
        thread.start()
        try:
            time.sleep(0.02 + rng.random() * poll_interval)
            began = time.perf_counter()
            server.shutdown()
            took.append(time.perf_counter() - began)
        finally:
            thread.join(poll_interval + 5)
            server.server_close()
    return took


def shutdown_latencies(
    classes: dict[str, type], polls: Sequence[float], rounds: int = 5, seed: int | None = None
) -> Results:
    """``{name: {poll_interval: [seconds shutdown() took, ...]}}`` for each
    of *classes* (name -> server class) and each of *polls*, *rounds* times
    each (see :func:`shutdown_latency`). Bounded: about ``rounds * (2 *
    poll + 0.05)`` seconds per class and poll interval at most."""
    rng = random.Random(seed)
    return {
        name: {poll: shutdown_latency(cls, poll_interval=poll, rounds=rounds, seed=rng.randrange(2**32))
               for poll in polls}
        for name, cls in classes.items()
    }


def _ms(values: Sequence[float]) -> list[float]:
    return sorted(t * 1000.0 for t in values)


def _fmt(ms: float) -> str:
    """Milliseconds to a precision that shows them: 0.24, 3.1, 42."""
    return f"{ms:.2f}" if ms < 1 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def plot_shutdown_latencies(results: Results) -> Any:
    """Draw :func:`shutdown_latencies`: for each poll interval, every round's
    ``shutdown()`` time (markers) and the median (a hatched bar) of each
    class, on a log scale, with the poll interval itself marked. Returns
    the Figure (made under ``plt.ioff()``)."""
    import matplotlib.pyplot as plt  # matplotlib is optional: imported when drawing

    polls = sorted({poll for by_poll in results.values() for poll in by_poll})
    with plt.ioff():
        fig, ax = plt.subplots(figsize=(8.0, 3.8), layout="constrained")
    width = 0.8 / max(1, len(results))
    for i, (name, by_poll) in enumerate(results.items()):
        offset = (i - (len(results) - 1) / 2) * width
        bar = bar_style(i)
        dots = series_style(i)
        for j, poll in enumerate(polls):
            ms = _ms(by_poll.get(poll, []))
            if not ms:
                continue
            ax.bar(j + offset, statistics.median(ms), width * 0.9, alpha=0.45, linewidth=0.6,
                   label=f"{name} (median)" if j == 0 else None, **bar)  # type: ignore[arg-type]
            ax.scatter([j + offset] * len(ms), ms, color=dots["color"],
                       marker=dots["marker"],  # type: ignore[arg-type]
                       edgecolors="black", linewidths=0.5, s=26, zorder=3,
                       label=f"{name} (each round)" if j == 0 else None)
    for j, poll in enumerate(polls):
        ax.hlines(poll * 1000, j - 0.45, j + 0.45, colors=REFERENCE, linestyles="dashed",
                  label="poll_interval" if j == 0 else "_nolegend_")
    ax.set_yscale("log")
    ax.set_xticks(range(len(polls)), [f"{poll:g} s" for poll in polls])
    ax.set(xlabel="poll_interval given to serve_forever()", ylabel="shutdown() took (ms, log scale)",
           title="How long shutdown() waits, by poll_interval")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=MIN_FONT_SIZE + 1, frameon=False)
    return fig


def describe_shutdown_latencies(results: Results) -> str:
    """The figure of :func:`plot_shutdown_latencies` in one sentence: per
    class, the median and the range of its rounds at each poll interval."""
    parts = []
    for name, by_poll in results.items():
        cells = []
        for poll in sorted(by_poll):
            ms = _ms(by_poll[poll])
            if ms:
                cells.append(f"{poll:g} s: median {_fmt(statistics.median(ms))} ms "
                             f"({_fmt(ms[0])} to {_fmt(ms[-1])})")
        parts.append(f"{name} " + ", ".join(cells))
    return "shutdown() times by poll_interval: " + "; ".join(parts) + "."


def shutdown_sentences(results: Results, slack_ms: float = 20.0) -> list[str]:
    """What the figure shows, per class, computed from the rounds: whether
    its median grows with ``poll_interval`` (the intervals in order), and
    how many rounds waited longer than their interval (plus *slack_ms* for
    the scheduler), or how short every round was."""
    lines = []
    for name, by_poll in results.items():
        polls = [poll for poll in sorted(by_poll) if by_poll[poll]]
        if not polls:
            continue
        medians = [statistics.median(_ms(by_poll[poll])) for poll in polls]
        rounds = sum(len(by_poll[poll]) for poll in polls)
        longest = max(max(_ms(by_poll[poll])) for poll in polls)
        over = sum(1 for poll in polls for t in _ms(by_poll[poll]) if t > poll * 1000.0 + slack_ms)
        listed = ", ".join(_fmt(m) for m in medians)
        intervals = ", ".join(f"{p:g}" for p in polls)
        # Grows with the interval: each median at least the previous one, and the last well above the first.
        grows = len(polls) > 1 and all(b >= a for a, b in zip(medians, medians[1:])) \
            and medians[-1] > 2 * medians[0]
        if longest < min(polls) * 1000.0 / 4:
            lines.append(f"{name}: every one of {rounds} rounds took under {longest:.2f} ms, whatever the "
                         f"poll_interval (medians {listed} ms for {intervals} s).")
            continue
        trend = ("its median grew with the poll_interval" if grows else
                 "its median did not grow steadily with the poll_interval (with few rounds, the median of "
                 "random moments is itself random: run the cell again for new moments)")
        bound = ("no round waited longer than its poll_interval" if not over else
                 f"{over} of {rounds} rounds waited more than {slack_ms:g} ms longer than their poll_interval")
        lines.append(f"{name}: {trend}: medians {listed} ms for {intervals} s; {bound}.")
    return lines
