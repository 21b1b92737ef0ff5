"""What the CPUs did: the busy time of each CPU since boot, from ``/proc/stat``.

The difference of two readings over the CPUs a process may run on is the CPU
time every program together used there meanwhile; less what the programs one
measures used, it is what the others took (see
:mod:`sockserve.measure.usage`). :func:`parse_proc_stat` reads the text and
takes no I/O, so it is tested on fixture text; :func:`busy_seconds` reads the
file under *root* (a fixture tree in tests).

Linux only; elsewhere :func:`busy_seconds` returns None.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["parse_proc_stat", "busy_seconds"]

#: Ticks per second in /proc (USER_HZ).
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_proc_stat(text: str) -> dict[int, float]:
    """CPU number -> seconds that CPU was busy since boot, from ``/proc/stat``.

    Busy is every column but ``idle`` and ``iowait``: user, nice, system,
    irq, softirq and steal (what the host gave to others); guest time is
    already inside user. The summary line ``cpu`` and malformed lines are
    skipped."""
    busy: dict[int, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        try:
            values = [int(v) for v in rest.split()]
        except ValueError:
            continue
        values += [0] * (8 - len(values))
        user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
        busy[int(name[3:])] = (user + nice + system + irq + softirq + steal) / _HZ
    return busy


def busy_seconds(cpus: Iterable[int] | None = None, root: str = "/") -> float | None:
    """Seconds the CPUs *cpus* (None: every CPU) were busy since boot,
    added up; None without a readable ``/proc/stat``."""
    try:
        with open(os.path.join(root, "proc", "stat"), encoding="ascii", errors="replace") as src:
            text = src.read()
    except OSError:
        return None
    busy = parse_proc_stat(text)
    wanted = set(busy) if cpus is None else set(cpus)
    return sum(seconds for cpu, seconds in busy.items() if cpu in wanted)
