"""Call-flow tracing: which hooks run, in which order, for one request.

:func:`trace_request` serves one request on a real server (loopback, or a
Unix socket in a temporary directory) and records every hook that runs,
nested by who called whom, across the thread a ThreadingMixIn starts and the
child a ForkingMixIn forks (the child records its own calls and sends them
back through a file). The result is a :class:`CallTree`, plain data whose
rendering is the same string on every run: no ports, paths, times or PIDs::

    >>> print(trace_request(sockserve.ThreadingTCPServer))
    BaseServer.serve_forever()
      BaseServer._handle_request_noblock()
        TCPServer.get_request() -> request, client_address
        BaseServer.verify_request() -> True
        ThreadingMixIn.process_request()
          --- new thread ---
            ThreadingMixIn.process_request_thread()
              BaseServer.finish_request()
                BaseRequestHandler.__init__()
                  StreamRequestHandler.setup()
                  EchoStreamHandler.handle()
                  StreamRequestHandler.finish()
              TCPServer.shutdown_request()
                TCPServer.close_request()

Each line names the class that *defines* the hook that ran (the one the
method resolution order picked), which is the point: the mixin's
``process_request`` wins over ``BaseServer``'s.

How: the server and handler classes are subclassed for the one trace, and
the subclasses wrap the hooks listed in :data:`SERVER_HOOKS` and
:data:`HANDLER_HOOKS`. The library's classes are never modified, so tracing
is safe while other servers run. ``service_actions`` and the reaping of
children are left out on purpose: how often they run depends on timing.
Any class that keeps the standard hook names can be traced, the standard
library's ``socketserver`` classes included.
"""

from __future__ import annotations

import errno
import inspect
import json
import os
import shutil
import socket
import tempfile
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Union

from ..core.handlers import BaseRequestHandler, DatagramRequestHandler, StreamRequestHandler
from .kinds import resolve_kind
from .workloads import handler_for

__all__ = [
    "Call",
    "Boundary",
    "CallTree",
    "SERVER_HOOKS",
    "HANDLER_HOOKS",
    "EchoStreamHandler",
    "EchoDatagramHandler",
    "trace_request",
    "print_trace",
]

#: Server methods that are recorded, when the class has them.
SERVER_HOOKS: tuple[str, ...] = (
    "serve_forever",
    "handle_request",
    "_handle_request_noblock",
    "get_request",
    "verify_request",
    "process_request",
    "process_request_thread",
    "finish_request",
    "shutdown_request",
    "close_request",
    "handle_error",
    "handle_timeout",
)
#: Handler methods that are recorded.
HANDLER_HOOKS: tuple[str, ...] = ("__init__", "setup", "handle", "finish")

# Return values shown by what they are, since their contents vary per run.
_SYMBOLIC_RESULTS = {"get_request": "request, client_address"}


