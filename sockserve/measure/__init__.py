"""Measurement: workloads, server kinds, experiments, results, conclusions.

* :mod:`.workloads` (request handlers that echo, wait or burn CPU) and
  :mod:`.kinds` (short names for server classes, and the one factory that
  builds a server from a kind);
* :mod:`.experiment` runs servers in their own processes
  (:mod:`.serverfeed` carries their counts back, :mod:`.localserver` runs
  kinds defined in the caller's process) and compares them;
  :mod:`.results` holds what a comparison measured (plain data) and
  :mod:`.conclusions` the sentences computed from it; :mod:`.limits` says
  what the machine allows;
* :mod:`.trace` records a request's call flow; :mod:`.aio` is an asyncio
  server measured beside the hierarchy; :mod:`.statscost` reads what
  counting costs.

May import: the standard library, :mod:`sockserve.core`,
:mod:`sockserve.kernel` and :mod:`sockserve.load`.
"""
