"""Conclusions computed from a measured comparison, for lessons to print.

A lesson that says "forking is about 8x faster on waiting requests" next
to a table that shows 3.5x teaches distrust. The functions here turn a
:class:`~sockserve.measure.results.Comparison` into sentences, every one of
which states only what the figures beside it show, on one core, on many, and
on a busy machine:

* a difference between two servers is claimed only when it exceeds the
  noise measured over the comparison's interleaved rounds
  (:mod:`sockserve.measure.spread`): otherwise the sentence says "within
  noise (0.94x to 1.12x over 5 rounds)";
* a busy machine is named with its measured figure ("other programs took
  0.62 of your 1 core during the comparison"), never guessed at;
* on cpu work the argument rests on the figures contention cannot fake
  (:mod:`sockserve.measure.usage`): work per CPU second (under the GIL a
  threading server does no more than a plain one) and the cores each server
  kept busy (a single process at most one; forked children as many as are
  free), and what other programs and the load generator left free.

Callers use:

:func:`conclusions`
    every :class:`Conclusion` the comparison supports, the machine first.
:func:`report`
    the same as text, one sentence per line (``print(report(results))``).
:func:`speedup`, :func:`speedup_text`, :func:`throughput_spread`
    one server's throughput over another's: a number, words, a spread.
:func:`expected_speedup`
    the most a server kind can gain over plain, from the workload and the
    cores alone (before measuring: "at most 1x on one core").
:func:`how_many`, :func:`latency_sentences`, :func:`concurrency_sentences`
    counts, latency percentiles and each server's threads and children in
    words ("17 of 30, more than half"; "nine requests in ten took under 55
    ms"; "plain: at most 0 handler threads ...").

No plotting or I/O here; every function takes plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .limits import SINGLE_PROCESS
from .results import Comparison, RunResult
from .spread import Spread, spread_of, times
from .usage import CpuUse

__all__ = [
    "Conclusion",
    "conclusions",
    "report",
    "speedup",
    "speedup_text",
    "throughput_spread",
    "work_spread",
    "machine_conclusion",
    "expected_speedup",
    "how_many",
    "latency_sentences",
    "concurrency_sentences",
    "cores_text",
    "cpu_share",
    "BUSY",
]

#: Other programs count as making the machine busy once they took this
#: fraction of the usable cores.
BUSY = 0.1


@dataclass(frozen=True)
class Conclusion:
    """One sentence a lesson can print, and the number behind it.

    ``key`` says what kind of conclusion it is: ``"machine"`` (what other
    programs took), ``"throughput"`` (one server's requests per second over
    the baseline's, with its spread), ``"work"`` (work per CPU second and the
    cores each used, on cpu work), ``"invalid"``, ``"generator"``,
    ``"children"``; ``servers`` the runs it is about; ``value`` the figure
    (a ratio, a count, cores) or None.
    """

    key: str
    text: str
    servers: tuple[str, ...] = ()
    value: float | None = None

    def __str__(self) -> str:
        return self.text


def cores_text(cores: float | None, owner: str = "your") -> str:
    """``"your 1 core"``, ``"your 2 cores"``, ``"its 0.5 core"`` (*owner*:
    whose cores: the reader's, or a stored run's machine)."""
    if cores is None:
        return "this machine" if owner == "your" else "that machine"
    return f"{owner} {cores:g} core" + ("" if cores <= 1 else "s")


def _of_cores(value: float, cores: float | None, owner: str = "your") -> str:
    """``"0.62 of your 1 core"``."""
    return f"{value:.2f} of {cores_text(cores, owner)}"


def _valid(run: RunResult) -> bool:
    return not run.over_limit and run.throughput_rps > 0


def speedup(comparison: Comparison, server: str, over: str = "plain") -> float | None:
    """Throughput of *server* divided by that of *over*; None when either is
    missing, has no successful request, or is above its physical limit."""
    try:
        a, b = comparison.run(server), comparison.run(over)
    except KeyError:
        return None
    if not (_valid(a) and _valid(b)):
        return None
    return a.throughput_rps / b.throughput_rps


def speedup_text(comparison: Comparison, server: str, over: str = "plain") -> str:
    """``"forking: 3.5x plain's throughput (312 vs 89 req/s)"``, or why not."""
    ratio = speedup(comparison, server, over)
    if ratio is None:
        return f"{server} vs {over}: no valid ratio (a run is missing, empty or flagged)"
    a, b = comparison.run(server), comparison.run(over)
    return (f"{server}: {times(ratio)} {over}'s throughput "
            f"({a.throughput_rps:.0f} vs {b.throughput_rps:.0f} req/s)")


def throughput_spread(run: RunResult, base: RunResult) -> Spread:
    """*run*'s throughput over *base*'s: the totals' ratio and each round's."""
    return spread_of(run.throughput_rps / base.throughput_rps,
                     [(a.throughput_rps, b.throughput_rps) for a, b in zip(run.rounds, base.rounds)])


def work_spread(run: RunResult, base: RunResult) -> Spread | None:
    """*run*'s work per CPU second over *base*'s (None when unmeasured)."""
    mine, theirs = run.cpu().requests_per_cpu_s, base.cpu().requests_per_cpu_s
    if mine is None or theirs is None:
        return None
    return spread_of(mine / theirs, [(a.requests_per_cpu_s, b.requests_per_cpu_s)
                                     for a, b in zip(run.round_cpu(), base.round_cpu())])


def _workload_class(run: RunResult) -> str:
    """"cpu" (counted CPU work), "wait" (waiting, no counted work) or "tiny"."""
    if run.work_ms > 0:
        return "cpu"
    if run.wait_ms > 0:
        return "wait"
    return "tiny"


def expected_speedup(concurrency: str, run: RunResult) -> float | None:
    """The most a *concurrency* server can gain over a plain one on *run*'s
    workload, clients and cores, ignoring every overhead; None when there
    is no such bound (tiny requests: overheads decide)."""
    kind = _workload_class(run)
    clients = max(1, run.clients) if run.mode == "closed" else None
    cores = run.usable_cores or 1.0
    if concurrency == "plain":
        return 1.0
    if kind == "cpu":
        parallel = 1.0 if (concurrency in SINGLE_PROCESS and run.gil) else cores
        if clients is not None:
            parallel = min(parallel, clients)
        return max(1.0, parallel)
    if kind == "wait":
        return float(clients) if clients is not None else None
    return None


def machine_conclusion(comparison: Comparison, owner: str = "your") -> Conclusion | None:
    """What other programs took from the usable cores during *comparison*,
    and the load generator's share (None when it was not measured)."""
    cpu = comparison.cpu()
    if cpu is None or cpu.others_took is None or not comparison.runs:
        return None
    usable = comparison.runs[0].usable_cores
    others = cpu.others_took
    spread = comparison.others_range()
    where = f" ({spread[0]:.2f} to {spread[1]:.2f} in its rounds)" if spread and comparison.rounds > 1 else ""
    generator = cpu.generator_cores
    gen = f"; the load generator used {generator:.2f} of a core" if generator is not None else ""
    if usable and others >= BUSY * usable:
        text = (f"A busy machine: other programs took {_of_cores(others, usable, owner)} during the comparison"
                f"{where}{gen}. Requests per second then measure the share of the CPU each server won as "
                "much as the server; the CPU each request cost and the cores each server kept busy do not.")
    else:
        text = f"A quiet machine: other programs took {_of_cores(others, usable, owner)} during the comparison{where}{gen}."
    return Conclusion("machine", text, (), others)


