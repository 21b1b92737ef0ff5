"""The load generator's worker process: clients, pacing, sampling, recording.

Started by :class:`sockserve.load.LoadRun` as ``python -m
sockserve.load.worker``. Protocol: the first line on stdin is a
``LoadSpec.to_dict()`` in JSON; the worker answers on stdout with JSON lines,
``{"type": "progress", "progress": {...}}`` about ten times a second and one
``{"type": "result", "result": {...}}`` (a ``LoadResult.to_dict()``) at the
end, then exits. A line ``cancel`` on stdin, or stdin closing, stops the run
early; requests in flight get ``STOP_GRACE`` seconds more, then are
abandoned.

Inside, each client is a thread running :func:`client_loop`: it claims the
next request number from a shared :class:`Plan` (which enforces
``max_requests``, the deadline and, in the open loop, the schedule), makes
the exchange with a :class:`StreamClient` or :class:`DatagramClient`, and
hands the outcome to the shared :class:`Recorder`. A :class:`Sampler` thread
reads the server's thread and child counts from ``/proc``.

:func:`run` does a whole run in the calling process and is what the tests
of this module's pieces use; everyone else goes through :mod:`sockserve.load`.
"""

from __future__ import annotations

import functools
import glob
import json
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..core.histogram import Histogram
from ..kernel.cpustat import busy_seconds
from .clients import Client, DatagramClient, StreamClient, classify
from .data import OUTCOMES, TIMELINE_POINTS, LoadResult, LoadSpec, Progress
from .protocol import request_line, trickle_seconds, workload_values

__all__ = ["run", "main", "entry", "Recorder", "Plan", "Sampler", "client_loop", "server_cpu_seconds"]

PROGRESS_INTERVAL = 0.1  # ten progress lines a second: live plots at 5+ updates a second
SAMPLE_INTERVAL = 0.05  # 20 Hz: twice the rate the contract asks for
_SHORT_WAIT = 0.05  # open loop: waits shorter than this sleep instead of watching for a stop
#: Seconds requests in flight still get after a cancel (or a server gone)
#: before they are abandoned, so that a Stop takes effect at once.
STOP_GRACE = 0.3
#: A server has gone away when this many requests in a row were refused ...
REFUSED_STREAK = 100
#: ... and none got a reply for this many seconds. (Refusals come back in
#: microseconds: waiting longer would pile up thousands of them.)
REFUSED_QUIET = 0.05
#: Seconds requests in flight at the deadline may still take before they count as timeouts.
END_GRACE = 0.25


# -- pacing and recording ----------------------------------------------------


class Plan:
    """Hands out request numbers and their scheduled send times.

    ``start()`` starts the clock (``t0``, ``deadline``) once every client
    thread exists, so thread start-up never counts as latency. ``claim()``
    returns ``(index, scheduled)`` or None when the run is over:
    ``max_requests`` handed out, the deadline passed (no request is sent
    after it; in the open loop, none scheduled at or after it either), or
    ``stop`` set. ``scheduled`` (a perf_counter time) is None in the closed
    loop.
    """

    def __init__(self, spec: LoadSpec, stop: threading.Event) -> None:
        self.spec = spec
        self.stop = stop
        self.started = threading.Event()
        self.t0 = 0.0
        self.deadline = 0.0
        self.stopped_at: float | None = None
        self.capped = False  # max_requests were handed out
        self.sent = 0  # requests claimed and sent (or being sent)
        self._next = 0
        self._lock = threading.Lock()

    def start(self, t0: float | None = None, since: float | None = None) -> float:
        """Start the clock (now, or at *t0*) and release the clients.

        With *since* (a perf_counter time before the client threads were
        started), starting them counts against the duration, so the run ends
        ``duration`` after *since* whatever the client count; at least half
        the duration is still load.
        """
        self.t0 = time.perf_counter() if t0 is None else t0
        self.deadline = self.t0 + self.spec.duration
        if since is not None:
            self.deadline = max(since + self.spec.duration, self.t0 + self.spec.duration / 2)
        self.started.set()
        return self.t0

    def claim(self) -> tuple[int, float | None] | None:
        if not self.started.is_set():  # is_set() is cheap; wait() takes a lock
            self.started.wait()
        with self._lock:
            if self.stop.is_set():
                if self.stopped_at is None:
                    self.stopped_at = time.perf_counter()
                return None
            index = self._next
            if index >= self.spec.max_requests:
                self.capped = True
                return None
            if time.perf_counter() >= self.deadline:
                return None
            scheduled: float | None = None
            if self.spec.rate is not None:
                scheduled = self.t0 + index / self.spec.rate
                if scheduled >= self.deadline:
                    return None
            self._next = index + 1
            self.sent += 1
            return index, scheduled

    def unclaim(self) -> None:
        """A claimed request was not sent after all (cancelled before its time)."""
        with self._lock:
            self.sent -= 1

    def due(self, end: float) -> int:
        """Open loop: how many requests were scheduled before *end*."""
        if self.spec.rate is None:
            return 0
        span = max(0.0, min(end, self.deadline) - self.t0)
        return min(self.spec.max_requests, math.ceil(span * self.spec.rate))


