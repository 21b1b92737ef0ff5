"""sockserve.lab: Jupyter panels to start servers, send load and compare.

In a notebook::

    from sockserve.lab import ServerPanel, TrafficPanel, ComparePanel
    server = ServerPanel(kind="threading", workload="io")
    server                        # shows the panel; press Start
    TrafficPanel(server)          # press Send
    ComparePanel(workload="io")   # press Run comparison

``stop_all()`` stops every server, load run and comparison the lab started;
running a panel's cell again stops the panel it made before, and the
kernel's exit stops everything.

Layers: :mod:`.models` and :mod:`.runs` (plain objects, no ipywidgets),
:mod:`.registry` (what runs), :mod:`.figures` (matplotlib, imported on use)
and :mod:`.panels` (the ipywidgets views). The panels are imported only when
asked for, so ``import sockserve.lab.models`` needs neither ipywidgets nor
matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import stop_all

if TYPE_CHECKING:
    from .panels import ComparePanel, ServerPanel, TrafficPanel

__all__ = ["ServerPanel", "TrafficPanel", "ComparePanel", "stop_all"]


def __getattr__(name: str) -> Any:
    if name in ("ServerPanel", "TrafficPanel", "ComparePanel"):
        from . import panels

        return getattr(panels, name)
    raise AttributeError(f"module 'sockserve.lab' has no attribute {name!r}")
