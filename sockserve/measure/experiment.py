"""Comparisons: the same load against several servers, in interleaved rounds.

:func:`compare` runs the same load against several server kinds, each
server in its own process (:class:`ServerProcess`) and the load generator
(:func:`sockserve.load.run_load`) in another, and returns a
:class:`Comparison`: plain data that saves to and loads from JSON and that
:mod:`sockserve.plots` draws and :mod:`sockserve.measure.conclusions` reads.

**Interleaved rounds.** A machine's speed drifts while it is measured (other
programs come and go), so a comparison does not run server A for its whole
duration, then B, then C. It starts every server, then loads them in short
rounds, A B C A B C ..., each round a slice of the duration, and keeps each
round's figures (``RunResult.rounds``): a ratio between two servers is known
round by round, with its spread, and a drift hits every server alike.

**Values resolved once.** :func:`compare` resolves each server's kind, the
workload (with the cpu calibration, :func:`~sockserve.measure.workloads.fixed_work`)
and the timeline cap once, into a :class:`RunPlan` and a list of
:class:`~sockserve.measure.kinds.KindInfo`, and hands those down; nothing below
looks them up again. A server process is told its workload on its command
line, the load generator in its :class:`~sockserve.load.LoadSpec`.

The data (:class:`RunResult`, :class:`Comparison`) lives in
:mod:`sockserve.measure.results`, which says what a result knows about its own
limits; the JSON file of a comparison::

    {"runs": [{"server": "threading", "workload": "io", "requests": 812,
               "errors": 0, "throughput_rps": 270.5,
               "latency_ms": {"p50": ..., "p90": ..., "p99": ..., "p999": ...,
                              "max": ..., "mean": ...},
               "threads": [[t, n], ...], "children": [[t, n], ...],
               "sampling": "peak", "sample_interval": 0.1,
               "server_class": "ThreadingTCPServer", "transport": "tcp",
               "concurrency": "threading", "bound": null, "mode": "closed",
               "clients": 8, "rate": null, "duration": 3.0, "outcomes": {...},
               "workload_params": {...}, "work_ms": 0.0, "wait_ms": 10.0,
               "cores": {"usable": 1.0, "affinity": 1, "quota": null, ...},
               "server_cpu_s": 0.31, "generator_cpu_s": 0.12,
               "busy_cpu_s": 0.61, "busy_cpus": 1, "cpu_window_s": 3.02,
               "parallelism": 0.10, "requests_per_cpu_s": 2619.4,
               "generator_cores": 0.04, "others_cores": 0.06, "others_took": 0.06,
               "rounds": [{"throughput_rps": ..., "server_cpu_s": ..., ...}, ...],
               "partial": false,
               "limit_rps": 800.0, "limit_reason": "...", "over_limit": false,
               "generator_bound": false, "flags": [],
               "histogram": {...}, "load": {...}}, ...],
     "workload": "io", "workload_params": {...}, "created": "2026-...",
     "servers": ["plain", "threading"], "rounds": 5,
     "machine": {"cpus": 2, "loadavg_before": 0.4, ...},
     "calibration": {}, "cancelled": false, "flags": []}

Fixed work: for the cpu and mixed workloads the process that starts the
servers measures the loop speed once, by CPU time
(:func:`sockserve.measure.workloads.calibrate`), and hands it to every server
as the ``iterations_per_ms`` workload parameter, so every server of a
comparison does the same work per request.

Resource handling: every server a comparison starts is stopped, by PID,
before :func:`compare` returns or raises (see :class:`ServerProcess`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .kinds import KindInfo, resolve_kind
from .results import Comparison, RunResult
from .rounds import (
    MAX_ROUNDS,
    ROUND_SECONDS,
    RUN_TIMELINE_CAP,
    RunPlan,
    Served,
    default_rounds,
    load_round,
    round_load,
    machine_state,
    run_result,
    timeline_cap,
)
from .serverprocess import ServerProcess, ServerStartError
from .workloads import CALIBRATION_CLOCK, Workload, fixed_work, measure_iterations_per_ms

__all__ = [
    "ServerProcess",
    "ServerStartError",
    "RunResult",
    "Comparison",
    "RunPlan",
    "round_load",
    "compare",
    "run_one",
    "timeline_cap",
    "default_rounds",
    "RUN_TIMELINE_CAP",
    "ROUND_SECONDS",
    "MAX_ROUNDS",
]

def compare(
    workload: str | Workload = "echo",
    servers: Sequence[str | type | KindInfo] = ("plain", "threading", "forking"),
    *,
    clients: int = 8,
    rate: float | None = None,
    duration: float = 3.0,
    max_requests: int = 100_000,
    connection: str = "new",
    workload_params: dict[str, float] | None = None,
    timeout: float = 5.0,
    timeline: bool | int = False,
    rounds: int | None = None,
    progress: Callable[[Any], None] | None = None,
    on_server: Callable[[str], None] | None = None,
    bar: bool | None = False,
    stop: threading.Event | None = None,
) -> Comparison:
    """Run the same load against each server kind in *servers*, in interleaved rounds.

    Every server runs in its own process (:class:`ServerProcess`), started
    before the first round and stopped after the last; the load generator
    runs in another process per round, with the server's PID, so its
    threads, children and CPU are measured. Closed loop with *clients*
    clients, or open loop at *rate* requests per second when *rate* is given.
    Each server gets *duration* seconds and at most *max_requests* requests
    in all, split into *rounds* rounds (default :func:`default_rounds`),
    run in the order A B C A B C ... .

    *workload* is a name (with *workload_params*) or a resolved
    :class:`~sockserve.measure.workloads.Workload`. For the cpu and mixed
    workloads the loop speed is calibrated once, here (or taken from the
    ``iterations_per_ms`` parameter), handed to every server, and recorded in
    ``Comparison.calibration`` with the same speed measured again after the
    runs.

    *progress* receives the load generator's :class:`sockserve.load.Progress`
    objects unchanged, a few times a second (each round's elapsed time
    starts at 0); *on_server* is called with the server's name just before
    each round starts (so a view knows which run the progress belongs to).
    Setting *stop* (a ``threading.Event``, from any thread) cancels the
    current round, keeps what was measured, and runs no further round
    (``Comparison.cancelled``; the runs cut short are ``partial``). Unknown
    kinds and bad settings raise ValueError before anything runs.

    *servers* may also hold server classes, and kinds defined outside the
    sockserve package (written in a notebook): those are served in this
    process (see :mod:`sockserve.measure.localserver`). *timeline* (True, or
    a cap per server) records when and where each request ran, in each
    run's ``timeline`` (``sockserve.plots.timeline.plot_timelines(comparison)``
    draws them); off by default, and then nothing is recorded.
    """
    kinds = [resolve_kind(name) for name in servers]  # fail early, before any server starts
    labels = [name if isinstance(name, str) else info.name for name, info in zip(servers, kinds)]
    work = workload if isinstance(workload, Workload) else fixed_work(workload, workload_params)
    count = default_rounds(duration) if rounds is None else rounds
    load = round_load(work, count, duration, max_requests, clients=clients, rate=rate, connection=connection,
                      timeout=timeout)
    plan = RunPlan(work, load, count, timeline_cap(timeline))
    return run_plan(plan, list(zip(labels, kinds)), progress=progress, on_server=on_server,
                    bar=bar, stop=stop)


def run_one(server: str | type | KindInfo, workload: str | Workload = "echo", **settings: Any) -> RunResult:
    """One server under one load: :func:`compare` with one server (*settings*
    are compare's keywords), its only run. Raises RuntimeError when a stop
    came before the server ran at all."""
    comparison = compare(workload, (server,), **settings)
    if not comparison.runs:
        raise RuntimeError("stopped before the server ran")
    return comparison.runs[0]


def run_plan(
    plan: RunPlan,
    servers: Sequence[tuple[str, KindInfo]],
    *,
    progress: Callable[[Any], None] | None = None,
    on_server: Callable[[str], None] | None = None,
    bar: bool | None = False,
    stop: threading.Event | None = None,
) -> Comparison:
    """Run *plan* against each ``(label, kind)`` of *servers*, resolved
    already: what :func:`compare` does once it has resolved its arguments."""
    work = plan.workload
    comparison = Comparison(
        workload=work.name, workload_params=dict(work.params),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), servers=[label for label, _ in servers],
        rounds=plan.rounds, machine=machine_state("before"),
    )
    if "iterations_per_ms" in work.params:
        comparison.calibration = {"iterations_per_ms": work.params["iterations_per_ms"],
                                  "clock": CALIBRATION_CLOCK, "by_pid": os.getpid()}
    served = [Served(label, info, plan.workload, plan.timeline) for label, info in servers]
    with contextlib.ExitStack() as running:
        for one in served:
            if stop is not None and stop.is_set():
                break
            running.callback(one.server.stop)
            one.start()
        for _ in range(plan.rounds):
            for one in served:
                if stop is not None and stop.is_set():
                    break
                if on_server is not None:
                    on_server(one.label)
                one.loads.append(load_round(one.spec(plan), progress, bar, stop))
    comparison.cancelled = stop is not None and stop.is_set()
    comparison.runs = [run_result(one, plan.rounds) for one in served if one.loads]
    comparison.machine.update(machine_state("after"))
    if comparison.calibration and not comparison.cancelled:
        comparison.calibration["measured_after"] = round(measure_iterations_per_ms())
    return comparison


