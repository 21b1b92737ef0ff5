"""The lab's plain models, driven headless (no ipywidgets, no matplotlib)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

import sockserve
from sockserve.measure.kinds import resolve_kind
from sockserve.lab import registry
from sockserve.lab.models import FORK_NOTE, ServerModel, server_kinds
from sockserve.lab.runs import CompareModel, TrafficModel, default_servers

from conftest import DID_NOT_WAIT_FOR_THE_RUN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ask(model: ServerModel, payload: bytes = b"echo\n") -> bytes:
    info = resolve_kind(model.kind)
    family = socket.AF_UNIX if info.is_unix else socket.AF_INET
    kind = socket.SOCK_STREAM if info.is_stream else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.settimeout(10)
        if info.transport == "unix-dgram":
            sock.bind(model.address + ".client")
        try:
            if info.is_stream:
                sock.connect(model.address)
                sock.sendall(payload)
                return sock.recv(1000)
            sock.sendto(payload, model.address)
            return sock.recv(1000)
        finally:
            if info.transport == "unix-dgram":
                os.unlink(model.address + ".client")


def wait_for(predicate: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_importing_the_models_needs_no_widgets_or_plots() -> None:
    code = (
        "import sys, sockserve, sockserve.lab, sockserve.lab.models, sockserve.lab.runs; "
        "bad = [m for m in ('ipywidgets', 'matplotlib', 'numpy') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_transport_and_concurrency_is_offered() -> None:
    kinds = server_kinds()
    for concurrency in ("plain", "threading", "forking"):
        for suffix in ("", "-udp", "-unix", "-unix-dgram"):
            assert concurrency + suffix in kinds
    assert "asyncio" not in kinds  # no class to run inside the kernel


@pytest.mark.parametrize("kind", server_kinds())
def test_start_serve_count_and_stop_every_kind(kind: str) -> None:
    model = ServerModel(kind=kind, workload="echo")
    status = model.start()
    try:
        assert status.state == "running", status.message
        assert ask(model) == b"echo\n"
        assert wait_for(lambda: model.status().requests == 1)
        line = model.status().line()
        assert "requests 1" in line and "serving on" in line
    finally:
        model.stop()
    assert model.status().state == "stopped"
    assert model.address is None
    assert model not in registry.tracked()
    if resolve_kind(kind).is_unix:
        assert not os.path.exists(str(status.address))


def test_port_in_use_is_reported_in_plain_words() -> None:
    first = ServerModel(kind="threading")
    first.start()
    try:
        second = ServerModel(kind="threading", port=first.address[1])
        status = second.start()
        assert status.state == "failed"
        assert "already in use" in status.message and "port 0" in status.message
        assert "Traceback" not in status.line()
        assert second not in registry.tracked()
    finally:
        first.stop()


@pytest.mark.parametrize(
    ("host", "port", "words"),
    [
        ("10.255.255.1", 0, "no such address"),
        ("no-such-host.invalid", 0, "not a host name"),
        ("127.0.0.1", 70000, "0 to 65535"),
    ],
)
def test_bad_addresses_are_reported_in_plain_words(host: str, port: int, words: str) -> None:
    status = ServerModel(kind="threading", host=host, port=port).start()
    assert status.state == "failed"
    assert words in status.message
    assert status.line().startswith("threading (echo): not running.")


class Grumpy(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()
        raise ValueError("I do not like this line")


@pytest.mark.parametrize("kind", ["plain", "threading", "forking"])
def test_a_handler_that_raises_is_one_plain_line(kind: str, capfd: pytest.CaptureFixture[str]) -> None:
    model = ServerModel(kind=kind, handler=Grumpy)
    assert model.start().state == "running"
    try:
        assert ask(model, b"hello\n") == b""
        assert wait_for(lambda: model.errors() != [])
        (message,) = model.errors()
        assert message.startswith("Grumpy in handle() at line")
        assert "ValueError: I do not like this line" in message
        assert "the server goes on serving" in message
        assert model.status().message == message
        assert wait_for(lambda: model.status().errors == 1)
    finally:
        model.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_a_hung_forked_child_is_ended_by_stop() -> None:
    class Hang(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            time.sleep(60)

    model = ServerModel(kind="forking", handler=Hang)
    model.stop_grace = 0.2
    model.start()
    try:
        with socket.create_connection(model.address, timeout=10) as sock:
            sock.sendall(b"x\n")
            assert wait_for(lambda: model.status().children == 1)
            children = set(model.server.active_children)
            began = time.monotonic()
            model.stop()
            assert time.monotonic() - began < 5
    finally:
        model.stop()
    for pid in children:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.parametrize("kind", ["threading", "threadpool", "forking", "prefork"])
def test_lab_servers_cut_a_silent_client_off_at_their_request_timeout(kind: str) -> None:
    assert ServerModel.request_timeout == 30.0  # the default the panel shows
    model = ServerModel(kind=kind, workload="echo")
    model.request_timeout = 0.3
    model.start()
    try:
        assert model.server.request_timeout == 0.3
        with socket.create_connection(model.address, timeout=10) as sock:
            began = time.monotonic()
            assert sock.recv(16) == b""  # says nothing; the deadline closes it
            assert time.monotonic() - began < 5
        assert ask(model) == b"echo\n"  # and the worker serves the next client
    finally:
        model.stop()


def test_forking_sets_a_child_watchdog_and_explains_the_fork_warning() -> None:
    model = ServerModel(kind="forking")
    model.start()
    try:
        assert model.server.child_timeout == model.child_timeout == 30.0
        assert model.is_forking
    finally:
        model.stop()
    assert "DeprecationWarning" in FORK_NOTE and "child_timeout" in FORK_NOTE


def test_registry_slots_replace_the_older_holder() -> None:
    older, newer = ServerModel(kind="threading"), ServerModel(kind="threading")
    older.start()
    registry.claim("test-slot", older)
    port = older.address[1]
    newer.start()
    try:
        registry.claim("test-slot", newer)
        assert older.status().state == "stopped"
        assert newer.status().state == "running"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        registry.release("test-slot", newer)
        newer.stop()


def test_stop_all_stops_everything_started() -> None:
    models = [ServerModel(kind=kind) for kind in ("plain", "threading", "forking-unix")]
    for model in models:
        model.start()
    assert all(model in registry.tracked() for model in models)
    assert registry.stop_all() >= 3
    assert all(model.status().state == "stopped" for model in models)
    assert registry.tracked() == []


def test_cell_slots_outside_a_kernel_never_collide() -> None:
    assert registry.cell_slot("X") != registry.cell_slot("X")


def test_traffic_model_against_a_server_model() -> None:
    server = ServerModel(kind="threading", workload="echo")
    server.start()
    traffic = TrafficModel(server, clients=2, duration=1.0)
    try:
        assert traffic.send().state == "running"
        assert wait_for(lambda: traffic.poll().state == "done", 30)
        status = traffic.status()
        assert traffic.result.outcomes.get("ok", 0) > 0
        assert traffic.result.errors == 0
        assert status.fraction == 1.0 and status.text == traffic.result.summary()
        assert traffic.samples and traffic.samples[-1].requests == traffic.result.requests
        assert server.status().requests >= traffic.result.requests
        assert traffic not in registry.tracked()
    finally:
        traffic.stop()
        server.stop()


def test_traffic_model_explains_a_stopped_target() -> None:
    traffic = TrafficModel(ServerModel(kind="threading"))
    status = traffic.send()
    assert status.state == "failed"
    assert "press Start" in status.text


def test_compare_model_default_servers_and_a_short_run() -> None:
    assert default_servers()[:3] == ("plain", "threading", "forking")
    model = CompareModel(workload="echo", servers=("plain", "threading"), clients=2, duration=0.5)
    model.run()
    try:
        assert wait_for(lambda: model.status().state in ("done", "failed"), 60)
        status = model.status()
        assert status.state == "done", status.text
        assert [run.server for run in model.comparison.runs] == ["plain", "threading"]
        assert "plain" in status.text and "threading" in status.text
    finally:
        model.stop()
    assert model not in registry.tracked()


EXIT_SCRIPT = r"""
import json, socket, sys, time
import sockserve
from sockserve.lab.models import ServerModel

