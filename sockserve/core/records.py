"""Typed records for the core without importing :mod:`typing` at run time.

``import typing`` alone adds about 0.9 MB of private memory to a process (on
CPython 3.11), more than the rest of the core together, and a forking server
pays for its size on every fork. The core's modules therefore import names
from ``typing`` only for the type checker, as::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import Any

(mypy takes any ``if TYPE_CHECKING:`` as true; with ``from __future__ import
annotations`` no annotation is evaluated at run time). Records with typed
fields are written with :class:`NamedTuple` from this module: the same class
syntax as ``typing.NamedTuple`` (fields by annotation, defaults after them,
methods, properties and a docstring), built at run time on
:func:`collections.namedtuple`; the type checker sees ``typing.NamedTuple``.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    # What the class body may hold besides fields, and is not copied onto the tuple class.
    _NOT_COPIED = frozenset({"__annotations__", "__module__", "__qualname__", "__dict__", "__weakref__"})

    class _NamedTupleMeta(type):
        def __new__(mcls, name, bases, namespace):
            if namespace.get("_is_base"):
                return super().__new__(mcls, name, bases, namespace)
            fields = list(namespace.get("__annotations__", {}))
            defaults = [namespace[field] for field in fields if field in namespace]
            record = collections.namedtuple(name, fields, defaults=defaults, module=namespace.get("__module__"))
            record.__qualname__ = namespace.get("__qualname__", name)
            for key, value in namespace.items():
                if key not in _NOT_COPIED and key not in fields:
                    setattr(record, key, value)
            record.__annotations__ = dict(namespace.get("__annotations__", {}))
            return record

    class NamedTuple(metaclass=_NamedTupleMeta):
        """Base of a typed record: ``class Span(NamedTuple): start: float``."""

        _is_base = True
