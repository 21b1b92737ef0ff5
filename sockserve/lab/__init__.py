"""sockserve.lab: Jupyter panels to start servers, send load and compare.

In a notebook::

    from sockserve.lab import ServerPanel, TrafficPanel, ComparePanel
    server = ServerPanel(kind="threading", workload="io")
    server                        # shows the panel; press Start
    TrafficPanel(server)          # press Send
    ComparePanel(workload="io")   # press Run comparison (or Stop)
    KernelPanel(server)           # the server's sockets in the kernel, live

Every panel that runs something has a Stop button (``panel.stop()``): a
load run or a comparison ends within about a second and keeps its partial
result. A cell that needs a comparison's result waits for it with
``panel.model.wait()`` (and prints conclusions computed from it with
:func:`sockserve.measure.conclusions.report`). While a new comparison runs, the
panel shows the previous figure greyed and labelled as the previous one.
``stop_all()`` stops every server, load run and comparison the lab started;
running a panel's cell again stops the panel it made before (without
blocking the kernel), and the kernel's exit stops everything.

Layers: :mod:`.settings` (what each model runs, declared once: a panel
takes the same settings and passes them down), :mod:`.models` and
:mod:`.runs` (plain objects, no ipywidgets), :mod:`.registry` (what runs),
:mod:`.figures` (matplotlib, imported on use), :mod:`.saved` (pictures of
the panels for a saved notebook) and :mod:`.panels` (the ipywidgets views,
refreshed by :mod:`.ticker`); the kernel panel is
:mod:`.kernelmodel` (model) and :mod:`.kernel` (view). The panels are imported only when
asked for, so ``import sockserve.lab.models`` needs neither ipywidgets nor
matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..workbook.launch import install_command
from .registry import stop_all

if TYPE_CHECKING:
    from .kernel import KernelPanel
    from .panels import ComparePanel, ServerPanel, TrafficPanel

__all__ = ["ServerPanel", "TrafficPanel", "ComparePanel", "KernelPanel", "stop_all"]


_PANELS = {"ServerPanel": "panels", "TrafficPanel": "panels", "ComparePanel": "panels", "KernelPanel": "kernel"}


def __getattr__(name: str) -> Any:
    if name in _PANELS:
        try:
            module = importlib.import_module(f".{_PANELS[name]}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name not in ("ipywidgets", "matplotlib"):
                raise
            raise ImportError(
                f"sockserve.lab.{name} needs the lab extra ({exc.name} is not installed); "
                f"install it with: {install_command()}",
                name=exc.name,
            ) from exc
        return getattr(module, name)
    raise AttributeError(f"module 'sockserve.lab' has no attribute {name!r}")
