"""Who is running what in this kernel: the lab's registry of live things.

Two rules keep a notebook free of orphaned servers, ports, threads and child
processes:

* **One panel per slot.** A panel *claims* a slot when it is made. The slot
  is named after the notebook cell that made it (JupyterLab sends the cell's
  id with every execution) and the panel's place in that cell, so running
  the cell again claims the same slot and the older panel is closed first:
  its server stops, its port and threads are released.
* **Everything that runs is tracked.** A model that starts a server, a load
  run or a comparison is *tracked* until it has stopped, so
  :func:`stop_all` (and the ``atexit`` hook, which runs when the kernel shuts
  down or restarts) can stop it.

Anything registered only needs a ``stop()`` method that is safe to call
more than once. Thread safety: every function may be called from any thread.
"""

from __future__ import annotations

import atexit
import itertools
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Stoppable", "claim", "release", "track", "untrack", "tracked", "stop_all", "cell_slot"]


class Stoppable(Protocol):
    def stop(self) -> None: ...


_lock = threading.RLock()
_slots: dict[str, Stoppable] = {}
_running: dict[int, Stoppable] = {}
_anonymous = itertools.count(1)
# (execution message id, slot prefix) -> how many slots it has claimed so far
_per_execution: dict[tuple[str, str], int] = {}


def claim(slot: str, owner: Stoppable) -> None:
    """Make *owner* the holder of *slot*, stopping the previous holder."""
    with _lock:
        previous = _slots.get(slot)
        _slots[slot] = owner
    if previous is not None and previous is not owner:
        previous.stop()


def release(slot: str, owner: Stoppable) -> None:
    """Give *slot* up, if *owner* still holds it."""
    with _lock:
        if _slots.get(slot) is owner:
            del _slots[slot]


def track(thing: Stoppable) -> None:
    """Remember a running *thing* until :func:`untrack` (or stop_all)."""
    with _lock:
        _running[id(thing)] = thing


def untrack(thing: Stoppable) -> None:
    with _lock:
        _running.pop(id(thing), None)


def tracked() -> list[Stoppable]:
    """What is running now (servers, load runs, comparisons)."""
    with _lock:
        return list(_running.values())


def stop_all() -> int:
    """Stop every panel and everything the lab started; return how many
    things were stopped. Safe to call at any time, any number of times."""
    with _lock:
        owners = list(_slots.values())
        _slots.clear()
        running = list(_running.values())
    stopped = 0
    for thing in [*owners, *running]:
        try:
            thing.stop()
            stopped += 1
        except Exception as exc:  # keep stopping the others
            print(f"sockserve.lab: could not stop {thing!r}: {exc}", file=sys.__stderr__)
    with _lock:
        for thing in running:
            _running.pop(id(thing), None)
    return stopped


atexit.register(stop_all)


def _execution() -> tuple[str, str | None] | None:
    """(message id, cell id) of the cell being run, when inside a Jupyter kernel."""
    ipython_module = sys.modules.get("IPython")
    if ipython_module is None:
        return None
    shell = ipython_module.get_ipython()
    kernel = getattr(shell, "kernel", None)
    get_parent: Callable[..., Any] | None = getattr(kernel, "get_parent", None)
    parent = get_parent("shell") if get_parent is not None else getattr(shell, "parent_header", None)
    if not isinstance(parent, dict):
        return None
    msg_id = str(parent.get("header", {}).get("msg_id", ""))
    cell_id = parent.get("metadata", {}).get("cellId")
    if not msg_id:
        return None
    return msg_id, (str(cell_id) if cell_id else None)


def cell_slot(prefix: str) -> str:
    """A slot name for a new *prefix* panel made by the code running now.

    In a Jupyter cell: ``prefix:cell-id:n`` for the n-th such panel the cell
    makes, so running the cell again reuses the names. Elsewhere (a script,
    a console without cell ids): a fresh name, which replaces nothing.
    """
    execution = _execution()
    if execution is None or execution[1] is None:
        return f"{prefix}:anonymous:{next(_anonymous)}"
    msg_id, cell_id = execution
    with _lock:
        index = _per_execution.get((msg_id, prefix), 0)
        _per_execution[(msg_id, prefix)] = index + 1
        if len(_per_execution) > 1000:  # forget old executions
            for key in list(_per_execution)[:500]:
                _per_execution.pop(key, None)
    return f"{prefix}:{cell_id}:{index}"
