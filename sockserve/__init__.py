"""sockserve: the socketserver hierarchy, rebuilt to be learned, seen and measured.

A drop-in for the standard library's ``socketserver`` (same names, defaults,
attributes and hook order) with instant ``shutdown()``, live statistics
(``server.stats``), clear bind errors and a loop that survives descriptor
exhaustion. ``import sockserve`` uses the standard library only.

Layers, each importing only from those above it in this list:

1. core: ``servers``, ``unix``, ``handlers``, ``mixins``, ``combined`` (and the
   plain-data helpers they use: ``stats``, ``histogram``, ``lifecycle``,
   ``errors``, ``socketfiles``);
2. measurement: ``trace``, ``workloads``, ``load``, ``experiment`` and the
   command line (``python -m sockserve``);
3. lab: ``sockserve.lab`` (ipywidgets panels) and ``sockserve.plots``
   (matplotlib), imported only on request.
"""

from __future__ import annotations

from .combined import *  # noqa: F403
from .combined import __all__ as _combined_all
from .handlers import BaseRequestHandler, DatagramRequestHandler, StreamRequestHandler
from .lifecycle import ServerState
from .drain import DrainReport
from .mixins import ForkingMixIn, ThreadingMixIn
from .pools import PreForkMixIn, ThreadPoolMixIn
from .servers import BaseServer, TCPServer, UDPServer
from .stats import ServerStats
from .unix import UnixDatagramServer, UnixStreamServer

__version__ = "0.1.0"

__all__ = [
    "BaseServer",
    "TCPServer",
    "UDPServer",
    "UnixStreamServer",
    "UnixDatagramServer",
    "ThreadingMixIn",
    "ForkingMixIn",
    "ThreadPoolMixIn",
    "PreForkMixIn",
    *_combined_all,
    "BaseRequestHandler",
    "StreamRequestHandler",
    "DatagramRequestHandler",
    "ServerState",
    "ServerStats",
    "DrainReport",
]
