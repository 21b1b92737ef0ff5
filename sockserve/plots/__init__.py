"""Plots (matplotlib, imported only when a figure is drawn).

:mod:`.comparison` draws load runs and comparisons (its names are
re-exported here), :mod:`.timeline` request timelines, :mod:`.kernel` the
kernel's view of a server, :mod:`.diagrams` the package's own class tree
and lifecycle.

May import: the standard library, matplotlib (inside functions),
:mod:`sockserve.core`, :mod:`sockserve.kernel`, :mod:`sockserve.load` and
:mod:`sockserve.measure`.
"""

from __future__ import annotations

from .comparison import *  # noqa: F403
from .comparison import __all__
