"""Experiments: servers in their own processes, and comparisons between them.

:class:`ServerProcess` runs one server (``python -m sockserve serve KIND
--json ...``) in a child process and knows its PID and address.
:func:`compare` runs the same load against several server kinds, one after
another, each server in its own process and the load generator
(:func:`sockserve.load.run_load`) in another, and returns a
:class:`Comparison`: plain data that saves to and loads from JSON and that
:mod:`sockserve.plots` draws.

The data (:class:`RunResult`, :class:`Comparison`) lives in
:mod:`sockserve.measure.results`, which says what a result knows about its own
limits; the JSON file of a comparison::

    {"runs": [{"server": "threading", "workload": "io", "requests": 812,
               "errors": 0, "throughput_rps": 270.5,
               "latency_ms": {"p50": ..., "p90": ..., "p99": ..., "p999": ...,
                              "max": ..., "mean": ...},
               "threads": [[t, n], ...], "children": [[t, n], ...],
               "sampling": "peak", "sample_interval": 0.1,
               "server_class": "ThreadingTCPServer", "transport": "tcp",
               "concurrency": "threading", "mode": "closed", "clients": 8,
               "rate": null, "duration": 3.0, "outcomes": {...},
               "workload_params": {...}, "work_ms": 0.0, "wait_ms": 10.0,
               "cores": {"usable": 1.0, "affinity": 1, "quota": null, ...},
               "server_cpu_s": 0.31, "generator_cpu_s": 0.12,
               "limit_rps": 800.0, "limit_reason": "...", "over_limit": false,
               "generator_bound": false, "flags": [],
               "histogram": {...}, "load": {...}}, ...],
     "workload": "io", "workload_params": {...}, "created": "2026-...",
     "calibration": {}, "cancelled": false, "flags": []}

Fixed work: for the cpu and mixed workloads the process that starts a
server (:class:`ServerProcess`, :func:`compare`) measures the loop speed
once, by CPU time (:func:`sockserve.measure.workloads.calibrate`), and hands it to
every server as the ``iterations_per_ms`` workload parameter, so every
server of a comparison does the same work per request, whatever its own
process would have measured.

Resource handling: a :class:`ServerProcess` is always stopped, by PID, when
``stop()`` is called, when its ``with`` block ends, when the object is
garbage collected, or when the interpreter exits; the server itself also
exits if the process that started it dies (``--exit-with-parent``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from .kinds import resolve_kind
from .limits import gil_enabled, usable_cores
from .results import Comparison, RunResult
from .serverfeed import FeedLine, parse_feed

__all__ = [
    "ServerProcess",
    "ServerStartError",
    "RunResult",
    "Comparison",
    "compare",
    "run_one",
    "with_calibration",
    "timeline_cap",
    "RUN_TIMELINE_CAP",
]

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ServerStartError(RuntimeError):
    """The server process did not start serving; the message says why (its
    last line on stderr: a port in use, an unknown kind, ...)."""


def _terminate(popen: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Stop *popen* by PID: SIGINT, then SIGTERM, then SIGKILL; reap it.

    Waits up to *timeout* for the clean stop, then 2 s after SIGTERM.
    Returns the exit status (None if it could not be reaped).
    """
    if popen.poll() is not None:
        return popen.returncode
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            popen.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            return popen.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return popen.poll()


def _cleanup(popen: subprocess.Popen[bytes] | None, files: list[IO[bytes]], tmpdir: str | None) -> None:
    """Finalizer body: must not refer to the ServerProcess itself."""
    if popen is not None:
        _terminate(popen, 5.0)
    for handle in files:
        handle.close()
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)


