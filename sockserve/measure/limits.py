"""What the machine lets a run do: the cores it may use and the most
requests per second those cores (and the clients) allow.

A measured throughput above these limits is not a result but a sign that
something in the measurement is wrong (the work per request was not what
it claimed, the cores were counted wrong). :mod:`sockserve.measure.experiment` flags
such a run instead of showing it as a plain number.

Callers use:

:func:`usable_cores`
    a :class:`Cores`: the CPU affinity of a process (``taskset``, a cpuset)
    and the cgroup CPU quota of its control group (cgroup v2 ``cpu.max``,
    v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, as a container or a
    Binder pod sets it), whichever allows less.
:func:`cgroup_cpu_quota`, :func:`parse_cpu_max`, :func:`parse_cfs_quota`
    the pieces, with the file system root as a parameter so they can be
    tested on fixture trees.
:func:`throughput_limit`
    a :class:`Limit`: the most requests per second a server kind can serve
    with those cores, that much CPU work per request, that many clients.

Linux reads ``/proc`` and ``/sys/fs/cgroup``; elsewhere the CPU count is all
there is.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..kernel.procfs import read_text

__all__ = [
    "Cores",
    "Limit",
    "usable_cores",
    "affinity_count",
    "cgroup_cpu_quota",
    "parse_cpu_max",
    "parse_cfs_quota",
    "throughput_limit",
    "gil_enabled",
    "TOLERANCE",
    "SINGLE_PROCESS",
]

#: A throughput counts as above a limit only beyond this fraction of it:
#: the run's elapsed time is measured from the first send to the last
#: reply, and a few requests straddle either end.
TOLERANCE = 0.05

#: Concurrency models whose Python code runs in one process (one GIL).
SINGLE_PROCESS: tuple[str, ...] = ("plain", "threading", "threadpool", "asyncio")


@dataclass(frozen=True)
class Cores:
    """The cores a process may use.

    ``usable`` is the smaller of ``affinity`` (CPUs it may be scheduled on)
    and ``quota`` (cgroup CPU quota in cores, None when unlimited); it may
    be fractional (a quota of half a core is 0.5). ``source`` says which of
    the two set it; ``detail`` where the quota came from (a file path).
    """

    usable: float
    affinity: int
    quota: float | None = None
    source: str = "affinity"
    detail: str = ""

    def describe(self) -> str:
        """``"1 core"``, ``"2 cores"``, ``"0.5 core (cgroup quota)"``."""
        n = self.usable
        text = f"{n:g} core" + ("" if n <= 1 else "s")
        if self.source != "affinity":
            text += f" ({self.source})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"usable": self.usable, "affinity": self.affinity, "quota": self.quota,
                "source": self.source, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cores:
        return cls(float(data["usable"]), int(data["affinity"]),
                   None if data.get("quota") is None else float(data["quota"]),
                   str(data.get("source", "affinity")), str(data.get("detail", "")))


def affinity_count(pid: int = 0) -> int:
    """How many CPUs process *pid* (0: this one) may run on."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is not None:
        try:
            return max(1, len(getter(pid)))
        except OSError:
            pass
    return os.cpu_count() or 1


def parse_cpu_max(text: str) -> float | None:
    """Cores allowed by a cgroup v2 ``cpu.max`` (``"max 100000"``: None,
    ``"50000 100000"``: 0.5). ValueError for anything else."""
    words = text.split()
    if not words or len(words) > 2:
        raise ValueError(f"cpu.max holds '<quota|max> [<period>]', not {text!r}")
    if words[0] == "max":
        return None
    quota = int(words[0])
    period = int(words[1]) if len(words) == 2 else 100_000
    if quota <= 0 or period <= 0:
        raise ValueError(f"cpu.max quota and period must be positive, not {text!r}")
    return quota / period


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """Cores allowed by cgroup v1 ``cpu.cfs_quota_us`` and
    ``cpu.cfs_period_us`` (a quota of -1: None, unlimited)."""
    quota = int(quota_text.strip())
    period = int(period_text.strip())
    if quota < 0:
        return None
    if quota == 0 or period <= 0:
        raise ValueError(f"bad cfs quota/period: {quota_text.strip()!r}/{period_text.strip()!r}")
    return quota / period