# -- the tree: plain, frozen data -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One hook call: ``owner`` is the class defining the hook that ran,
    ``result`` a deterministic note on how it returned ("" for None)."""

    owner: str
    hook: str
    result: str = ""
    children: tuple[Node, ...] = ()

    @property
    def label(self) -> str:
        note = f" -> {self.result}" if self.result else ""
        return f"{self.owner}.{self.hook}(){note}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "hook": self.hook,
            "result": self.result,
            "children": [child.to_dict() for child in self.children],
        }


@dataclass(frozen=True, slots=True)
class Boundary:
    """The calls below ran elsewhere: ``kind`` is "new thread", "child
    process", or "other thread" (a thread that no hook started, e.g. a pool
    worker)."""

    kind: str
    children: tuple[Node, ...] = ()

    @property
    def label(self) -> str:
        return f"--- {self.kind} ---"

    def to_dict(self) -> dict[str, Any]:
        return {"boundary": self.kind, "children": [child.to_dict() for child in self.children]}


Node = Union[Call, Boundary]


def node_from_dict(data: dict[str, Any]) -> Node:
    """Rebuild a node written by ``to_dict``."""
    children = tuple(node_from_dict(child) for child in data.get("children", ()))
    if "boundary" in data:
        return Boundary(str(data["boundary"]), children)
    return Call(str(data["owner"]), str(data["hook"]), str(data.get("result", "")), children)


@dataclass(frozen=True, slots=True)
class CallTree:
    """The hooks one request went through, in call order.

    ``server`` and ``handler`` name the traced classes; ``nodes`` are the
    top-level calls (normally one: ``serve_forever``). Use :meth:`render`
    (also ``str(tree)``) for the indented picture, :meth:`calls` for the flat
    list of ``"Owner.hook"`` names, :meth:`to_dict`/:meth:`from_dict` to store.
    """

    server: str
    handler: str
    nodes: tuple[Node, ...]

    def walk(self) -> Iterator[tuple[int, Node]]:
        """Every node with its depth, in the order the tree is printed."""
        stack: list[tuple[int, Node]] = [(0, node) for node in reversed(self.nodes)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, child) for child in reversed(node.children))

    def render(self, indent: str = "  ") -> str:
        """The tree, one call per line, children indented under their caller."""
        return "\n".join(indent * depth + node.label for depth, node in self.walk())

    def __str__(self) -> str:
        return self.render()

    def calls(self) -> list[str]:
        """``"Owner.hook"`` of every call in order (boundaries left out)."""
        return [f"{n.owner}.{n.hook}" for _, n in self.walk() if isinstance(n, Call)]

    def hooks(self) -> list[str]:
        """Like :meth:`calls` without the owners: ``["serve_forever", ...]``."""
        return [n.hook for _, n in self.walk() if isinstance(n, Call)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "handler": self.handler,
            "nodes": [node.to_dict() for node in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallTree:
        return cls(
            str(data["server"]),
            str(data["handler"]),
            tuple(node_from_dict(node) for node in data["nodes"]),
        )


# -- recording ----------------------------------------------------------------------


class _Open:
    """A node while it is being recorded (mutable; frozen at the end)."""

    __slots__ = ("ident", "owner", "hook", "result", "boundary", "children")

    def __init__(self, ident: int, owner: str = "", hook: str = "", boundary: str = "") -> None:
        self.ident = ident
        self.owner = owner
        self.hook = hook
        self.boundary = boundary
        self.result = ""
        self.children: list[_Open | Node] = []

    def freeze(self) -> Node:
        children = tuple(c.freeze() if isinstance(c, _Open) else c for c in self.children)
        if self.boundary:
            return Boundary(self.boundary, children)
        return Call(self.owner, self.hook, self.result, children)


@dataclass(frozen=True)
class _Spawn:
    """Where a thread was handed a hook: the caller's innermost open call."""

    thread: int
    node: int
    index: int


class _Recorder:
    """Builds the tree from enter/exit events coming from any thread, and
    from forked children (which append their finished calls to a file).

    Thread safety: one lock guards the tree; each thread has its own stack.
    """

    def __init__(self, child_log: int) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._child_anchor: tuple[int, int] | None = None
        self._child_log = child_log
        self._next_id = 1
        self._root = _Open(0, boundary="root")
        self._nodes: dict[int, _Open] = {0: self._root}
        self._stacks: dict[int, list[_Open]] = {}
        self._root_thread: int | None = None
        self._last_process_request: _Open | None = None

    def position(self) -> _Spawn | None:
        stack = self._stacks.get(threading.get_ident())
        if not stack:
            return None
        return _Spawn(threading.get_ident(), stack[-1].ident, len(stack[-1].children))

    def _become_child(self) -> None:
        """First event in a forked child: the tree is a copy taken at fork()."""
        self._lock = threading.Lock()  # another thread may have held the old one
        stack = self._stacks.setdefault(threading.get_ident(), [])
        anchor = stack[-1] if stack else self._root
        self._child_anchor = (anchor.ident, len(anchor.children))
        boundary = self._new(boundary="child process")
        anchor.children.append(boundary)
        stack.append(boundary)

    def _new(self, **fields: str) -> _Open:
        node = _Open(self._next_id, **fields)
        self._nodes[node.ident] = node
        self._next_id += 1
        return node

    def _check_fork(self) -> None:
        if self._child_anchor is None and os.getpid() != self._pid:
            self._become_child()

    def enter(self, owner: str, hook: str, spawn: _Spawn | None) -> _Open:
        self._check_fork()
        me = threading.get_ident()
        with self._lock:
            stack = self._stacks.setdefault(me, [])
            if not stack:
                if spawn is not None and spawn.thread != me:
                    parent = self._nodes[spawn.node]
                    boundary = self._new(boundary="new thread")
                    parent.children.insert(min(spawn.index, len(parent.children)), boundary)
                    stack.append(boundary)
                elif self._root_thread is None:
                    self._root_thread = me
                elif me != self._root_thread:
                    parent = self._last_process_request or self._root
                    boundary = self._new(boundary="other thread")
                    parent.children.append(boundary)
                    stack.append(boundary)
            node = self._new(owner=owner, hook=hook)
            (stack[-1] if stack else self._root).children.append(node)
            stack.append(node)
            if hook == "process_request":
                self._last_process_request = node
            return node

    def exit(self, node: _Open, result: str) -> None:
        self._check_fork()
        with self._lock:
            node.result = result
            stack = self._stacks[threading.get_ident()]
            while stack and stack.pop() is not node:
                pass  # a callee that never returned (it raised through us)
            if stack and stack[-1].boundary == "child process":
                self._send_to_parent(node)
            if len(stack) == 1 and stack[0].boundary == "new thread":
                # The hook the thread was started with returned: the thread
                # ends, and its identity may be reused by a later thread. A
                # pool worker ("other thread") keeps its block for its life.
                stack.pop()

    def _send_to_parent(self, node: _Open) -> None:
        record = {"pid": os.getpid(), "anchor": self._child_anchor, "node": node.freeze().to_dict()}
        os.write(self._child_log, (json.dumps(record) + "\n").encode())

    def merge_children(self, log_text: str) -> None:
        """Insert the blocks that forked children wrote, where they forked."""
        blocks: dict[int, tuple[tuple[int, int], list[Node]]] = {}
        for line in log_text.splitlines():
            record = json.loads(line)
            anchor = (int(record["anchor"][0]), int(record["anchor"][1]))
            _, nodes = blocks.setdefault(int(record["pid"]), (anchor, []))
            nodes.append(node_from_dict(record["node"]))
        inserted: dict[int, int] = {}
        with self._lock:
            for (node_id, index), nodes in blocks.values():
                parent = self._nodes.get(node_id, self._root)
                at = min(index + inserted.get(node_id, 0), len(parent.children))
                parent.children.insert(at, Boundary("child process", tuple(nodes)))
                inserted[node_id] = inserted.get(node_id, 0) + 1

    def tree(self, server: str, handler: str) -> CallTree:
        with self._lock:
            root = self._root.freeze()
        return CallTree(server, handler, root.children)