class Recorder:
    """Outcomes, latencies and the timeline of a run (thread-safe).

    ``begin()`` when a request is sent, ``record()`` when it ends.
    ``snapshot()`` reads the figures so far and starts a new interval (the
    latencies of the requests that ended since the previous snapshot).
    ``finish()`` freezes the figures: requests still in flight then are
    counted as timeouts (or, with ``abandon=True`` after a cancel, as
    ``abandoned``, outside every outcome), and later ``record()`` calls are
    ignored. ``gone`` turns true when the server has gone away: a streak of
    REFUSED_STREAK refusals with no reply for REFUSED_QUIET seconds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes = {name: 0 for name in OUTCOMES}
        self.latency = Histogram()
        self._previous: dict[str, int] = {}  # bucket counts at the previous snapshot
        self.timeline: list[tuple[float, float]] = []
        self.examples: dict[str, str] = {}
        self.started = 0
        self.abandoned = 0
        self.last_end = 0.0
        self.last_ok = 0.0
        self.refused_streak = 0
        self.gone = False  # nothing accepts connections any more
        self.t0 = 0.0  # perf_counter time of the start (set by run)
        self._stride = 1
        self._ok_seen = 0
        self._frozen = False

    def begin(self) -> None:
        """One request was sent (the clients of :func:`run` count sends in
        the :class:`Plan` instead and pass the total to :meth:`finish`)."""
        with self._lock:
            self.started += 1

    def record(self, outcome: str, at: float, seconds: float, end: float, exc: BaseException | None) -> None:
        """One request ended: *at* is its send (or scheduled) time since the
        start, *seconds* its latency, *end* its perf_counter end time."""
        with self._lock:
            if self._frozen:
                return
            self.outcomes[outcome] += 1
            if end > self.last_end:
                self.last_end = end
            if outcome != "ok":
                if outcome == "refused":
                    self.refused_streak += 1
                    if (self.refused_streak >= REFUSED_STREAK
                            and end - max(self.last_ok, self.t0) >= REFUSED_QUIET):
                        self.gone = True  # the clients stop claiming at once
                else:
                    self.refused_streak = 0
                if exc is not None and outcome not in self.examples:
                    self.examples[outcome] = f"{type(exc).__name__}: {exc}"
                return
            self.refused_streak = 0
            self.last_ok = end
            if seconds < 0.0:
                seconds = 0.0
            self.latency.add(seconds)
            self._ok_seen += 1
            if self._ok_seen % self._stride == 0:
                self.timeline.append((at, seconds * 1000.0))
                if len(self.timeline) >= TIMELINE_POINTS:
                    # Keep every other point and halve the rate from now on:
                    # the timeline stays evenly spread over the whole run.
                    self.timeline = self.timeline[::2]
                    self._stride *= 2

    def snapshot(self) -> tuple[dict[str, int], dict[str, float], dict[str, float]]:
        """(outcomes so far, {"p50", "p99"} ms so far, the same for the
        requests that ended since the previous snapshot, which starts a new
        interval; an interval without replies has no percentiles)."""
        with self._lock:
            outcomes = dict(self.outcomes)
            cumulative = {
                "p50": self.latency.percentile(0.5) * 1000.0,
                "p99": self.latency.percentile(0.99) * 1000.0,
            }
            buckets = self.latency.to_dict()["buckets"]
        # The interval's replies: the difference of the bucket counts (the
        # clients pay for one histogram, not two).
        previous, self._previous = self._previous, buckets
        recent_counts = {int(k): n - previous.get(k, 0) for k, n in buckets.items() if n != previous.get(k, 0)}
        count = sum(recent_counts.values())
        if not count:
            return outcomes, cumulative, {}
        recent = {"p50": _bucket_percentile(recent_counts, count, 0.5) * 1000.0,
                  "p99": _bucket_percentile(recent_counts, count, 0.99) * 1000.0,
                  "count": float(count)}
        return outcomes, cumulative, recent

    def finish(self, abandon: bool = False, started: int | None = None) -> None:
        """Freeze; *started* requests were sent (default: the begin() calls)."""
        with self._lock:
            self._frozen = True
            if started is not None:
                self.started = started
            in_flight = self.started - sum(self.outcomes.values())
            if in_flight > 0:
                if abandon:
                    self.abandoned += in_flight
                else:
                    self.outcomes["timeout"] += in_flight
                    self.examples.setdefault("timeout", "still in flight when the run ended")


def _bucket_percentile(counts: dict[int, int], total: int, fraction: float) -> float:
    """The upper edge of the histogram bucket that holds rank *fraction*."""
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return Histogram.bucket_upper(index)
    return Histogram.bucket_upper(max(counts))


# -- sampling the server -----------------------------------------------------


def _read_threads(pid: int) -> int | None:
    """Threads of process *pid*; None when it is gone (or a zombie) or
    there is no /proc."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"State:") and line.split()[1:2] == [b"Z"]:
                    return None
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _read_children(pid: int, tasks: list[str] | None) -> tuple[int, set[str]] | None:
    """Children of *pid* (from the given task ids, or from all of them):
    (count, the task ids that have children)."""
    names = tasks if tasks is not None else [
        os.path.basename(p) for p in glob.glob(f"/proc/{pid}/task/*")
    ]
    kids: set[str] = set()
    parents: set[str] = set()
    any_read = False
    for task in names:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                found = f.read().split()
            any_read = True
        except OSError:
            continue
        if found:
            parents.add(task)
            kids.update(x.decode() for x in found)
    # When the server runs in the process that started this worker (a
    # notebook kernel), the worker itself is one of its children: not a
    # server child.
    kids.discard(str(os.getpid()))
    if not any_read:
        return None
    return len(kids), parents


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_cpu(pid: int | str, reaped: bool) -> float | None:
    """CPU seconds of process *pid* (all its threads) from /proc/<pid>/stat;
    with *reaped*, its reaped children's too (cutime, cstime)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        if reaped:
            ticks += int(fields[13]) + int(fields[14])
    except (OSError, ValueError, IndexError):
        return None
    return ticks / _TICKS


def server_cpu_seconds(pid: int) -> float | None:
    """CPU seconds a server process has used so far, its children included:
    its own, its reaped children's, and its live children's (pre-forked
    workers, children still serving). None without /proc or once it is gone."""
    own = _stat_cpu(pid, reaped=True)
    if own is None:
        return None
    names = [os.path.basename(p) for p in glob.glob(f"/proc/{pid}/task/*")]
    kids: set[str] = set()
    for task in names:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                kids.update(x.decode() for x in f.read().split())
        except OSError:
            continue
    kids.discard(str(os.getpid()))
    return own + sum(_stat_cpu(kid, reaped=True) or 0.0 for kid in kids)


def _cpus_of(pid: int | None) -> set[int] | None:
    """The CPUs process *pid* (None: this one) may run on (None if unknown)."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None
    try:
        return set(getter(pid or 0))
    except OSError:
        return None