def conclusions(comparison: Comparison, baseline: str = "plain", owner: str = "your") -> list[Conclusion]:
    """What the measured *comparison* shows, as sentences computed from it.

    The machine first (what other programs took), then each server against
    the baseline: the *baseline* server (default plain) when it ran, else the
    first run. Runs above their physical limit are reported as invalid and
    left out of every ratio. *owner* says whose cores they were: ``"your"``
    (measured here), ``"its"`` (a stored run from another machine).
    """
    runs = comparison.runs
    if not runs:
        return [Conclusion("empty", "Nothing was measured.")]
    found: list[Conclusion] = []
    machine = machine_conclusion(comparison, owner)
    if machine is not None:
        found.append(machine)
    for run in runs:
        if run.over_limit:
            limit = run.limit()
            found.append(Conclusion(
                "invalid",
                f"{run.server}'s {run.throughput_rps:.1f} req/s is more than {cores_text(run.usable_cores, owner)} "
                f"can do ({limit.rps:.0f} req/s: {limit.reason}), so it is not a valid measurement: "
                "run the comparison again.",
                (run.server,), run.throughput_rps))
    base = next((r for r in runs if r.server == baseline), runs[0])
    for run in runs:
        if run is base or not (_valid(run) and _valid(base)):
            continue
        found += _against(run, base, owner)
    for run in runs:
        if run.generator_bound:
            found.append(Conclusion(
                "generator",
                f"For {run.server}, the load generator used more of the CPU than it could spare "
                f"({(run.generator_cpu_ms or 0) * 1000:.0f} us per request): the server may be faster "
                "than its figure, which measures the generator as much as the server.",
                (run.server,), run.generator_cpu_ms))
        kids = run.peak("children")
        if run.mode == "closed" and run.clients and kids > run.clients:
            found.append(Conclusion(
                "children",
                f"{run.server} had up to {kids} children alive at once with only {run.clients} "
                "clients: a child lives on for a moment after sending its reply, until the server "
                "reaps it, so finished children overlap with the next requests' new ones.",
                (run.server,), float(kids)))
    return found


