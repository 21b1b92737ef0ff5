"""The results of comparisons: plain data that knows its own limits.

:class:`RunResult` is one server kind under one load; :class:`Comparison`
several of them on the same workload. Both round-trip through JSON
(``to_dict``/``from_dict``, ``Comparison.save``/``load``) and are what
:mod:`sockserve.plots` draws and :mod:`sockserve.measure.conclusions` reads.

A result knows more than its figures:

* the **work per request** it asked for (``work_ms`` of CPU, ``wait_ms``
  of waiting) and, for the cpu and mixed workloads, the calibration handed
  to the server (``workload_params["iterations_per_ms"]``), so every server
  of a comparison did the same work;
* the **cores** the server could use (``cores``: affinity and cgroup quota,
  see :mod:`sockserve.measure.limits`) and the **CPU it used** per request
  (``server_cpu_ms``), and the load generator's own (``generator_cpu_ms``);
* hence its **limit** (:meth:`RunResult.limit`): a throughput above it is
  impossible, so it is flagged (``over_limit``; ``flags()`` says why in
  words) in the JSON, the table, the plots and the lab's panels, and never
  shown as a plain number. A run in which the load generator, not the
  server, used up the CPU is flagged too (``generator_bound``).

Thread safety: plain data; do not mutate a result another thread reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..core.histogram import Histogram
from ..core.timeline import Timeline
from ..load.protocol import wait_ms_per_request, work_ms_per_request
from .limits import Cores, Limit, gil_enabled, throughput_limit, usable_cores
from .table import GENERATOR_MARK, OVER_LIMIT_MARK, PARTIAL_MARK, comparison_table, table_notes
from .usage import CpuUse, RoundFigures

__all__ = ["RunResult", "Comparison", "OVER_LIMIT_MARK", "GENERATOR_MARK", "PARTIAL_MARK", "write_json", "read_json"]


# The generator is one Python process: about one core at most. It counts as
# the bottleneck when it used this much of what it could use ...
_GENERATOR_SATURATED = 0.8
# ... or when the run used this much of the cores and the generator took
# about as much of them as the server (at least this fraction of its share).
_CORES_SATURATED = 0.85
_GENERATOR_SHARE = 0.8
# A server whose requests took this much more CPU than calibrated ran on a
# slower machine than the calibration saw (a fork per request excepted).
_SLOWER = 1.3


def _pairs(points: Iterable[Sequence[float]]) -> list[list[float]]:
    return [[float(t), float(n)] for t, n in points]


#: Keys of to_dict() computed from the other fields (ignored by from_dict).
_DERIVED = ("limit_rps", "limit_reason", "over_limit", "generator_bound", "flags", "parallelism",
            "requests_per_cpu_s", "generator_cores", "others_cores", "others_took")


@dataclass
class RunResult:
    """One server kind under one load: plain data (JSON with to_dict/from_dict).

    The figures: ``requests`` (sent), ``errors``, ``throughput_rps``
    (successful requests per second), ``latency_ms`` (p50, p90, p99, p999,
    max, mean), ``outcomes``, ``histogram``, and ``threads`` / ``children``
    as ``[seconds, count]`` points. ``sampling`` says what those points
    are: ``"peak"`` (the most handler threads and children alive at once in
    each ``sample_interval``, counted by the server itself) or
    ``"instant"`` (the server process's thread count and child count read
    from ``/proc`` at each sample, the serving thread and helpers included).

    The context: ``work_ms``/``wait_ms`` per request, ``workload_params``
    (with the cpu calibration), ``cores`` (a :class:`~sockserve.measure.limits.Cores`
    as a dict), ``gil``, ``elapsed``, ``server_cpu_s`` and
    ``generator_cpu_s`` (CPU seconds over the run, None when unmeasured),
    ``ended_by`` (what ended the load), ``server_iterations_per_ms`` (the
    cpu calibration the server reported using) and ``load`` (the full
    LoadResult).

    Who used the CPU (see :mod:`sockserve.measure.usage`): ``busy_cpu_s``,
    every program's CPU seconds on the ``busy_cpus`` CPUs the server may run
    on, over the ``cpu_window_s`` wall-clock seconds the CPU figures cover;
    :meth:`cpu` turns them into the parallelism the server achieved, its
    work per CPU second, the generator's share and what other programs
    took. ``rounds`` holds each round's figures when the run was measured
    in interleaved rounds (its figures are then the rounds' totals);
    ``partial`` is True when a stop cut the run short. ``bound`` is the most
    requests the server serves at once by its own design (a pool's workers;
    None: no such bound).

    ``timeline``: when and where each request ran, if it was recorded
    (a :class:`~sockserve.core.timeline.Timeline`, capped; None otherwise);
    ``served_in_process``: the server ran in the process that measured it
    (a kind defined in a notebook), sharing its cores.
    """

    server: str
    workload: str
    requests: int
    errors: int
    throughput_rps: float
    latency_ms: dict[str, float]
    threads: list[list[float]] = field(default_factory=list)
    children: list[list[float]] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    server_class: str = ""
    transport: str = "tcp"
    concurrency: str = "plain"
    mode: str = "closed"
    clients: int = 0
    rate: float | None = None
    duration: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    histogram: dict[str, Any] = field(default_factory=dict)
    workload_params: dict[str, float] = field(default_factory=dict)
    work_ms: float = 0.0
    wait_ms: float = 0.0
    cores: dict[str, Any] = field(default_factory=dict)
    gil: bool = True
    elapsed: float = 0.0
    server_cpu_s: float | None = None
    generator_cpu_s: float | None = None
    sampling: str = "instant"
    sample_interval: float = 0.05
    ended_by: str = ""
    server_iterations_per_ms: float | None = None
    timeline: Timeline | None = field(default=None, compare=False)  # a Timeline compares by identity
    served_in_process: bool = False
    bound: int | None = None
    busy_cpu_s: float | None = None
    busy_cpus: int = 0
    cpu_window_s: float = 0.0
    rounds: list[RoundFigures] = field(default_factory=list)
    partial: bool = False

    @classmethod
    def from_load(
        cls,
        server: str,
        result: Any,
        *,
        server_class: str = "",
        concurrency: str = "unknown",
        bound: int | None = None,
        cores: Cores | None = None,
        gil: bool | None = None,
        rounds: list[RoundFigures] | None = None,
    ) -> RunResult:
        """Build from a :class:`sockserve.load.LoadResult` of a run against *server*.

        *server* is a label (a kind name); *server_class*, *concurrency* and
        *bound* describe the server, as far as they are known (the caller
        resolved its kind). *cores* are the cores the server could use
        (default: this process's); *rounds* the figures of each round when
        *result* merges several (:func:`sockserve.load.data.merge_results`).
        """
        spec = result.spec
        params = dict(spec.workload_params)
        return cls(
            server=server,
            workload=spec.workload,
            requests=int(result.requests),
            errors=int(result.errors),
            throughput_rps=float(result.throughput_rps),
            latency_ms=dict(result.latency_ms()),
            threads=_pairs(result.threads),
            children=_pairs(result.children),
            load=result.to_dict(),
            server_class=server_class or server,
            transport=spec.transport,
            concurrency=concurrency,
            mode=spec.mode,
            clients=int(spec.clients),
            rate=spec.rate,
            duration=float(spec.duration),
            outcomes=dict(result.outcomes),
            histogram=result.latency.to_dict(),
            workload_params=params,
            work_ms=work_ms_per_request(spec.workload, params),
            wait_ms=wait_ms_per_request(spec.workload, params),
            cores=(cores or usable_cores()).to_dict(),
            gil=gil_enabled() if gil is None else gil,
            elapsed=float(result.elapsed),
            server_cpu_s=result.server_cpu_s,
            generator_cpu_s=result.generator_cpu_s,
            ended_by=str(getattr(result, "ended_by", "")),
            bound=bound,
            busy_cpu_s=result.busy_cpu_s,
            busy_cpus=int(result.busy_cpus),
            cpu_window_s=float(result.cpu_window_s),
            rounds=list(rounds) if rounds is not None else [RoundFigures.of(result)],
            partial=bool(result.cancelled),
        )

    # -- what it knows about its limits -----------------------------------

    @property
    def usable_cores(self) -> float | None:
        """Cores the server could use (None when not recorded)."""
        return float(self.cores["usable"]) if self.cores else None

    @property
    def ok(self) -> int:
        return self.requests - self.errors

    @property
    def server_cpu_ms(self) -> float | None:
        """CPU ms the server (children included) used per successful request."""
        if self.server_cpu_s is None or self.ok <= 0:
            return None
        return self.server_cpu_s * 1000.0 / self.ok

    @property
    def generator_cpu_ms(self) -> float | None:
        """CPU ms the load generator used per request it sent."""
        if self.generator_cpu_s is None or self.requests <= 0:
            return None
        return self.generator_cpu_s * 1000.0 / self.requests

    def cpu(self) -> CpuUse:
        """Who used the CPU during the run: the server's parallelism and work
        per CPU second, the generator's share, what other programs took."""
        return CpuUse(self.cpu_window_s or self.elapsed, self.server_cpu_s, self.generator_cpu_s,
                      self.busy_cpu_s, self.busy_cpus or int(self.cores.get("affinity", 0) or 0),
                      self.usable_cores, self.ok)

    def round_cpu(self) -> list[CpuUse]:
        """:meth:`cpu` of each round."""
        return [r.cpu(self.usable_cores) for r in self.rounds]

    @property
    def cpu_slowdown(self) -> float | None:
        """Server CPU per request over the calibrated work, for servers that
        add little to it (no process per request); None when unknown."""
        measured = self.server_cpu_ms
        if measured is None or not self.work_ms or self.concurrency == "forking":
            return None
        return measured / self.work_ms

    def limit(self) -> Limit:
        """The most requests per second this run could have served."""
        cores = self.usable_cores
        if cores is None:
            return Limit(None, "the cores were not recorded")
        return throughput_limit(
            self.concurrency, cores, self.work_ms, wait_ms=self.wait_ms,
            clients=self.clients if self.mode == "closed" else None,
            rate=self.rate if self.mode == "open" else None, gil=self.gil, bound=self.bound,
            sent=self.requests if self.mode == "open" else None, rounds=max(1, len(self.rounds)),
        )

    @property
    def over_limit(self) -> bool:
        """True when the throughput is above :meth:`limit`: not a result."""
        return self.limit().exceeded_by(self.throughput_rps)

    @property
    def generator_bound(self) -> bool:
        """True when the load generator, not the server, used up the CPU:
        it used most of the one core it can use, or the cores were busy and
        it took about as much of them as the server did. Then the throughput
        is the generator's ceiling as much as the server's."""
        cores = self.usable_cores
        if self.generator_cpu_s is None or not self.elapsed or not cores:
            return False
        generator = self.generator_cpu_s / self.elapsed
        if generator >= _GENERATOR_SATURATED * min(1.0, cores):
            return True
        if self.server_cpu_s is None:
            return False
        server = self.server_cpu_s / self.elapsed
        return generator + server >= _CORES_SATURATED * cores and generator >= _GENERATOR_SHARE * server

    def flags(self) -> list[str]:
        """What is wrong with (or limits) this result, in words; [] when nothing."""
        found = []
        if self.over_limit:
            limit = self.limit()
            text = (f"{self.server}: {self.throughput_rps:.1f} req/s is above the most that "
                    f"is possible, {limit.rps:.1f} req/s ({limit.reason}): not a valid measurement")
            measured = self.server_cpu_ms
            if measured is not None and self.work_ms and measured < 0.85 * self.work_ms:
                text += (f"; the server used {measured:.1f} ms of CPU per request, not the "
                         f"{self.work_ms:g} ms calibrated (the machine ran faster than when "
                         "it was calibrated)")
            found.append(text)
        if self.generator_bound:
            assert self.generator_cpu_s is not None
            share = self.generator_cpu_s / self.elapsed
            server = ("" if self.server_cpu_s is None
                      else f", the server {self.server_cpu_s / self.elapsed:.2f}")
            found.append(
                f"{self.server}: the load generator was the bottleneck: it used {share:.2f} of a "
                f"core ({self.generator_cpu_ms or 0:.3f} ms per request){server}, of "
                f"{self.cores.get('usable', 0):g} usable; the server may be faster than this")
        slow = self.cpu_slowdown
        if slow is not None and slow > _SLOWER:
            found.append(
                f"{self.server}: each request took {self.server_cpu_ms:.1f} ms of CPU, {slow:.1f}x the "
                f"{self.work_ms:g} ms calibrated: the machine ran slower during this run than when it "
                "was calibrated (other programs on this core, or on one sharing its hardware), so "
                "compare this run with the others with care")
        if self.load.get("unsent"):
            found.append(f"{self.server}: {self.load['unsent']} requests of the open loop were "
                         "never sent (the generator fell behind its rate)")
        return found

    # -- figures ----------------------------------------------------------

    def latency_histogram(self) -> Histogram | None:
        """The latency histogram (seconds), when the run recorded one."""
        return Histogram.from_dict(self.histogram) if self.histogram else None

    def peak(self, series: str) -> int:
        """Largest sampled value of ``"threads"`` or ``"children"`` (0 if none)."""
        points = getattr(self, series)
        return int(max((n for _, n in points), default=0))

    def throughput_text(self) -> str:
        """The throughput as shown: ``"98.5"``, ``"124.6!"`` over the limit,
        ``"11862~"`` when the generator was the bottleneck."""
        text = f"{self.throughput_rps:.1f}"
        if self.over_limit:
            return text + OVER_LIMIT_MARK
        if self.generator_bound:
            return text + GENERATOR_MARK
        return text

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, timeline=None))
        data["timeline"] = self.timeline.to_dict() if self.timeline is not None else None
        limit = self.limit()
        cpu = self.cpu()
        data.update(limit_rps=limit.rps, limit_reason=limit.reason, over_limit=self.over_limit,
                    generator_bound=self.generator_bound, flags=self.flags(),
                    parallelism=cpu.server_cores, requests_per_cpu_s=cpu.requests_per_cpu_s,
                    generator_cores=cpu.generator_cores, others_cores=cpu.others_cores,
                    others_took=cpu.others_took)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known and k not in _DERIVED}
        values["rounds"] = [RoundFigures.from_dict(r) for r in values.get("rounds", ())]
        if isinstance(values.get("timeline"), dict):
            values["timeline"] = Timeline.from_dict(values["timeline"])
        return cls(**values)


