"""Checkers for lesson 01 (architecture): the hook order, a one-hook mixin."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from typing import Any

from .. import StreamRequestHandler, TCPServer, ThreadingTCPServer
from . import ExerciseFailed, exercise
from .support import handler_errors_note, running

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


@exercise(
    "arch-hook-order",
    lesson=LESSON,
    prompt="List, in order, the hooks a TCPServer with a StreamRequestHandler calls for one request, "
    "from get_request to close_request (server and handler hooks, as strings).",
)
def check_hook_order(answer: Any) -> str:
    if not isinstance(answer, (list, tuple)) or not all(isinstance(x, str) for x in answer):
        raise ExerciseFailed(f"expected a list of hook names (strings); got {answer!r}")
    truth = observed_hook_order()
    if not answer:
        raise ExerciseFailed(
            f"your list is empty; the server calls {len(truth)} hooks for one request, "
            f"starting with {truth[0]!r}"
        )
    known = set(truth)
    for name in answer:
        if name not in known:
            raise ExerciseFailed(
                f"{name!r} is not one of the hooks called for a request; they are: "
                f"{', '.join(sorted(known))}"
            )
    for position, (mine, real) in enumerate(zip(answer, truth), start=1):
        if mine != real:
            raise ExerciseFailed(
                f"position {position}: you wrote {mine!r}, but the server called {real!r} there"
            )
    if len(answer) != len(truth):
        missing = truth[len(answer):]
        raise ExerciseFailed(
            f"the first {len(answer)} are right; {len(missing)} more "
            f"{'follows' if len(missing) == 1 else 'follow'}, starting with {missing[0]!r}"
            if missing else f"the server calls only {len(truth)} hooks; remove the extra ones"
        )
    return f"all {len(truth)} hooks in the order a live server called them"


@exercise(
    "arch-counting-mixin",
    lesson=LESSON,
    prompt="Write CountingMixIn: a mixin that overrides process_request only, counts requests in "
    "self.count, and still lets the server handle each one (works with TCPServer and "
    "ThreadingTCPServer).",
)
def check_counting_mixin(mixin: Any) -> str:
    if not isinstance(mixin, type):
        raise ExerciseFailed(f"expected a class (the mixin); got {mixin!r}")
    if "process_request" not in vars(mixin):
        raise ExerciseFailed(
            f"{mixin.__name__} does not define process_request itself: a concurrency-style mixin "
            "changes exactly that one hook"
        )
    others = sorted(k for k, v in vars(mixin).items() if callable(v) and not k.startswith("__")
                    and k != "process_request")
    if others:
        raise ExerciseFailed(
            f"{mixin.__name__} also overrides {', '.join(others)}; override process_request only"
        )
    for base in (TCPServer, ThreadingTCPServer):
        combined = type(f"Counting{base.__name__}", (mixin, base), {})
        with running(combined, _Echo) as server:
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
                        "process_request must also call super().process_request(request, "
                        "client_address), or the request is never handled"
                        + handler_errors_note(server)
                    )
            count = getattr(server, "count", None)
        if count != 3:
            raise ExerciseFailed(
                f"with {base.__name__}, after 3 requests server.count is {count!r}, not 3: add 1 to "
                "self.count in process_request (start it at 0 as a class attribute)"
            )
    return "counts 3 of 3 requests with TCPServer and with ThreadingTCPServer, and each was answered"
