"""Beazley's convoy: short requests stuck behind CPU-bound ones.

While a few clients keep a server busy with CPU-bound requests (the *heavy*
load), a steady trickle of *short* requests arrives (an open loop, so a
short request that has to wait counts its wait). How long do the short
requests take?

* a plain server serves one request at a time: a short request waits for the
  heavy ones accepted before it;
* a threading server's threads take turns at the GIL: a thread that waits for
  its socket gives the GIL up, and to get it back it waits until the thread
  that holds it lets go, which a CPU-bound thread does only when asked, every
  ``sys.getswitchinterval()`` (5 ms). A short request waits like that at each
  step (the accept, the read, the reply): David Beazley's *convoy effect*;
* a forking server's children each have their own GIL: the operating
  system's scheduler shares the cores among them, and it favours a process
  that has just woken over one that has been computing.

The effect shows even on one busy core: it is about who may run Python,
not about how many cores there are.

:func:`convoy` measures it, for each server, in interleaved rounds as
:func:`sockserve.measure.experiment.compare` does: every server starts once,
then each round runs the heavy load against one server, the short load beside
it, and moves on to the next server. :class:`Convoy` holds the result (plain
data, JSON); :func:`convoy_conclusions` the sentences computed from it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..load.data import LoadResult
from ..load.runner import LoadRun
from .conclusions import Conclusion, cores_text
from .kinds import KindInfo, resolve_kind
from .results import Comparison, RunResult, read_json, write_json
from .rounds import RunPlan, Served, default_rounds, load_round, machine_state, round_load, run_result
from .spread import Spread, spread_of, times
from .usage import CpuUse
from .workloads import fixed_work, get_workload

__all__ = ["Convoy", "convoy", "convoy_conclusions", "convoy_report", "LEAD_SECONDS"]

#: The heavy load starts this long before the short requests, so that the
#: short ones arrive at a server already busy.
LEAD_SECONDS = 0.15


@dataclass
class Convoy:
    """Short requests beside heavy ones, per server: plain data.

    ``short`` holds one run per server: the short requests' latency and
    counts (open loop at ``short_rate`` per second, ``short_ms`` of CPU
    work each), in rounds; ``heavy`` the heavy load beside them
    (``heavy_clients`` clients back to back, ``heavy_ms`` each), which
    started ``LEAD_SECONDS`` before the short requests and was stopped once
    they were done. ``switch_interval_ms`` is the GIL's switch interval of
    the servers' Python (``sys.getswitchinterval()``).
    """

    short: Comparison = field(default_factory=Comparison)
    heavy: Comparison = field(default_factory=Comparison)
    heavy_ms: float = 50.0
    heavy_clients: int = 2
    short_ms: float = 1.0
    short_rate: float = 20.0
    switch_interval_ms: float = 5.0

    def servers(self) -> list[str]:
        return [run.server for run in self.short.runs]

    def cpu(self, server: str) -> CpuUse | None:
        """Who used the CPU while *server* was measured: both loads'
        generators count as the load generator."""
        try:
            short, heavy = self.short.run(server), self.heavy.run(server)
        except KeyError:
            return None
        heavy_cpu = heavy.cpu()
        if heavy_cpu.generator_s is None or short.generator_cpu_s is None:
            return heavy_cpu
        return CpuUse(heavy_cpu.window_s, heavy_cpu.server_s, heavy_cpu.generator_s + short.generator_cpu_s,
                      heavy_cpu.busy_s, heavy_cpu.cpus, heavy_cpu.usable, short.ok + heavy.ok)

    def to_dict(self) -> dict[str, Any]:
        return {"short": self.short.to_dict(), "heavy": self.heavy.to_dict(), "heavy_ms": self.heavy_ms,
                "heavy_clients": self.heavy_clients, "short_ms": self.short_ms, "short_rate": self.short_rate,
                "switch_interval_ms": self.switch_interval_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Convoy:
        return cls(short=Comparison.from_dict(data["short"]), heavy=Comparison.from_dict(data["heavy"]),
                   heavy_ms=float(data["heavy_ms"]), heavy_clients=int(data["heavy_clients"]),
                   short_ms=float(data["short_ms"]), short_rate=float(data["short_rate"]),
                   switch_interval_ms=float(data.get("switch_interval_ms", 5.0)))

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Convoy:
        return cls.from_dict(read_json(path))


def convoy(
    servers: Sequence[str | type | KindInfo] = ("plain", "threading", "forking"),
    *,
    heavy_clients: int = 2,
    heavy_ms: float = 50.0,
    short_ms: float = 1.0,
    short_rate: float = 20.0,
    duration: float = 3.0,
    rounds: int | None = None,
    stop: threading.Event | None = None,
) -> Convoy:
    """Measure the short requests' latency beside heavy ones on each server.

    Each server gets *duration* seconds of short requests (*short_rate* a
    second, *short_ms* ms of CPU work each) in *rounds* rounds (default
    :func:`~sockserve.measure.rounds.default_rounds`), interleaved with the
    other servers'; during each, *heavy_clients* clients send *heavy_ms* ms
    requests back to back. The work is calibrated once, here, and is the
    same in every server. Setting *stop* ends the current round and runs no
    further one. Bounded: about ``duration + rounds * (LEAD_SECONDS + 0.6)``
    seconds per server, plus starting the servers.
    """
    kinds = [resolve_kind(name) for name in servers]
    labels = [name if isinstance(name, str) else info.name for name, info in zip(servers, kinds)]
    count = default_rounds(duration) if rounds is None else rounds
    heavy_work = fixed_work("cpu", {"work_ms": heavy_ms})
    calibration = heavy_work.params["iterations_per_ms"]
    short_work = get_workload("cpu", work_ms=short_ms, iterations_per_ms=calibration)
    round_s = duration / count
    heavy_plan = RunPlan(heavy_work, round_load(heavy_work, count, (round_s + LEAD_SECONDS + 1.0) * count,
                                                clients=heavy_clients, timeout=30.0), count)
    short_plan = RunPlan(short_work, round_load(short_work, count, duration, clients=16, rate=short_rate), count)
    made = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    served = [Served(label, info, heavy_work) for label, info in zip(labels, kinds)]
    heavy_loads: dict[str, list[LoadResult]] = {label: [] for label in labels}
    before = machine_state("before")
    with contextlib.ExitStack() as running:
        for one in served:
            running.callback(one.server.stop)
            one.start()
        for _ in range(count):
            for one in served:
                if stop is not None and stop.is_set():
                    break
                short, heavy = _beside(one, short_plan, heavy_plan, stop)
                one.loads.append(short)
                heavy_loads[one.label].append(heavy)
    after = machine_state("after")
    cancelled = stop is not None and stop.is_set()
    result = Convoy(heavy_ms=heavy_ms, heavy_clients=heavy_clients, short_ms=short_ms, short_rate=short_rate,
                    switch_interval_ms=sys.getswitchinterval() * 1000.0)
    for comparison, work in ((result.short, short_work), (result.heavy, heavy_work)):
        comparison.workload, comparison.workload_params = "cpu", dict(work.params)
        comparison.created, comparison.servers, comparison.rounds = made, list(labels), count
        comparison.machine = {**before, **after}
        comparison.cancelled = cancelled
        comparison.calibration = {"iterations_per_ms": calibration}
    for one in served:
        if not one.loads:
            continue
        # The server's CPU served both loads: it is the heavy run's (whose
        # throughput it mostly bought), not the short requests'.
        short_run = run_result(one, count)
        short_run.server_cpu_s = short_run.busy_cpu_s = None
        short_run.rounds = [replace(r, server_cpu_s=None, busy_cpu_s=None) for r in short_run.rounds]
        heavy_run = run_result(one, count, heavy_loads[one.label])
        heavy_run.partial = short_run.partial  # stopping the heavy load was the plan
        result.short.runs.append(short_run)
        result.heavy.runs.append(heavy_run)
    return result


def _beside(one: Served, short_plan: RunPlan, heavy_plan: RunPlan,
            stop: threading.Event | None) -> tuple[LoadResult, LoadResult]:
    """One round: the heavy load in the background, the short requests once
    it is under way, then the heavy load stopped."""
    with LoadRun(one.spec(heavy_plan)) as heavy:
        heavy.start()
        time.sleep(LEAD_SECONDS)
        short = load_round(one.spec(short_plan), stop=stop)
        heavy.cancel()
        return short, heavy.wait()


def _median_spread(run: RunResult, base: RunResult) -> Spread:
    """*run*'s median latency over *base*'s: the totals' and each round's."""
    return spread_of(run.latency_ms["p50"] / base.latency_ms["p50"],
                     [(a.p50_ms if a.ok else None, b.p50_ms if b.ok else None)  # no reply: no median
                      for a, b in zip(run.rounds, base.rounds)])


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def convoy_conclusions(result: Convoy, owner: str = "your") -> list[Conclusion]:
    """The sentences :func:`convoy` supports, each computed from its figures:
    what other programs took, each server's short-request latency, how it
    compares with the heavy request and the switch interval, and each pair
    of servers' medians with their spread over the rounds. *owner* says
    whose cores they were (see :func:`~sockserve.measure.conclusions.conclusions`)."""
    runs = [run for run in result.short.runs if run.ok > 0]
    if not runs:
        return [Conclusion("empty", "No short request got a reply.")]
    found: list[Conclusion] = []
    took = [cpu.others_took for cpu in (result.cpu(run.server) for run in runs)
            if cpu is not None and cpu.others_took is not None]
    usable = runs[0].usable_cores
    if took:
        share = sum(took) / len(took)
        busy = "a busy machine" if usable and share >= 0.1 * usable else "a quiet machine"
        found.append(Conclusion("machine", f"Measured on {busy}: other programs took {share:.2f} of "
                                           f"{cores_text(usable, owner)} while the servers ran.", (), share))
    for run in runs:
        ms = run.latency_ms
        answered = f"{run.ok} of them" if run.ok == run.requests else f"{run.ok} of {run.requests} answered"
        text = (f"Beside {result.heavy_clients} clients sending {result.heavy_ms:g} ms requests back to "
                f"back, {run.server}'s short requests ({result.short_ms:g} ms of work, {answered}) took "
                f"{_ms(ms['p50'])} at the median and {_ms(ms['p90'])} at p90")
        median = ms["p50"]
        if run.concurrency == "plain":
            text += f": {median / result.heavy_ms:.1f} heavy requests' worth of waiting."
        elif run.concurrency in ("threading", "threadpool"):
            text += f": {median / result.switch_interval_ms:.1f} of the GIL's {result.switch_interval_ms:g} ms switch intervals."
        else:
            text += "."
        if run.ok < run.requests:
            left = run.requests - run.ok
            who = "one was still waiting when its" if left == 1 else f"{left} were still waiting when their"
            text += f" The other {who} round ended, so these figures are the lucky ones'."
        found.append(Conclusion("latency", text, (run.server,), median))
    for i, slow in enumerate(runs):
        for fast in runs[i + 1:]:
            spread = _median_spread(slow, fast)
            pair = (slow.server, fast.server)
            figures = f"{_ms(slow.latency_ms['p50'])} vs {_ms(fast.latency_ms['p50'])}; {spread.range_text()}"
            way = spread.direction()
            if way == 0:
                text = (f"{slow.server}'s and {fast.server}'s short requests took as long, within noise "
                        f"({times(spread.value)}: {figures}).")
            else:
                longer = "longer" if way > 0 else "shorter"
                text = (f"{slow.server}'s short requests took {times(spread.value)} as long as {fast.server}'s "
                        f"at the median, {longer} in every round ({figures}).")
            found.append(Conclusion("convoy", text, pair, spread.value))
    return found


def convoy_report(result: Convoy, owner: str = "your") -> str:
    """:func:`convoy_conclusions` as text, one sentence per line (*owner*:
    see :func:`~sockserve.measure.conclusions.conclusions`)."""
    return "\n".join(c.text for c in convoy_conclusions(result, owner))
