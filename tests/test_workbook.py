"""The helpers the workbook lessons call (sockserve.workbook), and the index
notebook's links."""

from __future__ import annotations

import errno
import json
import re
import socketserver
from pathlib import Path

import pytest

import sockserve
from sockserve import workbook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


class Upper(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


class Shout(sockserve.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.packet.upper())


def test_background_and_ask_over_tcp_and_unix(sock_dir: str) -> None:
    with workbook.background(sockserve.TCPServer(("127.0.0.1", 0), Upper)) as server:
        assert workbook.ask(server.server_address, b"a\nb", b"c\n", pause=0.01) == [b"A\n", b"BC\n"]
    assert server.state is sockserve.ServerState.CLOSED
    path = f"{sock_dir}/u.sock"
    with workbook.background(sockserve.UnixStreamServer(path, Upper)):
        assert workbook.ask(path, b"x\n") == [b"X\n"]
        assert workbook.round_trip_seconds(path, count=5) > 0


def test_ask_datagram_over_udp_and_unix(sock_dir: str) -> None:
    with workbook.background(sockserve.UDPServer(("127.0.0.1", 0), Shout)) as server:
        assert workbook.ask_datagram(server.server_address, b"hi") == b"HI"
    path = f"{sock_dir}/d.sock"
    client = f"{sock_dir}/c.sock"
    with workbook.background(sockserve.UnixDatagramServer(path, Shout)):
        assert workbook.ask_datagram(path, b"yo", client_path=client) == b"YO"
        with pytest.raises(ValueError, match="client_path"):
            workbook.ask_datagram(path, b"yo")
    assert not Path(client).exists()


def test_time_wait_blocks_a_rebind_unless_both_servers_reuse_the_address() -> None:
    port = workbook.leave_time_wait(2)
    assert workbook.time_wait_sockets(port) == 2
    with pytest.raises(OSError) as info:
        sockserve.TCPServer(("127.0.0.1", port), Upper)
    assert info.value.errno == errno.EADDRINUSE

    class Reusing(sockserve.TCPServer):
        allow_reuse_address = True

    port = workbook.leave_time_wait(2, Reusing)
    Reusing(("127.0.0.1", port), Upper).server_close()


def test_shutdown_latency_sockserve_is_prompt_whatever_the_poll_interval() -> None:
    took = workbook.shutdown_latency(sockserve.TCPServer, poll_interval=5.0, rounds=2)
    assert len(took) == 2 and max(took) < 2.0  # the stdlib would wait up to 5 s
    stdlib = workbook.shutdown_latency(socketserver.TCPServer, poll_interval=0.05, rounds=2)
    assert len(stdlib) == 2


def test_close_timing_follows_block_on_close() -> None:
    waited = workbook.close_timing(sockserve.ThreadingTCPServer, handler_seconds=0.2)
    assert waited.handler_done_at_close and not waited.handler_thread_daemon

    class Quick(sockserve.ThreadingTCPServer):
        block_on_close = False
        daemon_threads = True

    quick = workbook.close_timing(Quick, handler_seconds=0.2)
    assert not quick.handler_done_at_close and quick.handler_thread_daemon


def test_exit_with_handler_running_follows_daemon_threads() -> None:
    assert "waited" in workbook.exit_with_handler_running(False, handler_seconds=0.2)
    assert "killed" in workbook.exit_with_handler_running(True, handler_seconds=0.2)


def test_drain_demo_completes_the_quick_and_aborts_the_stuck() -> None:
    report, received = workbook.drain_demo(sockserve.ThreadingTCPServer, quick=2, stuck=1,
                                           timeout=0.3, work=0.05)
    assert (report.completed, report.aborted) == (2, 1)
    assert received == [b"done quick\n", b"done quick\n", b""]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_where_handled_tells_thread_and_process_apart() -> None:
    assert workbook.where_handled(sockserve.TCPServer).endswith("serving thread, in the server's process")
    assert "a new thread" in workbook.where_handled(sockserve.ThreadingUDPServer)
    assert "a child process" in workbook.where_handled(sockserve.ForkingTCPServer)


def test_index_links_every_lesson_and_every_link_resolves() -> None:
    index = json.loads((NOTEBOOKS / "00-index.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in index["cells"] if c["cell_type"] == "markdown")
    links = set(re.findall(r"\]\(([^)#]+\.ipynb)\)", text))
    lessons = {p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")} - {"00-index.ipynb"}
    assert lessons <= links, f"lessons not linked from the index: {sorted(lessons - links)}"
    missing = sorted(link for link in links if not (NOTEBOOKS / link).is_file())
    assert not missing, f"the index links notebooks that do not exist: {missing}"
    assert len(links) >= 7