def _mounts(root: str, pid: str) -> list[tuple[str, str, str, str]]:
    """(fstype, mount root, mount point, super options) of cgroup mounts."""
    text = read_text(os.path.join(root, "proc", pid, "mountinfo")) or ""
    found = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 1 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = tail[2] if len(tail) > 2 else ""
        found.append((tail[0], fields[3], fields[4], options))
    return found


def _levels(mount_point: str, mount_root: str, group: str) -> list[str]:
    """The directories from the process's group up to the mount point."""
    rel = group
    if mount_root not in ("/", "") and (group == mount_root or group.startswith(mount_root + "/")):
        rel = group[len(mount_root):]
    parts = [p for p in rel.split("/") if p and p != ".."]
    return [os.path.join(mount_point, *parts[:n]) for n in range(len(parts), -1, -1)]


def cgroup_cpu_quota(root: str = "/", pid: int | str = "self") -> tuple[float | None, str]:
    """The CPU quota (cores, None when unlimited) of process *pid*'s control
    group, and the file that set it.

    Follows ``/proc/<pid>/cgroup`` and ``/proc/<pid>/mountinfo`` (under
    *root*, a fixture tree in tests): cgroup v2 ``cpu.max`` and v1
    ``cpu.cfs_quota_us``/``cpu.cfs_period_us``, from the group up to the top
    of the mount, keeping the smallest (a parent's quota binds its
    children). Unreadable or malformed files count as no quota.
    """
    pid = str(pid)
    groups: dict[str, str] = {}  # "v2" or a v1 controller -> group path
    for line in (read_text(os.path.join(root, "proc", pid, "cgroup")) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            groups["v2"] = path
        for controller in controllers.split(","):
            if controller == "cpu":
                groups["cpu"] = path
    candidates: list[tuple[str, str]] = []  # (version, directory)
    for fstype, mount_root, point, options in _mounts(root, pid):
        host_point = os.path.join(root, point.lstrip("/"))
        if fstype == "cgroup2" and "v2" in groups:
            candidates += [("v2", d) for d in _levels(host_point, mount_root, groups["v2"])]
        elif fstype == "cgroup" and "cpu" in options.split(",") and "cpu" in groups:
            candidates += [("v1", d) for d in _levels(host_point, mount_root, groups["cpu"])]
    if not candidates:  # no mountinfo: the usual places
        base = os.path.join(root, "sys", "fs", "cgroup")
        candidates = [("v2", base)] + [("v1", os.path.join(base, d)) for d in ("cpu,cpuacct", "cpu")]
    best: float | None = None
    where = ""
    for version, directory in candidates:
        try:
            if version == "v2":
                text = read_text(os.path.join(directory, "cpu.max"))
                quota = parse_cpu_max(text) if text is not None else None
                path = os.path.join(directory, "cpu.max")
            else:
                q = read_text(os.path.join(directory, "cpu.cfs_quota_us"))
                p = read_text(os.path.join(directory, "cpu.cfs_period_us"))
                quota = parse_cfs_quota(q, p) if q is not None and p is not None else None
                path = os.path.join(directory, "cpu.cfs_quota_us")
        except ValueError:
            continue
        if quota is not None and (best is None or quota < best):
            best, where = quota, path
    if where and root not in ("/", ""):
        where = "/" + os.path.relpath(where, root)
    return best, where


def usable_cores(pid: int | None = None, root: str = "/") -> Cores:
    """The cores process *pid* (None: this one) may use: affinity and cgroup
    quota, whichever allows less."""
    affinity = affinity_count(pid or 0)
    quota, where = cgroup_cpu_quota(root, pid if pid else "self")
    if quota is not None and quota < affinity:
        return Cores(quota, affinity, quota, "cgroup quota", where)
    return Cores(float(affinity), affinity, quota, "affinity", where)


def gil_enabled() -> bool:
    """False only on a free-threaded Python with its GIL switched off."""
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if check is not None else True


@dataclass(frozen=True)
class Limit:
    """The most requests per second a run could possibly serve, and why.

    ``rps`` is None when no bound is known (then nothing is flagged).
    ``reason`` says which bound binds, in words a lesson can print.
    """

    rps: float | None
    reason: str

    def exceeded_by(self, throughput_rps: float, tolerance: float = TOLERANCE) -> bool:
        """True when *throughput_rps* is above the limit by more than *tolerance*."""
        return self.rps is not None and throughput_rps > self.rps * (1.0 + tolerance)


def _cores_words(n: float) -> str:
    return f"{n:g} core" + ("" if n == 1 else "s")


def throughput_limit(
    concurrency: str,
    cores: float,
    work_ms: float = 0.0,
    *,
    wait_ms: float = 0.0,
    clients: int | None = None,
    rate: float | None = None,
    gil: bool = True,
    bound: int | None = None,
    sent: int | None = None,
    rounds: int = 1,
) -> Limit:
    """The most requests per second a *concurrency* server can serve.

    *work_ms* is the CPU work per request, *wait_ms* the time a request
    waits without using CPU (the io workload's sleep), *clients* the closed
    loop's clients (each has one request in flight), *rate* the open loop's
    rate. The bounds, smallest wins:

    * cores: ``cores * 1000 / work_ms``, where a single-process server
      (plain, threading, thread pool, asyncio) has at most one core for
      Python work while the GIL is on;
    * one at a time: a plain server serves one request at a time, so at most
      ``1000 / (work_ms + wait_ms)``;
    * clients: each closed-loop client has one request in flight, which
      takes at least ``work_ms + wait_ms``: ``clients * 1000 / (work_ms + wait_ms)``;
    * the server's own bound: a server that serves at most *bound* requests
      at once (a pool's workers, see
      :func:`sockserve.measure.kinds.concurrency_bound`) serves at most
      ``bound * 1000 / (work_ms + wait_ms)``;
    * the open loop never sends more than its *rate*; its *sent* requests
      in *rounds* rounds, counted from each round's first send, span
      ``(sent - rounds) / rate`` seconds of schedule, so at most
      ``rate * sent / (sent - rounds)`` is measured.
    """
    bounds: list[tuple[float, str]] = []
    if work_ms > 0 and cores > 0:
        usable = cores
        why = f"{_cores_words(cores)} at {work_ms:g} ms of CPU per request"
        if gil and concurrency in SINGLE_PROCESS and cores > 1:
            usable = 1.0
            why = (f"one core (a {concurrency} server is one process, and the GIL lets one "
                   f"thread run Python at a time) at {work_ms:g} ms of CPU per request")
        bounds.append((usable * 1000.0 / work_ms, why))
    each = work_ms + wait_ms
    if each > 0:
        if concurrency == "plain":
            bounds.append((1000.0 / each, f"one request at a time, each at least {each:g} ms"))
        if clients:
            bounds.append((clients * 1000.0 / each,
                           f"{clients} clients, one request each in flight, each at least {each:g} ms"))
        if bound:
            bounds.append((bound * 1000.0 / each,
                           f"at most {bound} requests at once (the {concurrency} server's bound), "
                           f"each at least {each:g} ms"))
    if rate is not None and rate > 0:
        why = f"the open loop's rate of {rate:g} requests per second"
        most = float(rate)
        if sent is not None and sent > rounds:
            most = rate * sent / (sent - rounds)
            why += f" ({sent} requests from each round's first send: at most {most:.1f})"
        bounds.append((most, why))
    if not bounds:
        return Limit(None, "no bound known")
    rps, reason = min(bounds)
    return Limit(rps if math.isfinite(rps) else None, reason)
