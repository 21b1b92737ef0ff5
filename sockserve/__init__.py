"""sockserve: the socketserver hierarchy, rebuilt to be learned, seen and measured.

A drop-in for the standard library's ``socketserver`` (same names, defaults,
attributes and hook order) with instant ``shutdown()``, live statistics
(``server.stats``), clear bind errors and a loop that survives descriptor
exhaustion. ``import sockserve`` loads the core only, which uses the
standard library only.

The folders are the layers; each imports only from the ones before it in
this list (``tests/test_layers.py`` checks it):

1. :mod:`sockserve.core`: servers, handlers, mixins, statistics, the
   process machinery (standard library only); its public names are
   re-exported here, with ``__module__ == "sockserve"``;
2. :mod:`sockserve.kernel`: what Linux knows about a server's sockets;
3. :mod:`sockserve.load`: the load generator;
4. :mod:`sockserve.measure`: workloads, server kinds, experiments,
   results and the conclusions computed from them;
5. :mod:`sockserve.plots`: figures (matplotlib, imported when drawing);
6. the teaching layer: :mod:`sockserve.workbook` (what lessons call),
   :mod:`sockserve.exercises` (checks) and :mod:`sockserve.lab` (panels);
7. :mod:`sockserve.cli`: ``python -m sockserve``.
"""

from __future__ import annotations

from .core.combined import *  # noqa: F403
from .core.combined import __all__ as _combined_all
from .core.drain import DrainReport
from .core.forking import ForkingMixIn
from .core.handlers import BaseRequestHandler, DatagramRequestHandler, StreamRequestHandler
from .core.lifecycle import ServerState
from .core.prefork import PreForkMixIn
from .core.servers import BaseServer, TCPServer, UDPServer
from .core.stats import ServerStats
from .core.threadpool import ThreadPoolMixIn
from .core.threads import ThreadingMixIn
from .core.unix import UnixDatagramServer, UnixStreamServer
from .core.handlers import SocketWriter as _SocketWriter
from .core.loop import ServerSelector as _ServerSelector
from .core.threads import HandlerThreads as _Threads
from .core.threads import NoThreads as _NoThreads

# The standard library module's other top-level names, with the same
# meaning, for code that reaches into it (patches ``socketserver.socket``,
# swaps ``_ServerSelector``, wraps a connection in ``_SocketWriter``). The
# servers read ``socket`` and ``_ServerSelector`` from here when they make a
# socket or start a loop, so a patch of either reaches them. (Bound after
# the core's imports: with them first, benchmarks/bench_callgrind.py saw a
# threading server pay two misses of CPython's type-attribute cache per
# request, an effect of the order in which types are first looked up.)
import os
import selectors
import socket
import sys
import threading
from io import BufferedIOBase
from time import monotonic as time

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

# Public names report the package, not the file they live in (as trio's
# do): a repr, a traceback or a lesson's output never shows the layout.
for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type) and _public.__module__.startswith(__name__ + "."):
        _public.__module__ = __name__
del _name, _public
