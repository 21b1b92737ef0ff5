"""A forking server's children: who runs which request, and how each ended.

``ForkingMixIn`` keeps one :class:`Children` per server, made before its
first fork. It forks a child per request (:meth:`Children.fork`; while
``max_children`` run, with ``request_timeout`` set, the request is parked
instead, and forked for when a child ends), remembers which request each
child runs, and, when a child ends, records that request's end in the
server's ledger: from the child's report on the board
(:mod:`sockserve.core.reportboard`: its handler times in shared memory, its
outcome as exit status), or, for a child that died before it reported,
from how it ended (logged with its cause, at most one line a second: the
deaths between two lines are counted all the same, and their number said
with the next line or when the server closes). :func:`run_child` is a child's
whole life.

Only this server's own children are ever waited for.

**Noticing a child that dies without reporting.** Where ``os.pidfd_open``
works (Linux 5.3+), the end of every child that has not reported wakes the
parent: :meth:`Children.watch_exits` opens a pidfd for it, watched by the
serve loop's poller (an idle loop wakes at once, whatever its
``poll_interval``) and by :meth:`Children.wait` (a loop at ``max_children``
frees the slot at once). They are opened only when an iteration of the
loop found no report (a child that reports is reaped through the board,
for no system call at all), and closed as their child is reaped.
Elsewhere every child is polled every ``_SCAN_EVERY`` iterations, on every
iteration that found no report, and every ``_WAIT_STEP`` seconds at
``max_children``.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import socket
import sys
import time

from . import logs
from .errors import format_address
from .handlers import SocketReader, SocketWriter
from .processes import (
    _CHILD_STDERR,
    _CHILD_STDOUT,
    OPENED,
    REAPED_ELSEWHERE,
    Parked,
    describe_status,
    flush_std_streams,
    outcome_of_status,
    prime_lookups,
    run_handler,
    wait_readable,
)
from .reportboard import ReportBoard
from .stats import Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Children", "run_child"]

_monotonic = time.monotonic
_pidfd_open = getattr(os, "pidfd_open", None)
#: Loop iterations between polls of every child (for those that die
#: without reporting).
_SCAN_EVERY = 16
#: At most one line per this many seconds about children that died before
#: they reported (each is counted; see logs.Throttled).
_DEATH_LINES_EVERY = 1.0
#: What servers and request handlers set on themselves (primed for
#: children: see Children.__init__).
#: A child is forked only with this many allocations left before the
#: interpreter's next young-generation collection (see collect_garbage_if_due).
_GC_HEADROOM = 100
_gc_count = gc.get_count
#: A child forked without a board slot (``max_children`` raised past the
#: board) exits with this plus its outcome, so that an exit status a handler
#: chose (``os._exit(3)``) is never taken for an outcome: see Children._died.
UNSLOTTED_EXIT = 80
_INSTANCE_ATTRIBUTES = (
    "server_address", "RequestHandlerClass", "socket",
    "request", "client_address", "server", "connection", "rfile", "wfile", "packet",
)


class Children:
    """The children of one forking server and the requests they run.

    ``ForkingMixIn.collect_children`` reaps the children that reported
    (their board flags) and calls :meth:`reaped`, and :meth:`reap_all`
    every ``scan_countdown`` iterations.

    ``alive`` is the set of live child PIDs (the server's
    ``active_children``); ``running`` maps each child whose request has not
    ended yet to ``(key, request, client_address, accept time or None,
    board slot)`` (the request object kept, so its key stays unique);
    ``board`` is where children report (one slot each, -1 for a child
    forked when none was free: its exit status alone says how it went);
    ``parked`` holds the requests waiting for a child to end.

    Thread safety: the serving thread only (or a drain once the loop
    stopped).
    """

    def __init__(self, server: Any, alive: set[int], slots: int) -> None:
        self.server = server
        self.alive = alive
        self.running: dict[int, tuple[int, Any, Any, float | None, int]] = {}
        self.board = ReportBoard(slots)
        self.parked = Parked(server, server.max_waiting)
        self.scan_countdown = _SCAN_EVERY
        self.exits: dict[int, int] = {}  # pid -> a pidfd, for running children (see watch_exits)
        self.exit_pids: dict[int, int] = {}  # pidfd -> pid, for those wait() polls
        self._exits_loop: Any = None  # the loop whose poller watches them
        # wait()'s own poller: the pidfds in exit_pids (and, while it
        # waits, the wake-up descriptor it was given).
        self._poller = select.poll()
        self.deaths = logs.Throttled("children that died before they finished", _DEATH_LINES_EVERY)
        self.gc_due = gc.get_threshold()[0] - _GC_HEADROOM
        # What every child will look up, looked up here once (see prime_lookups).
        # (Names only: vars(server) would give the server a real __dict__,
        # and the interpreter reads such an instance's attributes slower.)
        # (SocketReader and SocketWriter: a stream handler's rfile's raw layer
        # and its wfile, unless wbufsize is set.)
        prime_lookups(
            type(server), getattr(server, "RequestHandlerClass", object), socket.socket,
            socket.SocketIO, SocketReader, SocketWriter, ReportBoard, instance_names=_INSTANCE_ATTRIBUTES,
        )
        # (A module's attribute is looked up on its type first: what a child
        # sets or calls on sys and os, see run_child.)
        prime_lookups(type(sys), instance_names=("stdout", "stderr", "_exit", "write"))
        self.collect_garbage_if_due()

    def collect_garbage_if_due(self) -> None:
        """Collect the young generation now if fewer than ``_GC_HEADROOM``
        allocations are left before the interpreter would.

        A child inherits its parent's allocation count: one forked near the
        threshold collects at its first allocations (costing more than its
        whole request, for nothing: it is about to exit), and so does every
        child after it until the parent collects. Looked at before the first
        fork and at every poll of all children (every ``_SCAN_EVERY`` loop
        iterations), the parent collects first, as it was about to."""
        if _gc_count()[0] > self.gc_due > 0 and gc.isenabled():
            gc.collect(0)

    # -- forking ---------------------------------------------------------------

    def park(self, request: Any, client_address: Any) -> None:
        """Hold *request* (in the ledger already) until a child ends; its
        accept time stays in the ledger, for the deadline watchdog."""
        server = self.server
        parked = self.parked
        parked.bound = server.max_waiting
        parked.park(request, client_address, server._ledger.accepted.setdefault(id(request), _monotonic()))
        loop = server._loop
        if loop is not None:  # wake when a child ends
            self.board.waiting(True)
            loop.watch(self.board.wake[0], self.on_wake)

    def start_parked(self) -> None:
        """Fork for parked requests while fewer than ``max_children`` run
        (closing those cut off or past their deadline)."""
        parked = self.parked
        server = self.server
        while len(self.alive) < server.max_children:
            entry = parked.next()
            if entry is None:
                break
            parked.popleft()
            request, client_address, accepted = entry
            key = id(request)
            server._ledger.accepted.pop(key, None)  # the child keeps its deadline
            try:
                self.fork(key, request, client_address, accepted, parked=True)
            except Exception:
                # No child (fork failed: EAGAIN, ENOMEM): said, counted as an
                # error, closed; the loop serves on.
                server.handle_error(request, client_address)
                parked.drop(entry, Outcome.ERROR)
        if not parked:
            self.board.waiting(False)
            if server._loop is not None:
                server._loop.unwatch(self.board.wake[0])

    def on_wake(self) -> None:
        """A child ended while requests are parked (the board's wake-up pipe)."""
        self.board.drain_wake()
        self.reap_all()
        self.start_parked()

    def fork(
        self, key: int, request: Any, client_address: Any, accepted: float | None, parked: bool = False,
    ) -> None:
        """Fork a child for *request* (in the ledger under *key*). In the
        parent, close the parent's copy of the request and return; the child
        runs :func:`run_child` and never returns. If fork() fails, the
        request is counted as an error (its caller closes it), unless it was
        *parked* (then its caller drops it from there), and the error raised."""
        board = self.board
        free = board.free
        slot = free.pop() if free else -1
        server = self.server
        try:
            pid = os.fork()
        except BaseException:
            if slot >= 0:
                free.append(slot)
            if not parked:
                server._ledger.drop(key, Outcome.ERROR)  # no child: it ends here, unserved
            raise
        if pid:
            alive = self.alive
            alive.add(pid)
            running = self.running
            running[pid] = (key, request, client_address, accepted, slot)
            if slot >= 0:
                board.owners[slot] = pid
            server._ledger.start_child(len(alive), len(running))
            server.close_request(request)
            return
        run_child(server, request, client_address, accepted, board, slot)

    # -- reaping -----------------------------------------------------------------

    def watch_exits(self) -> bool:
        """Make the end of every running child wake the parent (see the
        module docstring): a pidfd each, watched by the serve loop if one
        runs. False where pidfds are missing (the children must be polled)."""
        global _pidfd_open
        if _pidfd_open is None:
            return False
        exits = self.exits
        loop = self.server._loop
        if loop is not self._exits_loop:  # a new loop: it watches them all
            self._exits_loop = loop
            if loop is not None:
                for fd in exits.values():
                    loop.watch(fd, self.on_exit)
        if len(exits) < len(self.running):
            for pid in self.running:
                if pid not in exits:
                    try:
                        fd = exits[pid] = _pidfd_open(pid)
                    except OSError as exc:  # ESRCH (reaped elsewhere), EMFILE...
                        if exc.errno in (errno.ENOSYS, errno.EPERM):  # an older kernel, a sandbox
                            _pidfd_open = None
                        return False
                    if loop is not None:
                        loop.watch(fd, self.on_exit)
        return True

    def on_exit(self) -> None:
        """A watched child ended (its pidfd turned readable): reap."""
        self.reap_all()
        if self.parked:
            self.start_parked()

    def _unwatch_exit(self, pid: int) -> None:
        fd = self.exits.pop(pid, None)
        if fd is not None:
            if self.exit_pids.pop(fd, None) is not None:
                self._poller.unregister(fd)
            if self._exits_loop is not None:
                self._exits_loop.unwatch(fd)
            os.close(fd)

    def reap_all(self, blocking: bool = False) -> None:
        """Poll every live child (wait for each with *blocking*) and reap
        the ones that ended."""
        self.scan_countdown = _SCAN_EVERY
        self.collect_garbage_if_due()
        flags = 0 if blocking else os.WNOHANG
        for pid in list(self.alive):
            try:
                done, status = os.waitpid(pid, flags)
            except ChildProcessError:
                done, status = pid, REAPED_ELSEWHERE  # by other code: its status is lost
            except InterruptedError:
                continue
            if done:
                self.reaped(pid, status)

    def reaped(self, pid: int, status: int) -> None:
        """Child *pid* ended with *status*: record its request's end, from
        its report (its times on the board, its outcome as exit status), or
        from how it ended if it never reported."""
        alive = self.alive
        alive.discard(pid)
        if self.exits:
            self._unwatch_exit(pid)
        server = self.server
        server.stats.children = len(alive)  # fewer: no peak to update
        entry = self.running.pop(pid, None)
        if entry is None:
            return
        slot = entry[4]
        board = self.board
        if slot < 0 or not board.map[slot]:
            self._died(pid, status, entry)
            return
        times = board.times
        began = times[slot + slot]
        ended = times[slot + slot + 1]
        board.map[slot] = 0  # board.release(), inlined (this runs per request)
        board.free.append(slot)
        # It reported, so it exited with its outcome as status, unless
        # someone else reaped it or a signal ended it after it reported (a
        # drain's, an alarm's: its handler had ended by then, and how the
        # process ended is not how its request did). Then the board says.
        if not status & 0x7F:
            outcome = status >> 8
        else:
            outcome = board.map[board.want + 1 + slot]
        server._ledger.end(entry[0], outcome, began, ended, entry[3], pid)

    def _died(self, pid: int, status: int, entry: tuple[int, Any, Any, float | None, int]) -> None:
        """Child *pid* ended without a report: say why, and record its
        request's end under the outcome its end implies."""
        key, _request, client_address, accepted, slot = entry
        server = self.server
        if slot >= 0:
            self.board.release(slot)
        code = os.WEXITSTATUS(status) - UNSLOTTED_EXIT if status >= 0 and os.WIFEXITED(status) else -1
        if slot < 0 and 0 <= code < len(Outcome):
            # No slot (max_children grew past the board): it reported its
            # outcome in its exit status, shifted (see run_child).
            outcome = code
        else:
            outcome = outcome_of_status(status)
            # Said with its cause, unless a drain's abort (not news); at
            # most one line a second (see logs.Throttled).
            if key in server._ledger and self.deaths.due():
                self.deaths.warning(
                    "%s: the child %d handling the request from %s %s before it finished%s",
                    type(server).__name__, pid, format_address(client_address), describe_status(status),
                    " (its time was up: request_timeout or child_timeout)"
                    if outcome == Outcome.TIMEOUT else "",
                )
        ended = _monotonic()
        began = ended if accepted is None else accepted
        server._ledger.end(key, outcome, began, ended, accepted, pid)

    def wait(self, seconds: float, wakeup: int | None = None) -> bool:
        """Wait up to *seconds* for a child to end or for the descriptor
        *wakeup* to turn readable; reap. True when *wakeup* turned readable.

        Where every live child has a pidfd (see :meth:`watch_exits`), this
        is one ``poll()`` on them and *wakeup* (with a poller kept from call
        to call) and a ``waitpid()`` for each child that ended: a child's
        end, reported or not, is noticed at once, for about what the
        standard library's blocking ``waitpid(-1)`` costs, and *wakeup*
        (``shutdown()``) still ends the wait, which the standard library's
        does not. Elsewhere a child that reports while the board's ``want``
        byte is set wakes it, and every child is polled after it."""
        if self.watch_exits() and len(self.exits) >= len(self.alive):
            poller = self._poller
            exit_pids = self.exit_pids
            if len(exit_pids) < len(self.exits):  # registered here only: most children are never waited for
                for child, fd in self.exits.items():
                    if fd not in exit_pids:
                        exit_pids[fd] = child
                        poller.register(fd, select.POLLIN)
            if wakeup is not None:
                poller.register(wakeup, select.POLLIN)
            try:
                ready = poller.poll(max(seconds, 0.0) * 1000.0)
            except InterruptedError:
                ready = []
            finally:
                if wakeup is not None:
                    poller.unregister(wakeup)
            woken = False
            for fd, _events in ready:
                pid = exit_pids.get(fd)
                if pid is None:
                    woken = True  # (the only other descriptor polled)
                    continue
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = pid, REAPED_ELSEWHERE  # by other code
                except InterruptedError:
                    continue
                if done:
                    self.reaped(pid, status)
            return woken
        board = self.board
        board.waiting(True)
        watch = [board.wake[0]] if wakeup is None else [board.wake[0], wakeup]
        watch.extend(self.exits.values())  # those children's ends, reported or not
        if board.map.find(b"\x01", 0, board.slots) >= 0:
            # A child reported (perhaps before ``want`` was set): it is
            # exiting, and sends no further wake-up.
            seconds = min(seconds, 0.001)
        readable = wait_readable(watch, max(seconds, 0.0))
        board.waiting(bool(self.parked))  # parked requests keep asking for wake-ups
        board.drain_wake()
        self.reap_all(False)
        return wakeup is not None and wakeup in readable

    def cut_off(self) -> list[int]:
        """The children whose request a drain or a deadline cut off."""
        ledger = self.server._ledger
        return [pid for pid, entry in self.running.items() if entry[0] not in ledger]

    def close(self) -> None:
        for pid in list(self.exits):
            self._unwatch_exit(pid)
        self.board.close()
        self.deaths.flush()


def run_child(
    server: Any, request: Any, client_address: Any, accepted: float | None, board: ReportBoard, slot: int,
) -> None:
    """A child's whole life: handle, report, ``os._exit``. Never returns.

    It exits with its request's outcome (0: handled; 1: an error, as in
    the standard library; other ``Outcome`` values: a timeout, a
    disconnect) after leaving its times and outcome on the board; a child
    without a slot exits with ``UNSLOTTED_EXIT`` plus its outcome. The
    handler runs under its deadline by :func:`~.processes.run_handler`,
    as in a prefork worker, whose alarm is cancelled as soon as the handler
    returns: what follows (``shutdown_request``, the report) never turns a
    request whose handler ended in time into a timeout or an unreported
    death.

    Kept short on purpose: this code runs only in children, where it is
    always "cold" (never specialized by the interpreter), so every extra
    call or lookup costs about three times what it would in the parent."""
    outcome = 1
    sys.stdout = _CHILD_STDOUT  # see processes.own_std_streams
    sys.stderr = _CHILD_STDERR
    timed = server.stats.enabled
    began = ended = _monotonic() if timed else 0.0  # (times: for stats only)
    try:
        soft = server.request_timeout
        if soft is not None and accepted is not None:
            soft += accepted - (began if timed else _monotonic())  # what is left of it
        outcome = run_handler(server, request, client_address, soft, server.child_timeout)
        if timed:
            ended = _monotonic()
    finally:
        try:
            server.shutdown_request(request)
            if slot >= 0:
                if timed:
                    times = board.times
                    times[slot + slot] = began
                    times[slot + slot + 1] = ended
                flags = board.map
                flags[board.want + 1 + slot] = outcome
                flags[slot] = 1  # after the times and outcome: see reportboard
                if flags[board.want]:
                    os.write(board.wake[1], b"\0")
            else:
                outcome += UNSLOTTED_EXIT
        except BaseException:
            pass  # nothing may keep the child alive
        if OPENED:
            flush_std_streams()
        os._exit(outcome)

