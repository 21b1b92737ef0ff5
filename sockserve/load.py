"""The load generator: drive a server with many clients and measure it.

Callers use :func:`run_load` (blocking) or :class:`LoadRun` (a handle that
runs in the background, for widgets), both with a :class:`LoadSpec`; they get
a :class:`LoadResult` back. Everything here is plain data that round-trips to
JSON (``to_dict``/``from_dict``).

Where the load runs: always in a separate process (``python -m
sockserve.loadworker``, see :mod:`sockserve.loadworker`), never in the
caller's process, so neither a notebook kernel's GIL nor a server running in
the caller distorts the figures. The spec goes to the worker as one JSON line
on its stdin; progress and the result come back as JSON lines on its stdout.
Inside the worker each client is a thread.

What is measured:

* ``mode="closed"``: ``clients`` clients each send a request, wait for its
  reply, and send the next one at once. Latency runs from the send.
* ``mode="open"``: requests are *scheduled* at a fixed ``rate`` (request *i*
  at ``i / rate`` seconds) and sent by up to ``clients`` clients at once.
  Latency runs from each request's scheduled time, not its actual send, so
  when the server stalls (or the generator falls behind) the requests that
  should have gone out meanwhile count their full delay: coordinated
  omission cannot hide a stall (the correction wrk2 makes).
* Every run stops at ``max_requests`` requests or ``duration`` seconds,
  whichever comes first; requests in flight then get at most ``timeout``
  more and are counted as ``"timeout"`` if they do not make it.
* Each request ends as one of :data:`OUTCOMES`. ``latency`` and
  ``timeline`` hold the successful ones.
* With ``server_pid`` the worker samples the server's thread count and
  child-process count 20 times a second (Linux ``/proc``; empty elsewhere).
"""

from __future__ import annotations

import json
import logging
import math
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from .histogram import Histogram

__all__ = [
    "OUTCOMES",
    "TRANSPORTS",
    "MODES",
    "CONNECTIONS",
    "LoadSpec",
    "LoadResult",
    "Progress",
    "LoadRun",
    "run_load",
    "LoadWorkerError",
]

log = logging.getLogger("sockserve")

#: How a request can end. ``refused``: nothing listens (ECONNREFUSED, or no
#: Unix socket file); ``reset``: the server reset or closed the connection
#: before a whole reply line came; ``timeout``: no reply within ``timeout``;
#: ``error``: anything else (an ``ERR ...`` reply, out of descriptors or ports).
OUTCOMES: tuple[str, ...] = ("ok", "refused", "reset", "timeout", "error")
TRANSPORTS: tuple[str, ...] = ("tcp", "udp", "unix", "unix-dgram")
MODES: tuple[str, ...] = ("closed", "open")
CONNECTIONS: tuple[str, ...] = ("new", "persistent")

#: The timeline keeps at most about this many points (evenly thinned).
TIMELINE_POINTS = 5000


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(valid)}; got {value!r}")