def _served(run: RunResult, base: RunResult, spread: Spread) -> str:
    """The throughput sentence, with the spread and the figures."""
    figures = f"{run.throughput_rps:.0f} vs {base.throughput_rps:.0f} req/s"
    way = spread.direction()
    if way == 0:
        return (f"{run.server} and {base.server} served requests at rates the noise cannot tell apart: "
                f"{times(spread.value)} ({figures}; {spread.range_text()}).")
    more = "more" if way > 0 else "fewer"
    return (f"{run.server} served {times(spread.value)} {base.server}'s requests per second, {more} in "
            f"every round ({figures}; {spread.range_text()}).")


def _against(run: RunResult, base: RunResult, owner: str) -> list[Conclusion]:
    """The sentences about *run* against *base*."""
    names = (run.server, base.server)
    spread = throughput_spread(run, base)
    kind = _workload_class(base)
    served = _served(run, base, spread)
    if kind == "cpu":
        found = [Conclusion("throughput", served, names, spread.value)]
        work = _cpu_work(run, base, spread, owner)
        if work is not None:
            found.append(work)
        return found
    allowed = expected_speedup(run.concurrency, run) if base.concurrency == "plain" else None
    if kind == "wait":
        text = f"On waiting requests: {served}"
        if spread.direction() > 0:
            text += " The waits overlap."
        if allowed is not None:
            # A bound on the limits, not on the measured ratio: a plain server
            # that falls short of its own limit can make the ratio exceed it.
            text += (f" With {run.clients} clients, {run.server}'s limit is {allowed:g}x "
                     f"{base.server}'s (at most {allowed:g} requests wait at once).")
        return [Conclusion("throughput", text, names, spread.value)]
    text = f"On tiny requests: {served}"
    mine, theirs = run.server_cpu_ms, base.server_cpu_ms
    if spread.direction() < 0 and mine is not None and theirs is not None and mine > theirs:
        text += (f" Each request cost {run.server} {mine:.2f} ms of CPU against {base.server}'s "
                 f"{theirs:.2f} ms: its cost per request (a thread or a process) outweighs the work.")
    return [Conclusion("throughput", text, names, spread.value)]


def _cpu_work(run: RunResult, base: RunResult, spread: Spread, owner: str) -> Conclusion | None:
    """On cpu work: throughput = work per CPU second x cores kept busy, each
    measured, and what the GIL or the free cores allowed."""
    work = work_spread(run, base)
    mine, theirs = run.cpu(), base.cpu()
    if work is None or mine.server_cores is None or theirs.server_cores is None:
        return None
    usable = run.usable_cores
    names = (run.server, base.server)
    counts = f"{mine.requests_per_cpu_s:.0f} vs {theirs.requests_per_cpu_s:.0f} requests; {work.range_text()}"
    if work.direction() == 0:
        per_cpu = f"per CPU second {run.server} did as much work as {base.server}, within noise ({counts})"
    else:
        per_cpu = f"per CPU second {run.server} did {times(work.value)} {base.server}'s work ({counts})"
    per_cpu += f", on {mine.server_cores:.2f} cores against {theirs.server_cores:.2f}"
    took = mine.others_took
    busy = f" while other programs took {_of_cores(took, usable, owner)}" if took is not None else ""
    if run.concurrency in SINGLE_PROCESS and run.gil:
        text = (f"{run.server} is one process, so the GIL lets it run Python on at most one core, and "
                f"its threads add no CPU to work with: {per_cpu}.")
        if work.direction() > 0:
            text += (f" More work per CPU second than {base.server} is what the GIL rules out: a CPU "
                     "second bought less work in some turns than in others (other programs sharing the "
                     "processor, or its clock changing); measure again.")
        elif spread.direction() > 0:
            text += (f" It served more only because it won more of the CPU{busy}: the scheduler gives "
                     "each runnable thread its turn.")
        return Conclusion("work", text, names, mine.server_cores)
    allowed = expected_speedup(run.concurrency, run) or 1.0
    text = (f"{run.server}'s processes each have their own GIL, so they can use up to {allowed:g} of "
            f"{cores_text(usable, owner)} here: {per_cpu}.")
    one_core = usable is not None and usable <= 1
    if spread.direction() > 0:
        text += (f" It served more only because it won more of the one core{busy}: the scheduler gives "
                 "each runnable process its turn." if one_core else
                 " It served more because it kept more cores busy.")
    elif one_core:
        text += " There is no second core to run on."
    else:
        text += _left_free(mine, usable, owner) or ""
    mine_ms, theirs_ms = run.server_cpu_ms, base.server_cpu_ms
    if work.direction() < 0 and mine_ms is not None and theirs_ms is not None:
        text += (f" Each request cost it {mine_ms:.1f} ms of CPU against {base.server}'s "
                 f"{theirs_ms:.1f} ms: starting a process (a fork) is work too.")
    return Conclusion("work", text, names, mine.server_cores)


