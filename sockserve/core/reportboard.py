"""Where forked children leave their reports: a page of shared memory.

``ForkingMixIn`` forks a child per request, and the parent's ``stats`` must
count what happened in it (its outcome, when its handler began and ended).
A pipe would do, but costs a ``getpid()`` and a ``write()`` in every child
and a ``poll()`` and a ``read()`` in the parent: system calls, each of which
also releases and retakes the GIL. Shared memory costs none of them.

The board is one anonymous shared mapping (``mmap.mmap(-1, n)``: shared
between a parent and the children it forks afterwards), laid out as::

    flags[0 .. slots-1]   one byte per slot: 1 once its child has reported
    want                  1 while the parent waits for a child to end
    outcomes[slots]       each slot's request outcome (an ``Outcome`` value)
    times[2 * slots]      (handler start, handler end) per slot, as doubles

The parent gives each child a free slot before it forks. The child writes
its two times and its outcome, sets its flag, and exits with its request's
outcome as exit status too (so that whoever reaps it, this server or code
that calls ``os.waitpid(-1)`` behind its back, the outcome is known: see
:meth:`ReportBoard.outcome`); if ``want`` is set it first writes one
byte to the wake-up pipe (so a parent that waits for a free child wakes at
once). The parent finds reported slots with one ``find()`` over the flags
(a C ``memchr``, no system call), reaps those children, and reads a slot's
times only after its child was reaped: the child is gone by then, so the
times are complete on any CPU. A child that dies without reporting (a
crash, a signal, ``os._exit`` in a handler) leaves its flag clear; its
end wakes the parent through a pidfd (or, where there are none, the parent
polls every child), which learns why from its exit status (see
:mod:`sockserve.core.children`).

The times are ``time.monotonic()``: one clock for every process.
"""

from __future__ import annotations

import mmap
import os

__all__ = ["ReportBoard"]


class ReportBoard:
    """Shared memory with one report slot per running child, and the pipe
    that wakes a waiting parent. Made by the parent before its first fork.

    ``map`` is the mapping: the flags at ``0..slots-1``, the ``want``
    byte at index ``want``, slot *i*'s outcome at ``want + 1 + i``; ``times`` is a view of the times (slot *i*'s
    start at ``2 * i``, end at ``2 * i + 1``); ``free`` lists the slots no
    child owns, ``owners`` each slot's child PID (0: none); ``wake`` is the
    pipe's (read end, write end).
    """

    __slots__ = ("slots", "want", "map", "times", "free", "owners", "wake")

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.want = slots
        start = (2 * slots + 8) // 8 * 8  # the doubles, 8-byte aligned after the bytes
        self.map = mmap.mmap(-1, start + 16 * slots)
        self.times = memoryview(self.map)[start:].cast("d")
        self.free = list(range(slots - 1, -1, -1))
        self.owners = [0] * slots
        reader, writer = os.pipe()
        os.set_blocking(reader, False)
        os.set_blocking(writer, False)  # a full pipe means a wake-up is pending
        self.wake = (reader, writer)

    def outcome(self, slot: int) -> int:
        """The outcome slot *slot*'s child reported (read once it has)."""
        return self.map[self.want + 1 + slot]

    def release(self, slot: int) -> None:
        """Free *slot* (its child was reaped) without reading it."""
        self.map[slot] = 0
        self.owners[slot] = 0
        self.free.append(slot)

    def waiting(self, on: bool) -> None:
        """Say whether the parent waits for a child to end (children then
        write to the wake-up pipe when they report)."""
        self.map[self.want] = 1 if on else 0

    def drain_wake(self) -> None:
        """Empty the wake-up pipe."""
        try:
            while os.read(self.wake[0], 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        """Unmap the board and close the pipe. Children still running keep
        their own copies of both: what they report then reaches nobody, and
        whoever reaps them later counts them by their exit status."""
        for fd in self.wake:
            os.close(fd)
        self.times.release()
        self.map.close()