@dataclass
class Comparison:
    """Several runs of one workload, one per server kind.

    ``runs`` in the order of ``servers`` (the kinds asked for; a stopped
    comparison has fewer runs); ``table()`` for a text table (flags below
    it); ``flags()`` for every warning; ``save(path)`` /
    ``Comparison.load(path)`` for JSON; ``run(name)`` to find one run.
    ``rounds`` is how many interleaved rounds each server was to run (see
    :func:`sockserve.measure.experiment.compare`). ``calibration`` (cpu and
    mixed workloads) holds the loop speed handed to every server
    (``iterations_per_ms``), the clock it was measured with, and the same
    measured again after the runs (``measured_after``). ``machine`` says
    where it ran: ``cpus``, ``loadavg_before`` and ``loadavg_after`` (the
    1-minute load average), ``python``. ``cancelled`` is True when a stop
    ended the comparison early.
    """

    runs: list[RunResult] = field(default_factory=list)
    workload: str = ""
    workload_params: dict[str, float] = field(default_factory=dict)
    created: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False
    servers: list[str] = field(default_factory=list)
    rounds: int = 1
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [run.to_dict() for run in self.runs],
            "workload": self.workload,
            "workload_params": dict(self.workload_params),
            "created": self.created,
            "calibration": dict(self.calibration),
            "cancelled": self.cancelled,
            "servers": list(self.servers),
            "rounds": self.rounds,
            "machine": dict(self.machine),
            "flags": self.flags(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(
            runs=[RunResult.from_dict(run) for run in data.get("runs", [])],
            workload=str(data.get("workload", "")),
            workload_params=dict(data.get("workload_params", {})),
            created=str(data.get("created", "")),
            calibration=dict(data.get("calibration", {})),
            cancelled=bool(data.get("cancelled", False)),
            servers=[str(name) for name in data.get("servers", [])],
            rounds=int(data.get("rounds", 1)),
            machine=dict(data.get("machine", {})),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the comparison as JSON to *path*."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Comparison:
        """Read a comparison written by :meth:`save`."""
        return cls.from_dict(read_json(path))

    def run(self, server: str) -> RunResult:
        """The run against *server* (KeyError if there is none)."""
        for run in self.runs:
            if run.server == server:
                return run
        raise KeyError(server)

    def calibration_drift(self) -> float | None:
        """How much the loop speed measured after the runs differs from the
        one handed to the servers (0.1: 10% faster; None: not measured)."""
        before = self.calibration.get("iterations_per_ms")
        after = self.calibration.get("measured_after")
        if not before or not after:
            return None
        return float(after) / float(before) - 1.0

    def flags(self) -> list[str]:
        """Every warning about this comparison, in words."""
        found = [text for run in self.runs for text in run.flags()]
        drift = self.calibration_drift()
        if drift is not None and abs(drift) > 0.15:
            found.append(
                f"the machine's speed changed during the comparison: the cpu loop ran "
                f"{abs(drift) * 100:.0f}% {'faster' if drift > 0 else 'slower'} after the runs than "
                "when it was calibrated, so runs late in the comparison did their work in "
                "different time: measure again")
        if self.cancelled:
            found.append(self._stopped_text())
        return found

    def _stopped_text(self) -> str:
        cut = []
        for run in self.runs:
            if not run.partial:
                continue
            text = f"{run.server}{PARTIAL_MARK} "
            last_cut = bool(run.rounds) and run.rounds[-1].cancelled
            if self.rounds <= 1:
                cut.append(text + "was cut short")
            else:
                cut.append(text + f"ran {len(run.rounds)} of {self.rounds} rounds"
                           + (", the last cut short" if last_cut else ""))
        ran = {run.server for run in self.runs}
        missing = [name for name in self.servers if name not in ran]
        text = "stopped before the end: " + ("; ".join(cut) if cut else "no run was cut short")
        if missing:
            text += f"; {', '.join(missing)} did not run"
        return text

    def cpu(self) -> CpuUse | None:
        """Who used the CPU over the whole comparison (every round of every
        run added up): what other programs took, above all. None when no
        run measured it."""
        measured = [run for run in self.runs if run.busy_cpu_s is not None]
        if not measured:
            return None

        def total(values: Iterable[float | None]) -> float | None:
            found = list(values)
            return None if any(v is None for v in found) else sum(v or 0.0 for v in found)

        first = measured[0]
        return CpuUse(sum(run.cpu_window_s or run.elapsed for run in measured),
                      total(run.server_cpu_s for run in measured),
                      total(run.generator_cpu_s for run in measured),
                      total(run.busy_cpu_s for run in measured),
                      first.busy_cpus or int(first.cores.get("affinity", 0) or 0),
                      first.usable_cores, sum(run.ok for run in measured))

    def others_range(self) -> tuple[float, float] | None:
        """The least and the most of the usable cores other programs took in
        any one round (None when unmeasured)."""
        found = [cpu.others_took for run in self.runs for cpu in run.round_cpu()]
        known = [value for value in found if value is not None]
        return (min(known), max(known)) if known else None

    def notes(self) -> list[str]:
        """What a reader needs to read the table: the work per request, the
        cores, and what each column means (see :mod:`.table`)."""
        return table_notes(self)

    def table(self) -> str:
        """A fixed-width text table, one row per run, then the notes and
        any flags (see :func:`sockserve.measure.table.comparison_table`)."""
        return comparison_table(self)

    def __str__(self) -> str:
        return self.table()


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write *data* (a ``to_dict()``) to *path* as indented JSON."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1)
        out.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """What :func:`write_json` wrote to *path*."""
    with open(path, encoding="utf-8") as src:
        return json.load(src)