def _children_by_scan(pid: int) -> int:
    """Fallback without /proc/<pid>/task/*/children: count by parent PID."""
    count = 0
    own = f"/proc/{os.getpid()}/stat"
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat, "rb") as f:
                data = f.read()
            if int(data[data.rindex(b")") + 2 :].split()[1]) == pid:
                count += 1
                if stat == own:
                    count -= 1
        except (OSError, ValueError, IndexError):
            continue
    return count


class Sampler:
    """Samples a process's thread and child counts every SAMPLE_INTERVAL.

    Linux only (``/proc``); elsewhere, or once the process is gone, it
    records nothing. Children are read from ``/proc/<pid>/task/*/children``
    (every task when the server has few threads; with many, the tasks known
    to have forked plus a full rescan every half second), or, on kernels
    without that file, by scanning every process's parent PID.
    """

    def __init__(self, pid: int, t0: float) -> None:
        self.pid = pid
        self.t0 = t0
        self.threads: list[tuple[float, int]] = []
        self.children: list[tuple[float, int]] = []
        self.gone = False  # the process was seen once and then vanished
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sockserve-sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def latest(self) -> tuple[int | None, int | None]:
        return (
            self.threads[-1][1] if self.threads else None,
            self.children[-1][1] if self.children else None,
        )

    def _run(self) -> None:
        forkers: set[str] = set()
        use_scan = False
        tick = 0
        while True:
            now = time.perf_counter()
            threads = _read_threads(self.pid)
            if threads is None:
                # No /proc, or the server is gone (a zombie has no threads).
                self.gone = os.path.isdir("/proc/self")
                return
            at = now - self.t0
            self.threads.append((at, threads))
            if use_scan:
                if tick % 10 == 0:
                    self.children.append((at, _children_by_scan(self.pid)))
            else:
                full = threads <= 32 or tick % 10 == 0
                tasks = None if full else sorted(forkers | {str(self.pid)})
                found = _read_children(self.pid, tasks)
                if found is None:
                    use_scan = True
                    self.children.append((at, _children_by_scan(self.pid)))
                else:
                    count, parents = found
                    forkers = parents if full else forkers | parents
                    self.children.append((at, count))
            tick += 1
            if self._stop.wait(max(0.0, SAMPLE_INTERVAL - (time.perf_counter() - now))):
                return


