"""The command line, ``python -m sockserve`` (or the ``sockserve`` script).

:mod:`.main` parses the subcommands and dispatches (``lab`` to
:mod:`sockserve.workbook.launch`); :mod:`.args` checks every argument into
one clear line; :mod:`.serve` and :mod:`.load` run ``serve`` and
``load``/``compare``.

May import: every other folder of the package (it is the top layer);
nothing imports it but ``sockserve.__main__``.
"""
