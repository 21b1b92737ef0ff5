"""Helpers for checkers: what an answer must be, run a learner's server briefly and talk to it.

:func:`a_class` and :func:`a_function` describe what an exercise's answer
is: registered with ``@exercise(..., answer=...)``, one description gives
both the stub the lesson hands out and the first check of every answer
(a class derived from the right base, a function), so the two cannot
disagree. :func:`running` serves a server class with a handler on loopback (or a Unix
path in a fresh temporary directory) in a background thread, records what
the handler raised instead of printing it, and always stops and closes the
server (``drain`` cuts off a handler stuck in a read). :func:`converse` sends
lines over one stream connection and collects the reply lines, turning a
silent or closed connection into an :class:`ExerciseFailed` that says so.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .. import ServerState, TCPServer
from . import ExerciseFailed

__all__ = ["a_class", "a_function", "ClassAnswer", "FunctionAnswer", "running", "converse", "handler_errors_note",
           "handler_error_fix", "require_class", "defining_class"]

HOST = "127.0.0.1"

#: Where a stub asks for the learner's code.
YOUR_CODE = "# your code here"


def require_class(answer: Any, base: type, what: str) -> type:
    """*answer* must be a class derived from *base*; say so precisely if not."""
    if not isinstance(answer, type):
        raise ExerciseFailed(
            f"expected {what}, a class (not an instance or a function); got {answer!r}",
            fix="pass the class itself, as written in the cell's class statement",
        )
    if not issubclass(answer, base):
        raise ExerciseFailed(
            f"{answer.__name__} is not a {base.__name__} ({what}), so the server cannot use it that way; "
            f"its bases are {', '.join(b.__name__ for b in answer.__mro__[1:])}",
            fix=f"keep {base.__name__} (or a subclass of it) among the bases of {answer.__name__}",
        )
    return answer


def _spelled(base: type) -> str:
    """*base* as a lesson's cell names it: ``sockserve.TCPServer``,
    ``socketserver.TCPServer``, or a bare name the cell imported
    (``BaseHTTPRequestHandler``); see :func:`~sockserve.exercises.stubs.stub_namespace`."""
    if base.__module__ in ("sockserve", "socketserver"):
        return f"{base.__module__}.{base.__name__}"
    return base.__name__


def _stub_body(body: str | None, note: str, method: str) -> str:
    """The lines inside a stub's ``class`` or ``def``, not yet indented."""
    if body is None:
        body = f"pass  {YOUR_CODE}" + (f": {note}" if note else "")
        if method:
            body = f"def {method}(self):\n    {body}"
    return body


def _indented(body: str) -> str:
    return "".join(f"    {line}\n" if line else "\n" for line in body.split("\n"))


@dataclass(frozen=True)
class ClassAnswer:
    """The answer is a class: see :func:`a_class`."""

    name: str
    bases: tuple[type, ...]
    body: str
    prelude: str
    required: type | None
    what: str

    @property
    def stub(self) -> str:
        """The source the lesson's exercise cell starts from."""
        bases = f"({', '.join(_spelled(base) for base in self.bases)})" if self.bases else ""
        return f"{self.prelude}class {self.name}{bases}:\n{_indented(self.body)}"

    def require(self, answer: Any) -> type:
        """*answer* itself when it is such a class; else :class:`ExerciseFailed`."""
        if self.required is not None:
            return require_class(answer, self.required, self.what)
        if not isinstance(answer, type):
            raise ExerciseFailed(f"expected a class ({self.what}); got {answer!r}",
                                 fix=f"pass the class {self.name} itself")
        return answer


def a_class(
    name: str, *bases: type, note: str = "", method: str = "", body: str | None = None, prelude: str = "",
    required: type | None = None, what: str = "",
) -> ClassAnswer:
    """The answer is a class *name* derived from *bases* (none: a mixin).

    Its stub is ``class name(bases):`` with *body* (default: ``pass  # your
    code here``, followed by ``: note`` when given, inside ``def
    method(self):`` when *method* is given), after *prelude* (imports the
    cell makes). An answer must be a class derived from *required* (default:
    the first of *bases*), which the failure calls *what* (default ``a
    <required> subclass``; for a mixin ``the mixin``).
    """
    required = required or (bases[0] if bases else None)
    if not what:
        what = f"a {required.__name__} subclass" if required else "the mixin"
    return ClassAnswer(name, bases, _stub_body(body, note, method), prelude, required, what)