# -- the run -----------------------------------------------------------------


def _address_family(spec: LoadSpec) -> tuple[int, Any]:
    if spec.transport in ("unix", "unix-dgram"):
        return socket.AF_UNIX, spec.address
    assert isinstance(spec.address, tuple)
    host, port = spec.address
    kind = socket.SOCK_STREAM if spec.transport == "tcp" else socket.SOCK_DGRAM
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=kind)[0]
    return family, sockaddr


def client_loop(
    make_client: Callable[[], Client],
    plan: Plan,
    recorder: Recorder,
    request: Callable[[int], bytes],
    timeout: float,
) -> None:
    """One client: claim, (wait for the scheduled time,) exchange, record."""
    client = make_client()
    try:
        while True:
            if recorder.gone:
                return  # nothing listens any more: end the run now
            claim = plan.claim()
            if claim is None:
                return
            index, scheduled = claim
            if scheduled is not None:
                early = scheduled - time.perf_counter()
                if early > 0:
                    # A short wait sleeps (cheap); a long one waits on the
                    # stop event, so that a cancel is not kept waiting.
                    if early < _SHORT_WAIT:
                        time.sleep(early)
                    elif plan.stop.wait(early):
                        plan.unclaim()
                        return  # cancelled before this request was due
            payload = request(index)
            began = time.perf_counter()
            origin = began if scheduled is None else scheduled
            error: BaseException | None = None
            try:
                client.exchange(payload, began + timeout)
                outcome = "ok"
            except Exception as exc:
                error, outcome = exc, classify(exc)
            end = time.perf_counter()
            recorder.record(outcome, origin - plan.t0, end - origin, end, error)
    finally:
        client.close()


def _workload_source(spec: LoadSpec) -> tuple[Callable[[int], bytes], float]:
    """(request index -> the bytes to send, the trickle pause in seconds)."""
    values = workload_values(spec.workload, spec.workload_params)
    trickle = trickle_seconds(values)
    if spec.workload == "mixed":
        return functools.partial(request_line, spec.workload, values), trickle
    line = request_line(spec.workload, values, 0)  # the same line every time: made once

    def constant(index: int) -> bytes:
        return line

    return constant, trickle


