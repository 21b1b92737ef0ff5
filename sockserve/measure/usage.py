"""Who used the CPU during a run, and the figures contention cannot fake.

A throughput measured on a shared CPU is the share of the CPU a server won
as much as how well it serves: the scheduler gives every runnable thread its
turn, so a server with eight threads wins more of a busy core than a server
with one. Two figures do not move with contention, and a comparison rests
its conclusions on them:

* **work per CPU second** (:attr:`CpuUse.requests_per_cpu_s`): requests
  served per CPU second the server (children included) used. Under the GIL
  a thread adds no CPU to do work with, only switching, so a threading
  server can never do more per CPU second than a plain one;
* **parallelism** (:attr:`CpuUse.server_cores`): CPU seconds per wall-clock
  second, in cores. A single-process server's Python code runs on at most
  one core; a forking server's children on as many as are free.

Throughput is the product of the two: requests per CPU second times cores.
What is left of the usable cores is measured as well: the load generator's
share (:attr:`CpuUse.generator_cores`), and what *other programs* took
(:attr:`CpuUse.others_took`): everything the CPUs the server may run on did
(``/proc/stat``, read by the load generator) less the server and the
generator, counted against the cores the server may use (affinity and the
cgroup quota, :mod:`sockserve.measure.limits`). The process that runs the
comparison (a notebook's kernel, say) counts among the other programs.

:class:`RoundFigures` are one round's figures of a run that was measured in
interleaved rounds (see :func:`sockserve.measure.experiment.compare`).

Plain data: no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CpuUse", "RoundFigures", "taken_from_usable"]


def taken_from_usable(others: float, cpus: float, usable: float) -> float:
    """How much of the *usable* cores other programs took, when they kept
    *others* cores busy on the *cpus* CPUs a process may run on.

    Without a quota (``usable == cpus``) that is all of it. Under a cgroup
    quota smaller than the CPUs, the process may use only *usable* cores'
    worth anyway, so other programs take from it only what leaves less than
    that free: ``others - (cpus - usable)``. Between 0 and *usable*."""
    spare = max(0.0, cpus - usable)
    return min(usable, max(0.0, others - spare))


@dataclass(frozen=True)
class CpuUse:
    """The CPU seconds each party used over *window_s* wall-clock seconds.

    ``server_s`` (children included), ``generator_s`` and ``busy_s`` (every
    program, on the ``cpus`` CPUs the server may run on) are None when
    unmeasured; ``usable`` is the cores the server may use (None: unknown);
    ``ok`` the requests served in the window.
    """

    window_s: float
    server_s: float | None
    generator_s: float | None
    busy_s: float | None
    cpus: int
    usable: float | None
    ok: int

    def _cores(self, seconds: float | None) -> float | None:
        if seconds is None or self.window_s <= 0:
            return None
        return max(0.0, seconds) / self.window_s

    @property
    def server_cores(self) -> float | None:
        """The parallelism the server achieved: its CPU seconds per wall second."""
        return self._cores(self.server_s)

    @property
    def generator_cores(self) -> float | None:
        """The load generator's CPU seconds per wall second."""
        return self._cores(self.generator_s)

    @property
    def others_cores(self) -> float | None:
        """Cores' worth of CPU every other program used on the server's CPUs."""
        if self.busy_s is None or self.server_s is None or self.generator_s is None:
            return None
        return self._cores(self.busy_s - self.server_s - self.generator_s)

    @property
    def others_took(self) -> float | None:
        """How much of the usable cores other programs took. Under a cgroup
        quota smaller than the CPUs, other programs take from it only what
        leaves less than the quota free: ``others - (cpus - usable)``,
        between 0 and ``usable``."""
        others = self.others_cores
        if others is None or self.usable is None:
            return None
        return taken_from_usable(others, self.cpus, self.usable)

    @property
    def requests_per_cpu_s(self) -> float | None:
        """Requests served per CPU second of the server: work per CPU second."""
        if self.server_s is None or self.server_s <= 0 or self.ok <= 0:
            return None
        return self.ok / self.server_s


@dataclass(frozen=True)
class RoundFigures:
    """One round of a run: what it served and who used the CPU meanwhile."""

    requests: int
    ok: int
    elapsed: float
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    cpu_window_s: float = 0.0
    server_cpu_s: float | None = None
    generator_cpu_s: float | None = None
    busy_cpu_s: float | None = None
    busy_cpus: int = 0
    cancelled: bool = False

    @classmethod
    def of(cls, result: Any) -> RoundFigures:
        """The figures of one :class:`sockserve.load.LoadResult`."""
        ms = result.latency_ms()
        return cls(
            requests=int(result.requests), ok=int(result.ok), elapsed=float(result.elapsed),
            throughput_rps=float(result.throughput_rps), p50_ms=float(ms["p50"]), p90_ms=float(ms["p90"]),
            cpu_window_s=float(result.cpu_window_s or result.elapsed),
            server_cpu_s=result.server_cpu_s, generator_cpu_s=result.generator_cpu_s,
            busy_cpu_s=result.busy_cpu_s, busy_cpus=int(result.busy_cpus), cancelled=bool(result.cancelled),
        )

    def cpu(self, usable: float | None) -> CpuUse:
        """Who used the CPU during this round (*usable*: the server's cores)."""
        return CpuUse(self.cpu_window_s or self.elapsed, self.server_cpu_s, self.generator_cpu_s,
                      self.busy_cpu_s, self.busy_cpus, usable, self.ok)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoundFigures:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
