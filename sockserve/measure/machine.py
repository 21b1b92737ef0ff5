"""How busy the machine was: the CPU other programs took from the cores a
process may use, measured over a stretch of time.

A figure measured on a shared machine says as much about the other programs
as about the code measured. This module measures them: over a stretch of
time it reads the CPU time spent on the CPUs this process may run on
(``/proc/stat``, one line per CPU; only the CPUs of its affinity count) and
subtracts the CPU time of this process and of every process below it
(``/proc/<pid>/stat``: its own time, and the time of the children it has
reaped). What remains is what other programs took. Under a cgroup CPU quota
(a container, a Binder pod) the quota is what the process may use, so only
what other programs took beyond the CPUs the quota leaves free counts
(see :meth:`Busy.from_counts`).

Callers use :class:`BusyMeter` (``start()``, then ``stop()`` returns a
:class:`Busy`; or ``with BusyMeter() as meter: ...; meter.busy``), and
:class:`Busy` (plain data: ``other_cores``, ``other_share``, ``describe()``,
``to_dict()``). The pieces (:func:`~sockserve.kernel.cpustat.busy_seconds`,
:func:`~sockserve.kernel.cpustat.tree_cpu_seconds`)
take the file system root as a parameter, so they are tested on fixture
trees. ``notebooks/src/sync.py`` uses this to refuse saving lesson outputs
measured on a busy machine.

Linux only; elsewhere :func:`BusyMeter.stop` returns a :class:`Busy` whose
``measured`` is False.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..kernel.cpustat import busy_seconds, tree_cpu_seconds
from ..kernel.procfs import read_text
from .limits import Cores, usable_cores
from .usage import taken_from_usable

__all__ = ["Busy", "BusyMeter", "CpuCounts", "read_counts"]

def _cgroup_usage_seconds(where: str) -> float | None:
    """CPU seconds used by the control group whose quota file is *where*
    (cgroup v2 ``cpu.stat`` ``usage_usec``; v1 ``cpuacct.usage``), or None."""
    if not where:
        return None
    directory = os.path.dirname(where)
    text = read_text(os.path.join(directory, "cpu.stat")) or ""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) / 1e6
    usage = read_text(os.path.join(directory, "cpuacct.usage"))
    if usage is not None and usage.strip().isdigit():
        return int(usage) / 1e9
    return None


@dataclass(frozen=True)
class CpuCounts:
    """One reading: wall clock, busy seconds of the allowed CPUs, the tree's
    CPU seconds, and the cgroup's (None when it has no readable usage)."""

    at: float
    cpus_busy: float
    tree: float
    cgroup: float | None


def read_counts(pid: int, cpus: Iterable[int], cores: Cores, root: str = "/") -> CpuCounts:
    """A :class:`CpuCounts` for process *pid*'s tree on *cpus*, now."""
    return CpuCounts(
        at=time.monotonic(),
        cpus_busy=busy_seconds(cpus, root) or 0.0,
        tree=tree_cpu_seconds(pid, root),
        cgroup=_cgroup_usage_seconds(cores.detail) if cores.source == "cgroup quota" else None,
    )