def _describe(hook: str, value: object) -> str:
    if value is None:
        return ""
    if hook in _SYMBOLIC_RESULTS:
        return _SYMBOLIC_RESULTS[hook]
    if isinstance(value, bool):
        return repr(value)
    return type(value).__name__


class _Hook:
    """Descriptor that stands in for one hook on the traced subclass."""

    def __init__(self, recorder: _Recorder, owner: str, hook: str, function: Callable[..., Any]):
        self.recorder = recorder
        self.owner = owner
        self.hook = hook
        self.function = function

    def __get__(self, instance: object, cls: type | None = None) -> Any:
        if instance is None:
            return self.function
        # Remember who looked the method up: a thread target is looked up
        # by the thread that starts it, and called in the new thread.
        return _BoundHook(self, instance, self.recorder.position())

    def call(self, instance: object, spawn: _Spawn | None, args: Any, kwargs: Any) -> Any:
        node = self.recorder.enter(self.owner, self.hook, spawn)
        try:
            value = self.function(instance, *args, **kwargs)
        except BaseException as exc:
            self.recorder.exit(node, f"raised {type(exc).__name__}")
            raise
        self.recorder.exit(node, _describe(self.hook, value))
        return value


class _BoundHook:
    __slots__ = ("_hook", "_instance", "_spawn")

    def __init__(self, hook: _Hook, instance: object, spawn: _Spawn | None) -> None:
        self._hook = hook
        self._instance = instance
        self._spawn = spawn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._hook.call(self._instance, self._spawn, args, kwargs)


def _traced_subclass(
    cls: type, hooks: tuple[str, ...], recorder: _Recorder, extra: dict[str, Any]
) -> type:
    """A subclass of *cls* whose *hooks* report to *recorder*. *cls* and its
    bases are left untouched."""
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        **extra,
    }
    for hook in hooks:
        function = inspect.getattr_static(cls, hook, None)
        if not isinstance(function, types.FunctionType):
            continue  # absent, or not plain Python (object.__init__)
        owner = next(base for base in cls.__mro__ if hook in vars(base))
        namespace[hook] = _Hook(recorder, owner.__name__, hook, function)
    return type(cls)(cls.__name__, (cls,), namespace)


# -- one traced request ---------------------------------------------------------------


class EchoStreamHandler(StreamRequestHandler):
    """Echo one line back (the default handler for tracing a stream server)."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline(65536))


class EchoDatagramHandler(DatagramRequestHandler):
    """Echo the datagram back (the default handler for a datagram server)."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.read())


def _address(server_class: type, directory: str) -> Any:
    family = getattr(server_class, "address_family", socket.AF_INET)
    if family == getattr(socket, "AF_UNIX", None):
        return os.path.join(directory, "server.sock")
    if family == socket.AF_INET6:
        return ("::1", 0)
    return ("127.0.0.1", 0)


