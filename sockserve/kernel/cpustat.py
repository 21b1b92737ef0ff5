"""What the CPUs did: the busy time of each CPU since boot, from ``/proc/stat``,
and the CPU time a process tree used, from ``/proc/<pid>/stat``.

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

from .procfs import read_text

__all__ = ["parse_proc_stat", "busy_seconds", "tree_cpu_seconds"]

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
    text = read_text(os.path.join(root, "proc", "stat"))
    if text is None:
        return None
    busy = parse_proc_stat(text)
    wanted = set(busy) if cpus is None else set(cpus)
    return sum(seconds for cpu, seconds in busy.items() if cpu in wanted)


def _stat_fields(text: str) -> tuple[int, list[str]]:
    """(ppid, fields after the command name) of a ``/proc/<pid>/stat`` line
    (the name is in parentheses and may hold spaces and parentheses)."""
    rest = text[text.rindex(")") + 2:].split()
    return int(rest[1]), rest


def tree_cpu_seconds(pid: int, root: str = "/") -> float:
    """CPU seconds used so far by process *pid* and every process below it.

    For each live process of the tree: its user and system time plus the
    time of the children it has waited for (``cutime``, ``cstime``); a
    child that was reaped is in its parent's figures, a live one in its own,
    so nothing counts twice. A descendant nobody reaped whose parent died
    (re-parented to init) is lost: it counts as another program."""
    proc = os.path.join(root, "proc")
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return 0.0
    for name in names:
        if not name.isdigit():
            continue
        text = read_text(os.path.join(proc, name, "stat"))
        if not text or ")" not in text:
            continue
        try:
            ppid, rest = _stat_fields(text)
            utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
        except (ValueError, IndexError):
            continue
        parents[int(name)] = ppid
        seconds[int(name)] = (utime + stime + cutime + cstime) / _HZ
    total = 0.0
    for member in seconds:
        node, seen = member, 0
        while node and node != pid and seen < 256:
            node, seen = parents.get(node, 0), seen + 1
        if node == pid:
            total += seconds[member]
    return total
