"""Tell an exercise's stub, unchanged, from an answer.

*Run All* runs every exercise cell, stubs included; a stub checked that way
must not count as a failed attempt (it would spend the hint). Each exercise
registers its stub's source (``@exercise(..., stub=...)``); :func:`is_unchanged_stub`
compiles that source and compares what it defines with the answer by
*compiled code*, not by text or name: a class compares by its bases and its
own attributes (methods by their bytecode, constants and names), a function
by its code, a value by equality. Comments, blank lines and the name given
to the class or function do not count; any change to code does.

The stub is compiled in a namespace holding the modules the lessons' cells
import (:func:`stub_namespace`), so the bases it names are the very classes
the learner's cell used.
"""

from __future__ import annotations

import ast
import inspect
import socket
import socketserver
import threading
import time
import types
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import sockserve

__all__ = ["stub_namespace", "stub_answer", "is_unchanged_stub", "fingerprint"]


def stub_namespace() -> dict[str, Any]:
    """What a stub's source may use without importing it: the modules the
    lessons import before their exercises."""
    return {"sockserve": sockserve, "socket": socket, "socketserver": socketserver, "threading": threading,
            "time": time, "BaseHTTPRequestHandler": BaseHTTPRequestHandler}


#: Class attributes that say where or how a class was written, not what it does.
_CLASS_NOISE = frozenset({"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__",
                          "__firstlineno__", "__static_attributes__", "__annotations__"})

#: The bits of ``co_flags`` that describe the code (the higher ones are ``__future__`` imports in force).
_CODE_FLAGS = 0xFFFF

_compiled: dict[str, Any] = {}


def stub_answer(stub: str) -> Any:
    """The object *stub*'s source defines (its last top-level definition or
    assignment), compiled once. Raises ``ValueError`` when it defines nothing."""
    if stub not in _compiled:
        tree = ast.parse(stub)
        names = [node.name if not isinstance(node, ast.Assign) else node.targets[0].id  # type: ignore[attr-defined]
                 for node in tree.body
                 if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                 or (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name))]
        if not names:
            raise ValueError(f"the stub defines nothing: {stub!r}")
        namespace = stub_namespace()
        exec(compile(tree, "<stub>", "exec", dont_inherit=True), namespace)  # noqa: S102 - our own stub's source
        _compiled[stub] = namespace[names[-1]]
    return _compiled[stub]


def is_unchanged_stub(stub: str, answer: Sequence[Any]) -> bool:
    """True when the first of *answer* is what *stub* defines, unchanged."""
    if not answer:
        return False
    try:
        return bool(fingerprint(answer[0]) == fingerprint(stub_answer(stub)))
    except Exception:  # an answer we cannot compare is an answer: check it
        return False


def _code(code: types.CodeType) -> tuple[Any, ...]:
    consts = tuple(_code(c) if isinstance(c, types.CodeType) else ("const", type(c).__name__, repr(c))
                   for c in code.co_consts)
    return (code.co_code, consts, code.co_names, code.co_varnames, code.co_argcount,
            code.co_kwonlyargcount, code.co_flags & _CODE_FLAGS)


def fingerprint(value: Any) -> Any:
    """A comparable summary of what *value* does (see the module's docstring)."""
    if isinstance(value, type):
        own = sorted(((k, fingerprint(v)) for k, v in vars(value).items() if k not in _CLASS_NOISE),
                     key=lambda item: item[0])
        return ("class", tuple(value.__bases__), tuple(own))
    if isinstance(value, (staticmethod, classmethod)):
        return (type(value).__name__, fingerprint(value.__func__))
    if isinstance(value, property):
        return ("property", fingerprint(value.fget), fingerprint(value.fset), fingerprint(value.fdel))
    if inspect.isfunction(value):
        defaults = tuple(fingerprint(d) for d in value.__defaults__ or ())
        return ("function", _code(value.__code__), defaults, repr(value.__kwdefaults__))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(fingerprint(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((repr(k), fingerprint(v)) for k, v in value.items())))
    return ("value", type(value).__name__, repr(value))
