"""Kernel introspection: what Linux knows about a server's sockets.

:mod:`.procnet` parses ``/proc/net/tcp``, ``tcp6`` and ``unix``;
:mod:`.sockdiag` asks sock_diag netlink for a listener's queue;
:mod:`.view` turns both into readings of one server (its sockets per TCP
state, its accept queue) and series of them over time; :mod:`.cpustat`
reads how long each CPU was busy (``/proc/stat``).

May import: the standard library and :mod:`sockserve.core`.
"""
