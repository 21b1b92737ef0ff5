"""The workloads' wire protocol: what a client sends, and how a line reads.

Both sides speak it: the load generator's clients (this layer) send the
request lines, and the handlers of :mod:`sockserve.measure.workloads` answer
them. Everything both need lives here once:

* a request is one line of ASCII, ``b"<word> [<ms>]\\n"`` (``b"echo\\n"``,
  ``b"io 10\\n"``, ``b"cpu 30\\n"``); :func:`parse_ms` reads the number;
* lines are at most :data:`MAX_LINE` bytes; a longer one is answered with
  :data:`LINE_TOO_LONG`; a duration is at most :data:`MAX_MS`;
* each workload's parameters, their defaults and ranges
  (:data:`DEFAULTS`, :func:`workload_values`), the line request number
  *i* sends (:func:`request_line`), and what one request asks of the server
  on average (:func:`work_ms_per_request`, :func:`wait_ms_per_request`).

Plain functions and data: no sockets, no handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "MAX_LINE",
    "MAX_MS",
    "LINE_TOO_LONG",
    "WORKLOAD_NAMES",
    "DEFAULTS",
    "CALIBRATED",
    "format_ms",
    "parse_ms",
    "workload_values",
    "request_line",
    "trickle_seconds",
    "work_ms_per_request",
    "wait_ms_per_request",
]

#: The longest request line a handler reads (bytes, newline included).
MAX_LINE = 64 * 1024
#: The longest wait or work a request may ask for, in ms.
MAX_MS = 10_000.0
#: The reply to a line longer than MAX_LINE; the connection is then closed.
LINE_TOO_LONG = b"ERR line too long\n"

#: Every workload name, in the order the lab shows them.
WORKLOAD_NAMES: tuple[str, ...] = ("echo", "io", "cpu", "slow", "mixed")

#: Each workload's parameters and their defaults (ms, except heavy_every: a count).
DEFAULTS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "echo": MappingProxyType({}),
    "io": MappingProxyType({"delay_ms": 10.0}),
    "cpu": MappingProxyType({"work_ms": 10.0}),
    "slow": MappingProxyType({"trickle_ms": 5.0}),
    "mixed": MappingProxyType({"light_ms": 1.0, "heavy_ms": 50.0, "heavy_every": 10.0}),
})

#: Workloads whose work is counted in calibrated loop iterations: they also
#: take ``iterations_per_ms`` (a loop speed, in the range _IPMS_RANGE).
CALIBRATED = frozenset({"cpu", "mixed"})
_IPMS_RANGE = (1.0, 1e9)


def format_ms(ms: float) -> str:
    """``10.0`` -> ``"10"``, ``2.5`` -> ``"2.5"``: the number as a client writes it."""
    return str(int(ms)) if float(ms).is_integer() else repr(float(ms))


def parse_ms(line: bytes, default: float) -> float:
    """The ``<ms>`` of ``b"<word> [<ms>]"``, or *default* when it is absent.

    Raises ValueError for anything else, or a number outside 0..MAX_MS.
    """
    words = line.split()
    if len(words) <= 1:
        return default
    if len(words) > 2:
        raise ValueError("expected '<word> [<ms>]'")
    try:
        ms = float(words[1])
    except ValueError:
        raise ValueError(f"expected '<word> [<ms>]', got a non-number {words[1][:20]!r}") from None
    if not 0.0 <= ms <= MAX_MS:  # NaN fails this too
        raise ValueError(f"ms must be between 0 and {format_ms(MAX_MS)}")
    return ms


def workload_values(name: str, params: Mapping[str, float]) -> dict[str, float]:
    """The values in effect for workload *name*: its defaults, overridden by
    *params*, each checked against its range.

    Raises ValueError naming the valid workloads (or the valid parameters,
    or the allowed range) when asked for something that does not exist.
    """
    defaults = DEFAULTS.get(name)
    if defaults is None:
        raise ValueError(
            f"unknown workload {name!r}; valid workloads: {', '.join(WORKLOAD_NAMES)}"
        )
    allowed = list(defaults) + (["iterations_per_ms"] if name in CALIBRATED else [])
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) or "none"
        raise ValueError(
            f"workload {name!r} has no parameter {', '.join(unknown)}; valid parameters: {valid}"
        )
    values = {**defaults, **{key: float(value) for key, value in params.items()}}
    for key, value in values.items():
        low, upper = (1.0, 1_000_000.0) if key == "heavy_every" else (0.0, MAX_MS)
        if key == "iterations_per_ms":
            low, upper = _IPMS_RANGE
        if not (low <= value <= upper):
            raise ValueError(
                f"{name} parameter {key}={value!r} is out of range "
                f"({format_ms(low)}..{format_ms(upper)})"
            )
    return values


def request_line(name: str, values: Mapping[str, float], index: int) -> bytes:
    """The exact bytes request number *index* (0, 1, ...) of workload *name*
    sends, with *values* from :func:`workload_values`. Deterministic."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    if name == "io":
        return f"io {format_ms(values['delay_ms'])}\n".encode()
    if name == "cpu":
        return f"cpu {format_ms(values['work_ms'])}\n".encode()
    if name == "mixed":
        heavy = index % max(1, int(values["heavy_every"])) == 0
        return f"cpu {format_ms(values['heavy_ms'] if heavy else values['light_ms'])}\n".encode()
    return f"{name}\n".encode()


def trickle_seconds(values: Mapping[str, float]) -> float:
    """The client's pause between the bytes of a request (0: send it at once)."""
    return values.get("trickle_ms", 0.0) / 1000.0


def work_ms_per_request(name: str, params: Mapping[str, float]) -> float:
    """The mean CPU work (ms) one request of workload *name* asks of the
    server with *params* (defaults filled in for missing ones); 0 for
    workloads that do no counted work (echo, io, slow)."""
    p = {**DEFAULTS.get(name, {}), **params}
    if name == "cpu":
        return float(p["work_ms"])
    if name == "mixed":
        every = max(1, int(p["heavy_every"]))
        return (float(p["heavy_ms"]) + (every - 1) * float(p["light_ms"])) / every
    return 0.0


def wait_ms_per_request(name: str, params: Mapping[str, float]) -> float:
    """The least time (ms) one request of workload *name* takes without
    using the server's CPU: the io workload's sleep, the slow workload's
    pauses between the bytes of its request; 0 for the others."""
    p = {**DEFAULTS.get(name, {}), **params}
    if name == "io":
        return float(p["delay_ms"])
    if name == "slow":
        return (len(f"{name}\n") - 1) * float(p["trickle_ms"])
    return 0.0
