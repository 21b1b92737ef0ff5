"""Checkers for lesson 01 (architecture): the hook order, a one-hook mixin."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from typing import Any

from .. import StreamRequestHandler, TCPServer, ThreadingTCPServer
from . import ExerciseFailed, exercise
from .support import a_class, handler_errors_note, running

LESSON = "01-architecture"

SERVER_HOOKS = ("get_request", "verify_request", "process_request", "finish_request",
                "shutdown_request", "close_request")
HANDLER_HOOKS = ("setup", "handle", "finish")


def _recording(cls: type, hooks: Sequence[str], log: list[str]) -> type:
    """A subclass of *cls* that appends each hook's name to *log* as it is called."""

    def wrap(name: str) -> Any:
        def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            log.append(name)
            return getattr(super(recorder, self), name)(*args, **kwargs)

        hook.__name__ = name
        return hook

    recorder = type(f"Recording{cls.__name__}", (cls,), {name: wrap(name) for name in hooks})
    return recorder


class _Echo(StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class _Where(StreamRequestHandler):
    """Echoes one line, noting the thread that ran it in ``server.handler_threads``."""

    def setup(self) -> None:
        super().setup()
        server: Any = self.server
        server.handler_threads.append(threading.get_ident())

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def observed_hook_order() -> list[str]:
    """Serve one request with a TCPServer and StreamRequestHandler and return
    the hooks that ran, in order (measured, not typed in)."""
    log: list[str] = []
    lock = threading.Lock()
    server_cls = _recording(TCPServer, SERVER_HOOKS, log)
    handler_cls = _recording(_Echo, HANDLER_HOOKS, log)
    with running(server_cls, handler_cls) as server:
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"one request\n")
            while client.recv(1024):
                pass
    # Read the log only once the server has stopped: the client sees EOF at
    # shutdown_request(), before close_request() has run.
    with lock:
        return list(log)


@exercise("arch-hook-order", lesson=LESSON, difficulty=1,
          stub="hook_order = []  # your answer: hook names, in order\n")
def check_hook_order(answer: Any) -> str:
    """List, in order, the hooks a TCPServer with a StreamRequestHandler calls for one request, from
    get_request to close_request (server and handler hooks, as strings)."""
    if not isinstance(answer, (list, tuple)) or not all(isinstance(x, str) for x in answer):
        raise ExerciseFailed(
            f"expected a list of hook names (strings); got {answer!r}",
            fix="write each hook's name as a string in a list: ['name_one', 'name_two', ...]",
        )
    truth = observed_hook_order()
    if not answer:
        raise ExerciseFailed(
            f"your list is empty; a live TCPServer calls {len(truth)} hooks for one request, "
            "server hooks and handler hooks together",
            fix="write them in the order the live trace of TCPServer (section 4) prints them, "
            "leaving out serve_forever and _handle_request_noblock",
        )
    known = set(truth)
    for name in answer:
        if name not in known:
            raise ExerciseFailed(
                f"{name!r} is not one of the hooks a TCPServer calls for a request",
                fix="check the spelling against the trace of section 4 (the method names without "
                "their class, like 'setup'); serve_forever and _handle_request_noblock are left out",
            )
    placed = sum(1 for mine, real in zip(answer, truth) if mine == real)
    for position, (mine, real) in enumerate(zip(answer, truth), start=1):
        if mine != real:
            side = "a handler hook" if real in HANDLER_HOOKS else "a server hook"
            raise ExerciseFailed(
                f"{placed} of your {len(answer)} hooks are where the live server called them: "
                "the server calls its hooks in a fixed order, and the handler's hooks run "
                "inside one of the server's",
                fix=f"the first one out of place is number {position}; the server called "
                f"{side} there. Read the trace of TCPServer in section 4 from the top",
            )
    if len(answer) != len(truth):
        more = len(answer) < len(truth)
        raise ExerciseFailed(
            f"your {len(answer)} hooks are in the right order, but the live server called "
            f"{len(truth)}",
            fix=("the list stops too early: after the handler is done the server still "
                 "cleans up the connection" if more else "remove the hooks after the last one "
                 "the trace shows"),
        )
    return f"all {len(truth)} hooks in the order a live server called them"


@exercise("arch-counting-mixin", lesson=LESSON, answer=a_class("CountingMixIn"), difficulty=2)
def check_counting_mixin(mixin: type) -> str:
    """Write CountingMixIn: a mixin that overrides process_request only, counts requests in self.count, and
    still lets the server handle each one (works with TCPServer and ThreadingTCPServer)."""
    hooks = sorted(k for k, v in vars(mixin).items() if callable(v) and not k.startswith("__"))
    if "process_request" not in vars(mixin):
        what = (f"{mixin.__name__} overrides {', '.join(hooks)}, but not the hook" if hooks
                else f"{mixin.__name__} defines no hook of its own, and the exercise is about the hook")
        raise ExerciseFailed(
            f"{what} that decides what happens to a request once it is accepted and verified: "
            "a concurrency mixin such as ThreadingMixIn changes exactly that one",
            fix="define process_request(self, request, client_address) in the mixin"
            + (f", and remove {', '.join(hooks)}" if hooks else ""),
        )
    others = [k for k in hooks if k != "process_request"]
    if others:
        raise ExerciseFailed(
            f"{mixin.__name__} also overrides {', '.join(others)}: a one-hook mixin combines with "
            "any server (and with ThreadingMixIn) because it changes one hook only",
            fix=f"remove {', '.join(others)}; keep process_request",
        )
    for base in (TCPServer, ThreadingTCPServer):
        combined = type(f"Counting{base.__name__}", (mixin, base), {})
        with running(combined, _Where) as server:
            serving = server.serving_thread_ident
            for i in range(3):
                with socket.create_connection(server.server_address, timeout=3) as client:
                    client.sendall(b"ping %d\n" % i)
                    try:
                        reply = client.recv(64)
                    except OSError:  # a timeout, or a reset: the request was dropped
                        reply = b""
                if reply != b"ping %d\n" % i:
                    raise ExerciseFailed(
                        f"with {base.__name__}, request {i + 1} got {reply!r} instead of its echo: "
                        "your process_request replaced the server's, so nothing handled the "
                        "request" + handler_errors_note(server),
                        fix="after counting, hand the request on: "
                        "super().process_request(request, client_address) runs the next "
                        "process_request in the MRO (the server's, or ThreadingMixIn's)",
                    )
            count = getattr(server, "count", None)
            threads = set(server.handler_threads)
        if base is ThreadingTCPServer and serving in threads:
            raise ExerciseFailed(
                "with ThreadingTCPServer every request was answered and counted, but its handler ran in "
                "the serving thread: the mixin skipped ThreadingMixIn, so the threading server lost its "
                "threads. Naming a class (TCPServer.process_request(self, ...)) calls that class's method "
                "whatever comes after the mixin in the MRO",
                fix="hand the request on with super().process_request(request, client_address): super() "
                "finds the next class in the MRO of the server it is combined with",
            )
        if count != 3:
            raise ExerciseFailed(
                f"with {base.__name__}, every request was answered, but after 3 requests "
                f"server.count is {count!r}",
                fix="add 1 to self.count in process_request, and start it at 0 with a class "
                "attribute (count = 0) so every server begins from zero",
            )
    return "counts 3 of 3 requests with TCPServer and with ThreadingTCPServer, and each was answered"
