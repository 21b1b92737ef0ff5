"""The pieces of a comparison's rounds: what every run does (a
:class:`RunPlan`, resolved once), a server that lives through the rounds,
one round of load against it, and its rounds made into one result.

:func:`sockserve.measure.experiment.compare` and
:func:`sockserve.measure.convoy.convoy` are built from these: a
:class:`Served` server is started once and loaded round after round
(:func:`load_round`), and :func:`run_result` merges its rounds into a
:class:`~sockserve.measure.results.RunResult`, with the server's own counts
of threads and children.
"""

from __future__ import annotations

import math
import os
import platform
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..load.data import LoadResult, LoadSpec, merge_results
from ..load.runner import LoadRun, run_load
from .kinds import KindInfo, concurrency_bound
from .limits import gil_enabled, usable_cores
from .localserver import LocalServer, runs_here
from .results import RunResult
from .serverfeed import FeedLine
from .serverprocess import ServerProcess
from .usage import RoundFigures
from .workloads import Workload

__all__ = [
    "RunPlan",
    "round_load",
    "Served",
    "load_round",
    "run_result",
    "machine_state",
    "timeline_cap",
    "default_rounds",
    "RUN_TIMELINE_CAP",
    "ROUND_SECONDS",
    "MAX_ROUNDS",
]

#: Requests a run's timeline keeps when asked for with ``timeline=True``.
RUN_TIMELINE_CAP = 2000
#: A round lasts at least about this long (seconds) ...
ROUND_SECONDS = 0.25
#: ... and a comparison runs at most this many rounds per server by default.
MAX_ROUNDS = 5


def timeline_cap(timeline: bool | int | None) -> int | None:
    """The cap *timeline* asks for: None for False, :data:`RUN_TIMELINE_CAP`
    for True, else the number itself (at least 1)."""
    if timeline is False or timeline is None:
        return None
    if timeline is True:
        return RUN_TIMELINE_CAP
    if not isinstance(timeline, int) or timeline < 1:
        raise ValueError(f"timeline must be True, False or a cap of at least 1 request, got {timeline!r}")
    return timeline


def default_rounds(duration: float) -> int:
    """Rounds per server for *duration* seconds of load: as many rounds of
    at least :data:`ROUND_SECONDS` as fit, at most :data:`MAX_ROUNDS`."""
    return max(1, min(MAX_ROUNDS, int(duration / ROUND_SECONDS + 1e-9)))


@dataclass(frozen=True)
class RunPlan:
    """What every run of a comparison does, resolved once and passed down.

    ``workload`` is the resolved workload (defaults filled in, the cpu
    calibration included); ``load`` the load generator's spec for one round,
    aimed at no server yet (:func:`round_load` makes it); ``rounds`` how many
    interleaved rounds each server runs; ``timeline`` the cap of the request
    timeline each server records (None: none).
    """

    workload: Workload
    load: LoadSpec
    rounds: int = 1
    timeline: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"rounds must be a whole number of at least 1, got {self.rounds!r}")
        if self.timeline is not None and self.timeline < 1:
            raise ValueError(f"timeline is a cap (requests to keep): at least 1, got {self.timeline!r}")

    def load_spec(self, address: str | tuple[str, int], transport: str, server_pid: int | None) -> LoadSpec:
        """The load generator's spec for one round against a server at *address*."""
        return replace(self.load, address=address, transport=transport, server_pid=server_pid)


def round_load(workload: Workload, rounds: int, duration: float, max_requests: int = 100_000,
               **fields: Any) -> LoadSpec:
    """One round's :class:`~sockserve.load.LoadSpec` of *workload*:
    *duration* seconds and *max_requests* requests shared out over *rounds*,
    the open loop when *fields* give a ``rate``, and the other *fields*
    (clients, rate, connection, timeout) as given. Aimed at no server yet
    (:meth:`RunPlan.load_spec` aims it); checked now (ValueError, in the
    load generator's words)."""
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a whole number of at least 1, got {rounds!r}")
    mode = "closed" if fields.get("rate") is None else "open"
    return LoadSpec(address=("127.0.0.1", 0), workload=workload.name, workload_params=dict(workload.params),
                    mode=mode, duration=duration / rounds, max_requests=math.ceil(max_requests / rounds),
                    **fields)


