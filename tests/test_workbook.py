"""The helpers the workbook lessons call (sockserve.workbook), and the index
notebook's links."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import socketserver
import subprocess
import sys
from pathlib import Path

import pytest

import sockserve
from sockserve.workbook import helpers as workbook

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


class ReplyOnce(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


def test_time_wait_blocks_a_rebind_unless_both_servers_reuse_the_address() -> None:
    port = workbook.leave_time_wait(2)
    assert isinstance(port, int) and len(port.clients) == 2
    assert workbook.time_wait_sockets(port) == 2
    with pytest.raises(OSError) as info:
        sockserve.TCPServer(("127.0.0.1", port), Upper)
    assert info.value.errno == errno.EADDRINUSE

    class Reusing(sockserve.TCPServer):
        allow_reuse_address = True

    port = workbook.leave_time_wait(2, Reusing)
    Reusing(("127.0.0.1", port), Upper).server_close()


def test_time_wait_sockets_of_a_served_port_are_its_own_connections_only() -> None:
    """Another server on the same port number leaves its own TIME_WAIT there:
    the port as a plain number counts them all, the served port its own."""

    class Reusing(sockserve.TCPServer):
        allow_reuse_address = True

    port = workbook.leave_time_wait(2, Reusing)
    with workbook.background(Reusing(("127.0.0.1", port), ReplyOnce)) as later:
        with socket.create_connection(later.server_address, timeout=5) as client:
            client.sendall(b"hi\n")
            while client.recv(1024):  # to the server's end of file: it closed first
                pass
    assert workbook.time_wait_sockets(port) == 2
    assert workbook.time_wait_sockets(int(port)) >= 3  # and any other program's on this port number


def test_shutdown_latency_sockserve_is_prompt_whatever_the_poll_interval() -> None:
    # Seed 123: shutdown() comes 0.28 s and 0.46 s into a 5 s tick (random.Random is the same on
    # every Python), where a loop that only looks between ticks would take the rest of it, over 4 s.
    took = workbook.shutdown_latency(sockserve.TCPServer, poll_interval=5.0, rounds=2, seed=123)
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


def test_exit_with_handler_running_works_from_a_source_tree(tmp_path: Path) -> None:
    """A Python without sockserve installed, which finds it in the source
    tree (as a notebook opened in a clone does): the demo's own child process
    imports the same sockserve. (From a wheel: test_packaging.)"""
    python = getattr(sys, "_base_executable", sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    alone = subprocess.run([python, "-c", "import sockserve"], cwd=tmp_path, env=env, capture_output=True,
                           timeout=60)
    if alone.returncode == 0:
        pytest.skip(f"{python} has sockserve installed: a source tree alone cannot be tried with it")
    code = (f"import sys; sys.path.insert(0, {str(NOTEBOOKS.parent)!r}); "
            "from sockserve.workbook import exit_with_handler_running as demo; "
            "print(demo(False, 0.2)); print(demo(True, 0.2))")
    run = subprocess.run([python, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    waited, killed = run.stdout.splitlines()
    assert "waited" in waited and "killed" in killed


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


def test_shutdown_latencies_measure_every_class_and_poll_and_the_plot_draws_them() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = workbook.shutdown_latencies(
        {"socketserver": socketserver.TCPServer, "sockserve": sockserve.TCPServer}, (0.02, 0.05), rounds=2)
    assert set(results) == {"socketserver", "sockserve"}
    assert all(set(by_poll) == {0.02, 0.05} and all(len(v) == 2 for v in by_poll.values())
               for by_poll in results.values())
    fig = workbook.plot_shutdown_latencies(results)
    try:
        ax = fig.axes[0]
        assert ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.02 s", "0.05 s"]
        # a median bar per class and poll interval, a dot per round
        assert len(ax.patches) == 4 and sum(len(c.get_offsets()) for c in ax.collections[:4]) >= 8
    finally:
        plt.close(fig)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_cost_times_this_process_and_a_fresh_one() -> None:
    cost = workbook.fork_cost(count=3)
    assert 0 < cost.here_s < 1 and 0 < cost.fresh_s < 1
    assert cost.fresh_mib > 0 and cost.here_mib > 0
    assert cost.ratio == pytest.approx(cost.here_s / cost.fresh_s)


def test_show_displays_a_figure_once_and_closes_it(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("IPython")
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    workbook.show(ax)  # an Axes stands for its figure
    assert not plt.fignum_exists(fig.number)
    assert "Figure" in capsys.readouterr().out  # outside a kernel, display() prints the repr


def _saved_outputs(notebook: Path) -> list[tuple[int, dict[str, object]]]:
    cells = json.loads(notebook.read_text())["cells"]
    return [(i, out) for i, cell in enumerate(cells) if cell["cell_type"] == "code" for out in cell["outputs"]]


def _text(output: dict[str, object]) -> str:
    data = output.get("data", {})
    assert isinstance(data, dict)
    text = output.get("text", data.get("text/plain", ""))
    return "".join(text) if isinstance(text, list) else str(text)


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")), ids=lambda p: p.stem)
def test_a_lesson_opened_before_running_shows_no_widget_repr_and_no_fix(notebook: Path) -> None:
    """Opened, not run: a saved panel output is one line saying to run the
    cell (no raw ``ServerPanel(children=...`` repr, no widget view without
    its state), and no saved check result gives a fix away."""
    from sockserve.exercises import FIX_PREFIX

    for i, output in _saved_outputs(notebook):
        data = output.get("data", {})
        assert isinstance(data, dict)
        assert "application/vnd.jupyter.widget-view+json" not in data, f"cell {i} saved a widget view"
        text = _text(output)
        assert not re.search(r"\b\w*(Panel|Box)\(children=", text), f"cell {i} saved a raw widget repr: {text[:80]}"
        assert FIX_PREFIX not in text, f"cell {i} saved a check's fix: {text[:200]}"
    assert "widgets" not in json.loads(notebook.read_text())["metadata"]


def test_sync_replaces_saved_widget_outputs_by_a_line_to_run_the_cell() -> None:
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("lesson_sync", NOTEBOOKS / "src" / "sync.py")
    assert spec is not None and spec.loader is not None
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    nb = nbformat.v4.new_notebook()
    panel = nbformat.v4.new_code_cell("panel")
    panel.outputs = [nbformat.v4.new_output(
        "display_data", data={sync.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "ServerPanel(children=(...))"})]
    printed = nbformat.v4.new_code_cell("print(1)")
    printed.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells = [panel, printed]
    nb.metadata["widgets"] = {"state": {}}
    sync.without_widgets(nb)
    assert [o["text"] for o in nb.cells[0].outputs] == [sync.RUN_THIS_CELL]
    assert nb.cells[1].outputs[0]["text"] == "1\n" and "widgets" not in nb.metadata
