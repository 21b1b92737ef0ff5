"""Checkers for lesson 02 (TCP): a line handler, a line protocol, rebinding."""

from __future__ import annotations

import errno

from .. import StreamRequestHandler, TCPServer, ThreadingTCPServer
from ..workbook.helpers import leave_time_wait, time_wait_sockets
from . import ExerciseFailed, exercise
from .support import a_class, converse, handler_errors_note, running

LESSON = "02-tcp"


@exercise("tcp-upper-echo", lesson=LESSON, difficulty=1,
          answer=a_class("UpperEcho", StreamRequestHandler, method="handle",
                         note="read lines from self.rfile, write replies to self.wfile"))
def check_upper_echo(handler: type) -> str:
    """Finish UpperEcho (a StreamRequestHandler): answer every line the client sends with the same line in upper
    case, until the client closes the connection."""
    lines = [b"hello\n", b"Mixed Case 123\n", b"already UPPER\n"]
    with running(ThreadingTCPServer, handler) as server:
        replies = converse(server, lines, expect_close=True)
        for sent, got in zip(lines, replies):
            if got != sent.upper():
                raise ExerciseFailed(
                    f"for {sent!r} the reply was {got!r}, not the same line in upper case"
                    + handler_errors_note(server),
                    fix="rfile gives bytes, and bytes have .upper(): write line.upper() to "
                    "self.wfile for each line (its b'\\n' stays as it is)",
                )
    return f"{len(lines)} lines answered in upper case, then the connection closed"


@exercise("tcp-calculator", lesson=LESSON, difficulty=2,
          answer=a_class("Calculator", StreamRequestHandler, method="handle"))
def check_calculator(handler: type) -> str:
    """Finish Calculator: 'ADD a b' answers the sum, 'MUL a b' the product (integers), anything else a line
    starting with 'ERR'; a bad line must not end the connection."""
    script = [
        (b"ADD 2 3\n", b"5\n"),
        (b"MUL 4 -6\n", b"-24\n"),
        (b"ADD 2\n", None),
        (b"ADD two three\n", None),
        (b"DIV 1 2\n", None),
        (b"MUL 7 6\n", b"42\n"),
    ]
    with running(ThreadingTCPServer, handler) as server:
        replies = converse(server, [line for line, _ in script], expect_close=True)
        for (sent, want), got in zip(script, replies):
            if want is None:
                if not got.startswith(b"ERR"):
                    raise ExerciseFailed(
                        f"{sent!r} is not a valid command, but the reply was {got!r}: a protocol "
                        "answers a bad line with an error line, and goes on"
                        + handler_errors_note(server),
                        fix="check the number of words and the command name, and catch the "
                        "ValueError of int() on a word that is not a number; in each case "
                        "write a line starting with b'ERR' and continue with the next line",
                    )
            elif got != want:
                raise ExerciseFailed(
                    f"for {sent!r} the reply was {got!r}, not the result as a line"
                    + handler_errors_note(server),
                    fix="split the line into words, turn the two numbers into ints, and write "
                    "the result as b'%d\\n' % result",
                )
        if server.handler_errors:
            raise ExerciseFailed(
                "every line got its reply, but the handler raised: "
                f"{server.handler_errors[0]}",
                fix="let handle() return when self.rfile ends (the client closed), without "
                "reading or writing further",
            )
    return "sums, products and ERR lines all correct; bad lines did not end the connection"


class _Echo(StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


@exercise("tcp-rebind", lesson=LESSON, difficulty=1,
          answer=a_class("RestartableServer", TCPServer, note="one class attribute"))
def check_rebind(server_class: type) -> str:
    """Write RestartableServer, a TCPServer subclass that can bind its port again right after an earlier
    RestartableServer on that port closed (its connections still in TIME_WAIT)."""
    port = leave_time_wait(3, server_class)
    waiting = time_wait_sockets(port)
    try:
        again = server_class(("127.0.0.1", port), _Echo)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ExerciseFailed(
            f"binding port {port} again failed with EADDRINUSE although no server listens there: "
            f"{waiting} connection(s) of the previous server are in TIME_WAIT, and by default the "
            "kernel keeps such a port reserved",
            fix="a socket option lets a new socket bind a port whose old connections are in "
            "TIME_WAIT (SO_REUSEADDR); TCPServer.server_bind() sets it when the class attribute "
            "allow_reuse_address is true. On Linux both the old and the new server need it, so "
            "set allow_reuse_address = True on the class",
        ) from None
    again.server_close()
    first = server_class(("127.0.0.1", 0), _Echo)
    try:
        try:
            second = server_class(first.server_address, _Echo)
        except OSError:
            pass
        else:
            second.server_close()
            raise ExerciseFailed(
                "a second server could bind a port that a live server is listening on: the "
                "option you set shares a live port between servers, which is more than a restart "
                "needs",
                fix="SO_REUSEPORT (allow_reuse_port) shares a live port; SO_REUSEADDR "
                "(allow_reuse_address) only reuses a port whose connections are in TIME_WAIT: "
                "use that one",
            )
    finally:
        first.server_close()
    return f"rebound port {port} with {waiting} connection(s) in TIME_WAIT; a live port is still refused"
