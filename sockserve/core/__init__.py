"""The core: the server hierarchy, its statistics and its process machinery.

What it holds:

* servers and request handlers: :mod:`.servers` (``BaseServer``,
  ``TCPServer``, ``UDPServer``), :mod:`.unix`, :mod:`.handlers`;
* concurrency mixins: :mod:`.mixins` (``ThreadingMixIn``, ``ForkingMixIn``),
  :mod:`.threadpool` (``ThreadPoolMixIn``), :mod:`.prefork`
  (``PreForkMixIn``), and the one-line combinations in :mod:`.combined`;
* what every request passes through: :mod:`.stats` (counters, with
  :mod:`.histogram` and :mod:`.timeline`), :mod:`.drain` (the in-flight
  ledger), :mod:`.deadlines` (``request_timeout``), :mod:`.lifecycle`;
* the machinery under them: :mod:`.processes` and :mod:`.reportboard`
  (forked children), :mod:`.socketfiles` (Unix socket files),
  :mod:`.errors` (bind errors in plain words), :mod:`.logs`.

What it may import: the standard library only, and nothing that a forked
server process would pay for without using (no ``logging``, ``dataclasses``
or ``asyncio``). Every other folder of the package builds on this one;
``tests/test_layers.py`` fails when an import points the other way.
"""