class ServerProcess:
    """A server of *kind* serving *workload* in a child process.

    Callers use: ``start()`` (returns self once the server serves),
    ``address`` (``(host, port)`` or a socket path), ``pid``, ``kind``
    (a :class:`~sockserve.measure.kinds.KindInfo`), ``stop(timeout)``,
    ``reports()`` and ``stderr_text()``; or ``with ServerProcess(...) as server:``.

    The child is ``python -m sockserve serve KIND --json --exit-with-parent
    --report-every 0.1``; its stdout and stderr go to temporary files (never
    to pipes that could fill up and block it), and ``reports()`` reads the
    server's per-interval counts from the first (see
    :mod:`sockserve.measure.serverfeed`; ``report_every = None`` turns them off). ``stop()`` sends SIGINT (the server shuts down
    cleanly and exits 0), then SIGTERM after *timeout*, then SIGKILL.
    Unix kinds without a *path* get one in a private temporary directory,
    removed on stop. For the cpu and mixed workloads the server is handed
    this process's calibration (``params["iterations_per_ms"]``) unless
    *params* name one.

    With *timeline* (a cap: the most requests to keep), the server records
    when and where each request ran and writes the record to a private
    temporary file when it stops; ``timeline`` holds it after ``stop()``
    (a :class:`~sockserve.core.timeline.Timeline`'s ``to_dict()``, or None).
    """

    start_timeout: float = 20.0  # seconds to wait for the "serving" line
    #: Seconds between the server's own reports (``reports()``); None: none.
    report_every: float | None = 0.1

    def __init__(
        self,
        kind: str,
        workload: str = "echo",
        host: str = "127.0.0.1",
        port: int = 0,
        path: str | None = None,
        *,
        timeline: int | None = None,
        **params: float,
    ) -> None:
        self.kind = resolve_kind(kind)
        if timeline is not None and timeline < 1:
            raise ValueError(f"timeline is a cap (requests to keep): at least 1, got {timeline!r}")
        self.timeline_cap = timeline
        #: The recorded timeline (``Timeline.to_dict()``) once stopped, if asked for.
        self.timeline: dict[str, Any] | None = None
        self.workload = workload
        self.host = host
        self.port = port
        self.path = path
        self.params = with_calibration(workload, params)
        self.address: tuple[str, int] | str | None = None
        self.server_class: str | None = None
        self.returncode: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._tmpdir: str | None = None
        self._finalizer: Any = None  # weakref.finalize
        self._stderr_at_stop = ""
        self._reports_at_stop: list[FeedLine] = []

    @property
    def pid(self) -> int | None:
        """The server's PID (None before start)."""
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._popen is not None and self._popen.poll() is None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [sys.executable, "-m", "sockserve", "serve", self.kind.name,
               "--workload", self.workload, "--json", "--exit-with-parent"]
        if self.kind.is_unix:
            cmd += ["--path", str(self.path)]
        else:
            cmd += ["--host", self.host, "--port", str(self.port)]
        for name, value in self.params.items():
            cmd += ["--param", f"{name}={value}"]
        if self.report_every:
            cmd += ["--report-every", f"{self.report_every:g}"]
        if self.timeline_cap is not None:
            cmd += ["--timeline", str(self.timeline_cap), "--timeline-file", str(self._timeline_path())]
        return cmd

    def _timeline_path(self) -> str:
        """Where the server writes its timeline (in the private temporary
        directory that ``start()`` makes)."""
        return os.path.join(self._tmpdir or tempfile.gettempdir(), "timeline.json")

    def start(self) -> ServerProcess:
        """Start the server and wait until it serves; raises ServerStartError."""
        if self._popen is not None:
            raise RuntimeError("this ServerProcess was already started")
        if (self.kind.is_unix and self.path is None) or self.timeline_cap is not None:
            self._tmpdir = tempfile.mkdtemp(prefix="sockserve-")
        if self.kind.is_unix and self.path is None:
            assert self._tmpdir is not None
            self.path = os.path.join(self._tmpdir, "server.sock")
        self._stdout = tempfile.TemporaryFile()
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        self._popen = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._stdout,
            stderr=self._stderr, env=env, close_fds=True,
            # Its own session: a Ctrl-C in the terminal reaches the caller,
            # which then stops the server in order, rather than both at once.
            start_new_session=True,
        )
        self._finalizer = weakref.finalize(
            self, _cleanup, self._popen, [self._stdout, self._stderr], self._tmpdir
        )
        try:
            self._read_announcement()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_announcement(self) -> None:
        assert self._popen is not None and self._stdout is not None
        deadline = time.monotonic() + self.start_timeout
        line = b""
        while time.monotonic() < deadline:
            line = os.pread(self._stdout.fileno(), 65536, 0)
            if b"\n" in line:
                break
            if self._popen.poll() is not None:
                line = os.pread(self._stdout.fileno(), 65536, 0)
                if b"\n" in line:
                    break
                raise ServerStartError(
                    self._last_error() or f"the server exited with status {self._popen.returncode}"
                )
            time.sleep(0.01)
        else:
            raise ServerStartError(
                f"the {self.kind.name} server did not start within {self.start_timeout} s"
            )
        info = json.loads(line.split(b"\n", 1)[0])
        address = info["address"]
        self.address = (str(address[0]), int(address[1])) if isinstance(address, list) else address
        self.server_class = info["serving"]

    def _last_error(self) -> str:
        lines = [line for line in self.stderr_text().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    def reports(self) -> list[FeedLine]:
        """The server's per-interval reports so far (``--report-every``):
        peak threads and children of each interval, its counters, and the
        cpu calibration its handler uses. Read them before :meth:`stop`;
        after it, the reports read at stop time."""
        if self._stdout is None or self._stdout.closed:
            return list(self._reports_at_stop)
        data = b""
        while True:
            chunk = os.pread(self._stdout.fileno(), 1 << 20, len(data))
            if not chunk:
                break
            data += chunk
        return parse_feed(data)

    def stderr_text(self) -> str:
        """What the server wrote to stderr (so far, or until it stopped)."""
        if self._stderr is None or self._stderr.closed:
            return self._stderr_at_stop
        return os.pread(self._stderr.fileno(), 1 << 20, 0).decode("utf-8", "replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGINT, SIGTERM after *timeout*, then SIGKILL) and
        reap it. Safe to call more than once."""
        if self._popen is None:
            return
        self.returncode = _terminate(self._popen, timeout)
        if not self._stderr_at_stop:
            self._stderr_at_stop = self.stderr_text()
        if not self._reports_at_stop:
            self._reports_at_stop = self.reports()
        if self.timeline_cap is not None and self.timeline is None and self._tmpdir is not None:
            self.timeline = _read_timeline(self._timeline_path())
        if self._finalizer is not None:
            self._finalizer()  # closes the files and removes the temporary dir

    def __enter__(self) -> ServerProcess:
        if self._popen is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else ("stopped" if self._popen else "not started")
        return f"<ServerProcess {self.kind.name} {self.workload} pid={self.pid} {self.address} {state}>"


def _read_timeline(path: str) -> dict[str, Any] | None:
    """The timeline a stopped server wrote to *path* (None if it wrote none:
    it was killed, say)."""
    try:
        with open(path, encoding="utf-8") as src:
            data = json.load(src)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def with_calibration(workload: str, params: Mapping[str, float] | None) -> dict[str, float]:
    """*params* plus ``iterations_per_ms`` (this process's calibration, as a
    whole number) for the cpu and mixed workloads when it is missing."""
    from .workloads import calibrate, uses_calibration

    found = dict(params or {})
    if uses_calibration(workload) and "iterations_per_ms" not in found:
        found["iterations_per_ms"] = float(round(calibrate()))
    return found


def run_one(
    server: str | type,
    workload: str = "echo",
    *,
    clients: int = 8,
    rate: float | None = None,
    duration: float = 3.0,
    max_requests: int = 100_000,
    connection: str = "new",
    workload_params: Mapping[str, float] | None = None,
    timeout: float = 5.0,
    progress: Callable[[Any], None] | None = None,
    bar: bool | None = False,
    stop: threading.Event | None = None,
    timeline: bool | int = False,
) -> RunResult:
    """Start *server* in its own process, load it, stop it: one :class:`RunResult`.

    *server* is a kind name or a server class. A kind defined outside the
    sockserve package (a class or factory written in a notebook) is served
    in a thread of this process instead (:mod:`sockserve.measure.localserver`).

    Setting *stop* (from any thread) cancels the load early; the partial
    result is returned (its ``load["cancelled"]`` is True).

    *timeline* (True, or a cap) records when and where each request ran:
    the result's ``timeline`` (see :func:`timeline_cap`).
    """
    from ..load.runner import LoadRun, LoadSpec, run_load
    from .localserver import LocalServer, runs_here

    params = with_calibration(workload, workload_params)
    info = resolve_kind(server)
    cap = timeline_cap(timeline)
    here = runs_here(info)
    proc: Any = (LocalServer(info, workload, timeline=cap, **params) if here else
                 ServerProcess(info.name, workload, "127.0.0.1", 0, None, timeline=cap, **params))
    with proc:
        assert proc.address is not None and proc.pid is not None
        cores = usable_cores(proc.pid)
        spec = LoadSpec(
            address=proc.address,
            transport=info.transport,
            workload=workload,
            workload_params=params,
            mode="closed" if rate is None else "open",
            clients=clients,
            rate=rate,
            duration=duration,
            max_requests=max_requests,
            connection=connection,
            timeout=timeout,
            # In this process the thread count would include the caller's own.
            server_pid=None if here else proc.pid,
        )
        if stop is None:
            result = run_load(spec, progress=progress, bar=bar)
        else:
            with LoadRun(spec, progress=progress, bar=bool(bar)) as load:
                load.start()
                while not load.done:
                    if stop.wait(0.05):
                        load.cancel()
                        break
                result = load.wait()
        reports = [] if here else proc.reports()
    label = server if isinstance(server, str) else info.name
    run = RunResult.from_load(label, result, cores=cores, gil=gil_enabled(),
                              concurrency=info.concurrency)
    _use_reports(run, result, reports)
    run.timeline = proc.timeline
    run.served_in_process = here
    return run


def _use_reports(run: RunResult, result: Any, reports: list[FeedLine]) -> None:
    """Replace the sampled thread and child counts of *run* with the
    server's own per-interval peaks, over the load's time span."""
    start = float(result.started_monotonic)
    if not reports or not start:
        return
    end = start + float(result.elapsed)
    window = [r for r in reports if start < r.t <= end + r.interval]
    if not window:
        return
    run.threads = [[round(r.t - start, 4), float(r.threads)] for r in window]
    run.children = [[round(r.t - start, 4), float(r.children)] for r in window]
    run.sampling = "peak"
    run.sample_interval = window[0].interval
    run.server_iterations_per_ms = window[-1].iterations_per_ms


#: Requests a run's timeline keeps when asked for with ``timeline=True``.
RUN_TIMELINE_CAP = 2000


def timeline_cap(timeline: bool | int) -> int | None:
    """The cap *timeline* asks for: None for False, :data:`RUN_TIMELINE_CAP`
    for True, else the number itself (at least 1)."""
    if timeline is False or timeline is None:
        return None
    if timeline is True:
        return RUN_TIMELINE_CAP
    if not isinstance(timeline, int) or timeline < 1:
        raise ValueError(f"timeline must be True, False or a cap of at least 1 request, got {timeline!r}")
    return timeline


def compare(
    workload: str = "echo",
    servers: Sequence[str | type] = ("plain", "threading", "forking"),
    *,
    clients: int = 8,
    rate: float | None = None,
    duration: float = 3.0,
    max_requests: int = 100_000,
    connection: str = "new",
    workload_params: Mapping[str, float] | None = None,
    progress: Callable[[Any], None] | None = None,
    on_server: Callable[[str], None] | None = None,
    timeout: float = 5.0,
    bar: bool | None = False,
    stop: threading.Event | None = None,
    timeline: bool | int = False,
) -> Comparison:
    """Run the same load against each server kind in *servers*, one after another.

    Each server runs in its own process (:class:`ServerProcess`) and the load
    generator in another; the server's PID is passed to the load generator so
    its threads and children are sampled. Closed loop with *clients* clients,
    or open loop at *rate* requests per second when *rate* is given; every run
    lasts at most *duration* seconds and *max_requests* requests.

    For the cpu and mixed workloads the loop speed is calibrated once, here
    (or taken from ``workload_params["iterations_per_ms"]``), handed to every
    server, and recorded in ``Comparison.calibration`` with the same speed
    measured again after the runs.

    *progress* receives the load generator's :class:`sockserve.load.Progress`
    objects unchanged, a few times a second; *on_server* is called with the
    kind name just before each run starts (so a view knows which run the
    progress belongs to). Setting *stop* (a ``threading.Event``, from any
    thread) cancels the current run, keeps its partial result, and starts no
    further server (``Comparison.cancelled``). Unknown kinds raise ValueError
    before anything runs.

    *servers* may also hold server classes, and kinds defined outside the
    sockserve package (written in a notebook): those are served in this
    process (see :func:`run_one`). *timeline* (True, or a cap per server)
    records when and where each request ran, in each run's ``timeline``
    (``sockserve.plots.timeline.plot_timelines(comparison)`` draws them);
    off by default, and then nothing is recorded.
    """
    from .workloads import CALIBRATION_CLOCK, measure_iterations_per_ms

    names = list(servers)
    for name in names:
        resolve_kind(name)  # fail early, before any server starts
    timeline_cap(timeline)
    params = with_calibration(workload, workload_params)
    comparison = Comparison(
        workload=workload,
        workload_params=params,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if "iterations_per_ms" in params:
        comparison.calibration = {"iterations_per_ms": params["iterations_per_ms"],
                                  "clock": CALIBRATION_CLOCK, "by_pid": os.getpid()}
    for name in names:
        if stop is not None and stop.is_set():
            comparison.cancelled = True
            break
        if on_server is not None:
            on_server(name if isinstance(name, str) else resolve_kind(name).name)
        comparison.runs.append(run_one(
            name, workload, clients=clients, rate=rate, duration=duration,
            max_requests=max_requests, connection=connection,
            workload_params=params, timeout=timeout, progress=progress, bar=bar,
            stop=stop, timeline=timeline,
        ))
    if stop is not None and stop.is_set():
        comparison.cancelled = True
    elif comparison.calibration:
        comparison.calibration["measured_after"] = round(measure_iterations_per_ms())
    return comparison
