"""Conclusions computed from a measured comparison, for lessons to print.

A lesson that says "forking is about 8x faster on waiting requests" next
to a table that shows 3.5x teaches distrust. The functions here turn a
:class:`~sockserve.measure.results.Comparison` (and the cores it recorded) into
sentences, so the words beside a measurement always agree with it:

:func:`conclusions`
    every :class:`Conclusion` the comparison supports: the speed-up of each
    server over the baseline and what the physics allows on these cores
    ("On your 1 core, threading cannot beat plain on cpu work: measured
    0.97x"), invalid runs, a generator that was the bottleneck, a child count
    above the client count and why.
:func:`report`
    the same as text, one sentence per line (``print(report(results))``).
:func:`speedup`, :func:`speedup_text`
    one server's throughput over another's, as a number and in words
    ("3.5x plain's throughput"); None when either run is not valid.
:func:`expected_speedup`
    the most a server kind can gain over plain, from the workload and the
    cores alone (before measuring: "at most 1x on one core").
:func:`how_many`, :func:`latency_sentences`
    counts and latency percentiles in words ("17 of 30, more than half";
    "nine requests in ten took under 55 ms").

No plotting or I/O here; every function takes plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .limits import SINGLE_PROCESS
from .results import Comparison, RunResult

__all__ = [
    "Conclusion",
    "conclusions",
    "report",
    "speedup",
    "speedup_text",
    "expected_speedup",
    "how_many",
    "latency_sentences",
    "cores_text",
    "cpu_share",
]

# A measured ratio within this much of what physics allows is "as expected".
_NOISE = 0.15


@dataclass(frozen=True)
class Conclusion:
    """One sentence a lesson can print, and the number behind it.

    ``key`` says what kind of conclusion it is (``"speedup"``, ``"limit"``,
    ``"invalid"``, ``"generator"``, ``"children"``, ``"unexpected"``);
    ``servers`` the runs it is about; ``value`` the figure (a ratio, a
    count) or None.
    """

    key: str
    text: str
    servers: tuple[str, ...] = ()
    value: float | None = None

    def __str__(self) -> str:
        return self.text


def cores_text(cores: float | None) -> str:
    """``"your 1 core"``, ``"your 2 cores"``, ``"your 0.5 core"``."""
    if cores is None:
        return "this machine"
    return f"your {cores:g} core" + ("" if cores <= 1 else "s")


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


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio >= 1.95 else f"{ratio:.2f}x"


def speedup_text(comparison: Comparison, server: str, over: str = "plain") -> str:
    """``"forking: 3.5x plain's throughput (312 vs 89 req/s)"``, or why not."""
    ratio = speedup(comparison, server, over)
    if ratio is None:
        return f"{server} vs {over}: no valid ratio (a run is missing, empty or flagged)"
    a, b = comparison.run(server), comparison.run(over)
    return (f"{server}: {_times(ratio)} {over}'s throughput "
            f"({a.throughput_rps:.0f} vs {b.throughput_rps:.0f} req/s)")


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


def conclusions(comparison: Comparison, baseline: str = "plain") -> list[Conclusion]:
    """What the measured *comparison* shows, as sentences computed from it.

    The baseline is the *baseline* server (default plain) when it ran,
    else the first run. Runs above their physical limit are reported as
    invalid and left out of every ratio.
    """
    runs = comparison.runs
    found: list[Conclusion] = []
    if not runs:
        return [Conclusion("empty", "Nothing was measured.")]
    for run in runs:
        if run.over_limit:
            limit = run.limit()
            found.append(Conclusion(
                "invalid",
                f"{run.server}'s {run.throughput_rps:.1f} req/s is more than {cores_text(run.usable_cores)} "
                f"can do ({limit.rps:.0f} req/s: {limit.reason}), so it is not a valid measurement: "
                "run the comparison again.",
                (run.server,), run.throughput_rps))
    base = next((r for r in runs if r.server == baseline), runs[0])
    cores = base.usable_cores
    kind = _workload_class(base)
    for run in runs:
        if run is base or run.over_limit or base.over_limit:
            continue
        ratio = speedup(comparison, run.server, base.server)
        if ratio is None:
            continue
        found.append(_speedup_conclusion(run, base, ratio, kind, cores))
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


def _speedup_conclusion(run: RunResult, base: RunResult, ratio: float, kind: str,
                        cores: float | None) -> Conclusion:
    names = (run.server, base.server)
    measured = (f"measured {_times(ratio)} ({run.throughput_rps:.0f} vs "
                f"{base.throughput_rps:.0f} req/s)")
    allowed = expected_speedup(run.concurrency, run) if base.concurrency == "plain" else None
    if kind == "cpu" and allowed is not None:
        where = cores_text(cores)
        if allowed <= 1.0 + 1e-9:
            why = ("the GIL lets one thread run Python at a time"
                   if run.concurrency in SINGLE_PROCESS else "there is no second core to run on")
            text = f"On {where}, {run.server} cannot beat {base.server} on cpu work ({why}): {measured}."
            if ratio > 1.0 + _NOISE:
                text += " " + _explain_excess(run, base, cores)
            return Conclusion("limit", text, names, ratio)
        text = (f"On {where}, {run.server} can run cpu work in parallel, up to {allowed:g}x "
                f"{base.server}: {measured}.")
        if ratio > allowed * (1.0 + _NOISE):
            text += " That is more than the cores allow: measure again."
        elif ratio < 1.0 + _NOISE:
            text += " No gain: the load generator and other programs share those cores."
        return Conclusion("speedup", text, names, ratio)
    if kind == "wait":
        if ratio >= 1.0 + _NOISE:
            text = (f"On waiting requests {run.server} served {_times(ratio)} as many requests per "
                    f"second as {base.server} ({run.throughput_rps:.0f} vs {base.throughput_rps:.0f}): "
                    "the waits overlap.")
            if allowed is not None:
                text += f" At most {allowed:g}x is possible with {run.clients} clients."
        else:
            text = (f"On waiting requests {run.server} was no faster than {base.server}: {measured}.")
        return Conclusion("speedup", text, names, ratio)
    if ratio < 1.0 - _NOISE:
        text = (f"On tiny requests {run.server} served fewer requests per second than {base.server} "
                f"({measured}): its cost per request (a thread or a process) outweighs the work.")
    elif ratio > 1.0 + _NOISE:
        text = f"On tiny requests {run.server} was faster than {base.server}: {measured}."
    else:
        text = f"On tiny requests {run.server} and {base.server} were about as fast: {measured}."
    return Conclusion("speedup", text, names, ratio)


def cpu_share(run: RunResult) -> float | None:
    """Cores' worth of CPU the server used over the run (0.5: half a core)."""
    if run.server_cpu_s is None or not run.elapsed:
        return None
    return run.server_cpu_s / run.elapsed


