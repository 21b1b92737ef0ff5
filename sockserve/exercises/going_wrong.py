"""Checkers for lesson 09 (when things go wrong).

Each runs the learner's code against live sockets on loopback and judges
what it does: the errors a server records, the time a client waits, the
states the kernel reports. Each failure gives a hint that names the idea
missed; :func:`~sockserve.exercises.check` adds the fix on a later failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import StreamRequestHandler, ThreadingTCPServer, ThreadPoolTCPServer
from ..workbook.helpers import wait_for
from ..workbook.mishaps import NO_EOF_REPLY, ReadToEof, process_state, reset
from . import ExerciseFailed, exercise
from .support import a_class, a_function, running

LESSON = "09-when-things-go-wrong"


# -- 1. handle_error -------------------------------------------------------------------------


class _Troubled(StreamRequestHandler):
    """``boom``: raises ValueError; ``wait``: waits for a second line; ``talk``: replies
    five times, slowly; anything else: echoes it."""

    def handle(self) -> None:
        for line in self.rfile:
            if line == b"boom\n":
                raise ValueError("boom: the handler's own bug")
            if line == b"wait\n":
                self.wfile.write(b"waiting\n")
                continue
            if line == b"talk\n":
                time.sleep(0.1)
                for _ in range(5):
                    self.wfile.write(b"reply\n")
                    time.sleep(0.02)
                return
            self.wfile.write(line)


@exercise("wrong-handle-error", lesson=LESSON, difficulty=2,
          answer=a_class("RecordingServer", ThreadingTCPServer, note="__init__ and handle_error"))
def check_handle_error(server_class: type[ThreadingTCPServer]) -> str:
    """Write RecordingServer, a ThreadingTCPServer whose handle_error appends (client_address, exception) to
    self.failures for every request that failed, instead of printing a traceback."""
    if server_class.handle_error is ThreadingTCPServer.handle_error:
        # Not overridden: running it would only print tracebacks; say so before that.
        raise ExerciseFailed(
            f"{server_class.__name__} keeps the handle_error it inherited, which logs a failure and "
            "forgets it: a server that wants to know what went wrong has to override that hook.",
            fix="define handle_error(self, request, client_address) in the class, appending to self.failures "
            "(a list made in __init__).",
        )
    expected: dict[Any, type[Exception]] = {}
    with running(server_class, _Troubled, record_errors=False) as server:
        # 1: resets while the handler waits for its next line
        client = socket.create_connection(server.server_address, timeout=3)
        client.sendall(b"wait\n")
        client.recv(16)
        expected[client.getsockname()] = ConnectionResetError
        reset(client)
        # 2: asks for a reply and leaves before it comes: the handler's writes fail
        client = socket.create_connection(server.server_address, timeout=3)
        client.sendall(b"talk\n")
        expected[client.getsockname()] = BrokenPipeError
        client.close()
        # 3: the handler's own bug
        with socket.create_connection(server.server_address, timeout=3) as client:
            expected[client.getsockname()] = ValueError
            client.sendall(b"boom\n")
            client.recv(16)
        wait_for(lambda: server.stats.snapshot()["started"] - server.stats.snapshot()["active"] >= 3, 3.0)
        time.sleep(0.05)
        with socket.create_connection(server.server_address, timeout=3) as client:
            client.sendall(b"still there?\n")
            alive = client.recv(32) == b"still there?\n"
    failures = getattr(server, "failures", None)
    if failures is None:
        raise ExerciseFailed(
            "the server has no `failures` attribute after three requests failed: handle_error is "
            "the one place a server hears about every failed request, so it is where to keep them.",
            fix="in __init__, set self.failures = [] and call super().__init__(...); in "
            "handle_error(self, request, client_address), append to it.",
        )
    if not failures:
        raise ExerciseFailed(
            "three requests failed (a reset, a broken pipe, a bug in the handler) but `failures` is "
            "empty: the server calls handle_error(request, client_address) once for each, from inside "
            "its `except` clause, so the exception is the one being handled right then.",
            fix="in handle_error: self.failures.append((client_address, sys.exc_info()[1])).",
        )
    try:
        got = {tuple(address): type(exc) for address, exc in failures}
    except (TypeError, ValueError):
        raise ExerciseFailed(
            f"`failures` holds {failures[:3]!r}: each entry should say who failed and how, as a "
            "pair (client_address, exception).",
            fix="append the tuple (client_address, sys.exc_info()[1]), not the request or a string.",
        ) from None
    for address, kind in expected.items():
        found = got.get(tuple(address))
        if found is None or not issubclass(found, kind):
            what = {ConnectionResetError: "a client that reset its connection (ConnectionResetError)",
                    BrokenPipeError: "a client that left before its reply (BrokenPipeError)",
                    ValueError: "a handler that raised ValueError"}[kind]
            raise ExerciseFailed(
                f"nothing right was recorded for {what}; you recorded "
                f"{sorted(t.__name__ for t in got.values())}. Every failure reaches handle_error, "
                "whether the client's doing or the handler's.",
                fix="record every call, with the client_address you are given and sys.exc_info()[1]; do not "
                "filter by type.",
            )
    if not alive:
        raise ExerciseFailed("after the failures the server stopped answering: handle_error must not raise "
                             "or close the server",
                             fix="in handle_error only append to self.failures; do not raise, close or shut down")
    return "a reset, a broken pipe and a handler's bug, each recorded with its client's address"


def _answers_in_upper_case(sock: socket.socket, sent: bytes, size: int = 16) -> None:
    """Send the line *sent* on *sock* (connected with a 2 s timeout) and read at most *size* bytes;
    fail unless they are *sent* in upper case."""
    sock.sendall(sent)
    try:
        got = sock.recv(size)
    except TimeoutError:
        got = b"(nothing within 2 s)"
    if got != sent.upper():
        raise ExerciseFailed(
            f"sent {sent!r} and got {got!r}, not {sent.upper()!r}: before it can go wrong, the handler has "
            "to do its job, answering every line its client sends.",
            fix="in handle(): for line in self.rfile: self.wfile.write(line.upper()).",
        )


# -- 2. idle timeout ---------------------------------------------------------------------------


def _read_until_close(sock: socket.socket, limit: float) -> tuple[bytes, float | None]:
    """Everything *sock* receives until the server closes it (or *limit* seconds pass),
    and the ``time.monotonic()`` of the close (None if it did not close)."""
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(1024):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        return data, None
    return data, time.monotonic()


#: The idle timeout the exercise asks for, and the shortest one the check accepts.
IDLE_TIMEOUT = 0.3
_SHORTEST = 0.2
#: Seconds a silent client waits to be cut off: far beyond the idle timeout,
#: so that only a handler with no timeout keeps it (a busy machine may be late).
_CUT_OFF_WAIT = 3.0
#: A client sending a line every this many seconds is busy, not idle ...
_BUSY_PAUSE = 0.1
_BUSY_LINES = 8
#: ... and is sent again (on a new connection) when this machine held it
#: back so long that the server could rightly call it idle.
_BUSY_TRIES = 5


def _busy_client(address: Any) -> tuple[bool, float]:
    """One client that sends a line every :data:`_BUSY_PAUSE` s and reads
    each reply. Returns (cut off early, the longest gap it left between
    sends, from its connect on). The server saw at most that gap as
    silence: its read began after the line before arrived, which was after
    this client sent it, and the next line arrives when it is sent."""
    longest = 0.0
    last = time.monotonic()
    with socket.create_connection(address, timeout=5) as busy, busy.makefile("rb") as reader:
        for number in range(_BUSY_LINES):
            time.sleep(_BUSY_PAUSE)
            now = time.monotonic()
            longest, last = max(longest, now - last), now
            try:
                busy.sendall(b"line %d\n" % number)
                if reader.readline() != b"LINE %d\n" % number:
                    return True, longest
            except TimeoutError:
                return True, float("inf")  # no reply in 5 s: the machine, not a cut, cannot be told apart
            except OSError:
                return True, longest
    return False, longest


@exercise("wrong-idle-timeout", lesson=LESSON, answer=a_class("Patient", StreamRequestHandler), difficulty=2)
def check_idle_timeout(handler: type) -> str:
    """Write Patient, a StreamRequestHandler that answers each line in upper case and, when its client has been
    silent for more than 0.3 s, writes b'idle timeout\\n' and ends the connection."""
    # Judged from the client's clock, each verdict only where the server's
    # cannot disagree: the server's silence begins after the client's last
    # send (it reads the line, then replies, then waits), so the time from
    # that send to the close bounds the handler's timeout from above, and a
    # gap between two sends bounds the silence the server saw.
    with running(ThreadingTCPServer, handler) as server:
        with socket.create_connection(server.server_address, timeout=2) as idle:
            sent = time.monotonic()
            _answers_in_upper_case(idle, b"hello\n", size=6)  # the reply alone: then the idle timeout's words
            rest, closed_at = _read_until_close(idle, _CUT_OFF_WAIT)
        if closed_at is None:
            raise ExerciseFailed(
                f"the silent client was still connected {_CUT_OFF_WAIT:g} s after its last line: a handler's read "
                "waits for as long as the client says nothing, holding its thread all that time.",
                fix="set the class attribute timeout = 0.3: every read then raises TimeoutError after 0.3 s of "
                "silence; catch it in handle().",
            )
        closed_after = closed_at - sent
        if rest != b"idle timeout\n":
            raise ExerciseFailed(
                f"the silent client was disconnected after {closed_after:.1f} s but received {rest!r}: "
                "a client cut off without a word cannot tell a timeout from a crash.",
                fix="wrap the reading loop in try/except TimeoutError, and in the except write "
                "b'idle timeout\\n' before handle() returns.",
            )
        if closed_after < _SHORTEST:
            raise ExerciseFailed(f"the silent client was cut off {closed_after:.2f} s after it sent its line: "
                                 f"wait {IDLE_TIMEOUT:g} s of silence",
                                 fix="set the handler's timeout class attribute to 0.3 (seconds)")
        for _ in range(_BUSY_TRIES):
            cut_early, longest = _busy_client(server.server_address)
            if not cut_early or longest < IDLE_TIMEOUT:
                break  # a verdict: served throughout, or cut off although never silent for 0.3 s
    if cut_early and longest >= IDLE_TIMEOUT:
        raise ExerciseFailed(
            f"a client meant to send a line every {_BUSY_PAUSE:g} s was cut off in each of {_BUSY_TRIES} tries, "
            f"but this machine held it back for {longest:.2f} s between two lines each time, so the server "
            "may rightly have found it idle: the check could not tell whether your timeout is about silence.",
            fix="run the check again when the machine is less busy; an idle timeout is the handler's timeout "
            "attribute, which applies to each read on its own",
        )
    if cut_early:
        raise ExerciseFailed(
            f"a client that sent a line every {_BUSY_PAUSE:g} s was cut off: an idle timeout is about silence, "
            "each read on its own, not about how long the connection has lasted.",
            fix="use the handler's timeout attribute (it applies to each read), not a deadline for the "
            "whole connection.",
        )
    return f"answered in upper case, and a silent client was told 'idle timeout' after {closed_after:.1f} s"


# -- 3. a total deadline in a thread pool ----------------------------------------------------


@exercise("wrong-deadline", lesson=LESSON, answer=a_class("Deadline", StreamRequestHandler), difficulty=3)
def check_deadline(handler: type) -> str:
    """Write Deadline, a StreamRequestHandler that answers each line in upper case and ends every connection 0.5
    s after it started, whatever the client does (a client dripping one byte every 50 ms included), so that a
    thread pool is never held by slow clients for long."""
    stop = threading.Event()
    drippers: list[socket.socket] = []
    with running(ThreadPoolTCPServer, handler, pool_size=2) as server:
        try:
            with socket.create_connection(server.server_address, timeout=2) as normal:
                _answers_in_upper_case(normal, b"ping\n")
            for _ in range(4):
                drippers.append(socket.create_connection(server.server_address, timeout=5))

            def drip() -> None:
                for _ in range(60):  # 3 s at most
                    if stop.wait(0.05):
                        return
                    for sock in drippers:
                        with contextlib.suppress(OSError):
                            sock.sendall(b".")

            dripping = threading.Thread(target=drip, daemon=True)
            dripping.start()
            time.sleep(0.05)
            began = time.monotonic()
            with socket.create_connection(server.server_address, timeout=2.6) as quick:
                quick.sendall(b"quick\n")
                try:
                    reply = quick.recv(16)
                except TimeoutError:
                    reply = b""
            waited = time.monotonic() - began
        finally:
            stop.set()
            for sock in drippers:
                sock.close()
    if reply != b"QUICK\n" or waited > 2.5:
        outcome = "got no answer" if reply != b"QUICK\n" else "was answered only"
        raise ExerciseFailed(
            f"with 4 clients dripping a byte every 50 ms into a pool of 2 workers, a quick client "
            f"{outcome} after {waited:.1f} s. A per-read timeout never trips for a client that keeps sending a "
            "little, so each dripping client holds its worker for as long as it likes.",
            fix="bound the whole connection: in setup(), start threading.Timer(0.5, self.connection.shutdown, "
            "(socket.SHUT_RDWR,)) and cancel it in finish() (the read then returns end of file); or read with "
            "self.connection.recv() and check time.monotonic() against a deadline before each read.",
        )
    return f"4 dripping clients in a pool of 2, and a quick client was answered after {waited:.1f} s"


# -- 4. zombies --------------------------------------------------------------------------------


def _fork(action: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: exit at once, or sleep (a live process), perhaps under a tricky name
        if action == "tricky":
            with open("/proc/self/comm", "w") as comm:
                comm.write("x) Z (y")
        if action != "exit":
            time.sleep(5)
    finally:
        os._exit(0)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as comm:
            return comm.read().rstrip("\n")
    except OSError:
        return ""


@exercise("wrong-zombies", lesson=LESSON, answer=a_function("zombie_pids(pids)"), difficulty=2)
def check_zombies(zombie_pids: Callable[..., Any]) -> str:
    """Write zombie_pids(pids) -> list: those of the given process ids whose state in /proc/PID/stat is Z
    (zombie), in the order given."""
    if not os.path.exists("/proc/self/stat"):
        raise ExerciseFailed("this system has no /proc (not Linux): the exercise reads /proc/PID/stat",
                             fix="run this lesson on Linux (a Linux JupyterHub, Binder, or a Linux container)")
    actions = ["exit", "exit", "sleep", "tricky", "gone"]
    random.shuffle(actions)
    pids = [_fork("exit" if action == "gone" else action) for action in actions]
    try:
        for pid, action in zip(pids, actions):
            if action == "gone":
                os.waitpid(pid, 0)  # reaped: no /proc entry any more
        def settled() -> bool:
            for pid, action in zip(pids, actions):
                if action == "exit" and process_state(pid) != "Z":
                    return False
                if action == "tricky" and _comm(pid) != "x) Z (y":
                    return False
            return True

        wait_for(settled, 3.0)
        try:
            got = zombie_pids(list(pids))
        except OSError as exc:
            raise ExerciseFailed(
                f"your function raised {type(exc).__name__} ({exc}): a child that has been reaped "
                "has no /proc entry at all; it is not a zombie, just gone.",
                fix="catch FileNotFoundError (or OSError) when opening /proc/PID/stat and skip that pid.",
            ) from None
    finally:
        for pid, action in zip(pids, actions):
            if action in ("sleep", "tricky"):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if action != "gone":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
    expected = [pid for pid, action in zip(pids, actions) if action == "exit"]
    if got is None:
        raise ExerciseFailed(
            "zombie_pids returned None: it should return the pids that are zombies, the children "
            "that have exited and that nobody has waited for yet.",
            fix="return a list: [pid for pid in pids if <its state> == 'Z'].",
        )
    got = list(got)
    tricky = [pid for pid, action in zip(pids, actions) if action == "tricky"]
    if tricky[0] in got:
        raise ExerciseFailed(
            "you counted a sleeping process as a zombie: its command name is 'x) Z (y', and "
            "/proc/PID/stat writes that name in parentheses as its second field, spaces and all.",
            fix="take the state from the text after the last ')': stat.rsplit(')', 1)[1].split()[0].",
        )
    if got != expected:
        raise ExerciseFailed(
            f"of {len(pids)} processes (two exited, unreaped; two alive; one already reaped) you "
            f"returned {len(got)} as zombies, the kernel says {len(expected)}. A zombie is a child that "
            "has exited and whose parent has not yet called wait(): only its exit status is left, and "
            "its state letter is Z.",
            fix="read the third field of /proc/PID/stat (after the name in parentheses) and keep the pids "
            "where it is 'Z', in the order given.",
        )
    return "two zombies found among five processes (one of them named to mislead, one already reaped)"


# -- 5. Nagle ------------------------------------------------------------------------------------


@exercise("wrong-nagle", lesson=LESSON, answer=a_class("TwoLines", StreamRequestHandler), difficulty=1)
def check_nagle(handler: type) -> str:
    """Write TwoLines, a StreamRequestHandler that answers each line with two lines, b'length N\\n' (N: the
    line's length in bytes, newline included) and then the line itself, so that one request/reply exchange takes
    well under a millisecond on loopback."""
    times: list[float] = []
    with running(ThreadingTCPServer, handler) as server:
        with socket.create_connection(server.server_address, timeout=2) as client:
            reader = client.makefile("rb")
            try:
                for number in range(15):
                    line = b"request %d %s\n" % (number, b"x" * (random.randint(0, 9) if number else 3))
                    began = time.perf_counter()
                    client.sendall(line)
                    try:
                        header, body = reader.readline(), reader.readline()
                    except TimeoutError:
                        header, body = b"(nothing within 2 s)", b""
                    times.append(time.perf_counter() - began)
                    if (header, body) != (b"length %d\n" % len(line), line):
                        raise ExerciseFailed(
                            f"sent {line!r}, got {header!r} then {body!r}: the reply is two lines, "
                            f"{b'length %d' % len(line)!r} (newline included in the count) and then the line.",
                            fix="in handle(): for line in self.rfile: write b'length %d\\n' % len(line), then "
                            "write line.",
                        )
            finally:
                reader.close()
    median = statistics.median(times) * 1000
    if median > 15:
        raise ExerciseFailed(
            f"the replies are right, but the median exchange took {median:.0f} ms for a handler "
            "that does almost nothing. The second small write waits until the client acknowledges the "
            "first (Nagle's algorithm), and the client delays that ACK, hoping to send it with data of "
            "its own (delayed ACK): they wait for each other until a timer ends it.",
            fix="set disable_nagle_algorithm = True on the handler (TCP_NODELAY), or write both lines in "
            "one write.",
        )
    return f"correct replies, median exchange {median:.2f} ms"


# -- 6. half-close -------------------------------------------------------------------------------


def _digest_report(data: bytes) -> bytes:
    """A long reply about *data* (far more than one recv() returns)."""
    digest = hashlib.sha256(data).hexdigest().encode()
    return b"%d bytes %s\n" % (len(data), digest) + digest * 2000 + b"\n"


class _Digest(ReadToEof):
    """Reads to end of file (1 s at most), then replies with a long report on what it got."""

    def report(self, data: bytes) -> bytes:
        return _digest_report(data)


@exercise("wrong-half-close", lesson=LESSON, answer=a_function("ask_to_eof(address, data)"), difficulty=2)
def check_half_close(ask_to_eof: Callable[..., Any]) -> str:
    """Write ask_to_eof(address, data) -> bytes: connect, send all of data, tell the server you have sent
    everything, and return the server's whole reply (it replies after reading to end of file, and closes when
    done)."""
    data = os.urandom(random.randint(50_000, 150_000))
    expected = _digest_report(data)
    with running(ThreadingTCPServer, _Digest) as server:
        try:
            reply = ask_to_eof(server.server_address, data)
        except OSError as exc:
            raise ExerciseFailed(
                f"your function raised {type(exc).__name__} ({exc}): close() ends the connection "
                "both ways, so there is no reading after it; what the server needs is to hear that "
                "you have finished sending, while you can still receive.",
                fix="after sock.sendall(data), call sock.shutdown(socket.SHUT_WR) (a half-close: it sends a "
                "FIN), then recv() until it returns b''.",
            ) from None
    if reply is None:
        raise ExerciseFailed(
            "ask_to_eof returned None: it should return the bytes the server sent back.",
            fix="collect the chunks of sock.recv() until it returns b'' and return them joined.",
        )
    if reply == NO_EOF_REPLY or not reply:
        raise ExerciseFailed(
            f"the server was still waiting for the end of your data after 1 s (you got {reply[:40]!r}): "
            "it reads until end of file, and a connection's end is signalled only by the side that "
            "sends; having sent everything is not the same as saying so.",
            fix="call sock.shutdown(socket.SHUT_WR) after sock.sendall(data), then keep reading.",
        )
    if reply != expected:
        raise ExerciseFailed(
            f"you returned {len(reply)} bytes of a {len(expected)}-byte reply: one recv() returns "
            "whatever has arrived so far, not a whole message.",
            fix="loop: while chunk := sock.recv(65536): collect it; the server's close ends the loop.",
        )
    return f"sent {len(data)} bytes, half-closed, and read the whole {len(expected)}-byte reply"
