"""The workbook's teaching code: what the lessons call.

:mod:`.helpers` (re-exported here) holds the small bounded helpers every
lesson uses (``ask``, ``background``, ``show``...); :mod:`.mishaps`,
:mod:`.kernelscenes` and :mod:`.backlog` stage one situation each on
loopback and measure it; :mod:`.fromscratch` runs a serve loop a student
wrote as if it were a sockserve server. The exercises' checks
(:mod:`sockserve.exercises`) and the Jupyter panels (:mod:`sockserve.lab`)
sit beside this folder, on the same layer.

May import: everything below it (core, kernel, load, measure, plots); the
CLI may import it, nothing else in the package may.
"""

from __future__ import annotations

from .helpers import *  # noqa: F403
from .helpers import __all__