@dataclass(frozen=True)
class FunctionAnswer:
    """The answer is a function: see :func:`a_function`."""

    signature: str
    body: str
    prelude: str
    coroutine: bool

    @property
    def name(self) -> str:
        return self.signature.partition("(")[0]

    @property
    def stub(self) -> str:
        """The source the lesson's exercise cell starts from."""
        define = "async def" if self.coroutine else "def"
        return f"{self.prelude}{define} {self.signature}:\n{_indented(self.body)}"

    def require(self, answer: Any) -> Callable[..., Any]:
        """*answer* itself when it is such a function; else :class:`ExerciseFailed`."""
        if not callable(answer) or isinstance(answer, type):
            raise ExerciseFailed(f"expected a function {self.signature}; got {answer!r}",
                                 fix=f"pass the function itself: check(..., {self.name})")
        if self.coroutine and not inspect.iscoroutinefunction(answer):
            raise ExerciseFailed(
                f"{getattr(answer, '__name__', answer)} is a plain function; asyncio calls it for each "
                "connection and awaits what it returns, so it must be a coroutine function",
                fix="write it with `async def`, and `await` the reader's and writer's coroutines inside")
        function: Callable[..., Any] = answer
        return function


def a_function(signature: str, *, body: str | None = None, prelude: str = "",
               coroutine: bool = False) -> FunctionAnswer:
    """The answer is a function written as ``def signature:``, whose stub
    holds *body* (default ``pass  # your code here``) after *prelude*. With
    *coroutine* it is the connection callback of ``asyncio.start_server``,
    written as ``async def signature:``, and must be a coroutine function."""
    return FunctionAnswer(signature, _stub_body(body, "", ""), prelude, coroutine)


def defining_class(cls: type, name: str) -> type:
    """The class in *cls*'s MRO whose own namespace defines *name*."""
    return next(k for k in cls.__mro__ if name in vars(k))


def _record_error(self: Any, request: Any, client_address: Any) -> None:
    exc = sys.exc_info()[1]
    frames = traceback.extract_tb(exc.__traceback__ if exc else None)
    where = f" (in {frames[-1].name})" if frames else ""
    self.handler_errors.append(f"{type(exc).__name__}: {exc}{where}")


@contextlib.contextmanager
def running(
    server_class: type, handler: type, *, unix: bool = False, record_errors: bool = True, **attrs: Any
) -> Iterator[Any]:
    """Serve *handler* with a subclass of *server_class* while the block runs.

    The address is ``("127.0.0.1", 0)`` or, with *unix*, a socket path in a
    new temporary directory (removed afterwards). *attrs* become class
    attributes of the subclass (``max_packet_size=64``, say). The server's
    ``handler_errors`` lists what the handler raised, one line each, instead
    of a printed traceback (unless *record_errors* is false: then
    *server_class*'s own ``handle_error`` runs, the learner's answer in an
    exercise about that hook); ``serving_thread_ident`` is the thread running ``serve_forever`` and
    ``handler_threads`` an empty list for a handler to note its thread in.
    Every connection a stream server accepted is closed at the end, whether
    or not the answer closed it.
    """
    accepted: list[Any] = []

    def get_request(self: Any) -> Any:
        # Keep every accepted connection, to close what an answer forgets to.
        base: Any = server_class
        request, client_address = base.get_request(self)
        accepted.append(request)
        return request, client_address

    namespace: dict[str, Any] = {"handle_error": _record_error, **attrs} if record_errors else dict(attrs)
    if issubclass(server_class, TCPServer) and server_class.socket_type == socket.SOCK_STREAM:
        namespace["get_request"] = get_request
    cls = type(f"Checked{server_class.__name__}", (server_class,), namespace)
    tmp = tempfile.mkdtemp(prefix="ssx-", dir="/tmp") if unix else None
    address: Any = os.path.join(tmp, "s.sock") if tmp else (HOST, 0)
    try:
        server = cls(address, handler)
        server.handler_errors = []
        server.handler_threads = []
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        server.serving_thread_ident = thread.ident
        # Hand the server over once its loop serves: the drain below stops only a
        # loop that runs, so a check that fails at once (before the loop began)
        # would otherwise leave the loop to start after it and wait out the join.
        began = time.monotonic()
        while (getattr(server, "state", None) is not ServerState.SERVING and thread.is_alive()
               and time.monotonic() - began < 5.0):
            time.sleep(0.002)
        try:
            yield server
        finally:
            server.drain(2.0)
            thread.join(5.0)
            server.server_close()
            for request in accepted:
                request.close()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def handler_errors_note(server: Any, whose: str = "Your handler") -> str:
    """`` Your handler raised: ...`` when the server's handler raised, else
    an empty string. *whose* names the handler when it is not the learner's
    (``"The check's server"``, when the learner wrote a client)."""
    errors = getattr(server, "handler_errors", [])
    return f" {whose} raised: {errors[0]}." if errors else ""


