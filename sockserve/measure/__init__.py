"""Measurement: workloads, server kinds, experiments, results, conclusions.

* :mod:`.workloads` (request handlers that echo, wait or burn CPU) and
  :mod:`.kinds` (short names for server classes, and the one factory that
  builds a server from a kind);
* :mod:`.experiment` compares servers in interleaved rounds
  (:mod:`.rounds` holds the resolved plan and the rounds' pieces;
  :mod:`.serverprocess` runs a server in its own process,
  :mod:`.serverfeed` carries its counts back, :mod:`.localserver` runs
  kinds defined in the caller's process); :mod:`.convoy` measures short
  requests beside CPU-bound ones; :mod:`.results` holds what a comparison
  measured and :mod:`.usage` who used the CPU (plain data);
  :mod:`.spread` and :mod:`.conclusions` the sentences computed from it;
  :mod:`.limits` says what the machine allows; :mod:`.reference` reads the
  stored reference run lesson 04 shows;
* :mod:`.trace` records a request's call flow; :mod:`.aio` is an asyncio
  server measured beside the hierarchy; :mod:`.statscost` reads what
  counting costs.

May import: the standard library, :mod:`sockserve.core`,
:mod:`sockserve.kernel` and :mod:`sockserve.load`.
"""