def _send_one(server_class: type, address: Any, payload: bytes, directory: str, timeout: float) -> None:
    """Be the client: send *payload*, half-close, read the reply."""
    family: int = getattr(server_class, "address_family")
    kind: int = getattr(server_class, "socket_type")
    with socket.socket(family, kind) as sock:
        sock.settimeout(timeout)
        try:
            if kind == socket.SOCK_STREAM:
                sock.connect(address)
                sock.sendall(payload)
                # shutdown, not just close: a forked child holds a copy of
                # this socket, and only shutdown() ends the stream for it.
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError as exc:
                    if exc.errno != errno.ENOTCONN:
                        raise
                    return  # the server has already closed the connection
                while sock.recv(65536):
                    pass
            else:
                if family == getattr(socket, "AF_UNIX", None):
                    sock.bind(os.path.join(directory, "client.sock"))
                sock.sendto(payload, address)
                sock.recv(65536)
        except (TimeoutError, ConnectionError):
            pass  # a handler that does not answer is still traced
        except OSError as exc:
            # A handler that fails at once closes the connection with the
            # request unread: the kernel resets it, and shutdown() then says
            # "not connected". The request was traced all the same.
            if exc.errno != errno.ENOTCONN:
                raise


# Class attributes set on the traced subclass, when the class has them: wait
# for every thread and child whatever the class says, and use one pool worker
# (thread or process), so that the same worker takes the request every run.
_TRACE_SETTINGS = (
    ("block_on_close", True),
    ("daemon_threads", False),
    ("workers", 1),
    ("pool_size", 1),
)


def trace_request(
    server_class: type,
    handler: type[BaseRequestHandler] | str | None = None,
    payload: bytes = b"hello\n",
    *,
    timeout: float = 10.0,
) -> CallTree:
    """Serve one request on a new *server_class* server and return its calls.

    *handler* is a handler class, a workload name (see
    :mod:`sockserve.measure.workloads`), or None for :class:`EchoStreamHandler` /
    :class:`EchoDatagramHandler`. The server binds 127.0.0.1 port 0 (``::1``
    for IPv6 classes) or a Unix socket in a temporary directory; one client
    sends *payload* (and, on a stream, half-closes), then the server is shut
    down and closed, which waits for its threads and children. A handler that
    never answers makes the trace wait *timeout* seconds.

    Pool servers are traced with a single worker (``pool_size`` /
    ``workers`` = 1), so that the trace is the same on every run.
    """
    stream = getattr(server_class, "socket_type", socket.SOCK_STREAM) == socket.SOCK_STREAM
    if handler is None:
        handler = EchoStreamHandler if stream else EchoDatagramHandler
    elif isinstance(handler, str):
        handler = handler_for(handler)
    directory = tempfile.mkdtemp(prefix="sstrace-")
    log_path = os.path.join(directory, "children.jsonl")
    log_writer = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        recorder = _Recorder(log_writer)
        extra = {name: value for name, value in _TRACE_SETTINGS if hasattr(server_class, name)}
        traced_server = _traced_subclass(server_class, SERVER_HOOKS, recorder, extra)
        traced_handler = _traced_subclass(handler, HANDLER_HOOKS, recorder, {})
        server = traced_server(_address(server_class, directory), traced_handler)
        try:
            loop = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="sockserve-trace",
                daemon=True,
            )
            loop.start()
            try:
                _send_one(server_class, server.server_address, payload, directory, timeout)
            finally:
                # shutdown() lets the loop finish the request it is in;
                # server_close() then waits for handler threads and children.
                server.shutdown()
                loop.join(timeout)
        finally:
            server.server_close()
        with open(log_path, encoding="utf-8") as log:
            recorder.merge_children(log.read())
    finally:
        os.close(log_writer)
        shutil.rmtree(directory, ignore_errors=True)
    return recorder.tree(server_class.__name__, handler.__name__)


def _server_class(kind: type | str) -> type:
    if isinstance(kind, type):
        return kind
    cls = resolve_kind(kind).server_class
    if cls is None:
        raise ValueError(f"kind {kind!r} has no server class with socketserver hooks to trace")
    return cls


def print_trace(
    kind: type | str,
    handler: type[BaseRequestHandler] | str | None = None,
    payload: bytes = b"hello\n",
) -> None:
    """Trace one request (see :func:`trace_request`) and print the tree under
    a title line. *kind* is a server class or a kind name ("threading",
    "ForkingUDPServer", ...; see :mod:`sockserve.measure.kinds`)."""
    tree = trace_request(_server_class(kind), handler, payload)
    print(f"{tree.server} with {tree.handler}, one request:")
    print(tree.render())