def _explain_excess(run: RunResult, base: RunResult, cores: float | None) -> str:
    """Why *run* beat *base* by more than the cores allow, from the CPU each got."""
    mine, theirs = cpu_share(run), cpu_share(base)
    if mine is None or theirs is None or not run.server_cpu_s or not base.server_cpu_s:
        return f"That is more than the cores allow: other programs slowed the {base.server} run down; measure again."
    per_cpu_run = run.ok / run.server_cpu_s
    per_cpu_base = base.ok / base.server_cpu_s
    if mine > theirs * (1.0 + _NOISE) and theirs < 0.8 * (cores or 1.0):
        return (f"The difference is the share of the core each got: {run.server} used {mine:.2f} of a core, "
                f"{base.server} only {theirs:.2f}. Other programs were running on your core, and the "
                f"scheduler gives every process its turn, so {run.server}'s many processes (or threads) "
                f"won a larger share than {base.server}'s one. Per CPU second they did about the same "
                f"work: {per_cpu_run:.0f} vs {per_cpu_base:.0f} requests.")
    return f"That is more than the cores allow: other programs slowed the {base.server} run down; measure again."


def report(comparison: Comparison, baseline: str = "plain") -> str:
    """:func:`conclusions` as text, one sentence per line."""
    return "\n".join(c.text for c in conclusions(comparison, baseline))


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
