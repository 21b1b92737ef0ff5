"""A comparison as a fixed-width text table, with the notes a reader needs.

:func:`comparison_table` is what ``Comparison.table()`` and ``sockserve
compare`` print: one row per run (throughput with its mark, the rounds'
range, latency percentiles, the CPU figures of :mod:`sockserve.measure.usage`,
the threads and children), then :func:`table_notes` (the work per request,
the cores, what each column means) and the comparison's flags, each marked
as its rows are. Plain text from plain data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .limits import Cores

if TYPE_CHECKING:  # annotations only: results imports this module
    from .results import Comparison

__all__ = ["comparison_table", "table_notes", "OVER_LIMIT_MARK", "GENERATOR_MARK", "PARTIAL_MARK"]

#: Marks a throughput above its physical limit, in tables and plots.
OVER_LIMIT_MARK = "!"
#: Marks a throughput the load generator, not the server, held down.
GENERATOR_MARK = "~"
#: Marks a run a stop cut short (Ctrl-C, the panel's Stop).
PARTIAL_MARK = "*"


def table_notes(comparison: Comparison) -> list[str]:
    """What a reader needs to read the table: the work per request, the
    cores, and what each column means."""
    lines = []
    cal = comparison.calibration
    if cal.get("iterations_per_ms") and comparison.runs:
        work = comparison.runs[0].work_ms
        ipms = float(cal["iterations_per_ms"])
        lines.append(
            f"cpu work: {work:g} ms per request = {round(work * ipms):,} loop iterations, the "
            f"same in every server (calibrated once by {cal.get('clock', 'CPU time')}: "
            f"{ipms:,.0f} per ms)")
    if comparison.runs and comparison.runs[0].cores:
        cores = Cores.from_dict(comparison.runs[0].cores)
        lines.append(f"cores the servers could use: {cores.describe()}")
    if comparison.rounds > 1:
        lines.append(f"each server ran {comparison.rounds} rounds, interleaved with the others'; "
                     "range: the lowest and highest req/s of its rounds")
    lines.append("cpu ms/req: the server's CPU per request, children included; cores: its CPU "
                 "seconds per second (how many cores it kept busy); gen: the load generator's "
                 "cores; others: the usable cores other programs took meanwhile")
    if comparison.runs and all(run.sampling == "peak" for run in comparison.runs):
        interval = comparison.runs[0].sample_interval
        lines.append(f"threads, children: the most handler threads and child processes alive at "
                     f"once in any {interval:g} s (counted by each server; plain serves in its "
                     "own thread: 0)")
    elif comparison.runs:
        lines.append("threads, children: the most threads of the server process (the serving "
                     "thread and helpers included) and child processes seen, sampled every "
                     f"{comparison.runs[0].sample_interval:g} s")
    return lines

def comparison_table(comparison: Comparison) -> str:
    """A fixed-width text table, one row per run, then the notes and
    any flags (a throughput marked ``!`` is above the physical limit,
    ``~`` held down by the load generator; a server marked ``*`` was
    cut short by a stop)."""
    ranged = comparison.rounds > 1
    header = ("server", "requests", "errors", "req/s", *(("range",) if ranged else ()),
              "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "cpu ms/req", "cores", "gen",
              "others", "threads", "children")
    rows: list[tuple[str, ...]] = [header]
    for r in comparison.runs:
        lat = r.latency_ms
        cpu = r.cpu()
        per_round = [x.throughput_rps for x in r.rounds]
        rows.append((
            r.server + (PARTIAL_MARK if r.partial else ""), str(r.requests), str(r.errors),
            r.throughput_text(),
            *((f"{min(per_round):.0f}-{max(per_round):.0f}" if per_round else "-",) if ranged else ()),
            *(f"{lat.get(k, 0.0):.2f}" for k in ("p50", "p90", "p99", "p999", "max")),
            _figure(r.server_cpu_ms), _figure(cpu.server_cores), _figure(cpu.generator_cores),
            _figure(cpu.others_took), str(r.peak("threads")), str(r.peak("children")),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += table_notes(comparison)
    for text in comparison.flags():
        mark = OVER_LIMIT_MARK if "not a valid measurement" in text else (
            GENERATOR_MARK if "load generator was the bottleneck" in text else (
                PARTIAL_MARK if text.startswith("stopped before the end") else "-"))
        lines.append(f"{mark} {text}")
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