def _left_free(cpu: CpuUse, usable: float | None, owner: str) -> str | None:
    """What was left of the usable cores for the server, and who took the rest."""
    others, generator = cpu.others_took, cpu.generator_cores
    if others is None or generator is None or usable is None:
        return None
    free = max(0.0, usable - others - generator)
    return (f" Of {cores_text(usable, owner)}, other programs took {others:.2f} and the load generator "
            f"{generator:.2f}, leaving {free:.2f} for the server.")


def concurrency_sentences(comparison: Comparison) -> list[Conclusion]:
    """What each server's threads and children were, from the counts the
    figure of threads and children draws: handler threads (threads a server
    starts for requests, not its serving thread) and child processes."""
    found = []
    for run in comparison.runs:
        threads, kids = run.peak("threads"), run.peak("children")
        counted = "handler threads" if run.sampling == "peak" else "threads (the serving thread included)"
        text = f"{run.server}: at most {threads} {counted} and {kids} child processes alive at once"
        if run.mode == "closed" and run.clients:
            text += f", with {run.clients} clients"
        if run.sampling == "peak" and threads == 0 and kids == 0:
            text += ": it ran every request in its serving thread, one at a time"
        elif run.sampling == "peak" and run.mode == "closed" and max(threads, kids) > run.clients:
            text += (": one per request in flight, and a thread or child that has sent its reply lives on "
                     "for a moment, overlapping the next request's")
        elif run.sampling == "peak" and run.mode == "closed" and max(threads, kids) == run.clients:
            text += ": one per request in flight"
        found.append(Conclusion("threads", text + ".", (run.server,), float(max(threads, kids))))
    return found


def cpu_share(run: RunResult) -> float | None:
    """Cores' worth of CPU the server used over the run (0.5: half a core)."""
    return run.cpu().server_cores


def report(comparison: Comparison, baseline: str = "plain", owner: str = "your") -> str:
    """:func:`conclusions` as text, one sentence per line."""
    return "\n".join(c.text for c in conclusions(comparison, baseline, owner))


def how_many(count: int, total: int) -> str:
    """A count in words a reader can trust: ``"none of 30"``, ``"1 of 30"``,
    ``"17 of 30, more than half"``, ``"all 30"``."""
    if total <= 0:
        return "none"
    if count <= 0:
        return f"none of {total}"
    if count >= total:
        return f"all {total}"
    share = count / total
    words = ("fewer than one in ten" if share < 0.1 else
             "fewer than half" if share < 0.45 else
             "about half" if share <= 0.55 else
             "more than half" if share < 0.9 else
             "nearly all")
    return f"{count} of {total}, {words}"


_PERCENTILE_WORDS = (
    ("p50", "Half of the requests took under"),
    ("p90", "Nine requests in ten took under"),
    ("p99", "Ninety-nine in a hundred took under"),
    ("max", "The slowest took"),
)


def latency_sentences(result: Any) -> list[str]:
    """The latency percentiles of a run (a RunResult, a LoadResult or a
    ``latency_ms`` dict) in words, with the measured numbers."""
    if isinstance(result, dict):
        ms = result
    elif hasattr(result, "latency_ms") and callable(result.latency_ms):
        ms = result.latency_ms()
    else:
        ms = getattr(result, "latency_ms", {})
    return [f"{words} {_ms(ms[key])}." for key, words in _PERCENTILE_WORDS if key in ms]


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"
