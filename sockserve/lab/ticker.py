"""The panels' ticker: a daemon thread that refreshes a view a few times a second.

A panel's ticker calls its step (which only assigns widget values) every
*interval* seconds while something runs, and ends when the step says so or
:meth:`Ticker.stop` is called. A step that raises ends the ticker with one
line on the real stderr: a view must not die silently.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from . import figures

__all__ = ["Ticker", "TICK", "LIVE_TICK"]

TICK = 0.25  # seconds between status refreshes (4 per second)
LIVE_TICK = 0.1  # the traffic panel's live charts: up to 10 redraws a second


class Ticker:
    """Call *step* every *interval* seconds in a daemon thread until it
    returns False or :meth:`stop` is called."""

    def __init__(self, step: Callable[[], bool], name: str, interval: float = TICK) -> None:
        self._step = step
        self._name = name
        self._interval = interval
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # A thread whose loop has ended (its event set) may still be tidying
        # up: start a new one rather than count on it.
        if self._thread is not None and self._thread.is_alive() and not self._stopped.is_set():
            return
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stopped,), name=self._name, daemon=True
        )
        self._thread.start()

    def _run(self, stopped: threading.Event) -> None:
        try:
            while not stopped.wait(self._interval):
                if not self._step():
                    stopped.set()  # done: a start() from now on makes a new thread
                    return
        except Exception as exc:  # a view must not die silently
            stopped.set()
            print(f"sockserve.lab: panel update failed: {exc!r}", file=sys.__stderr__)
        finally:
            figures.release_fonts()

    def stop(self, timeout: float = 0.5) -> None:
        """Stop ticking; wait at most *timeout* seconds for a step in progress
        (a step only assigns widget values, so it ends soon after anyway)."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
