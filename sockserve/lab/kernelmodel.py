"""The model of the lab's kernel panel: watch one server's sockets (no ipywidgets here).

:class:`KernelModel` runs a :class:`sockserve.kernel.view.KernelSampler` on a
target (a ``ServerPanel``, a ``ServerModel``, a server object, a port or a
Unix socket path) and keeps the newest *window* seconds of readings, so a
view can plot the states and the listen queue while traffic runs.

Use: ``model = KernelModel(target, rate=5.0, window=30.0)``; ``start()``,
``stop()`` (idempotent), ``status()`` (a frozen :class:`KernelStatus`),
``series()`` (the readings so far). A model that watches is tracked by
:mod:`.registry`, so ``stop_all()`` and the kernel's exit stop it; watching
also ends by itself after ``max_seconds`` (10 minutes), since a forgotten
panel must not sample forever. Thread safety: every method may be called
from any thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..kernel import view as kv
from . import registry

__all__ = ["KernelModel", "KernelStatus"]


@dataclass(frozen=True)
class KernelStatus:
    """What the panel says, at one instant.

    ``state``: "watching" (readings arrive), "waiting" (the target has no
    address yet: a server panel not started), "stopped", or "unavailable"
    (no ``/proc/net`` on this system; ``text`` is
    :data:`sockserve.kernel.view.NOT_AVAILABLE`).
    """

    state: str
    target: str
    text: str
    readings: int


class KernelModel:
    """Watch one target's sockets in a background sampler (see the module docstring).

    Tuning: ``rate`` readings a second (default 5: each costs CPU, see
    :class:`~sockserve.kernel.view.KernelSampler`), ``window`` seconds kept
    (default 30; older readings are dropped), ``max_seconds`` before
    watching stops by itself (default 600).
    """

    max_seconds: float = 600.0

    def __init__(self, target: object, rate: float = 5.0, window: float = 30.0) -> None:
        if not window > 0:
            raise ValueError(f"window is seconds of readings to keep, more than 0, not {window!r}")
        kv.target_of(target)  # a target that cannot be watched fails here, in one line
        self.target = target
        self.rate = rate
        self.window = window
        self._lock = threading.Lock()
        self._sampler: kv.KernelSampler | None = None
        self._last: kv.KernelSeries = kv.KernelSeries("")

    @property
    def available(self) -> bool:
        return kv.available()

    @property
    def running(self) -> bool:
        sampler = self._sampler
        return sampler is not None and sampler.running

    def start(self) -> KernelStatus:
        """Start watching (no-op when already watching or unavailable)."""
        with self._lock:
            if not self.available or (self._sampler is not None and self._sampler.running):
                return self.status()
            cap = max(2, int(self.window * self.rate) + 1)
            self._sampler = kv.KernelSampler(self.target, rate=self.rate, cap=cap, max_seconds=self.max_seconds)
            self._sampler.start()
            registry.track(self)
        return self.status()

    def stop(self) -> None:
        """Stop watching; the readings so far stay in :meth:`series`. Idempotent."""
        with self._lock:
            sampler = self._sampler
        if sampler is not None:
            self._last = sampler.stop()
        registry.untrack(self)

    def series(self) -> kv.KernelSeries:
        sampler = self._sampler
        return sampler.series() if sampler is not None else self._last

    def status(self) -> KernelStatus:
        if not self.available:
            return KernelStatus("unavailable", "", kv.NOT_AVAILABLE, 0)
        sampler = self._sampler
        series = self.series()
        count = len(series.readings)
        if sampler is not None and sampler.error == kv.NOT_AVAILABLE:
            return KernelStatus("unavailable", series.target, kv.NOT_AVAILABLE, count)
        if sampler is not None and not sampler.running and sampler.error and series.stopped_by == sampler.error:
            return KernelStatus("stopped", series.target, f"stopped: {sampler.error}", count)
        if sampler is None or not sampler.running:
            why = ""
            if sampler is not None and series.stopped_by == "max_seconds":
                why = f" after {self.max_seconds:g} s (press Watch to go on)"
            text = f"stopped{why}." + (f" Last: {series.readings[-1].summary()}" if count else "")
            return KernelStatus("stopped", series.target, text, count)
        if sampler.waiting or not count:
            return KernelStatus("waiting", series.target, "waiting for the server to have an address "
                                "(start it)", count)
        return KernelStatus("watching", series.target, f"{series.target}: {series.readings[-1].summary()}", count)

    def __repr__(self) -> str:
        return f"<KernelModel {self.status().state}: {self.status().text}>"
