"""Checkers for lesson 07 (building on sockserve): an allowlist, HTTP, a bound."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
from typing import Any

from .. import BaseServer, TCPServer, ThreadingTCPServer
from ..measure.workloads import handler_for
from . import ExerciseFailed, exercise
from .concurrency import burst
from .support import a_class, converse, defining_class, handler_errors_note, running

LESSON = "07-building-on-sockserve"


def _refused(server: Any, timeout: float = 3.0) -> bytes:
    """Connect, send a line, and return what comes back before the server closes:
    b"" for a connection closed (or reset) without a reply, or the first bytes of
    a reply as soon as any come (a served client's echo need not wait for a close)."""
    with socket.create_connection(server.server_address, timeout=timeout) as sock:
        try:
            sock.sendall(b"hello\n")
            return sock.recv(4096)
        except TimeoutError:
            raise ExerciseFailed(
                f"a client that is not allowed stayed connected for {timeout:g} s without an "
                "answer: a refused request should be closed at once",
                fix="return False from verify_request; the server then closes the connection itself",
            ) from None
        except (ConnectionResetError, BrokenPipeError):
            return b""


@exercise("building-allowlist", lesson=LESSON, difficulty=1,
          answer=a_class("AllowlistServer", ThreadingTCPServer,
                         body='allowed = {"127.0.0.1"}\n# your code here: verify_request',
                         required=TCPServer, what="a sockserve server class (ThreadingTCPServer)"))
def check_allowlist(cls: type) -> str:
    """Finish AllowlistServer (a ThreadingTCPServer): override verify_request so that only clients whose IP
    address is in the class attribute `allowed` (a set of strings) are served; every other connection is closed
    before a handler runs."""
    if defining_class(cls, "verify_request") is BaseServer:
        raise ExerciseFailed(
            f"{cls.__name__} does not override the hook that decides whether to serve an accepted "
            "connection, so BaseServer's, which accepts every client, decides",
            fix="define verify_request(self, request, client_address) and return whether "
            "client_address[0] is in self.allowed",
        )
    echo = handler_for("echo")
    with running(cls, echo, allowed={"127.0.0.1"}) as server:
        for address, want in ((("127.0.0.1", 40000), True), (("10.0.0.7", 40000), False),
                              (("127.0.0.2", 40000), False)):
            got = server.verify_request(None, address)
            if bool(got) is not want:
                raise ExerciseFailed(
                    f"with allowed = {{'127.0.0.1'}}, verify_request(request, {address!r}) returned "
                    f"{got!r}: client_address is an (IP, port) pair, and only the IP identifies the "
                    "client",
                    fix="return client_address[0] in self.allowed",
                )
        replies = converse(server, [b"hello\n"])
        if replies != [b"hello\n"]:
            raise ExerciseFailed(f"an allowed client got {replies!r} instead of its echo",
                                 fix="let verify_request only decide; do not read or write the request")
    with running(cls, echo, allowed={"10.0.0.7"}) as server:
        got_back = _refused(server)
        snap = server.stats.snapshot()
        note = handler_errors_note(server)
    if got_back:
        raise ExerciseFailed(f"a client not in allowed got a reply {got_back!r}.{note}",
                             fix="read the allowlist from self.allowed, not from a fixed set")
    if snap["rejected"] != 1 or snap["started"] != 0:
        raise ExerciseFailed(
            f"the refused client got no reply, but stats say rejected={snap['rejected']}, "
            f"started={snap['started']}: a handler ran for it, which costs a thread",
            fix="refuse in verify_request (return False) rather than in the handler",
        )
    return "allowed clients are served; others are closed before a handler runs (stats.rejected)"


def _get(server: Any, path: str) -> tuple[int, str, dict[str, str], bytes]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=3.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.reason, dict(response.getheaders()), response.read()
    except (TimeoutError, http.client.HTTPException, ConnectionError) as exc:
        raise ExerciseFailed(
            f"GET {path} got no proper HTTP response ({type(exc).__name__}: {exc})"
            + handler_errors_note(server),
            fix="answer with send_response(code), send_header(...), end_headers(), then write the body",
        ) from None
    finally:
        conn.close()


@exercise("building-http-stats", lesson=LESSON, difficulty=2,
          answer=a_class("StatsHandler", http.server.BaseHTTPRequestHandler, note="do_GET"))
def check_http_stats(handler: type) -> str:
    """Finish StatsHandler (an http.server.BaseHTTPRequestHandler): GET /stats answers 200 with the server's
    statistics (self.server.stats.snapshot()) as JSON (Content-Type application/json); any other path answers
    404."""
    quiet = type(handler.__name__, (handler,), {"log_message": lambda self, *args: None})
    with running(ThreadingTCPServer, quiet) as server:
        status, reason, headers, body = _get(server, "/stats")
        if status == 501:
            raise ExerciseFailed(
                f"GET /stats answered 501 {reason}: BaseHTTPRequestHandler answers an HTTP method "
                "only when the class has a method named after it",
                fix="define do_GET(self)",
            )
        if status != 200:
            raise ExerciseFailed(f"GET /stats answered {status} {reason}, not 200 OK" + handler_errors_note(server),
                                 fix="for self.path == '/stats', call self.send_response(200)")
        kind = headers.get("Content-Type", headers.get("content-type", ""))
        if not kind.startswith("application/json"):
            raise ExerciseFailed(
                f"GET /stats has Content-Type {kind!r}: the client reads the header to know what "
                "the body is",
                fix="self.send_header('Content-Type', 'application/json') before end_headers()",
            )
        try:
            data = json.loads(body)
        except ValueError:
            raise ExerciseFailed(f"the body of GET /stats is not JSON: {body[:80]!r}",
                                 fix="write json.dumps(...).encode() to self.wfile") from None
        if not isinstance(data, dict) or "accepted" not in data or "completed" not in data:
            raise ExerciseFailed(
                f"the JSON of GET /stats is not the server's statistics (got {str(data)[:120]})",
                fix="serve self.server.stats.snapshot(), a dict with 'accepted', 'completed', ...",
            )
        _, _, _, again = _get(server, "/stats")
        try:
            later = json.loads(again)
        except ValueError:
            later = {}
        live = server.stats.snapshot()["accepted"]
        moved = isinstance(later, dict) and isinstance(later.get("accepted"), int) and \
            data["accepted"] < later["accepted"] <= live
        if not moved:
            raise ExerciseFailed(
                f"two GET /stats in a row said accepted = {data['accepted']!r}, then "
                f"{later.get('accepted') if isinstance(later, dict) else later!r}, while this server has "
                f"accepted {live} connections: the statistics must be read when each request comes, from "
                "the server that handles it",
                fix="build the body inside do_GET from self.server.stats.snapshot(), each time",
            )
        status, reason, _, _ = _get(server, "/nothing-here")
        if status != 404:
            raise ExerciseFailed(f"GET /nothing-here answered {status} {reason}, not 404 Not Found",
                                 fix="for any other path, call self.send_error(404) and return")
    return "GET /stats answers the live statistics as JSON, other paths 404"


CLIENTS = 10
BOUND = 4
DELAY_MS = 250


@exercise("building-bounded", lesson=LESSON, difficulty=1,
          answer=a_class("BoundedServer", ThreadingTCPServer, required=TCPServer, what="a sockserve TCP server class"),
          prompt=f"Write BoundedServer, a sockserve TCP server class that never runs more than {BOUND} "
          f"handlers at once, yet serves every client of a burst of {CLIENTS}.")
def check_bounded(cls: type) -> str:
    line = f"io {DELAY_MS}\n".encode()
    with running(cls, handler_for("io", delay_ms=DELAY_MS)) as server:
        replies = burst(server.server_address, [line] * CLIENTS)
        peak = server.stats.peak_active
        overflows = server.stats.overflows
        note = handler_errors_note(server)
    answered = sum(1 for r in replies if r == [line])
    if peak > BOUND:
        raise ExerciseFailed(
            f"{CLIENTS} clients at once: {peak} handlers ran at the same time "
            f"(server.stats.peak_active): a thread per request has no bound (section 3 lists "
            "the bounds that exist)",
            fix=f"combine ThreadPoolMixIn with TCPServer and set pool_size = {BOUND} (or use "
            f"ForkingMixIn with max_children = {BOUND})",
        )
    if answered < CLIENTS:
        first = next(r for r in replies if r != [line])
        extra = f" ({overflows} turned away by a full queue: overflow='block' waits instead)" if overflows else ""
        raise ExerciseFailed(
            f"only {answered} of {CLIENTS} clients got their reply{extra}; one got {first!r}.{note}",
            fix="a bound should make the extra requests wait, not drop them: keep overflow = 'block'",
        )
    if peak < 2:
        raise ExerciseFailed(
            f"every client was served, but one at a time (peak_active = {peak}): bounded is not "
            "sequential",
            fix=f"allow up to {BOUND} at once: a pool of {BOUND} threads",
        )
    return f"{CLIENTS} clients served, never more than {BOUND} handlers at once"
