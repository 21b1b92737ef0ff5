"""Live call-flow traces: run a real server, send one request, record the hooks.

:func:`trace_server` builds a server of the given class on loopback (or a
Unix path in a temporary directory), sends it one request, and records, with
a profile hook (``sys.setprofile`` / ``threading.setprofile``), every server
and handler hook as it is called, indented by nesting, plus the system calls
that matter (``socket.accept()``, ``poll()``, ``os.fork()``...). The result
reads like the hand-drawn call-flow trees of the classic walk-throughs of
``SocketServer.py``, but it is measured::

    BaseServer.serve_forever()
      poll()
      BaseServer._handle_request_noblock()
        TCPServer.get_request()
          socket.accept()
        ...

What is recorded: methods of the server and handler classes whose names are
hooks (``RECORDED_HOOKS``), written ``DefiningClass.method()``; selected
socket/os calls as leaves. Work done in a handler thread is shown under the
``Thread.start()`` that began it; work done in a forked child under
``os.fork()`` (the child writes its part to a file before it exits). The
serving loop is recorded from construction to the first ``service_actions()``
after the request, so the trace is the same on every run.

:func:`trace_kind` does the same for a server *kind* name and a workload
(what ``python -m sockserve trace KIND`` prints).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .handlers import DatagramRequestHandler, StreamRequestHandler

__all__ = ["CallTrace", "trace_server", "trace_kind", "RECORDED_HOOKS"]

#: Method names recorded when defined by a server or handler class.
RECORDED_HOOKS = frozenset({
    "__init__", "server_bind", "server_activate", "serve_forever", "_handle_request_noblock",
    "get_request", "verify_request", "process_request", "process_request_thread",
    "finish_request", "shutdown_request", "close_request", "handle_error", "service_actions",
    "collect_children", "setup", "handle", "finish",
})

# System calls shown as leaves: (owner type name, function name) -> label.
_SOCKET_CALLS = {
    "bind": "socket.bind()", "listen": "socket.listen()", "_accept": "socket.accept()",
    "recvmsg": "socket.recvmsg()", "recvfrom": "socket.recvfrom()", "recv_into": "socket.recv_into()",
    "sendall": "socket.sendall()", "sendto": "socket.sendto()", "shutdown": "socket.shutdown()",
    "close": "socket.close()", "send": "socket.send()",
}
_OS_CALLS = {"fork": "os.fork()", "_exit": "os._exit()"}
_THREAD_START = "threading.Thread.start()"

_MODULE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class CallTrace:
    """The recorded call flow: a title and indented lines."""

    title: str
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join((self.title, *self.lines))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def calls(self) -> list[str]:
        """The recorded names without indentation, in order."""
        return [line.strip() for line in self.lines]


class _Recorder:
    """The profile hook: records calls per thread (and per forked child)."""

    def __init__(self, classes: tuple[type, ...], child_dir: str) -> None:
        self.classes = classes
        self.child_dir = child_dir
        self.pid = os.getpid()
        self.serving: int | None = None
        self.lines: dict[int, list[tuple[int, str]]] = {}
        self.stacks: dict[int, list[bool]] = {}
        self.quiet: dict[int, int] = {}  # depth of the frame that silences its callees
        self.done = False
        self.handled = False
        self.lock = threading.Lock()

    def _owner(self, frame: Any) -> str | None:
        code = frame.f_code
        if code.co_name not in RECORDED_HOOKS or not code.co_varnames:
            return None
        this = frame.f_locals.get(code.co_varnames[0])
        if this is None or not isinstance(this, self.classes):
            return None
        name: str = code.co_name
        for klass in type(this).__mro__:
            func = vars(klass).get(name)
            if getattr(func, "__code__", None) is code:
                return f"{klass.__name__}.{name}()"
        return None

    def _add(self, tid: int, depth: int, text: str) -> None:
        self.lines.setdefault(tid, []).append((depth, text))

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        tid = threading.get_ident()
        if self.done and tid == self.serving:
            return
        stack = self.stacks.setdefault(tid, [])
        quiet = self.quiet.get(tid)
        if event == "call":
            depth = sum(stack)
            if quiet is not None:
                stack.append(False)
                return
            label = self._owner(frame)
            if label is None:
                special = self._special(frame)
                if special is not None:
                    self._add(tid, depth, special)
                    self.quiet[tid] = len(stack)
                stack.append(False)
                return
            self._add(tid, depth, label)
            stack.append(True)
        elif event == "return":
            if not stack:
                return
            recorded = stack.pop()
            if quiet is not None and len(stack) == quiet:
                del self.quiet[tid]
            if recorded and tid == self.serving:
                name = frame.f_code.co_name
                if name == "_handle_request_noblock":
                    self.handled = True
                elif name == "service_actions" and self.handled:
                    self.done = True
        elif event == "c_call" and quiet is None:
            label = self._c_label(arg)
            if label is not None:
                self._add(tid, sum(stack), label)
                if label == "os.fork()":
                    self.fork_mark = len(self.lines[tid])
                if label == "os._exit()" and os.getpid() != self.pid:
                    self._child_exit()

    def _special(self, frame: Any) -> str | None:
        code = frame.f_code
        if code.co_name == "start" and code.co_filename.endswith("threading.py"):
            return _THREAD_START
        if code.co_name in ("accept", "close", "makefile") and code.co_filename.endswith("socket.py"):
            this = frame.f_locals.get("self")
            if isinstance(this, socket.socket):
                return f"socket.{code.co_name}()"
        if code.co_name == "select" and code.co_filename.endswith("selectors.py"):
            return "selector.select()"
        return None

    @staticmethod
    def _c_label(func: Any) -> str | None:
        name = getattr(func, "__name__", "")
        owner = getattr(func, "__self__", None)
        if isinstance(owner, socket.socket) and name in _SOCKET_CALLS:
            return _SOCKET_CALLS[name]
        module = getattr(func, "__module__", None)
        if module == "posix" and name in _OS_CALLS:
            return _OS_CALLS[name]
        return None

    def _child_exit(self) -> None:
        """In a forked child, about to exit: save what this child recorded."""
        tid = threading.get_ident()
        lines = self.lines.get(tid, [])[self.fork_mark:]
        path = os.path.join(self.child_dir, f"{os.getpid()}.trace")
        with open(path, "w") as out:
            for depth, text in lines:
                out.write(f"{depth}\t{text}\n")

    fork_mark = 0


def _echo_handler(server_class: type) -> type:
    if server_class.socket_type == socket.SOCK_STREAM:  # type: ignore[attr-defined]
        class Echo(StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(self.rfile.readline())

        return Echo

    class EchoDatagram(DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.packet)

    return EchoDatagram


def _send_one(server: Any, payload: bytes, tmp: str) -> Callable[[], None]:
    """Send the request now (so the first poll finds it waiting); return a
    function that collects the reply and closes the client."""
    family, kind = server.socket.family, server.socket.type
    client = socket.socket(family, kind)
    client.settimeout(10)
    if kind == socket.SOCK_STREAM:
        client.connect(server.server_address)
        client.sendall(payload)
    else:
        if family == getattr(socket, "AF_UNIX", None):
            client.bind(os.path.join(tmp, "client.sock"))
        client.sendto(payload, server.server_address)

    def finish() -> None:
        try:
            client.recv(65536)
        finally:
            client.close()

    return finish


def trace_server(
    server_class: type, handler: type | None = None, request: bytes = b"hello\n"
) -> CallTrace:
    """Record the call flow of one request through *server_class*.

    *handler* defaults to a small echo handler derived from
    ``StreamRequestHandler`` (stream servers) or ``DatagramRequestHandler``.
    The server binds ``127.0.0.1:0`` or a path in a temporary directory, and
    is shut down and closed before this returns.
    """
    handler = handler or _echo_handler(server_class)
    tmp = tempfile.mkdtemp(prefix="sstrace-", dir="/tmp")
    unix = getattr(server_class, "address_family", None) == getattr(socket, "AF_UNIX", None)
    address: Any = os.path.join(tmp, "server.sock") if unix else ("127.0.0.1", 0)
    from .servers import BaseServer

    recorder = _Recorder((BaseServer, handler), tmp)
    built: list[Any] = []
    ready = threading.Event()
    go = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        recorder.serving = threading.get_ident()
        sys.setprofile(recorder)
        try:
            built.append(server_class(address, handler))
            sys.setprofile(None)
            ready.set()
            go.wait(10)
            sys.setprofile(recorder)
            built[0].serve_forever(0.05)
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
        finally:
            sys.setprofile(None)

    threading.setprofile(recorder)
    thread = threading.Thread(target=serve, name="sockserve trace", daemon=True)
    try:
        thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        server = built[0]
        collect = _send_one(server, request, tmp)
        go.set()
        try:
            collect()
        finally:
            _wait(lambda: recorder.done, 10)
            threading.setprofile(None)
            server.shutdown()
            thread.join(10)
            server.server_close()
        if failure:
            raise failure[0]
        return _assemble(server_class, handler, recorder, tmp)
    finally:
        threading.setprofile(None)
        go.set()
        shutil.rmtree(tmp, ignore_errors=True)


def _wait(predicate: Callable[[], bool], seconds: float) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)


def _assemble(server_class: type, handler: type, recorder: _Recorder, tmp: str) -> CallTrace:
    serving = recorder.lines.get(recorder.serving or 0, [])
    others = [lines for tid, lines in recorder.lines.items() if tid != recorder.serving and lines]
    children = []
    for name in sorted(os.listdir(tmp)):
        if name.endswith(".trace"):
            with open(os.path.join(tmp, name)) as src:
                rows = [line.rstrip("\n").split("\t", 1) for line in src if line.strip()]
            children.append([(int(depth), text) for depth, text in rows])
    out: list[str] = []
    starts = [i for i, (_, text) in enumerate(serving) if text == _THREAD_START]
    forks = [i for i, (_, text) in enumerate(serving) if text == "os.fork()"]
    for i, (depth, text) in enumerate(serving):
        out.append("  " * depth + text)
        if starts and i == starts[-1]:
            for block in others:
                out.append("  " * (depth + 1) + "── in the new thread ──")
                base = min(d for d, _ in block)
                out.extend("  " * (depth + 1 + d - base) + t for d, t in block)
            if others:
                out.append("  " * (depth + 1) + "── back in the serving thread ──")
        if forks and i == forks[0]:
            for block in children:
                out.append("  " * (depth + 1) + "── in the child process ──")
                out.extend("  " * (d + 1) + t for d, t in block)
            if children:
                out.append("  " * (depth + 1) + "── back in the parent ──")
    title = f"{server_class.__name__} with {handler.__name__}: one request"
    return CallTrace(title, tuple(out))


def trace_kind(kind: str, workload: str = "echo") -> str:
    """The call-flow trace of one request to a server of *kind* (a name from
    :mod:`sockserve.kinds`) serving *workload*, as text."""
    from .kinds import resolve_kind
    from .workloads import handler_for

    info = resolve_kind(kind)
    if info.server_class is None:
        raise ValueError(f"server kind {kind!r} has no server class to trace")
    line = b"hello\n"
    return str(trace_server(info.server_class, handler_for(workload), request=line))