def run(
    spec: LoadSpec,
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    source: tuple[Callable[[int], bytes], float] | None = None,
) -> LoadResult:
    """Run *spec* in this process (threads) and return the result.

    *stop* ends the run early when set; *progress* is called about every
    PROGRESS_INTERVAL seconds from this thread. *source* is the spec's
    requests and trickle pause when the caller has them already (see
    :func:`main`), so the workload is read once per process.
    """
    stop = stop if stop is not None else threading.Event()
    request, trickle_s = source if source is not None else _workload_source(spec)
    family, address = _address_family(spec)
    bind_dir = tempfile.mkdtemp(prefix="ssl-", dir="/tmp") if spec.transport == "unix-dgram" else None
    persistent = spec.connection == "persistent"

    def make_client() -> Client:
        if spec.transport in ("udp", "unix-dgram"):
            return DatagramClient(family, address, bind_dir)
        return StreamClient(family, address, persistent, trickle_s)

    began = time.perf_counter()
    recorder = Recorder()
    plan = Plan(spec, stop)
    previous_stack = threading.stack_size()
    threading.stack_size(512 * 1024)  # many clients, little stack each
    clients: list[threading.Thread] = []
    try:
        for n in range(spec.clients):
            thread = threading.Thread(
                target=client_loop,
                args=(make_client, plan, recorder, request, spec.timeout),
                name=f"load-client-{n}",
                daemon=True,
            )
            thread.start()
            clients.append(thread)
    except BaseException:
        stop.set()  # release the clients already started, then give up
        plan.start()
        raise
    finally:
        threading.stack_size(previous_stack)
    started_at = time.time()
    server_cpu0 = server_cpu_seconds(spec.server_pid) if spec.server_pid else None
    cpus = _cpus_of(spec.server_pid)
    busy0 = busy_seconds(cpus)
    window0 = time.perf_counter()
    generator_cpu0 = time.process_time()
    t0 = recorder.t0 = plan.start(since=began)
    started_monotonic = time.monotonic()
    sampler = Sampler(spec.server_pid, t0).start() if spec.server_pid else None
    try:
        # The duration is a hard bound: requests still in flight get at most
        # END_GRACE more (or their own timeout, if shorter), then count as
        # timeouts ("still in flight when the run ended").
        hard_end = plan.deadline + min(spec.timeout, END_GRACE)
        cancelled_at: float | None = None
        ended_by = ""
        while any(t.is_alive() for t in clients):
            now = time.perf_counter()
            if now >= hard_end:
                break
            if not ended_by:
                ended_by = _ended_early(stop, sampler, recorder)
                if ended_by:
                    # Stopped early: requests in flight get a short grace,
                    # not their whole timeout, so a Stop takes effect at once.
                    stop.set()
                    cancelled_at = now
                    hard_end = min(hard_end, now + STOP_GRACE)
            _join_some(clients, min(PROGRESS_INTERVAL, max(0.0, hard_end - time.perf_counter())))
            if progress is not None:
                progress(_progress(spec, recorder, sampler, time.perf_counter() - t0))
        end_clock = time.perf_counter()
        generator_cpu = time.process_time() - generator_cpu0
        server_cpu1 = (server_cpu_seconds(spec.server_pid)
                       if server_cpu0 is not None and spec.server_pid else None)
        busy1 = busy_seconds(cpus) if busy0 is not None else None
        window = time.perf_counter() - window0
        if not ended_by:
            ended_by = _ended_early(stop, sampler, recorder) or (
                "max_requests" if plan.capped else "duration")
            if ended_by not in ("max_requests", "duration") and cancelled_at is None:
                cancelled_at = end_clock
        cancelled = ended_by == "cancelled"
        stop.set()
        recorder.finish(abandon=ended_by != "duration" and ended_by != "max_requests", started=plan.sent)
    finally:
        if sampler is not None:
            sampler.stop()
        if bind_dir is not None:
            for thread in clients:
                thread.join(0.5)
            shutil.rmtree(bind_dir, ignore_errors=True)
    last = recorder.last_end if recorder.last_end else end_clock
    elapsed = max(last - t0, 1e-9)
    stopped_at = min(x for x in (plan.stopped_at, cancelled_at, end_clock) if x is not None)
    requests = sum(recorder.outcomes.values())
    return LoadResult(
        spec=spec,
        requests=requests,
        outcomes=dict(recorder.outcomes),
        elapsed=elapsed,
        throughput_rps=recorder.outcomes["ok"] / elapsed,
        latency=recorder.latency,
        threads=list(sampler.threads) if sampler else [],
        children=list(sampler.children) if sampler else [],
        timeline=sorted(recorder.timeline),
        unsent=max(0, plan.due(stopped_at) - plan.sent),
        cancelled=cancelled,
        examples=dict(recorder.examples),
        started_at=started_at,
        started_monotonic=started_monotonic,
        ended_by=ended_by,
        abandoned=recorder.abandoned,
        server_cpu_s=(server_cpu1 - server_cpu0
                      if server_cpu0 is not None and server_cpu1 is not None else None),
        generator_cpu_s=generator_cpu,
        busy_cpu_s=busy1 - busy0 if busy0 is not None and busy1 is not None else None,
        busy_cpus=len(cpus) if cpus is not None else (os.cpu_count() or 1),
        cpu_window_s=window,
    )


