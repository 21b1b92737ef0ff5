"""The load generator's plain data: what to run and what it measured.

:class:`LoadSpec` (the request), :class:`LoadResult` (the answer) and
:class:`Progress` (a snapshot while it runs) hold no sockets, threads or
processes, so they can be stored, compared and plotted anywhere; each
round-trips through JSON with ``to_dict``/``from_dict``. Import them from
:mod:`sockserve.load`, which also runs the load.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from typing import Any

from ..core.histogram import Histogram

__all__ = [
    "OUTCOMES",
    "TRANSPORTS",
    "MODES",
    "CONNECTIONS",
    "TIMELINE_POINTS",
    "ENDINGS",
    "LoadSpec",
    "LoadResult",
    "Progress",
    "merge_results",
]

#: How a request can end. ``refused``: nothing listens (ECONNREFUSED, or no
#: Unix socket file); ``reset``: the server reset or closed the connection
#: before a whole reply line came; ``timeout``: no reply within ``timeout``;
#: ``error``: anything else (an ``ERR ...`` reply, out of descriptors or ports).
OUTCOMES: tuple[str, ...] = ("ok", "refused", "reset", "timeout", "error")
TRANSPORTS: tuple[str, ...] = ("tcp", "udp", "unix", "unix-dgram")
MODES: tuple[str, ...] = ("closed", "open")
CONNECTIONS: tuple[str, ...] = ("new", "persistent")

#: What can end a run, and what each means in words.
ENDINGS: dict[str, str] = {
    "duration": "its duration was up",
    "max_requests": "it reached its cap on requests (max_requests)",
    "cancelled": "it was stopped (cancelled)",
    "server gone": "the server process exited",
    "refused": "nothing accepts connections at the address any more (every request refused)",
}

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
            if self.rate is None or not 0 < self.rate < math.inf:
                raise ValueError(f"mode='open' needs a positive, finite rate (requests per second), "
                                 f"got {self.rate!r}")
        elif self.rate is not None:
            raise ValueError("rate applies to the open loop: pass mode='open' with it")
        if not self.duration > 0 or math.isinf(self.duration):
            raise ValueError(f"duration must be a finite, positive number of seconds, got {self.duration!r}")
        if self.max_requests < 0:
            raise ValueError(f"max_requests cannot be negative, got {self.max_requests!r}")
        if not self.timeout > 0 or math.isinf(self.timeout):
            raise ValueError(f"timeout must be a finite, positive number of seconds, got {self.timeout!r}")

    @classmethod
    def for_server(cls, server: Any, **fields: Any) -> LoadSpec:
        """A spec aimed at a bound sockserve (or socketserver) server object:
        its address and transport are read from it; other fields as given."""
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


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)


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
    time of the start, ``time.time()``), ``started_monotonic`` (the same
    instant on ``time.monotonic()``, the clock every process on the machine
    shares, to line up what a server reports), ``server_cpu_s`` (CPU
    seconds the server process and its children used during the run; None
    without ``server_pid`` or ``/proc``) and ``generator_cpu_s`` (CPU
    seconds the load generator's own process used), ``ended_by`` (what
    ended the run: :data:`ENDINGS`) and ``abandoned`` (requests still in
    flight when a cancel or a vanished server cut the run short: in no
    outcome, since nobody waited for them).
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
    started_monotonic: float = 0.0
    server_cpu_s: float | None = None
    generator_cpu_s: float | None = None
    ended_by: str = ""
    abandoned: int = 0
    busy_cpu_s: float | None = None
    busy_cpus: int = 0
    cpu_window_s: float = 0.0

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
            "started_monotonic": self.started_monotonic,
            "server_cpu_s": self.server_cpu_s,
            "generator_cpu_s": self.generator_cpu_s,
            "ended_by": self.ended_by,
            "abandoned": self.abandoned,
            "busy_cpu_s": self.busy_cpu_s,
            "busy_cpus": self.busy_cpus,
            "cpu_window_s": self.cpu_window_s,
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
            started_monotonic=float(data.get("started_monotonic", 0.0)),
            server_cpu_s=_maybe_float(data.get("server_cpu_s")),
            generator_cpu_s=_maybe_float(data.get("generator_cpu_s")),
            ended_by=str(data.get("ended_by", "")),
            abandoned=int(data.get("abandoned", 0)),
            busy_cpu_s=_maybe_float(data.get("busy_cpu_s")),
            busy_cpus=int(data.get("busy_cpus", 0)),
            cpu_window_s=float(data.get("cpu_window_s", 0.0)),
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
        # Datagram clients have no connections: one socket per client, always.
        over = f" ({spec.connection} connections)" if spec.transport in ("tcp", "unix") else ""
        lines = [
            f"{spec.workload} over {spec.transport}{over}, {how}",
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
        if self.ended_by and self.ended_by != "duration":
            line = f"ended early: {ENDINGS.get(self.ended_by, self.ended_by)}"
            if self.ended_by == "max_requests":
                line += f" of {spec.max_requests:,}"
            if self.abandoned:
                line += f"; {self.abandoned} requests in flight were abandoned"
            lines.append(line)
        elif self.cancelled:
            lines.append("cancelled before the end")
        for outcome, message in self.examples.items():
            lines.append(f"first {outcome}: {message}")
        return "\n".join(lines)


def _shifted(points: list[tuple[float, Any]], by: float) -> list[tuple[float, Any]]:
    return [(round(t + by, 6), n) for t, n in points]


def merge_results(results: list[LoadResult]) -> LoadResult:
    """Several runs of one spec (the rounds of a comparison) as one result.

    Counts, outcomes, elapsed and CPU seconds add up; the latency histograms
    merge; the time series follow one another, each shifted by the elapsed
    time of the runs before it. The spec is the first's, with the runs'
    durations and request caps added up. ``started_at`` and
    ``started_monotonic`` are the first run's, ``ended_by`` the last's.
    A CPU figure is None when any run lacks it.
    """
    if not results:
        raise ValueError("merge_results needs at least one result")
    first, last = results[0], results[-1]
    latency = Histogram()
    outcomes = {name: 0 for name in OUTCOMES}
    threads: list[tuple[float, int]] = []
    children: list[tuple[float, int]] = []
    timeline: list[tuple[float, float]] = []
    offset = 0.0
    examples: dict[str, str] = {}
    for result in results:
        latency.merge(result.latency)
        for name, n in result.outcomes.items():
            outcomes[name] = outcomes.get(name, 0) + n
        threads += _shifted(result.threads, offset)
        children += _shifted(result.children, offset)
        timeline += _shifted(result.timeline, offset)
        for name, text in result.examples.items():
            examples.setdefault(name, text)
        offset += result.elapsed

    def total(values: list[float | None]) -> float | None:
        return None if any(v is None for v in values) else sum(v or 0.0 for v in values)

    elapsed = sum(r.elapsed for r in results)
    spec = LoadSpec.from_dict({**first.spec.to_dict(), "duration": sum(r.spec.duration for r in results),
                               "max_requests": sum(r.spec.max_requests for r in results)})
    return LoadResult(
        spec=spec,
        requests=sum(r.requests for r in results),
        outcomes=outcomes,
        elapsed=elapsed,
        throughput_rps=outcomes.get("ok", 0) / elapsed if elapsed > 0 else 0.0,
        latency=latency,
        threads=threads,
        children=children,
        timeline=timeline,
        unsent=sum(r.unsent for r in results),
        cancelled=any(r.cancelled for r in results),
        examples=examples,
        started_at=first.started_at,
        started_monotonic=first.started_monotonic,
        server_cpu_s=total([r.server_cpu_s for r in results]),
        generator_cpu_s=total([r.generator_cpu_s for r in results]),
        ended_by=last.ended_by,
        abandoned=sum(r.abandoned for r in results),
        busy_cpu_s=total([r.busy_cpu_s for r in results]),
        busy_cpus=first.busy_cpus,
        cpu_window_s=sum(r.cpu_window_s for r in results),
    )


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a running load, sent a few times a second.

    ``latency_ms`` holds ``p50`` and ``p99`` so far (cumulative, over every
    reply since the start); ``recent_ms`` the same for the replies since
    the previous Progress only (per interval; empty when none came, with
    their ``count``); ``outcomes`` every outcome's count so far;
    ``threads``/``children`` the latest sample of the server (None without
    ``server_pid``). ``max_requests`` (an addition) lets :attr:`fraction`
    say how far along the run is by either bound.
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
    outcomes: dict[str, int] = field(default_factory=dict)
    recent_ms: dict[str, float] = field(default_factory=dict)

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
            "outcomes": dict(self.outcomes),
            "recent_ms": dict(self.recent_ms),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(**{**data, "latency_ms": dict(data["latency_ms"]),
                      "outcomes": dict(data.get("outcomes", {})),
                      "recent_ms": dict(data.get("recent_ms", {}))})
