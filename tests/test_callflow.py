"""Live call-flow traces (sockserve.callflow) record the hooks in the
standard library's order, in the thread or process that ran them, and the
same way on every run."""

from __future__ import annotations

import pytest

import sockserve
from sockserve.callflow import trace_kind, trace_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads


def _in_order(calls: list[str], expected: list[str]) -> None:
    position = 0
    for name in expected:
        assert name in calls[position:], f"{name} missing after position {position}: {calls}"
        position = calls.index(name, position) + 1


def test_tcp_trace_follows_the_stdlib_hook_order() -> None:
    trace = trace_server(sockserve.TCPServer)
    calls = trace.calls()
    _in_order(calls, [
        "TCPServer.server_bind()", "socket.bind()", "TCPServer.server_activate()", "socket.listen()",
        "BaseServer.serve_forever()", "BaseServer._handle_request_noblock()",
        "TCPServer.get_request()", "socket.accept()", "BaseServer.verify_request()",
        "BaseServer.process_request()", "BaseServer.finish_request()",
        "StreamRequestHandler.setup()", "Echo.handle()", "StreamRequestHandler.finish()",
        "TCPServer.shutdown_request()", "socket.shutdown()", "TCPServer.close_request()",
        "socket.close()", "BaseServer.service_actions()",
    ])
    lines = trace.lines
    # nesting: finish_request sits inside process_request, handle inside the handler's __init__
    depth = {line.strip(): len(line) - len(line.lstrip()) for line in lines}
    assert depth["BaseServer.finish_request()"] > depth["BaseServer.process_request()"]
    assert depth["Echo.handle()"] > depth["BaseRequestHandler.__init__()"]
    assert str(trace).splitlines()[0] == "TCPServer with Echo: one request"


def test_traces_are_the_same_on_every_run() -> None:
    first = trace_server(sockserve.ThreadingTCPServer)
    second = trace_server(sockserve.ThreadingTCPServer)
    assert first == second


def test_threading_work_shows_under_thread_start() -> None:
    calls = trace_server(sockserve.ThreadingUDPServer).calls()
    _in_order(calls, [
        "ThreadingMixIn.process_request()", "threading.Thread.start()", "── in the new thread ──",
        "ThreadingMixIn.process_request_thread()", "DatagramRequestHandler.setup()",
        "DatagramRequestHandler.finish()", "socket.sendto()", "── back in the serving thread ──",
    ])
    assert "UDPServer.get_request()" in calls and "socket.recvmsg()" in calls


def test_forking_child_part_is_collected_from_the_child() -> None:
    calls = trace_server(sockserve.ForkingTCPServer).calls()
    _in_order(calls, [
        "ForkingMixIn.process_request()", "os.fork()", "── in the child process ──",
        "BaseServer.finish_request()", "Echo.handle()", "TCPServer.shutdown_request()", "os._exit()",
        "── back in the parent ──", "TCPServer.close_request()", "ForkingMixIn.service_actions()",
    ])


def test_unix_and_kind_names(sock_dir: str) -> None:
    text = trace_kind("plain-unix", workload="echo")
    assert text.splitlines()[0] == "UnixStreamServer with EchoHandler: one request"
    assert "    TCPServer.get_request()" in text.splitlines()
    with pytest.raises(ValueError):
        trace_kind("no-such-kind")