def _ended_early(stop: threading.Event, sampler: Sampler | None, recorder: Recorder) -> str:
    """Why the run must end before its bounds, or "": ``"cancelled"`` (a
    cancel, stdin closed), ``"server gone"`` (the sampled server process
    exited) or ``"refused"`` (nothing accepts connections any more: a run
    of refusals and no reply for REFUSED_QUIET seconds)."""
    if sampler is not None and sampler.gone:
        return "server gone"
    if recorder.gone:
        return "refused"
    if stop.is_set():
        return "cancelled"
    return ""


def _progress(spec: LoadSpec, recorder: Recorder, sampler: Sampler | None, elapsed: float) -> Progress:
    outcomes, cumulative, recent = recorder.snapshot()
    ended = sum(outcomes.values())
    threads, children = sampler.latest() if sampler else (None, None)
    return Progress(
        elapsed=elapsed,
        duration=spec.duration,
        requests=ended,
        ok=outcomes["ok"],
        errors=ended - outcomes["ok"],
        latency_ms=cumulative,
        threads=threads,
        children=children,
        done=False,
        max_requests=spec.max_requests,
        outcomes=outcomes,
        recent_ms=recent,
    )


def _join_some(threads: list[threading.Thread], seconds: float) -> None:
    """Wait up to *seconds* for the clients, returning early if all end."""
    end = time.perf_counter() + seconds
    for thread in threads:
        left = end - time.perf_counter()
        if left <= 0:
            return
        thread.join(left)


# -- the process entry point -------------------------------------------------


def _read_line(fd: int, buffer: bytearray) -> bytes | None:
    """The next line from raw descriptor *fd* (None at EOF). Raw reads, not
    ``sys.stdin``: a daemon thread blocked inside a buffered reader would
    hold its lock and abort the interpreter's shutdown."""
    while b"\n" not in buffer:
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def _watch_stdin(stop: threading.Event, buffer: bytearray) -> None:
    """Set *stop* on a ``cancel`` line or when stdin closes (parent gone)."""
    try:
        while True:
            line = _read_line(0, buffer)
            if line is None or line.strip() == b"cancel":
                break
    except OSError:
        pass
    stop.set()


def main() -> int:
    """``python -m sockserve.load.worker``: see the module docstring."""
    # The parent handles Ctrl-C (it stops this process); protect the output
    # channel from stray prints by pointing sys.stdout at stderr.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out_fd = os.dup(1)
    sys.stdout = sys.stderr

    def emit(kind: str, payload: dict[str, Any]) -> None:
        data = json.dumps({"type": kind, kind: payload}).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(out_fd, view) :]

    buffer = bytearray()
    line = _read_line(0, buffer)
    if line is None:
        return 2
    try:
        spec = LoadSpec.from_dict(json.loads(line))
        source = _workload_source(spec)  # checked before anything is sent, and used as it is
    except ValueError as exc:
        # A bad spec or workload: the parent raises it as a ValueError.
        emit("error", {"kind": "ValueError", "message": str(exc)})
        return 2
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_stdin, args=(stop, buffer), name="stdin-watch", daemon=True
    )
    watcher.start()
    result = run(spec, stop, lambda p: emit("progress", p.to_dict()), source)
    emit("result", result.to_dict())
    os.close(out_fd)
    return 0


def entry() -> None:
    """Run :func:`main` and end the process without waiting for threads:
    client threads past their bound may still sit in a socket call."""
    try:
        status = main()
    except BaseException:
        traceback.print_exc()
        status = 1
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    entry()
