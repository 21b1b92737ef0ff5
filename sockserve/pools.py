"""Bounded concurrency, in one import: a thread pool and a prefork process pool.

The standard library's mixins pay per request: ``ThreadingMixIn`` starts a
thread for every request, with no bound, and ``ForkingMixIn`` forks a process
for every request. The two mixins here start their workers once:

``ThreadPoolMixIn`` (:mod:`sockserve.threadpool`)
    ``pool_size`` worker threads fed from a bounded queue; ``overflow`` says
    what a full queue does.
``PreForkMixIn`` (:mod:`sockserve.prefork`)
    ``workers`` processes forked when serving starts; the parent accepts and
    hands each connection to a free worker. Stream servers only.

Put the mixin first, as with the standard ones::

    class ThreadPoolTCPServer(ThreadPoolMixIn, TCPServer): pass

Both support ``drain(timeout)`` (see :mod:`sockserve.drain`).
"""

from __future__ import annotations

from .prefork import PreForkMixIn
from .threadpool import OVERFLOW_POLICIES, ThreadPoolMixIn

__all__ = ["ThreadPoolMixIn", "PreForkMixIn", "OVERFLOW_POLICIES"]
