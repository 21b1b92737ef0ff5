"""Call-flow tracing: the hook order of one request, for every server class."""

from __future__ import annotations

import dataclasses
import json
import re
import socketserver
from typing import Any

import pytest

import sockserve
from sockserve.measure import trace
from sockserve.measure.trace import Boundary, Call, CallTree, print_trace, trace_request
from sockserve.measure.workloads import EchoHandler

from conftest import ALL_CLASSES, DGRAM_CLASSES, class_id

PLAIN_ORDER = [
    "BaseServer.serve_forever",
    "BaseServer._handle_request_noblock",
    "TCPServer.get_request",
    "BaseServer.verify_request",
    "BaseServer.process_request",
    "BaseServer.finish_request",
    "BaseRequestHandler.__init__",
    "StreamRequestHandler.setup",
    "EchoStreamHandler.handle",
    "StreamRequestHandler.finish",
    "TCPServer.shutdown_request",
    "TCPServer.close_request",
]


def find(tree: CallTree, label: str) -> Any:
    """The first node whose label starts with *label*."""
    for _, node in tree.walk():
        if node.label.startswith(label):
            return node
    raise AssertionError(f"{label!r} not in\n{tree}")


def test_tcp_server_tree_in_order() -> None:
    tree = trace_request(sockserve.TCPServer)
    assert tree.calls() == PLAIN_ORDER
    assert tree.server == "TCPServer" and tree.handler == "EchoStreamHandler"
    lines = tree.render().splitlines()
    assert lines[0] == "BaseServer.serve_forever()"
    assert "    TCPServer.get_request() -> request, client_address" in lines
    assert "    BaseServer.verify_request() -> True" in lines
    # Nesting: the handler runs inside finish_request, shutdown_request is
    # process_request's second callee, close_request is inside it.
    process = find(tree, "BaseServer.process_request")
    assert [c.label for c in process.children] == [
        "BaseServer.finish_request()",
        "TCPServer.shutdown_request()",
    ]
    init = find(tree, "BaseRequestHandler.__init__")
    assert [c.hook for c in init.children] == ["setup", "handle", "finish"]
    assert str(tree) == tree.render()


def test_threading_tree_shows_the_thread_boundary() -> None:
    tree = trace_request(sockserve.ThreadingTCPServer)
    text = tree.render()
    assert (
        "    ThreadingMixIn.process_request()\n"
        "      --- new thread ---\n"
        "        ThreadingMixIn.process_request_thread()\n"
        "          BaseServer.finish_request()\n"
    ) in text
    process = find(tree, "ThreadingMixIn.process_request()")
    assert [type(c) for c in process.children] == [Boundary]
    thread_body = process.children[0].children[0]
    assert [c.hook for c in thread_body.children] == ["finish_request", "shutdown_request"]
    assert tree.hooks()[5:] == [
        "process_request_thread",
        "finish_request",
        "__init__",
        "setup",
        "handle",
        "finish",
        "shutdown_request",
        "close_request",
    ]


def test_forking_tree_includes_the_childs_calls() -> None:
    tree = trace_request(sockserve.ForkingTCPServer)
    process = find(tree, "ForkingMixIn.process_request()")
    child, parent_close = process.children
    assert isinstance(child, Boundary) and child.kind == "child process"
    # The child handles the request and ends it; the parent only closes its copy.
    assert [c.label for c in child.children] == [
        "BaseServer.finish_request()",
        "TCPServer.shutdown_request()",
    ]
    assert "EchoStreamHandler.handle" in tree.calls()
    assert parent_close.label == "TCPServer.close_request()"
    assert "      --- child process ---\n        BaseServer.finish_request()\n" in tree.render()


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=class_id)
def test_every_class_traces_deterministically(cls: type) -> None:
    first = trace_request(cls)
    second = trace_request(cls)
    assert first.render() == second.render()
    assert first == second
    hooks = first.hooks()
    # Every variant goes through the same hooks in the same order. A prefork
    # worker is forked when serve_forever starts, so its part (handling the
    # connection the parent passes it) is drawn at that fork, before the
    # parent's accept.
    accept = ["_handle_request_noblock", "get_request", "verify_request", "process_request"]
    handle = ["finish_request", "__init__", "setup", "handle", "finish",
              "shutdown_request", "close_request"]
    if issubclass(cls, sockserve.PreForkMixIn):
        expected = ["serve_forever", *handle, *accept]
    else:
        expected = ["serve_forever", *accept, *handle]
    assert [h for h in hooks if h in expected][: len(expected)] == expected
    stream = cls not in DGRAM_CLASSES
    owner = ("Stream" if stream else "Datagram") + "RequestHandler.setup"
    assert owner in first.calls()
    text = first.render()
    # Nothing that changes between runs: no address, path, number or time.
    assert not re.search(r"\d", text), text
    assert "/" not in text and "127.0.0.1" not in text


