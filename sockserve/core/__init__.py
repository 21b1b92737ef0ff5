"""The core: the server hierarchy, its statistics and its process machinery.

What it holds:

* servers and request handlers: :mod:`.servers` (``BaseServer``,
  ``TCPServer``, ``UDPServer``), :mod:`.unix`, :mod:`.handlers`;
* concurrency mixins: :mod:`.threads` (``ThreadingMixIn``), :mod:`.forking`
  (``ForkingMixIn``), :mod:`.threadpool` (``ThreadPoolMixIn``),
  :mod:`.prefork` (``PreForkMixIn``), and the one-line combinations in
  :mod:`.combined`;
* what every request passes through: :mod:`.ledger` (the one place a
  request's start, outcome, handler time and timeline span are recorded),
  :mod:`.stats` (the counters, with :mod:`.histogram` and :mod:`.timeline`),
  :mod:`.loop` (the one serve loop), :mod:`.drain`, :mod:`.deadlines`
  (``request_timeout``), :mod:`.lifecycle`;
* the machinery under the mixins: :mod:`.children` (a forking server's
  children) with :mod:`.reportboard` (where they report), :mod:`.workers`
  (a prefork server's pool), :mod:`.processes` (what both process models
  share); :mod:`.socketfiles` (Unix socket files), :mod:`.errors` (bind
  errors in plain words), :mod:`.logs`.

What it may import: the standard library only, and nothing that a forked
server process would pay for without using (no ``logging``, ``dataclasses``
or ``asyncio``). Every other folder of the package builds on this one;
``tests/test_layers.py`` fails when an import points the other way.
"""
