"""Models for sending load and comparing servers (no ipywidgets here).

* :class:`TrafficModel` sends load with :class:`sockserve.load.LoadRun` (the
  load runs in another process) at a :class:`~.models.ServerModel` or an
  address, and keeps a live list of :class:`Sample` for the plots.
* :class:`CompareModel` runs :func:`sockserve.measure.experiment.compare` in a
  background thread; the servers it compares run in their own processes.

Callers use ``send()``/``run()``, ``poll()`` (call a few times a second
while running: it takes in the latest progress), ``status()`` and ``stop()``
(the Stop button: it returns within about a second and keeps the partial
result). Both are tracked by :mod:`.registry` while they run.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..load.data import LoadSpec
from ..load.runner import LoadRun
from ..measure.experiment import compare, default_rounds, timeline_cap
from ..measure.kinds import kind_names
from . import registry
from .models import ServerModel, describe_error
from .settings import CompareSettings, TrafficSettings, settings_of

__all__ = ["Sample", "TrafficModel", "TrafficStatus", "CompareModel", "CompareStatus"]

_MAX_SAMPLES = 2000


@dataclass(frozen=True)
class Sample:
    """One live reading while load runs.

    ``p50_ms``/``p99_ms`` are cumulative (every reply since the start),
    ``recent_p50_ms``/``recent_p99_ms`` cover only the replies since the
    previous reading (None when none came). ``outcomes`` counts every
    outcome so far. ``threads``/``children``: see ``concurrency``, which
    is ``"peak"`` (the most alive at once since the previous reading) or
    ``"instant"`` (the count at the moment of reading).
    """

    elapsed: float
    requests: int
    ok: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    threads: int | None
    children: int | None
    recent_p50_ms: float | None = None
    recent_p99_ms: float | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    concurrency: str = "instant"


@dataclass(frozen=True)
class TrafficStatus:
    state: str  # "idle" | "running" | "done" | "stopped" | "failed"
    fraction: float  # 0..1, for a progress bar
    text: str  # one line: what is happening now, or the summary when done


class TrafficModel:
    """Load sent at one server.

    ``TrafficModel(target, settings=None, /, **choices)``: ``target`` is a
    :class:`ServerModel` (its current address, transport and workload are
    used at each :meth:`send`) or an address: ``(host, port)`` or a Unix
    socket path (then set ``transport``). What to send is a
    :class:`~.settings.TrafficSettings` (mode, clients, rate, duration,
    connection, ...), given as an object or as keywords; a view hands it new
    settings by assigning :attr:`settings` (read at each :meth:`send`).

    With ``settings.timeline`` (True or a cap) each run records when and
    where each request ran, if the target is a :class:`ServerModel` (a
    server in this process); after the run ``timeline`` holds it
    (``Timeline.to_dict()``), else None.
    """

    def __init__(self, target: ServerModel | Any, settings: TrafficSettings | None = None, /,
                 **choices: Any) -> None:
        self.settings = settings_of(TrafficSettings, settings, choices, "TrafficModel")
        self.timeline: dict[str, Any] | None = None
        self._recording: Any = None  # the server whose timeline is being recorded
        self.target = target
        self._lock = threading.RLock()
        self._run: Any = None
        self._started = 0.0
        self.samples: list[Sample] = []
        self.result: Any = None
        self._message = ""
        self._note = ""  # why the run ended early ("" when it ran its course)

    @property
    def running(self) -> bool:
        run = self._run
        return run is not None and not run.done

    @property
    def duration(self) -> float:
        return float(self.settings.duration)

    @property
    def timeline_cap(self) -> int | None:
        return timeline_cap(self.settings.timeline)

    def spec(self) -> Any:
        """The :class:`sockserve.load.LoadSpec` that :meth:`send` would use."""
        target, settings = self.target, self.settings
        if isinstance(target, ServerModel):
            if target.address is None:
                raise ValueError("the server is not running: press Start on its panel first")
            served = target.settings
            address, transport = target.address, target.transport
            workload = settings.workload or (served.workload if served.handler is None else "echo")
            params = dict(served.params) if served.handler is None else {}
            # The server runs in this process, whose thread count includes
            # the kernel's own threads: the samples count the server's
            # handler threads and children from its stats instead.
            pid: int | None = None
        else:
            address, transport = target, settings.transport
            workload, params, pid = settings.workload or "echo", {}, None
        if isinstance(address, list):
            address = tuple(address)
        mode = settings.mode
        return LoadSpec(
            address=address,
            transport=transport,
            workload=workload,
            workload_params=params,
            mode=mode,
            clients=max(1, int(settings.clients)),
            rate=float(settings.rate) if mode == "open" and settings.rate else None,
            duration=float(settings.duration),
            max_requests=int(settings.max_requests),
            connection=settings.connection,
            server_pid=pid,
        )

    def send(self) -> TrafficStatus:
        """Start a load run (does nothing while one runs). Never raises for
        a bad setting: the status says what is wrong."""
        with self._lock:
            if self.running:
                return self.status()
            self.samples, self.result, self._message, self._note = [], None, "", ""
            try:
                run = LoadRun(self.spec())
                run.start()
            except Exception as exc:
                self._run = None
                self._message = describe_error(exc)
                return self.status()
            self._run, self._started = run, time.monotonic()
            self._record_timeline()
            registry.track(self)
            return self.status()

    def _record_timeline(self) -> None:
        self.timeline, self._recording = None, None
        target = self.target
        if self.timeline_cap is not None and isinstance(target, ServerModel) and target.server is not None:
            self._recording = target.server
            self._recording.stats.record_timeline(self.timeline_cap)

    def _keep_timeline(self) -> None:
        server, self._recording = self._recording, None
        if server is not None:
            recorded = server.stats.stop_timeline()
            self.timeline = recorded.to_dict() if recorded is not None else None

    def poll(self) -> TrafficStatus:
        """Take in the latest progress; returns the status. A run whose
        target :class:`ServerModel` stopped is ended here, and says so."""
        with self._lock:
            run = self._run
            if run is None:
                return self.status()
            progress = run.progress
            if progress is not None:
                self._add_sample(progress)
            target = self.target
            if (not run.done and isinstance(target, ServerModel) and not target.running
                    and not self._note):
                self._note = "The server stopped, so the load run ended."
                run.cancel()
            if run.done and self.result is None:
                self._take_result(run, 5.0)
            return self.status()

    def _take_result(self, run: Any, timeout: float) -> None:
        try:
            self.result = run.wait(timeout)
        except Exception as exc:
            if not self._note:
                self._message = f"The load run failed: {describe_error(exc)}"
        finally:
            self._keep_timeline()
        registry.untrack(self)

    def cap_text(self) -> str:
        """The bounds of the next run, in words (shown before it starts)."""
        return (f"A run ends after {self.duration:g} s or {int(self.settings.max_requests):,} requests, "
                "whichever comes first, or when you press Stop.")

    def _add_sample(self, progress: Any) -> None:
        if self.samples and self.samples[-1].elapsed >= progress.elapsed:
            return
        lat = progress.latency_ms or {}
        recent = progress.recent_ms or {}
        threads, children = progress.threads, progress.children
        how = "instant"
        target = self.target
        if isinstance(target, ServerModel) and target.server is not None:
            # The server lives in this process: count its handler threads and
            # children exactly rather than all of the kernel's threads.
            threads, children, how = _server_counts(target.server.stats)
        self.samples.append(
            Sample(
                elapsed=float(progress.elapsed),
                requests=int(progress.requests),
                ok=int(progress.ok),
                errors=int(progress.errors),
                p50_ms=lat.get("p50"),
                p99_ms=lat.get("p99"),
                threads=threads,
                children=children,
                recent_p50_ms=recent.get("p50"),
                recent_p99_ms=recent.get("p99"),
                outcomes=dict(progress.outcomes or {}),
                concurrency=how,
            )
        )
        del self.samples[:-_MAX_SAMPLES]

    def status(self) -> TrafficStatus:
        run = self._run
        if self._message:
            return TrafficStatus("failed", 0.0, self._message)
        if run is None:
            return TrafficStatus("idle", 0.0, "Press Send to start a load run.")
        if self.result is not None:
            text = self.result.summary()
            if self._note:
                text = f"{self._note}\n{text}"
            stopped = self.result.ended_by not in ("", "duration", "max_requests")
            return TrafficStatus("stopped" if stopped else "done", 1.0, text)
        if self._note and run.done:
            return TrafficStatus("stopped", 1.0, self._note)
        last = self.samples[-1] if self.samples else None
        elapsed = last.elapsed if last else time.monotonic() - self._started
        fraction = min(1.0, elapsed / max(self.duration, 1e-9))
        if last is None:
            return TrafficStatus("running", fraction, "starting the load ...")
        p50 = f"{last.p50_ms:.2f}" if last.p50_ms is not None else "-"
        p99 = f"{last.p99_ms:.2f}" if last.p99_ms is not None else "-"
        return TrafficStatus(
            "running",
            fraction,
            f"{elapsed:.1f}/{self.duration:g} s: {last.requests} requests, "
            f"{last.errors} errors, p50 {p50} ms, p99 {p99} ms",
        )

    def stop(self, timeout: float = 1.0) -> None:
        """What Stop does: end a run in progress within about *timeout*
        seconds and keep its partial result. Idempotent."""
        with self._lock:
            run = self._run
            if run is not None and not run.done:
                self._note = "Stopped."
        if run is not None and not run.done:
            run.stop(timeout)  # cancels; kills a worker that does not answer in time
        with self._lock:
            if run is not None and run.done and self.result is None:
                self._take_result(run, 0.5)
        registry.untrack(self)


@dataclass(frozen=True)
class CompareStatus:
    state: str  # "idle" | "waiting" | "running" | "stopping" | "done" | "stopped" | "failed"
    fraction: float
    text: str


#: One comparison at a time in this process: a new one waits (in its own
#: thread, never in the caller's) until the previous one has stopped its
#: servers, so the two never share the cores.
_ONE_AT_A_TIME = threading.Lock()


class CompareModel:
    """Plain vs threading vs forking (and more) on one workload.

    ``CompareModel(settings=None, /, **choices)``: what to compare is a
    :class:`~.settings.CompareSettings` (``workload``, ``servers``: kind
    names, default :func:`default_servers`; ``clients``, ``duration`` per
    server, ``connection``, ``workload_params``, ``timeline``: False, or True
    or a cap per server, see :func:`sockserve.measure.experiment.compare`),
    given as an object or as keywords; a view hands it new settings by
    assigning :attr:`settings` (read at each :meth:`run`). :meth:`run` starts the comparison
    in a background thread; ``comparison`` holds the result when done (a
    partial one, ``cancelled``, after a stop). :meth:`stop` is the Stop
    button: it returns within about a second, whatever runs; the servers
    are stopped in the background. :meth:`wait` blocks until the
    comparison has ended and returns it.
    """

    def __init__(self, settings: CompareSettings | None = None, /, **choices: Any) -> None:
        self._settings = settings_of(CompareSettings, settings, choices, "CompareModel")
        self.settings = self._settings  # resolves the default servers
        self._running = self._settings  # what the current (or last) run measures
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = 0.0
        self._progress_text = ""
        self._current = ""
        self._done_servers = 0
        self._run_fraction = 0.0
        self._message = ""
        self._waiting = False
        self.comparison: Any = None

    @property
    def settings(self) -> CompareSettings:
        return self._settings

    @settings.setter
    def settings(self, value: CompareSettings) -> None:
        servers = tuple(value.servers) or default_servers()
        self._settings = dataclasses.replace(value, servers=servers)

    @property
    def servers(self) -> tuple[str, ...]:
        return self._settings.servers

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def run(self) -> CompareStatus:
        """Start the comparison in a background thread (once at a time)."""
        with self._lock:
            if self.running:
                return self.status()
            self.comparison, self._message, self._progress_text = None, "", "starting ..."
            self._current, self._done_servers = "", 0
            self._stop = threading.Event()
            self._started = time.monotonic()
            self._running = self._settings  # what this run measures, whatever a view sets meanwhile
            self._thread = threading.Thread(
                target=self._work, args=(self._stop,), name="sockserve-lab-compare", daemon=True
            )
            registry.track(self)
            self._thread.start()
            return self.status()

    def _work(self, stop: threading.Event) -> None:
        try:
            self._waiting = True
            while not _ONE_AT_A_TIME.acquire(timeout=0.1):
                if stop.is_set():
                    return
            try:
                self._waiting = False
                if stop.is_set():
                    return
                settings = self._running
                result = compare(
                    settings.workload,
                    servers=settings.servers,
                    clients=int(settings.clients),
                    duration=float(settings.duration),
                    connection=settings.connection,
                    workload_params=dict(settings.workload_params) or None,
                    progress=self._on_progress,
                    on_server=self._on_server,
                    stop=stop,
                    timeline=settings.timeline,
                )
                with self._lock:
                    self.comparison = result
            finally:
                _ONE_AT_A_TIME.release()
        except Exception as exc:
            with self._lock:
                self._message = f"The comparison failed: {describe_error(exc)}"
        finally:
            self._waiting = False
            registry.untrack(self)

    def _on_server(self, name: str) -> None:
        """Called before each round (compare runs the servers in turn, in rounds)."""
        self._current, self._run_fraction = name, 0.0
        self._done_servers += 1

    def _steps(self) -> int:
        running = self._running
        return len(running.servers) * default_rounds(float(running.duration))

    def _on_progress(self, progress: Any) -> None:
        self._run_fraction = min(1.0, float(progress.elapsed) / max(float(progress.duration), 1e-9))
        self._progress_text = (
            f"{self._current} ({self._done_servers}/{self._steps()}): "
            f"{progress.elapsed:.1f} s, {progress.requests} requests, {progress.errors} errors"
        )

    def status(self) -> CompareStatus:
        if self._message:
            return CompareStatus("failed", 0.0, self._message)
        comparison = self.comparison
        if comparison is not None:
            if comparison.cancelled:
                return CompareStatus("stopped", 1.0, "Stopped: the partial result.\n" + comparison.table())
            return CompareStatus("done", 1.0, comparison.table())
        if self._thread is None:
            return CompareStatus("idle", 0.0, "Press Run comparison.")
        done = max(0, self._done_servers - 1) + self._run_fraction
        fraction = min(0.99, done / max(1, self._steps()))
        if self._stop.is_set():
            if not self.running:
                return CompareStatus("stopped", fraction, "Stopped before any server ran.")
            return CompareStatus("stopping", fraction, "stopping: ending the load and the server ...")
        if self._waiting:
            return CompareStatus("waiting", 0.0, "waiting for the previous comparison to stop its servers ...")
        return CompareStatus("running", fraction, f"running: {self._progress_text}")

    def stop(self, timeout: float = 1.0) -> None:
        """What Stop does: end the comparison; returns within about *timeout*
        seconds (the load ends at once, the server processes are stopped in
        the background, and the partial result arrives in ``comparison``).
        Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if not self.running:
            registry.untrack(self)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the comparison has ended (at most *timeout* seconds);
        return ``comparison`` (None if it failed or has not ended)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return self.comparison


def _server_counts(stats: Any) -> tuple[int, int, str]:
    """(threads, children, "peak") of a server in this process: the most
    alive at once since the previous sample (a handler thread that lives
    a millisecond still counts)."""
    threads, children = stats.take_peaks()
    return int(threads), int(children), "peak"


def default_servers() -> tuple[str, ...]:
    """plain, threading, forking, and every other TCP kind that exists."""
    names = kind_names("tcp")
    first = [n for n in ("plain", "threading", "forking") if n in names]
    return tuple(first + [n for n in names if n not in first])