def test_udp_and_unix_variants() -> None:
    udp = trace_request(sockserve.UDPServer)
    assert "UDPServer.get_request" in udp.calls()
    assert udp.calls()[-2:] == ["UDPServer.shutdown_request", "UDPServer.close_request"]
    unix = trace_request(sockserve.UnixStreamServer)
    # UnixStreamServer only changes the address family: the hooks are TCPServer's.
    assert unix.calls() == PLAIN_ORDER and unix.server == "UnixStreamServer"
    fork_dgram = trace_request(sockserve.ForkingUnixDatagramServer)
    child = find(fork_dgram, "--- child process ---")
    assert [c.hook for c in child.children] == ["finish_request", "shutdown_request"]


def test_library_classes_are_left_untouched() -> None:
    classes = {k for cls in ALL_CLASSES for k in cls.__mro__} | {
        k for k in (trace.EchoStreamHandler, trace.EchoDatagramHandler, EchoHandler)
        for k in k.__mro__
    }
    before = {cls: dict(vars(cls)) for cls in classes}
    for cls in (sockserve.ThreadingUDPServer, sockserve.ForkingTCPServer):
        trace_request(cls)
    trace_request(sockserve.TCPServer, EchoHandler, b"echo\n")
    assert {cls: dict(vars(cls)) for cls in classes} == before
    # And servers made afterwards are not traced.
    assert "_Hook" not in repr(vars(sockserve.TCPServer).get("get_request"))


def test_workload_handler_and_handler_names() -> None:
    tree = trace_request(sockserve.UDPServer, "io", b"io 1\n")
    assert tree.handler == "IoHandler"
    assert [c for c in tree.calls() if "Handler" in c] == [
        "BaseRequestHandler.__init__",
        "WorkloadHandler.setup",
        "WorkloadHandler.handle",
        "WorkloadHandler.finish",
    ]


def test_a_failing_handler_is_traced_with_handle_error(capsys: pytest.CaptureFixture[str]) -> None:
    tree = trace_request(sockserve.TCPServer, Failing)
    assert "Failing.handle() -> raised RuntimeError" in tree.render()
    finish_request = find(tree, "BaseServer.finish_request")
    assert finish_request.result == "raised RuntimeError"
    assert "BaseServer.handle_error" in tree.calls()
    assert "RuntimeError" in capsys.readouterr().err  # handle_error printed it


class Failing(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        raise RuntimeError("this handler fails on purpose")


def test_same_hook_order_as_the_standard_library() -> None:
    ours = trace_request(sockserve.ThreadingTCPServer)
    theirs = trace_request(socketserver.ThreadingTCPServer)
    assert ours.render() == theirs.render()


def test_tree_is_plain_frozen_data() -> None:
    tree = trace_request(sockserve.ForkingUDPServer)
    data = json.loads(json.dumps(tree.to_dict()))
    assert CallTree.from_dict(data) == tree
    assert CallTree.from_dict(data).render() == tree.render()
    for cls in (Call, Boundary, CallTree):
        assert dataclasses.is_dataclass(cls) and "__slots__" in vars(cls)
    node = tree.nodes[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.hook = "other"  # type: ignore[misc]


def test_print_trace_takes_a_class_or_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    print_trace(sockserve.ThreadingUDPServer)
    by_class = capsys.readouterr().out
    print_trace("ThreadingUDPServer")
    assert capsys.readouterr().out == by_class
    assert by_class.splitlines()[0] == "ThreadingUDPServer with EchoDatagramHandler, one request:"
    assert "--- new thread ---" in by_class
    with pytest.raises(ValueError):
        print_trace("no-such-kind")
