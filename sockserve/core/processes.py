"""What the process models share: a forked child's start, its end as the
parent sees it, and the requests that wait for a free one.

``ForkingMixIn`` forks a child per request and ``PreForkMixIn`` a few
long-lived workers. Both need the same things:

* in the child, fresh ``sys.stdout``/``sys.stderr`` objects on the same
  descriptors (:func:`own_std_streams`), whatever those descriptors are (a
  terminal, a file, a pipe, the systemd journal's socket): what a child
  prints goes where the parent's output goes;
* in the parent, a sentence for how a child ended (:func:`describe_status`)
  and the outcome to count for a request whose child died before it could
  report (:func:`outcome_of_status`): killed by ``SIGALRM`` is a timeout
  (``request_timeout`` or ``child_timeout``), any other death an error;
* in the child or worker, one way to run a request's handler under its
  deadline and learn its outcome (:func:`run_handler`);
* in the parent, a place for the requests accepted while every child or
  worker is busy (:class:`Parked`), and a way to end processes that a drain
  cut off: SIGTERM, then SIGKILL after a grace period (:func:`end_processes`).
"""

from __future__ import annotations

import collections
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Collection

from .deadlines import arm_alarm, disarm_alarm
from .logs import report_escape
from .stats import Outcome, outcome_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "run_handler",
    "wait_readable",
    "own_std_streams",
    "prime_lookups",
    "OPENED",
    "flush_std_streams",
    "describe_status",
    "outcome_of_status",
    "REAPED_ELSEWHERE",
    "Parked",
    "MAX_WAITING",
    "end_processes",
]


