"""The ready-made combinations of a concurrency mixin and a server.

Each is one line: the mixin first, so its ``process_request`` is the one
that runs. Make your own the same way.
"""

from __future__ import annotations

import os

from .forking import ForkingMixIn
from .prefork import PreForkMixIn
from .servers import TCPServer, UDPServer
from .threadpool import ThreadPoolMixIn
from .threads import ThreadingMixIn
from .unix import UnixDatagramServer, UnixStreamServer

__all__ = [
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "ThreadingUnixStreamServer",
    "ThreadingUnixDatagramServer",
    "ForkingTCPServer",
    "ForkingUDPServer",
    "ForkingUnixStreamServer",
    "ForkingUnixDatagramServer",
    "ThreadPoolTCPServer",
    "ThreadPoolUDPServer",
    "ThreadPoolUnixStreamServer",
    "ThreadPoolUnixDatagramServer",
    "PreForkTCPServer",
    "PreForkUnixStreamServer",
]


class ThreadingTCPServer(ThreadingMixIn, TCPServer): pass
class ThreadingUDPServer(ThreadingMixIn, UDPServer): pass
class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer): pass
class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer): pass
class ThreadPoolTCPServer(ThreadPoolMixIn, TCPServer): pass
class ThreadPoolUDPServer(ThreadPoolMixIn, UDPServer): pass
class ThreadPoolUnixStreamServer(ThreadPoolMixIn, UnixStreamServer): pass
class ThreadPoolUnixDatagramServer(ThreadPoolMixIn, UnixDatagramServer): pass


if hasattr(os, "fork"):
    class ForkingTCPServer(ForkingMixIn, TCPServer): pass
    class ForkingUDPServer(ForkingMixIn, UDPServer): pass
    class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer): pass
    class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer): pass
    class PreForkTCPServer(PreForkMixIn, TCPServer): pass
    class PreForkUnixStreamServer(PreForkMixIn, UnixStreamServer): pass