@dataclass
class LoadSpec:
    """What to run: where, how hard, for how long.

    ``address`` is ``(host, port)`` for tcp/udp or a socket path for unix and
    unix-dgram. ``clients`` is the number of concurrent clients (closed loop)
    or the most requests in flight at once (open loop); ``rate`` (requests per
    second) is required with ``mode="open"`` and refused otherwise.
    ``connection`` is ``"new"`` (a connection per request, socketserver's
    model) or ``"persistent"`` (one per client, reused); datagram clients
    always keep one socket per client. ``timeout`` bounds each request from
    its send to its reply. The constructor checks every field (ValueError).
    """

    address: str | tuple[str, int]
    transport: str = "tcp"
    workload: str = "echo"
    workload_params: dict[str, float] = field(default_factory=dict)
    mode: str = "closed"
    clients: int = 8
    rate: float | None = None
    duration: float = 5.0
    max_requests: int = 100_000
    connection: str = "new"
    timeout: float = 5.0
    server_pid: int | None = None

    def __post_init__(self) -> None:
        _choice("transport", self.transport, TRANSPORTS)
        _choice("mode", self.mode, MODES)
        _choice("connection", self.connection, CONNECTIONS)
        if isinstance(self.address, list):
            self.address = (str(self.address[0]), int(self.address[1]))
        if self.transport in ("tcp", "udp"):
            if not (isinstance(self.address, tuple) and len(self.address) == 2):
                raise ValueError(f"a {self.transport} address is (host, port); got {self.address!r}")
        elif not isinstance(self.address, str):
            raise ValueError(f"a {self.transport} address is a socket path; got {self.address!r}")
        if self.clients < 1:
            raise ValueError(f"clients must be at least 1, got {self.clients!r}")
        if self.mode == "open":
            if self.rate is None or not self.rate > 0:
                raise ValueError("mode='open' needs a positive rate (requests per second)")
        elif self.rate is not None:
            raise ValueError("rate applies to the open loop: pass mode='open' with it")
        if not self.duration > 0 or math.isinf(self.duration):
            raise ValueError(f"duration must be a positive number of seconds, got {self.duration!r}")
        if self.max_requests < 0:
            raise ValueError(f"max_requests cannot be negative, got {self.max_requests!r}")
        if not self.timeout > 0 or math.isinf(self.timeout):
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")

    @classmethod
    def for_server(cls, server: Any, **fields: Any) -> LoadSpec:
        """A spec aimed at a bound sockserve (or socketserver) server object:
        its address and transport are read from it; other fields as given."""
        import socket

        unix = server.address_family == getattr(socket, "AF_UNIX", None)
        stream = server.socket_type == socket.SOCK_STREAM
        transport = ("unix" if stream else "unix-dgram") if unix else ("tcp" if stream else "udp")
        address = server.server_address
        if not unix:
            address = (str(address[0]), int(address[1]))
        return cls(address=address, transport=transport, **fields)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy; :meth:`from_dict` reverses it."""
        return {
            "address": list(self.address) if isinstance(self.address, tuple) else self.address,
            "transport": self.transport,
            "workload": self.workload,
            "workload_params": dict(self.workload_params),
            "mode": self.mode,
            "clients": self.clients,
            "rate": self.rate,
            "duration": self.duration,
            "max_requests": self.max_requests,
            "connection": self.connection,
            "timeout": self.timeout,
            "server_pid": self.server_pid,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadSpec:
        """Rebuild a spec saved by :meth:`to_dict`."""
        values = dict(data)
        address = values.pop("address")
        if isinstance(address, list):
            address = (str(address[0]), int(address[1]))
        return cls(address=address, **values)


def _pairs(data: Any) -> list[tuple[float, int]]:
    return [(float(t), int(n)) for t, n in data]


@dataclass(eq=False)
class LoadResult:
    """What a run measured. Plain data; ``to_dict``/``from_dict`` for JSON.

    ``requests`` counts requests sent (each with one outcome in
    ``outcomes``); ``elapsed`` runs from the first send to the end of the
    last request; ``throughput_rps`` is successful requests per second of
    ``elapsed``. ``latency`` holds the successful requests' latencies in
    seconds. ``threads``/``children`` are ``(seconds since start, count)``
    samples of the server process (empty without ``server_pid``).
    ``timeline`` is ``(seconds since start, latency ms)`` per successful
    request, by send time (scheduled time in the open loop), thinned evenly
    to about 5000 points.

    Beyond the shared contract: ``unsent`` (open loop: requests scheduled
    before the end that never got a free client, so were never sent: a
    sign the generator or ``clients`` was the limit), ``cancelled``
    (``LoadRun.cancel()`` ended the run early), ``examples`` (outcome -> the
    first error message seen, to say *why*), ``started_at`` (wall-clock
    time of the start, ``time.time()``).
    """

    spec: LoadSpec
    requests: int
    outcomes: dict[str, int]
    elapsed: float
    throughput_rps: float
    latency: Histogram
    threads: list[tuple[float, int]] = field(default_factory=list)
    children: list[tuple[float, int]] = field(default_factory=list)
    timeline: list[tuple[float, float]] = field(default_factory=list)
    unsent: int = 0
    cancelled: bool = False
    examples: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0

    @property
    def ok(self) -> int:
        """Requests that got a reply."""
        return self.outcomes.get("ok", 0)

    @property
    def errors(self) -> int:
        """Requests that did not get a reply, whatever the reason."""
        return self.requests - self.ok

    def latency_ms(self) -> dict[str, float]:
        """p50/p90/p99/p999/max/mean of the successful requests, in ms."""
        return self.latency.summary_ms()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy; :meth:`from_dict` reverses it exactly."""
        return {
            "spec": self.spec.to_dict(),
            "requests": self.requests,
            "outcomes": {name: self.outcomes.get(name, 0) for name in OUTCOMES},
            "elapsed": self.elapsed,
            "throughput_rps": self.throughput_rps,
            "latency": self.latency.to_dict(),
            "latency_ms": self.latency_ms(),
            "threads": [list(p) for p in self.threads],
            "children": [list(p) for p in self.children],
            "timeline": [list(p) for p in self.timeline],
            "unsent": self.unsent,
            "cancelled": self.cancelled,
            "examples": dict(self.examples),
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadResult:
        """Rebuild a result saved by :meth:`to_dict`."""
        return cls(
            spec=LoadSpec.from_dict(data["spec"]),
            requests=int(data["requests"]),
            outcomes={name: int(n) for name, n in data["outcomes"].items()},
            elapsed=float(data["elapsed"]),
            throughput_rps=float(data["throughput_rps"]),
            latency=Histogram.from_dict(data["latency"]),
            threads=_pairs(data.get("threads", ())),
            children=_pairs(data.get("children", ())),
            timeline=[(float(t), float(ms)) for t, ms in data.get("timeline", ())],
            unsent=int(data.get("unsent", 0)),
            cancelled=bool(data.get("cancelled", False)),
            examples={str(k): str(v) for k, v in data.get("examples", {}).items()},
            started_at=float(data.get("started_at", 0.0)),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LoadResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def summary(self) -> str:
        """A few human-readable lines: counts, throughput, latency, server."""
        spec = self.spec
        how = (
            f"open loop at {spec.rate:g} req/s (max {spec.clients} in flight)"
            if spec.mode == "open"
            else f"closed loop, {spec.clients} clients"
        )
        lines = [
            f"{spec.workload} over {spec.transport} ({spec.connection} connections), {how}",
            f"{self.requests} requests in {self.elapsed:.2f} s: {self.throughput_rps:.1f} ok/s",
            "outcomes: " + ", ".join(f"{name} {self.outcomes.get(name, 0)}" for name in OUTCOMES),
        ]
        if self.latency.count:
            ms = self.latency_ms()
            lines.append(
                "latency ms: "
                + "  ".join(f"{key} {ms[key]:.2f}" for key in ("p50", "p90", "p99", "p999", "max"))
            )
        if self.threads:
            lines.append(f"server threads: max {max(n for _, n in self.threads)}")
        if self.children:
            lines.append(f"server children: max {max(n for _, n in self.children)}")
        if self.unsent:
            lines.append(f"unsent (generator fell behind): {self.unsent}")
        if self.cancelled:
            lines.append("cancelled before the end")
        for outcome, message in self.examples.items():
            lines.append(f"first {outcome}: {message}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running load, sent a few times a second.

    ``latency_ms`` holds ``p50`` and ``p99`` so far; ``threads``/``children``
    the latest sample of the server (None without ``server_pid``).
    ``max_requests`` (an addition) lets :attr:`fraction` say how far along
    the run is by either bound.
    """

    elapsed: float
    duration: float
    requests: int
    ok: int
    errors: int
    latency_ms: dict[str, float]
    threads: int | None
    children: int | None
    done: bool
    max_requests: int = 0

    @property
    def fraction(self) -> float:
        """0..1: the larger of time used and requests sent, as a fraction."""
        if self.done:
            return 1.0
        by_time = self.elapsed / self.duration if self.duration else 0.0
        by_count = self.requests / self.max_requests if self.max_requests else 0.0
        return min(1.0, max(by_time, by_count))

    def to_dict(self) -> dict[str, Any]:
        return {
            "elapsed": self.elapsed,
            "duration": self.duration,
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "latency_ms": dict(self.latency_ms),
            "threads": self.threads,
            "children": self.children,
            "done": self.done,
            "max_requests": self.max_requests,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(**{**data, "latency_ms": dict(data["latency_ms"])})


class LoadWorkerError(RuntimeError):
    """The worker process failed (its stderr is in the message)."""


class TextBar:
    """A one-line progress bar redrawn in place on a terminal stream."""

    def __init__(self, stream: IO[str], width: int = 24) -> None:
        self._stream = stream
        self._width = width
        self._drawn = False

    def update(self, p: Progress) -> None:
        filled = round(p.fraction * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        line = (
            f"\r[{bar}] {p.fraction * 100:3.0f}% {p.elapsed:5.1f}s "
            f"{p.requests} req {p.errors} err "
            f"p50 {p.latency_ms.get('p50', 0.0):.2f}ms p99 {p.latency_ms.get('p99', 0.0):.2f}ms"
        )
        if p.threads is not None:
            line += f" thr {p.threads}"
        if p.children:
            line += f" kids {p.children}"
        self._stream.write(line + "\x1b[K")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: Run the worker from this very sockserve (installed or not): the package's
#: parent directory goes first on sys.path, before the current directory
#: that ``python -m`` would put there.
_WORKER_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from sockserve import loadworker; loadworker.entry()"
)


#: Extra seconds the parent allows beyond duration + timeout (process start,
#: imports, a loaded machine) before it kills the worker as hung.
WATCHDOG_GRACE = 30.0


class LoadRun:
    """One load run in a worker process, watched from this one.

    Use ``LoadRun(spec).start()`` and then read ``progress`` (the latest
    :class:`Progress`, or None), ``done``, ``result`` (a :class:`LoadResult`
    once done) and ``error``; ``cancel()`` ends the run early (requests in
    flight get their timeout, and the partial result arrives as usual);
    ``wait(timeout)`` blocks for the result. ``run()`` does the whole run in
    the calling thread instead of starting a background one (what
    :func:`run_load` does). Also a context manager: leaving it cancels an
    unfinished run and waits for it.

    ``progress`` (a callable) is called with each :class:`Progress` from the
    thread that reads the worker (the background thread after ``start()``);
    with ``bar=True`` a text bar is drawn on ``sys.stderr``.

    Thread safety: ``cancel()``, ``wait()`` and the attributes may be used
    from any thread.
    """

    def __init__(
        self,
        spec: LoadSpec,
        progress: Callable[[Progress], None] | None = None,
        bar: bool = False,
    ) -> None:
        self.spec = spec
        self.progress: Progress | None = None
        self.result: LoadResult | None = None
        self.error: BaseException | None = None
        self._callback = progress
        self._bar = TextBar(sys.stderr) if bar else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._cancelled = False

    @property
    def done(self) -> bool:
        """True once the run ended (with a result or an error)."""
        return self._finished.is_set()

    @property
    def pid(self) -> int | None:
        """The worker process's PID (None before start)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> LoadRun:
        """Start the worker and a background thread that follows it."""
        self._spawn()
        self._thread = threading.Thread(target=self._follow, name="sockserve-load", daemon=True)
        self._thread.start()
        return self

    def run(self) -> LoadResult:
        """Run to the end in this thread and return the result."""
        self._spawn()
        self._follow()
        return self.wait()

    def cancel(self) -> None:
        """Ask the worker to stop sending; the partial result still comes."""
        with self._lock:
            self._cancelled = True
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdin.closed:
                return
            try:
                proc.stdin.write(b"cancel\n")
                proc.stdin.flush()
            except OSError:
                pass  # the worker already ended

    def wait(self, timeout: float | None = None) -> LoadResult:
        """Block until the run ends; return its result or raise its error.
        TimeoutError if it has not ended within *timeout* seconds."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"the load run did not end within {timeout} s")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def __enter__(self) -> LoadRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc is not None:
            if not self.done:
                self.cancel()
            try:
                self.wait()
            except BaseException:
                if exc_info[0] is None:
                    raise

    # -- the parent's side of the worker protocol ----------------------------

    def _spawn(self) -> None:
        if self._proc is not None:
            raise RuntimeError("a LoadRun can be started only once")
        self._stderr = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOT, _package_root()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                close_fds=True,
            )
        except BaseException:
            self._stderr.close()
            raise
        assert proc.stdin is not None
        with self._lock:
            self._proc = proc
            proc.stdin.write(json.dumps(self.spec.to_dict()).encode() + b"\n")
            proc.stdin.flush()
            if self._cancelled:
                proc.stdin.write(b"cancel\n")
                proc.stdin.flush()

    def _follow(self) -> None:
        """Read the worker's lines until its result (or its end)."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        watchdog = time.monotonic() + self.spec.duration + 2 * self.spec.timeout + WATCHDOG_GRACE
        try:
            for message in _lines(proc.stdout, watchdog):
                kind = message.get("type")
                if kind == "progress":
                    self._note_progress(Progress.from_dict(message["progress"]))
                elif kind == "result":
                    self.result = LoadResult.from_dict(message["result"])
                    break
            if self.result is None:
                proc.wait(5)
                raise LoadWorkerError(
                    f"the load worker ended without a result (exit status {proc.returncode})"
                    + self._stderr_tail()
                )
            self._note_progress(_final_progress(self.result))
        except BaseException as exc:
            self.error = exc
        finally:
            self._close()
            self._finished.set()
        if self._thread is None and isinstance(self.error, (KeyboardInterrupt, SystemExit)):
            raise self.error

    def _note_progress(self, p: Progress) -> None:
        self.progress = p
        if self._bar is not None:
            self._bar.update(p)
        if self._callback is not None:
            try:
                self._callback(p)
            except Exception:
                log.exception("the load progress callback failed; the run goes on")

    def _stderr_tail(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return "; its stderr:\n" + text[-3000:] if text else ""

    def _close(self) -> None:
        """Reap the worker (killing it if it has not ended) and close pipes."""
        if self._bar is not None:
            self._bar.close()
        proc = self._proc
        assert proc is not None
        with self._lock:
            if proc.stdin is not None and not proc.stdin.closed:
                try:
                    proc.stdin.close()  # EOF also tells a live worker to stop
                except OSError:
                    pass
        if self.result is None:
            proc.kill()  # interrupted or hung: its result is not wanted any more
        try:
            proc.wait(self.spec.timeout + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            if proc.returncode and self.error is None and self.result is None:
                self.error = LoadWorkerError(f"load worker exit status {proc.returncode}" + self._stderr_tail())
            self._stderr.close()


def _lines(stream: IO[bytes], watchdog: float) -> Any:
    """JSON messages from the worker's stdout; LoadWorkerError if it hangs
    past *watchdog* (a time.monotonic() value)."""
    fd = stream.fileno()
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = watchdog - time.monotonic()
            if left <= 0:
                raise LoadWorkerError("the load worker overran its time bound and was killed")
            if not selector.select(min(left, 1.0)):
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                if line.strip():
                    yield json.loads(line)


def _final_progress(result: LoadResult) -> Progress:
    ms = result.latency_ms()
    return Progress(
        elapsed=result.elapsed,
        duration=result.spec.duration,
        requests=result.requests,
        ok=result.ok,
        errors=result.errors,
        latency_ms={"p50": ms["p50"], "p99": ms["p99"]},
        threads=result.threads[-1][1] if result.threads else None,
        children=result.children[-1][1] if result.children else None,
        done=True,
        max_requests=result.spec.max_requests,
    )


def run_load(
    spec: LoadSpec,
    progress: Callable[[Progress], None] | None = None,
    bar: bool | None = None,
) -> LoadResult:
    """Run *spec* in a worker process and return what it measured.

    Blocks until the run ends (at most about ``duration + timeout``).
    *progress* is called a few times a second with a :class:`Progress`, in
    this thread. *bar*: draw a text progress bar on stderr; None (default)
    draws it only when stderr is a terminal. Interrupting (Ctrl-C) stops the
    worker and re-raises. Raises :class:`LoadWorkerError` if the worker fails.
    """
    if bar is None:
        bar = sys.stderr is not None and sys.stderr.isatty()
    return LoadRun(spec, progress=progress, bar=bar).run()