class Hang(sockserve.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        time.sleep(600)

forking = ServerModel(kind="forking", handler=Hang)
forking.child_timeout = 300   # so that only the exit clean-up can end the child in time
forking.start()
plain = ServerModel(kind="threading")
plain.start()
hold = socket.create_connection(forking.address)
hold.sendall(b"x\n")
deadline = time.monotonic() + 10
while not forking.server.active_children and time.monotonic() < deadline:
    time.sleep(0.02)
print(json.dumps({"children": sorted(forking.server.active_children),
                  "ports": [forking.address[1], plain.address[1]]}), flush=True)
# no stop(): leaving the interpreter must clean up
"""


def test_interpreter_exit_stops_servers_and_ends_forked_children() -> None:
    # An orphaned child would keep the stdout pipe open, so run() would time out.
    out = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=20,
        start_new_session=True,
    )
    assert out.returncode == 0, out.stderr
    import json

    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(info["children"]) == 1
    for pid in info["children"]:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "gone"
        assert state in ("gone", "Z"), f"forked child {pid} outlived the interpreter"
    for port in info["ports"]:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_the_fork_warning_of_python_312_is_silenced_for_the_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from sockserve.lab import models

    text = "This process (pid=4242) is multi-threaded, use of fork() may lead to deadlocks in the child."
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        monkeypatch.setattr(models.sys, "version_info", (3, 12, 0))
        models._quiet_fork_warning()
        warnings.warn(text, DeprecationWarning)
        warnings.warn("some other deprecation", DeprecationWarning)
    assert [str(w.message) for w in seen] == ["some other deprecation"]


def test_a_handler_that_exits_the_serving_thread_is_reported_and_cleaned_up() -> None:
    class Quitter(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            sys.exit(3)

    model = ServerModel(kind="plain", handler=Quitter)
    model.start()
    port = model.address[1]
    try:
        ask(model, b"bye\n")
        assert wait_for(lambda: model.status().state == "failed")
        assert "sys.exit(3)" in model.status().line()
        assert wait_for(lambda: model not in registry.tracked())
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        model.stop()


def test_stop_is_bounded_when_a_handler_thread_never_ends() -> None:
    import threading

    release = threading.Event()

    class Stuck(sockserve.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            release.wait(30)

    model = ServerModel(kind="threading", handler=Stuck)
    model.stop_timeout = 0.5
    model.start()
    port = model.address[1]
    try:
        with socket.create_connection(model.address, timeout=10) as sock:
            sock.sendall(b"x\n")
            assert wait_for(lambda: model.status().active == 1)
            began = time.monotonic()
            model.stop()
            assert time.monotonic() - began < 5
        status = model.status()
        assert status.state == "failed" and "did not finish" in status.message
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        release.set()
        model.stop()


def test_binding_beyond_loopback_is_flagged_in_plain_words() -> None:
    from sockserve.lab.models import ServerStatus, exposure_warning

    assert exposure_warning("127.0.0.1") == ""
    assert exposure_warning("::1") == ""
    assert exposure_warning("localhost") == ""
    assert exposure_warning("") == ""  # the panel's default
    warning = exposure_warning("0.0.0.0")
    assert "0.0.0.0" in warning and "other machines" in warning and "127.0.0.1" in warning
    status = ServerStatus("running", "threading", "echo", "0.0.0.0:8000", 0, 0, 0, 0, 0, "", warning)
    assert status.line().endswith("Warning: " + warning)


# -- Stop: bounded, keeps what was measured (user-facing promises, "within
# about a second", timed by benchmarks/bench_lab.py; here, what Stop does and
# that it did not wait for the run: DID_NOT_WAIT_FOR_THE_RUN, conftest.py) ------


def test_compare_stop_returns_within_a_second_and_keeps_the_partial_result() -> None:
    model = CompareModel(workload="io", servers=("plain", "threading", "forking"), clients=8, duration=30)
    model.run()
    try:
        assert wait_for(lambda: "requests" in model.status().text, 30)
        began = time.monotonic()
        model.stop()
        took = time.monotonic() - began
        assert took < DID_NOT_WAIT_FOR_THE_RUN, took
        assert model.status().state in ("stopping", "stopped")
        comparison = model.wait(30)
        assert comparison is not None and comparison.cancelled
        assert [run.server for run in comparison.runs] == ["plain"]
        assert comparison.runs[0].load["ended_by"] == "cancelled"
        assert model.status().state == "stopped"
        assert "Stopped: the partial result" in model.status().text
    finally:
        model.stop()
        model.wait(30)
    assert model not in registry.tracked()


def test_a_new_comparison_waits_for_the_stopped_one_without_blocking_the_caller() -> None:
    first = CompareModel(workload="io", servers=("threading",), clients=4, duration=30)
    second = CompareModel(workload="echo", servers=("plain",), clients=1, duration=0.3)
    first.run()
    try:
        assert wait_for(lambda: "requests" in first.status().text, 30)
        began = time.monotonic()
        first.stop()  # what running the panel's cell again does to the old panel
        second.run()
        assert time.monotonic() - began < DID_NOT_WAIT_FOR_THE_RUN
        assert wait_for(lambda: second.status().state == "done", 60), second.status().text
        assert first.comparison is not None and first.comparison.cancelled
    finally:
        for model in (first, second):
            model.stop()
            model.wait(30)


def test_traffic_stop_is_bounded_and_a_stopped_server_ends_the_run() -> None:
    server = ServerModel(kind="threading", workload="io", params={"delay_ms": 5})
    server.start()
    traffic = TrafficModel(server, clients=2, duration=30)
    try:
        assert "30 s or 100,000 requests" in traffic.cap_text()
        traffic.send()
        assert wait_for(lambda: traffic.poll().state == "running" and traffic.samples, 30)
        began = time.monotonic()
        traffic.stop()
        assert time.monotonic() - began < DID_NOT_WAIT_FOR_THE_RUN
        assert not traffic.running
        status = traffic.poll()
        assert status.state == "stopped" and status.text.startswith("Stopped.")
        assert traffic.result.ok > 0 and traffic.result.ended_by == "cancelled"
        # Again, and this time the server goes away under the load.
        traffic.send()
        assert wait_for(lambda: traffic.poll().state == "running" and traffic.samples, 30)
        server.stop()
        assert wait_for(lambda: traffic.poll().state == "stopped", 5)
        status = traffic.poll()
        assert "The server stopped, so the load run ended." in status.text
        # The run ended (how many connections the server refused before the
        # load noticed is a matter of timing): nothing is sent any more.
        refused = traffic.result.outcomes["refused"]
        time.sleep(0.5)
        assert traffic.result.outcomes["refused"] == refused and not traffic.running
    finally:
        traffic.stop()
        server.stop()
    assert traffic not in registry.tracked()


def test_the_lab_builds_its_servers_with_the_clis_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    from sockserve.lab import models as lab_models
    from sockserve.measure import kinds

    calls: list[tuple[Any, ...]] = []

    def spy(*args: Any, **params: Any) -> Any:
        calls.append(args + tuple(sorted(params.items())))
        return kinds.make_server(*args, **params)

    monkeypatch.setattr(lab_models, "make_server", spy)
    model = ServerModel(kind="threading", workload="io", params={"delay_ms": 1})
    try:
        assert model.start().state == "running"
        assert ask(model, b"io 1\n").endswith(b"\n")
    finally:
        model.stop()
    (kind, workload, host, port, path, attributes, params), = calls
    assert (kind, workload, host, port, path, params) == ("threading", "io", "127.0.0.1", 0, None,
                                                           ("delay_ms", 1))
    # The lab's own class attributes ride along: its error reporting and deadlines.
    assert {"handle_error", "lab_events_fd", "request_timeout"} <= set(attributes)

