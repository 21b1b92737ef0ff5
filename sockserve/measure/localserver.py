"""A server of a kind defined in this process, run for an experiment.

:func:`sockserve.measure.experiment.compare` runs each server in its own process
(``python -m sockserve serve KIND``), which only knows the kinds the
package defines. A server class or a kind written in a notebook (a
learner's event loop, say) cannot be started that way, so it is served here
instead, in a thread of this process, with the same interface as
:class:`~sockserve.measure.experiment.ServerProcess` as far as a run needs it:
``start()``, ``address``, ``pid`` (this process), ``kind``, ``stop()`` and,
with *timeline*, ``timeline`` after the stop.

A kind runs here when :func:`runs_here` says so: its class or factory is
defined outside the ``sockserve`` package, or its factory says
``in_process = True``. Such a server shares this process (and its GIL) with
whatever else runs in it: the run's result says so (``served_in_process``).

Resource handling: ``stop()`` drains the server (2 s for requests in
flight), joins its thread and closes it; ``with`` does the same.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ..core.timeline import Timeline
from .kinds import KindInfo, make_server
from .workloads import Workload, get_workload

__all__ = ["LocalServer", "runs_here"]


def runs_here(info: KindInfo) -> bool:
    """True for a kind a fresh ``python -m sockserve serve`` would not know:
    one whose class or factory is defined outside the sockserve package, or
    whose factory has ``in_process = True``."""
    made_by: Any = info.server_class if info.server_class is not None else info.factory
    if getattr(made_by, "in_process", False):
        return True
    module = str(getattr(made_by, "__module__", "") or "")
    return not (module == "sockserve" or module.startswith("sockserve."))


class LocalServer:
    """A server of *kind* serving *workload* in a thread of this process.

    Callers use ``start()`` (returns self once it serves), ``address``,
    ``pid``, ``stop()`` and ``timeline`` (the recorded
    :class:`~sockserve.core.timeline.Timeline` after ``stop()`` when
    *timeline*, a cap, was given; None otherwise), or ``with
    LocalServer(...) as server:``. *workload* is a name (with *params*) or a
    resolved :class:`~sockserve.measure.workloads.Workload`.
    """

    #: Seconds requests in flight get to finish on stop.
    grace: float = 2.0

    def __init__(self, kind: KindInfo, workload: str | Workload = "echo", *, timeline: int | None = None,
                 **params: float) -> None:
        if timeline is not None and timeline < 1:
            raise ValueError(f"timeline is a cap (requests to keep): at least 1, got {timeline!r}")
        self.kind = kind
        self.workload = get_workload(workload, **params) if isinstance(workload, str) else workload
        self.timeline_cap = timeline
        self.timeline: Timeline | None = None
        self.address: Any = None
        self.server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int:
        """This process: the server runs in it."""
        return os.getpid()

    def start(self) -> LocalServer:
        """Bind the server (127.0.0.1, a free port) and serve it in a daemon thread."""
        if self.server is not None:
            raise RuntimeError("this LocalServer was already started")
        self.server = make_server(self.kind, self.workload, "127.0.0.1", 0)
        address = self.server.server_address
        self.address = (str(address[0]), int(address[1])) if isinstance(address, tuple) else address
        if self.timeline_cap is not None:
            self.server.stats.record_timeline(self.timeline_cap)
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        name=f"sockserve local {self.kind.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Drain and close the server; keep its timeline. Safe to call twice."""
        server, self.server = self.server, None
        if server is None:
            return
        try:
            if hasattr(server, "drain"):
                server.drain(self.grace)
            else:
                server.shutdown()
            if self._thread is not None:
                self._thread.join(5.0)
        finally:
            if self.timeline_cap is not None:
                self.timeline = server.stats.stop_timeline()
            server.server_close()

    def __enter__(self) -> LocalServer:
        if self.server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<LocalServer {self.kind.name} {self.workload.name} {self.address}>"
