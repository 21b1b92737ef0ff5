"""What each lab model runs, described once (no ipywidgets here).

A panel and its model share one typed description of what to run: the panel
takes the same settings as keywords (``ServerPanel(kind="forking")``) or as
an object (``ServerPanel(ServerSettings(kind="forking"))``), builds the
settings with :func:`settings_of` and passes them down; its widgets show
them, and ``Start``/``Send``/``Run`` hand the model a new settings object
with the widgets' values (:func:`dataclasses.replace`). The fields are
declared here only.

* :class:`ServerSettings`: the server a :class:`~.models.ServerModel` runs.
* :class:`TrafficSettings`: the load a :class:`~.runs.TrafficModel` sends.
* :class:`CompareSettings`: the comparison a :class:`~.runs.CompareModel` runs.

Plain frozen data: a model reads its settings once per start, so a view
changing them meanwhile never leaves a run half-configured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["ServerSettings", "TrafficSettings", "CompareSettings", "settings_of"]


@dataclass(frozen=True)
class ServerSettings:
    """One server: ``kind`` (a kind name, see :mod:`sockserve.measure.kinds`),
    ``workload`` (a workload name) or ``handler`` (a request handler class
    written in the notebook, served instead of the workload), ``host`` and
    ``port`` (TCP/UDP kinds) or ``path`` (Unix kinds; None: a fresh
    temporary directory), and ``params`` for the workload (``{"delay_ms": 5}``)."""

    kind: str = "threading"
    workload: str = "echo"
    handler: type | None = None
    host: str = "127.0.0.1"
    port: int = 0
    path: str | None = None
    params: Mapping[str, float] = field(default_factory=dict)

    @property
    def workload_name(self) -> str:
        """What the server serves, in words: the handler class's name or the workload."""
        return self.handler.__name__ if self.handler is not None else self.workload


@dataclass(frozen=True)
class TrafficSettings:
    """One load run, as :class:`sockserve.load.LoadSpec` takes it: ``mode``
    ("closed"/"open"), ``clients`` (closed loop; at most in flight in an open
    loop), ``rate`` (open loop), ``duration`` seconds and at most
    ``max_requests``, ``connection`` ("new"/"persistent"); ``transport`` and
    ``workload`` for a target given as an address (None: the target's
    workload, or "echo"); ``timeline`` (False; True or a cap) records where
    each request ran when the target is a server of this process."""

    mode: str = "closed"
    clients: int = 4
    rate: float | None = 200.0
    duration: float = 3.0
    connection: str = "new"
    transport: str = "tcp"
    workload: str | None = None
    max_requests: int = 100_000
    timeline: bool | int = False


@dataclass(frozen=True)
class CompareSettings:
    """One comparison: ``workload``, ``servers`` (kind names; empty: the
    default servers), ``clients``, ``duration`` seconds per server,
    ``connection``, ``timeline`` (False; True or a cap per server) and
    ``workload_params``."""

    workload: str = "io"
    servers: tuple[str, ...] = ()
    clients: int = 8
    duration: float = 2.0
    connection: str = "new"
    timeline: bool | int = False
    workload_params: Mapping[str, float] = field(default_factory=dict)


_S = TypeVar("_S", ServerSettings, TrafficSettings, CompareSettings)


def settings_of(kind: type[_S], given: _S | None = None, choices: Mapping[str, Any] | None = None,
                owner: str = "") -> _S:
    """*given* (default: ``kind()``) with the fields named in *choices*
    replaced. A name that is not a field, or *given* of another type, is a
    TypeError that lists the fields (*owner* names the caller in it)."""
    who = owner or kind.__name__
    names = [f.name for f in dataclasses.fields(kind)]
    if given is not None and not isinstance(given, kind):
        raise TypeError(f"{who} takes a {kind.__name__} or keywords ({', '.join(names)}), "
                        f"not {given!r}")
    unknown = sorted(set(choices or {}) - set(names))
    if unknown:
        raise TypeError(f"{who} got unknown setting{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(unknown)}; the settings are: {', '.join(names)}")
    base = given if given is not None else kind()
    return dataclasses.replace(base, **dict(choices or {})) if choices else base