class Served:
    """One server of a comparison while it runs: its ``label`` and kind
    (``info``), its process (or thread: ``server``), its ``cores``, and the
    load results of its rounds so far (``loads``). ``start()`` starts it; the
    caller stops ``server``."""

    def __init__(self, label: str, info: KindInfo, workload: Workload, timeline: int | None = None) -> None:
        self.label, self.info = label, info
        self.here = runs_here(info)
        self.server: Any = (LocalServer(info, workload, timeline=timeline) if self.here else
                            ServerProcess(info, workload, timeline=timeline))
        self.loads: list[LoadResult] = []
        self.cores: Any = None

    def start(self) -> None:
        self.server.start()
        self.cores = usable_cores(self.server.pid)

    def spec(self, plan: RunPlan) -> LoadSpec:
        """*plan*'s spec for one round against this server."""
        # In this process the thread count would include the caller's own.
        return plan.load_spec(self.server.address, self.info.transport,
                              None if self.here else self.server.pid)


def load_round(spec: LoadSpec, progress: Callable[[Any], None] | None = None, bar: bool | None = False,
               stop: threading.Event | None = None) -> LoadResult:
    """One round of load; a set *stop* cancels it (the partial result is kept)."""
    if stop is None:
        return run_load(spec, progress=progress, bar=bar)
    with LoadRun(spec, progress=progress, bar=bool(bar)) as load:
        load.start()
        while not load.done:
            if stop.wait(0.05):
                load.cancel()
                break
        return load.wait()


def run_result(one: Served, rounds: int, loads: list[LoadResult] | None = None) -> RunResult:
    """The run of one server: its rounds (*loads*, default ``one.loads``)
    merged, the server's own counts of threads and children in place of the
    sampled ones; partial when it ran fewer than *rounds* rounds or its last
    was cancelled. Read after the server stopped (its reports are final)."""
    reports = [] if one.here else one.server.reports()
    measured = one.loads if loads is None else loads
    loads = [_with_reports(load, reports) for load in measured]
    info = one.info
    run = RunResult.from_load(
        one.label, merge_results(loads),
        server_class=info.server_class.__name__ if info.server_class else info.name,
        concurrency=info.concurrency, bound=concurrency_bound(info), cores=one.cores,
        gil=gil_enabled(), rounds=[RoundFigures.of(load) for load in measured],
    )
    run.partial = len(loads) < rounds or loads[-1].cancelled
    window = [r for load in measured for r in _window(load, reports)]
    if window:
        run.sampling, run.sample_interval = "peak", window[0].interval
        run.server_iterations_per_ms = window[-1].iterations_per_ms
    run.timeline = one.server.timeline
    run.served_in_process = one.here
    return run


def _window(result: LoadResult, reports: list[FeedLine]) -> list[FeedLine]:
    """The server's reports that cover *result*'s time span."""
    start = float(result.started_monotonic)
    if not reports or not start:
        return []
    end = start + float(result.elapsed)
    return [r for r in reports if start < r.t <= end + r.interval]


def _with_reports(result: LoadResult, reports: list[FeedLine]) -> LoadResult:
    """*result* with the server's own per-interval peaks of threads and
    children (over the load's time span) instead of the sampled counts."""
    window = _window(result, reports)
    if not window:
        return result
    start = float(result.started_monotonic)
    return replace(result, threads=[(round(r.t - start, 4), r.threads) for r in window],
                   children=[(round(r.t - start, 4), r.children) for r in window])


def machine_state(when: str) -> dict[str, Any]:
    """What the machine was doing: its 1-minute load average *when*
    ("before", "after"), and, before, its CPUs and Python."""
    try:
        loadavg: float | None = os.getloadavg()[0]
    except OSError:
        loadavg = None
    found: dict[str, Any] = {f"loadavg_{when}": loadavg}
    if when == "before":
        found.update(cpus=os.cpu_count() or 1, python=platform.python_version())
    return found
