"""Helpers for checkers: run a learner's server briefly and talk to it.

:func:`running` serves a server class with a handler on loopback (or a Unix
path in a fresh temporary directory) in a background thread, records what
the handler raised instead of printing it, and always stops and closes the
server (``drain`` cuts off a handler stuck in a read). :func:`converse` sends
lines over one stream connection and collects the reply lines, turning a
silent or closed connection into an :class:`ExerciseFailed` that says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from .. import TCPServer
from . import ExerciseFailed

__all__ = ["running", "converse", "handler_errors_note", "handler_error_fix", "require_class"]

HOST = "127.0.0.1"


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


def _record_error(self: Any, request: Any, client_address: Any) -> None:
    exc = sys.exc_info()[1]
    frames = traceback.extract_tb(exc.__traceback__ if exc else None)
    where = f" (in {frames[-1].name})" if frames else ""
    self.handler_errors.append(f"{type(exc).__name__}: {exc}{where}")


@contextlib.contextmanager
def running(
    server_class: type, handler: type, *, unix: bool = False, **attrs: Any
) -> Iterator[Any]:
    """Serve *handler* with a subclass of *server_class* while the block runs.

    The address is ``("127.0.0.1", 0)`` or, with *unix*, a socket path in a
    new temporary directory (removed afterwards). *attrs* become class
    attributes of the subclass (``max_packet_size=64``, say). The server's
    ``handler_errors`` lists what the handler raised, one line each;
    ``serving_thread_ident`` is the thread running ``serve_forever`` and
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

    namespace: dict[str, Any] = {"handle_error": _record_error, **attrs}
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