class _ForkedStdStream:
    """What a forked child gets as ``sys.stdout``/``sys.stderr``.

    The inherited stream objects may hold a lock that another thread of the
    parent owned at the moment of fork() (a buffered file's lock, Jupyter's
    OutStream buffer lock): the child would wait for it forever. This
    stand-in opens a fresh file on the same descriptor (1 or 2) the first
    time the child writes, so output still goes where the parent's
    descriptors point, and a child that prints nothing pays nothing for it.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._stream: Any = None

    def _open(self) -> Any:
        if self._stream is None:
            try:
                self._stream = open(
                    self._fd, "w", buffering=1, errors="backslashreplace", closefd=False
                )
            except OSError:
                self._stream = open(os.devnull, "w")
            OPENED.append(self)
        return self._stream

    def write(self, text: str) -> int:
        return int(self._open().write(text))

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)


# Made once, in the parent, where they are never used: a child only points
# sys.stdout/sys.stderr at them (its copies start unopened).
_CHILD_STDOUT = _ForkedStdStream(1)
_CHILD_STDERR = _ForkedStdStream(2)


def own_std_streams() -> None:
    """Give a newly forked child its own ``sys.stdout``/``sys.stderr``
    (see :class:`_ForkedStdStream`)."""
    sys.stdout = _CHILD_STDOUT
    sys.stderr = _CHILD_STDERR


def prime_lookups(*classes: type, instance_names: tuple[str, ...] = ()) -> None:
    """Look up, once, in this (parent) process, every attribute name of
    *classes* (and *instance_names*, which their instances set), on each of
    them.

    CPython keeps a cache of attribute lookups on classes (which class of
    the MRO defines a name, or that none does), and a forked child starts
    with a copy of its parent's. A name the parent never looked up is a miss
    in every child, which then walks the class's MRO for it: a forking
    server's children look up many names the parent never does (the
    handler's hooks and streams, ``finish_request``, ``shutdown_request``),
    and those misses cost each child more than everything ForkingMixIn adds
    to the standard library's child. Priming them once before the first
    fork saves that in every child. (Elsewhere this is a few harmless
    lookups.)"""
    for cls in classes:
        for name in (*dir(cls), *instance_names):
            try:
                getattr(cls, name, None)
            except Exception:
                pass  # a class property that raises, say: nothing to prime


#: The child's stand-ins that were opened (written to): flushed at exit.
OPENED: list[_ForkedStdStream] = []


def flush_std_streams() -> None:
    """Flush what the child printed through its stand-in streams; never
    raises (it is about to exit). Called only when :data:`OPENED` is not
    empty. (Like the standard library, a child does not flush streams a
    handler put in their place.)"""
    for stream in OPENED:
        try:
            stream.flush()
        except BaseException:
            pass


def run_handler(server: Any, request: Any, client_address: Any, soft: float | None, hard: float | None) -> int:
    """Run one request's handler in a forked child or a prefork worker,
    under its deadline; return its outcome (an ``Outcome`` value). Never
    raises.

    ``server.finish_request()`` runs with the alarm armed (see
    :func:`~sockserve.core.deadlines.arm_alarm`): after *soft* seconds (what
    is left of ``request_timeout``) ``RequestTimeout`` is raised in the
    handler, after *hard* (``child_timeout``) the process ends; None: no
    such limit. An exception goes to ``handle_error()``, as in the standard
    library's mixins (``SystemExit`` and ``KeyboardInterrupt`` are said in
    one line instead, and count as errors). The alarm is cancelled as soon
    as the handler returns, so that what the caller does next
    (``shutdown_request()``, the report) never turns a request whose
    handler ended in time into a timeout; should it fire in between (in
    ``handle_error()``, say), the outcome known by then stands.

    Kept short: in a forked child this code is always "cold" (never
    specialized by the interpreter), where every call or lookup costs
    about three times what it would in the parent."""
    outcome = 1  # Outcome.ERROR until the handler says otherwise (plain ints: see Outcome)
    try:
        try:
            if soft is not None or hard is not None:
                outcome = 3  # Outcome.TIMEOUT, should the alarm fire before the handler starts
                arm_alarm(soft, hard, float(server.abort_grace))
            try:
                server.finish_request(request, client_address)
                outcome = 0
            except Exception as exc:
                outcome = outcome_of(exc)
                server.handle_error(request, client_address)
            except BaseException as exc:
                outcome = 1
                report_escape(server, client_address, exc)
        finally:
            if soft is not None or hard is not None:
                disarm_alarm()
    except BaseException:
        pass  # the alarm fired after the handler ended, or handle_error raised
    return outcome


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


#: The status of a child that someone else reaped (a SIGCHLD handler, an
#: ``os.wait()`` thread): unknown to this server.
REAPED_ELSEWHERE = -1


def describe_status(status: int) -> str:
    """``os.waitpid``'s status as words: "exited with status 3",
    "was killed by SIGSEGV"."""
    if status == REAPED_ELSEWHERE:
        return "ended and was reaped by other code (os.wait or a SIGCHLD handler), its status unknown,"
    if os.WIFSIGNALED(status):
        return f"was killed by {_signal_name(os.WTERMSIG(status))}"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    return f"ended with wait status {status}"


def outcome_of_status(status: int) -> int:
    """The outcome of a request whose child ended (by *status*) without
    reporting: a timeout if SIGALRM ended it, an error otherwise."""
    if status != REAPED_ELSEWHERE and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
        return Outcome.TIMEOUT
    return Outcome.ERROR


#: The default ``max_waiting`` of the forking, prefork and thread-pool
#: servers: with ``request_timeout`` set, at most this many accepted
#: requests wait for a free child, worker or thread (each holds a
#: descriptor; the usual limit is 1,024 per process).
MAX_WAITING = 512

#: A parked request: (request, client_address, accept time).
ParkedEntry = tuple["Any", "Any", float]  # quoted: typing is imported for the checker only


class Parked(collections.deque[ParkedEntry]):
    """The requests a process server accepted while every child or worker
    was busy, oldest first, until one is free: a deque of ``(request,
    client_address, accept time)`` (its length and truth are the deque's,
    read on every loop iteration).

    Each is in the server's ledger from the moment it is parked, under its
    one key (``id(request)``), and waits until it is served or its own
    deadline passes. At most ``bound`` wait: beyond that the oldest is
    closed unserved and counted in ``stats.overflows`` (refused, not a
    timeout: it never ran out of time); one cut off meanwhile (a drain) or
    older than the server's ``request_timeout`` is closed and counted when
    it comes up (:meth:`next`). :meth:`drop` is the one way a parked request
    ends without running.
    """

    def __init__(self, server: Any, bound: int) -> None:
        super().__init__()
        self.server = server
        self.bound = bound

    def park(self, request: Any, client_address: Any, accepted: float) -> None:
        """Hold a request (already in the ledger) until a worker is free."""
        self.append((request, client_address, accepted))
        if len(self) > self.bound:
            self.refuse(self.popleft())

    def next(self) -> ParkedEntry | None:
        """The oldest parked request still to serve (left in place: take it
        off with ``popleft()`` once served); the ones cut off or past their
        deadline are dropped on the way. None when none is left."""
        server = self.server
        limit = server.request_timeout
        while self:
            entry = self[0]
            if id(entry[0]) not in server._ledger:
                self.drop(self.popleft(), Outcome.ABORTED)  # cut off: counted as it was
            elif limit is not None and time.monotonic() - entry[2] > limit:
                self.drop(self.popleft(), Outcome.TIMEOUT)
            else:
                return entry
        return None

    def drop(self, entry: ParkedEntry, outcome: int) -> None:
        """Close a parked request unhandled, counted under *outcome* (or the
        outcome it was cut off with)."""
        request, _address, accepted = entry
        self.server._ledger.drop(id(request), outcome, accepted)
        self.server.shutdown_request(request)

    def refuse(self, entry: ParkedEntry) -> None:
        """Close a parked request unserved because too many wait: counted
        in ``stats.overflows``, not as a request."""
        server = self.server
        server._ledger.forget(id(entry[0]))
        server.stats.note_overflow()
        server.shutdown_request(entry[0])

    def drop_all(self) -> None:
        """Close every parked request, counted as aborted (nobody is left to
        serve them)."""
        while self:
            self.drop(self.popleft(), Outcome.ABORTED)


def end_processes(
    pids: Collection[int], alive: Callable[[], Collection[int]], wait: Callable[[float], None],
    grace: float,
) -> None:
    """End the processes *pids* (those still in *alive()*): SIGTERM, then
    SIGKILL to those that are still alive *grace* seconds later (waiting up
    to 5 s more for those). *wait(seconds)* waits a little and reaps."""
    for sig, seconds in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        left = [pid for pid in pids if pid in alive()]
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + seconds
        while left and time.monotonic() < deadline:
            wait(0.02)
            left = [pid for pid in left if pid in alive()]


def wait_readable(fds: list[int], seconds: float) -> list[int]:
    """Those of *fds* that turn readable within *seconds* (poll, which takes
    any descriptor number: select() refuses those of 1024 and above, which a
    server with many clients hands out; select where poll is gone)."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            return [fd for fd, _events in poller.poll(seconds * 1000.0)]
        readable, _, _ = select.select(fds, [], [], seconds)
        return list(readable)
    except InterruptedError:
        return []
