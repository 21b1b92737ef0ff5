"""Pictures of the lab's panels for a saved notebook (no ipywidgets here).

A saved notebook cannot show a live widget. Each panel describes its present
state as a :data:`StaticView`: mimebundles (a PNG or SVG picture with its
text alternative, then its status in words) shown one after another.
:func:`static_views` collects them for every panel alive, keyed by the
widget's model id, which is what a saved widget output names;
``notebooks/src/sync.py`` saves them in place of the widget outputs.
"""

from __future__ import annotations

import base64
import weakref
from typing import Any, Protocol

__all__ = ["StaticView", "static_views", "remember", "text", "png", "SAVED_NOTE"]

#: A picture of a panel: mimebundles, shown one after another.
StaticView = list[dict[str, str]]
#: What every saved panel says first.
SAVED_NOTE = "(the panel as this notebook left it; run the cell for the live panel)"


class _Pictured(Protocol):
    model_id: Any

    def static_view(self) -> StaticView: ...


#: Every panel alive (a panel that is garbage is gone from it).
_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


def remember(panel: _Pictured) -> None:
    """Count *panel* among the panels :func:`static_views` pictures."""
    _LIVE.add(panel)


def static_views() -> dict[str, StaticView]:
    """Widget model id -> a picture of that panel as it is now, for every
    panel alive: what ``sync.py`` saves in place of the live widget."""
    views: dict[str, StaticView] = {}
    for panel in list(_LIVE):
        try:
            model_id = panel.model_id
        except Exception:  # a closed widget has no model id any more
            continue
        if model_id:
            views[str(model_id)] = panel.static_view()
    return views


def text(words: str) -> dict[str, str]:
    """A bundle of words only."""
    return {"text/plain": words}


def png(data: bytes, alt: str) -> dict[str, str]:
    """A bundle of a PNG picture and its text alternative."""
    return {"image/png": base64.b64encode(data).decode("ascii"), "text/plain": alt}
