"""Ready-made workloads: request handlers that echo, wait, or burn CPU.

The wire protocol, shared by the servers here and the load generator
(defined once, in :mod:`sockserve.load.protocol`):

* a request is one line of ASCII, ``b"<word> [<ms>]\\n"``, e.g. ``b"echo\\n"``,
  ``b"io 10\\n"``, ``b"cpu 30\\n"``; on a datagram server the whole datagram is
  the line and its trailing ``b"\\n"`` is optional;
* the reply is one line: the request line itself (with a ``b"\\n"`` added if
  the datagram had none), sent once the work is done. A malformed request gets
  ``b"ERR <why>\\n"`` and the connection stays open;
* lines are read with a bound, :data:`MAX_LINE` (64 KiB): a longer line gets
  ``b"ERR line too long\\n"`` and the connection is closed, so a client can
  never make the server's memory grow without bound;
* a stream handler serves line after line until the client closes, so the
  same handler serves "new connection per request" and "persistent
  connection" clients.

The workloads (``WORKLOAD_NAMES``) and their parameters (all in ms, as
floats):

=======  ==============================  ====================================
name     server side                     parameters (default)
=======  ==============================  ====================================
echo     reply at once                   none
io       ``time.sleep`` for N ms         ``delay_ms`` (10)
cpu      pure-Python work for about      ``work_ms`` (10)
         N ms: holds the GIL
slow     like echo; the *client* sends   ``trickle_ms`` (5): pause between
         one byte at a time              the request's bytes
mixed    like cpu; the client sends 1    ``light_ms`` (1), ``heavy_ms`` (50),
         request in 10 as ``cpu 50``     ``heavy_every`` (10)
         and the rest as ``cpu 1``
=======  ==============================  ====================================

For io and cpu the number in the line wins over the parameter, which is only
the default for a line that has none (and the number the client sends).

Use :func:`get_workload` for both sides (``.handler`` for the server,
``.request(i)`` and ``.trickle_s`` for the client) or :func:`handler_for`
for the server side only::

    server = sockserve.ThreadingTCPServer(("127.0.0.1", 0), handler_for("io", delay_ms=20))

Every handler is a class defined at module level (parametrized variants
pickle as a call that rebuilds them), so handlers can be sent to other
processes and used as ``RequestHandlerClass`` by every server class.
"""

from __future__ import annotations

import copyreg
import functools
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from ..core.handlers import BaseRequestHandler
from ..load.protocol import (
    CALIBRATED,
    DEFAULTS,
    LINE_TOO_LONG,
    MAX_LINE,
    MAX_MS,
    WORKLOAD_NAMES,
    format_ms,
    parse_ms,
    request_line,
    trickle_seconds,
    wait_ms_per_request,
    work_ms_per_request,
    workload_values,
)

# The handlers have an attribute named ``socket`` (as DatagramRequestHandler
# does), which hides the module inside their class bodies.
_Socket = socket.socket

__all__ = [
    "MAX_LINE",
    "MAX_MS",
    "LINE_TOO_LONG",
    "Workload",
    "WORKLOAD_NAMES",
    "get_workload",
    "fixed_work",
    "handler_for",
    "WorkloadHandler",
    "EchoHandler",
    "IoHandler",
    "CpuHandler",
    "SlowHandler",
    "MixedHandler",
    "calibrate",
    "measure_iterations_per_ms",
    "CALIBRATION_CLOCK",
    "burn_cpu",
    "work_ms_per_request",
    "wait_ms_per_request",
    "uses_calibration",
]


# After refusing an over-long line, the rest of it is read and thrown away
# (at most this much, for at most this long) so that closing the socket does
# not reset the connection and destroy the error reply on its way.
_DRAIN_BYTES = 1 << 20
_DRAIN_SECONDS = 1.0


# -- pure-Python CPU work -------------------------------------------------------

_calibration_lock = threading.Lock()
_iterations_per_ms: float | None = None

#: The calibration's clock: CPU time of the calibrating thread, so time the
#: thread spends waiting for a core (a busy neighbour, other processes) does
#: not count. ``time.thread_time`` where the platform has it.
_cpu_clock: Callable[[], float] = getattr(time, "thread_time", time.process_time)
CALIBRATION_CLOCK = "thread_time" if hasattr(time, "thread_time") else "process_time"