def handler_error_fix(server: Any, default: str) -> str:
    """The fix for a failure: *default*, unless the handler raised, when the
    fix is about what it raised (the default would tell the learner to do
    what the code already does)."""
    errors = getattr(server, "handler_errors", [])
    if not errors:
        return default
    first = errors[0]
    kind = first.split(":", 1)[0]
    if kind == "TypeError" and ("bytes" in first or "str" in first):
        return ("self.rfile gives bytes and self.wfile takes bytes: compare with b'...' literals and write "
                "bytes (b'%d\\n' % number, or text.encode()), never str")
    if kind == "ValueError":
        return ("a line your code cannot parse must not end handle(): put the parsing in try: ... "
                "except ValueError: and answer that line with an error line, then go on with the next")
    return (f"handle() ended with that {kind}, and the connection with it: fix the line the error "
            "names (run your handler's code on one line by hand to see it)")


def converse(
    server: Any, lines: Sequence[bytes], *, timeout: float = 3.0, expect_close: bool = False
) -> list[bytes]:
    """Send each of *lines* on one connection and read one reply line after each.

    Returns the reply lines (with their ``b"\\n"``). A reply that does not come
    within *timeout* seconds, or a connection closed early, raises
    :class:`ExerciseFailed` naming the line that went unanswered. With
    *expect_close*, after the last reply the server must close the connection.
    """
    family = server.socket.family
    replies: list[bytes] = []
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(server.server_address)
        reader = sock.makefile("rb")
        try:
            for line in lines:
                sock.sendall(line)
                try:
                    reply = reader.readline(65536)
                except TimeoutError:
                    raise ExerciseFailed(
                        f"sent {line!r} and waited {timeout:g} s, but no reply line "
                        "came back: the client reads until it sees an end of line"
                        + handler_errors_note(server),
                        fix=handler_error_fix(server, "for every line handle() reads from self.rfile, "
                                              "write one reply line, ending in b'\\n', to self.wfile"),
                    ) from None
                if not reply:
                    raise ExerciseFailed(
                        f"sent {line!r} but the server closed the connection without a "
                        "reply: the connection ends when handle() returns"
                        + handler_errors_note(server),
                        fix=handler_error_fix(server, "loop over the lines of self.rfile (for line in "
                                              "self.rfile: ...) and answer each one before handle() returns"),
                    )
                if not reply.endswith(b"\n"):
                    raise ExerciseFailed(
                        f"sent {line!r}, got {reply!r} and then the connection closed: the "
                        "client reads a reply up to its end of line" + handler_errors_note(server),
                        fix=handler_error_fix(server, "end every reply with b'\\n'"),
                    )
                replies.append(reply)
            if expect_close:
                sock.shutdown(socket.SHUT_WR)
                try:
                    rest = reader.read()
                except TimeoutError:
                    raise ExerciseFailed(
                        f"after the client closed its side, the server kept the connection "
                        f"open for {timeout:g} s: a closed side reads as end of file",
                        fix="return from handle() when self.rfile reaches end of file (a "
                        "for loop over self.rfile ends there by itself)",
                    ) from None
                if rest:
                    raise ExerciseFailed(
                        f"unexpected bytes after the last reply: {rest!r}",
                        fix="write exactly one reply line per line received",
                    )
        finally:
            reader.close()
    return replies