@dataclass(frozen=True)
class Busy:
    """How busy the machine was over one stretch of time: plain data.

    ``seconds`` of wall clock; ``cores`` the process could use (affinity and
    quota, see :mod:`.limits`) as ``cores_usable`` and ``cores_source``;
    ``own_cores``: the CPU its tree used, in cores (CPU seconds per second);
    ``other_cores``: what other programs took from those cores; ``loadavg``:
    the 1-minute load average at the end (all programs, this one's
    included). ``measured`` is False where ``/proc/stat`` could not be read.
    """

    seconds: float
    cores_usable: float
    cores_source: str
    own_cores: float
    other_cores: float
    loadavg: float | None
    measured: bool = True

    @property
    def other_share(self) -> float:
        """``other_cores`` as a fraction of the usable cores (0.3: 30%)."""
        return self.other_cores / self.cores_usable if self.cores_usable else 0.0

    @classmethod
    def from_counts(cls, before: CpuCounts, after: CpuCounts, cores: Cores,
                    loadavg: float | None = None) -> Busy:
        """The figures between two readings.

        Without a quota, other programs took the busy time of the allowed
        CPUs minus the tree's own. Under a quota smaller than the CPUs, the
        tree may use only the quota: other programs in the same control
        group take from it directly (the group's usage minus the tree's),
        and programs elsewhere only what they took beyond the CPUs the
        quota leaves free; the larger of the two counts."""
        seconds = max(after.at - before.at, 1e-9)
        own = max(0.0, after.tree - before.tree)
        on_cpus = max(0.0, after.cpus_busy - before.cpus_busy - own)
        other = taken_from_usable(on_cpus / seconds, cores.affinity, cores.usable)
        if cores.source == "cgroup quota" and before.cgroup is not None and after.cgroup is not None:
            in_group = max(0.0, after.cgroup - before.cgroup - own) / seconds
            other = min(cores.usable, max(other, in_group))
        return cls(seconds, cores.usable, cores.source, own / seconds, other, loadavg)

    def describe(self) -> str:
        """One sentence: what other programs took, of how many cores, over how long."""
        if not self.measured:
            return "how busy the machine was could not be measured here (no /proc/stat)"
        cores = f"{self.cores_usable:g} core" + ("" if self.cores_usable <= 1 else "s")
        if self.cores_source != "affinity":
            cores += f" ({self.cores_source})"
        load = f"; load average {self.loadavg:.2f}" if self.loadavg is not None else ""
        return (f"other programs took {self.other_cores:.2f} of the {cores} this process may use "
                f"({self.other_share:.0%}) over {self.seconds:.0f} s; this process and its children "
                f"used {self.own_cores:.2f}{load}")

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 1), "cores": self.cores_usable, "cores_source": self.cores_source,
                "own_cores": round(self.own_cores, 3), "other_cores": round(self.other_cores, 3),
                "other_share": round(self.other_share, 3),
                "loadavg": None if self.loadavg is None else round(self.loadavg, 2),
                "measured": self.measured}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Busy:
        loadavg = data.get("loadavg")
        return cls(float(data["seconds"]), float(data["cores"]), str(data.get("cores_source", "affinity")),
                   float(data["own_cores"]), float(data["other_cores"]),
                   None if loadavg is None else float(loadavg), bool(data.get("measured", True)))


def _allowed_cpus(pid: int) -> set[int]:
    getter = getattr(os, "sched_getaffinity", None)
    if getter is not None:
        try:
            return set(getter(pid))
        except OSError:
            pass
    return set(range(os.cpu_count() or 1))


def _loadavg(root: str) -> float | None:
    text = read_text(os.path.join(root, "proc", "loadavg"))
    try:
        return float(text.split()[0]) if text else None
    except ValueError:
        return None


class BusyMeter:
    """Measure what other programs take from this process's cores.

    ``BusyMeter(pid=None, root="/")``: *pid* roots the tree counted as "this
    program" (default: this process). :meth:`start` takes the first
    reading, :meth:`stop` the second and returns the :class:`Busy` between
    them (kept in :attr:`busy`). Cost: one read of ``/proc/stat`` and of
    each process's ``stat`` per reading (a few milliseconds).
    """

    def __init__(self, pid: int | None = None, root: str = "/") -> None:
        self.pid = pid or os.getpid()
        self.root = root
        self.busy: Busy | None = None
        self._before: CpuCounts | None = None
        self._cores: Cores | None = None
        self._cpus: set[int] = set()

    @property
    def available(self) -> bool:
        return read_text(os.path.join(self.root, "proc", "stat")) is not None

    def start(self) -> BusyMeter:
        self._cores = usable_cores(None if self.pid == os.getpid() else self.pid, self.root)
        self._cpus = _allowed_cpus(0 if self.pid == os.getpid() else self.pid)
        self._before = read_counts(self.pid, self._cpus, self._cores, self.root)
        return self

    def stop(self) -> Busy:
        if self._before is None or self._cores is None:
            raise RuntimeError("BusyMeter.stop() before start()")
        cores = self._cores
        if not self.available:
            self.busy = Busy(time.monotonic() - self._before.at, cores.usable, cores.source, 0.0, 0.0,
                             None, measured=False)
            return self.busy
        after = read_counts(self.pid, self._cpus, cores, self.root)
        self.busy = Busy.from_counts(self._before, after, cores, _loadavg(self.root))
        return self.busy

    def __enter__(self) -> BusyMeter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
