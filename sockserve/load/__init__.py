"""The load generator: drive a server with many clients and measure it.

:mod:`.runner` (``LoadRun``, ``run_load``: the caller's side) starts
:mod:`.worker` in its own process, which runs the :mod:`.clients` and
records what :mod:`.data` describes (``LoadSpec`` in, ``LoadResult`` out,
plain data).

May import: the standard library, :mod:`sockserve.core` and
:mod:`sockserve.kernel`. It knows nothing of server kinds or workloads
beyond the wire: what a request looks like is in the ``LoadSpec``.
"""

from __future__ import annotations

from . import data, runner
from .data import *  # noqa: F403
from .runner import *  # noqa: F403

__all__ = data.__all__ + runner.__all__