_CALIBRATION_RUN_S = 0.004  # CPU seconds of one timed run
_CALIBRATION_RUNS = 12  # timed runs; the fastest is kept


def _spin(iterations: int) -> int:
    """The unit of CPU work: an interpreted loop that holds the GIL."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def _time_spin(iterations: int) -> float:
    """CPU seconds (of this thread) that *iterations* of :func:`_spin` take."""
    began = _cpu_clock()
    _spin(iterations)
    return _cpu_clock() - began


def measure_iterations_per_ms() -> float:
    """Time the spin loop by CPU time, now, and return iterations per CPU ms.

    About 50 ms of CPU: twelve runs of about 4 ms, the fastest kept (a run
    can only be slowed, by a cache another process evicted or a host that
    stole the core, never sped up). Unlike a wall-clock timing it does not
    depend on how many other processes share the core.
    """
    iterations = 2_000
    _spin(iterations)  # warm up
    while _time_spin(iterations) < _CALIBRATION_RUN_S:
        iterations *= 2
    best = min(_time_spin(iterations) for _ in range(_CALIBRATION_RUNS))
    return iterations / (max(best, 1e-9) * 1000.0)


def calibrate(force: bool = False) -> float:
    """Iterations of the spin loop that make one ms of CPU work, in this process.

    Measured once per process (:func:`measure_iterations_per_ms`), on first
    use or when *force* is true; later calls return the stored figure. A
    comparison measures it once, in the process that starts it, and hands
    the figure to every server (the ``iterations_per_ms`` parameter of the
    cpu and mixed workloads), so that every server does the same work per
    request. A server given no figure calibrates itself; a forked child
    inherits its parent's.
    """
    global _iterations_per_ms
    with _calibration_lock:
        if _iterations_per_ms is not None and not force:
            return _iterations_per_ms
        _iterations_per_ms = measure_iterations_per_ms()
        return _iterations_per_ms


def burn_cpu(ms: float, iterations_per_ms: float | None = None) -> None:
    """Do *ms* milliseconds of pure-Python work: ``ms * iterations_per_ms``
    iterations of the spin loop (default: this process's :func:`calibrate`).

    The amount of work is fixed, not the time: when other threads compete for
    the GIL, or other processes for the cores, it takes longer. That is the
    point of the cpu workload.
    """
    if ms > 0:
        rate = iterations_per_ms if iterations_per_ms else calibrate()
        _spin(round(ms * rate))


# -- handlers ------------------------------------------------------------------------


class _HandlerType(type):
    """Metaclass of the workload handlers; it only exists so that
    :func:`copyreg.pickle` can teach pickle how to rebuild the parametrized
    subclasses that :func:`handler_for` makes."""


class WorkloadHandler(BaseRequestHandler, metaclass=_HandlerType):
    """Serves the workload protocol on stream *and* datagram servers.

    It looks at ``self.request``: a socket (stream server) is served line
    after line until the client closes it; a ``(data, socket)`` pair
    (datagram server) is one request, answered with one datagram.

    Override :meth:`respond` (line in, reply out) to make a new workload; the
    rest (framing, bounds, errors) is shared.

    Class attributes that tune it:

    ``default_ms`` (0)
        the ms of a request line that names none.
    ``max_line`` (MAX_LINE)
        longest request line read; a longer one is refused and, on a stream,
        the connection closed.
    ``timeout`` (None)
        seconds a stream read or write may block before ``TimeoutError``
        (None: forever). Set it to protect a server from silent clients.
    """

    workload: ClassVar[str] = "echo"
    default_ms: ClassVar[float] = 0.0
    max_line: ClassVar[int] = MAX_LINE
    timeout: ClassVar[float | None] = None

    connection: _Socket | None
    rfile: Any
    packet: bytes
    socket: _Socket

    def setup(self) -> None:
        """Stream: make ``rfile`` (buffered, read with a bound). Datagram:
        take ``packet`` and the server's ``socket`` from the request."""
        if isinstance(self.request, tuple):
            self.packet, self.socket = self.request
            self.connection = None
            self.rfile = None
            return
        self.connection = self.request
        if self.timeout is not None:
            self.request.settimeout(self.timeout)
        self.rfile = self.request.makefile("rb")

    def handle(self) -> None:
        """Answer each request line (stream: until EOF; datagram: the one)."""
        if self.connection is None:
            if len(self.packet) > self.max_line:
                reply = LINE_TOO_LONG
            else:
                reply = self.respond(self.packet)
            self.socket.sendto(reply, self.client_address)
            return
        while True:
            line = self.rfile.readline(self.max_line)
            if not line:
                return
            if len(line) >= self.max_line and not line.endswith(b"\n"):
                self._refuse_long_line(self.connection)
                return
            self.connection.sendall(self.respond(line))

    def finish(self) -> None:
        """Close ``rfile`` (the server closes the socket itself)."""
        if self.rfile is not None:
            self.rfile.close()

    def respond(self, line: bytes) -> bytes:
        """The reply to one request line (here: the line itself). Override it."""
        return line if line.endswith(b"\n") else line + b"\n"

    def _refuse_long_line(self, connection: _Socket) -> None:
        connection.sendall(LINE_TOO_LONG)
        try:
            connection.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + _DRAIN_SECONDS
        discarded = 0
        try:
            while discarded < _DRAIN_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                connection.settimeout(left)
                chunk = self.rfile.read1(64 * 1024)
                if not chunk:
                    break
                discarded += len(chunk)
        except OSError:
            pass  # timed out or reset: the client has what it needs


class _TimedHandler(WorkloadHandler):
    """A workload whose request line may carry a duration in ms."""

    def respond(self, line: bytes) -> bytes:
        try:
            ms = parse_ms(line, self.default_ms)
        except ValueError as exc:
            return f"ERR bad request: {exc}\n".encode("ascii", "backslashreplace")
        self.work(ms)
        return super().respond(line)

    def work(self, ms: float) -> None:
        """Spend *ms* milliseconds serving. Override it."""


class EchoHandler(WorkloadHandler):
    """echo: reply with the request line at once."""

    workload = "echo"


class SlowHandler(EchoHandler):
    """slow: the server side is echo; the client trickles its request."""

    workload = "slow"


class IoHandler(_TimedHandler):
    """io: sleep (releasing the GIL, like waiting for a disk or a database)."""

    workload = "io"
    default_ms = 10.0

    def work(self, ms: float) -> None:
        time.sleep(ms / 1000.0)


class CpuHandler(_TimedHandler):
    """cpu: pure-Python work for N ms of CPU, holding the GIL throughout.

    ``iterations_per_ms`` (None: the process's own :func:`calibrate`) is the
    calibration that turns ms into loop iterations; a comparison sets it,
    through the ``iterations_per_ms`` workload parameter, to the same figure
    in every server.
    """

    workload = "cpu"
    default_ms = 10.0
    iterations_per_ms: ClassVar[float | None] = None

    def work(self, ms: float) -> None:
        burn_cpu(ms, self.iterations_per_ms)


class MixedHandler(CpuHandler):
    """mixed: cpu, honouring the number in each line (the client mixes 1 and 50)."""

    workload = "mixed"
    default_ms = 1.0


# -- parametrized handler classes (cached, and picklable) ---------------------------

_BY_NAME: dict[str, type[WorkloadHandler]] = {
    cls.__name__: cls for cls in (EchoHandler, SlowHandler, IoHandler, CpuHandler, MixedHandler)
}
_VARIANT_KEYS: dict[type, tuple[str, float, float | None]] = {}


@functools.lru_cache(maxsize=None)
def _handler_variant(
    base_name: str, default_ms: float, iterations_per_ms: float | None = None
) -> type[WorkloadHandler]:
    """The subclass of the handler named *base_name* with another
    ``default_ms`` (and, for cpu work, a given ``iterations_per_ms``).

    Cached, so the same arguments always give the same class (in this
    process); pickle stores a call to this function, not the class."""
    base = _BY_NAME[base_name]
    if default_ms == base.default_ms and iterations_per_ms is None:
        return base
    name = f"{base_name}_{format_ms(default_ms)}ms"
    attrs: dict[str, Any] = {
        "default_ms": float(default_ms), "__module__": __name__, "__qualname__": name,
    }
    if iterations_per_ms is not None:
        name += f"_{iterations_per_ms:g}ipms"
        attrs.update(__qualname__=name, iterations_per_ms=float(iterations_per_ms))
    cls = _HandlerType(name, (base,), attrs)
    _VARIANT_KEYS[cls] = (base_name, float(default_ms), iterations_per_ms)
    return cls  # type: ignore[return-value]


def _reduce_handler_class(cls: type) -> Any:
    key = _VARIANT_KEYS.get(cls)
    if key is None:
        return cls.__qualname__  # defined in a module: pickled by reference
    return _handler_variant, key


copyreg.pickle(_HandlerType, _reduce_handler_class)


# -- the catalogue -------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One workload: its server-side handler and the requests a client sends.

    ``params`` are the values in effect (defaults filled in), all in ms
    except ``heavy_every`` (a count) and ``iterations_per_ms`` (the cpu
    calibration handed to the server, present only when given).
    ``trickle_s`` is the client's pause between the bytes of a request (0:
    send it at once). ``work_ms`` is the CPU work one request asks of the
    server, in ms, on average over the requests (0 for echo, io and slow).
    """

    name: str
    description: str
    handler: type[BaseRequestHandler]
    params: Mapping[str, float]
    trickle_s: float

    def request(self, index: int) -> bytes:
        """The exact bytes request number *index* (0, 1, ...) sends.

        Deterministic: the same workload and index always give the same line.
        """
        return request_line(self.name, self.params, index)

    @property
    def work_ms(self) -> float:
        return work_ms_per_request(self.name, self.params)

    @property
    def wait_ms(self) -> float:
        """The least time (ms) one request waits without using the server's
        CPU (the io workload's sleep, the slow workload's pauses)."""
        return wait_ms_per_request(self.name, self.params)


def uses_calibration(name: str) -> bool:
    """True for the workloads whose work is counted in calibrated loop
    iterations (cpu, mixed): they take ``iterations_per_ms``."""
    return name in CALIBRATED


@dataclass(frozen=True)
class _Spec:
    description: str
    handler: type[WorkloadHandler]
    server_param: str | None  # the parameter that becomes the handler's default_ms


#: The server side of each workload (the client side, parameters and
#: defaults included, is :mod:`sockserve.load.protocol`).
_SPECS: dict[str, _Spec] = {
    "echo": _Spec("reply with the request line at once", EchoHandler, None),
    "io": _Spec("sleep N ms (GIL released, like waiting for a database), then reply", IoHandler, "delay_ms"),
    "cpu": _Spec("pure-Python work for about N ms (holds the GIL), then reply", CpuHandler, "work_ms"),
    "slow": _Spec("echo, but the client sends its request one byte at a time", SlowHandler, None),
    "mixed": _Spec(
        "cpu work where 1 request in 10 is heavy (50 ms) and the rest light (1 ms)", MixedHandler, "light_ms"
    ),
}


def get_workload(name: str, **params: float) -> Workload:
    """The workload called *name*, with *params* overriding its defaults.

    cpu and mixed also take ``iterations_per_ms``: the calibration the
    server's handler uses instead of timing the loop itself (see
    :func:`calibrate`). Without it, the calling process calibrates (once).

    Raises ValueError naming the valid workloads (or the valid parameters,
    or the allowed range) when asked for something that does not exist.
    """
    values = workload_values(name, params)
    spec = _SPECS[name]
    handler: type[WorkloadHandler] = spec.handler
    rate = values.get("iterations_per_ms")
    if spec.server_param is not None:
        handler = _handler_variant(handler.__name__, values[spec.server_param], rate)
    if issubclass(handler, CpuHandler) and rate is None:
        calibrate()  # here, in the server's process, not in each forked child
    return Workload(
        name=name,
        description=spec.description,
        handler=handler,
        params=MappingProxyType(values),
        trickle_s=trickle_seconds(values),
    )


def fixed_work(name: str, params: Mapping[str, float] | None = None) -> Workload:
    """:func:`get_workload`, with this process's calibration handed in as
    ``iterations_per_ms`` (a whole number) for the cpu and mixed workloads
    when *params* name none: the workload every server of a comparison
    serves, so that each does the same work per request."""
    found = dict(params or {})
    if uses_calibration(name) and "iterations_per_ms" not in found:
        found["iterations_per_ms"] = float(round(calibrate()))
    return get_workload(name, **found)


def handler_for(name: str, **params: float) -> type[BaseRequestHandler]:
    """The server-side handler class of workload *name* (see get_workload)."""
    return get_workload(name, **params).handler
