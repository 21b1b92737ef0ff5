"""The command line: ``python -m sockserve ...`` run as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import sockserve as sockserve_package
from sockserve.cli.main import main, parse_address, parse_params, CliError

SUBCOMMANDS = ["serve", "load", "compare", "trace", "kinds"]


def sockserve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sockserve", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


class Served:
    """``python -m sockserve serve ...`` in the background, stopped by PID."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "sockserve", "serve", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.first_line = self.proc.stdout.readline() if self.proc.stdout else ""

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


def ask(address: object, line: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as reader:
            return reader.read()


# -- parsing helpers ------------------------------------------------------------


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_address("[::1]:8000") == ("::1", 8000)
    assert parse_address(":8000") == ("127.0.0.1", 8000)
    assert parse_address("/tmp/x.sock") == "/tmp/x.sock"
    for bad in ("localhost", "host:http", "127.0.0.1:0", "127.0.0.1:70000"):
        with pytest.raises(CliError):
            parse_address(bad)


def test_parse_params() -> None:
    assert parse_params(["delay_ms=10", "heavy_every = 5"]) == {"delay_ms": 10.0, "heavy_every": 5.0}
    for bad in (["delay_ms"], ["delay_ms=ten"], ["=3"]):
        with pytest.raises(CliError):
            parse_params(bad)


# -- help and bad input ---------------------------------------------------------


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sockserve {command}")


def test_top_level_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command in out


def test_kinds_lists_the_short_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kinds"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names[:3] == ["plain", "threading", "forking"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["serve", "threadng"], "unknown server kind 'threadng'"),
        (["serve", "plain", "--workload", "sleepy"], "unknown workload 'sleepy'"),
        (["serve", "plain", "--workload", "io", "-p", "delay=3"], "no parameter delay"),
        (["serve"], "required: kind"),
        (["load", "nowhere"], "bad address 'nowhere'"),
        (["load", "192.0.2.1:80"], "not a loopback address"),
        (["load", "/nonexistent/x.sock"], "nothing accepts connections at /nonexistent/x.sock"),
        (["compare", "--servers", "plain,nope", "--duration", "1"], "unknown server kind 'nope'"),
        (["compare", "--mode", "open"], "--mode open needs --rate"),
        (["load", ":8000", "--rate", "0"], "--rate must be positive"),
        (["load", ":8000", "--clients", "0"], "--clients must be at least 1"),
        (["trace", "nope"], "unknown server kind 'nope'"),
        (["frobnicate"], "invalid choice"),
        # every argument checked before any work starts (issue 16 item 2)
        (["serve", "plain", "--port", "70000"], "--port 70000 is out of range"),
        (["serve", "plain", "--port", "-1"], "--port -1 is out of range"),
        (["serve", "threading-udp", "--port", "65536"], "--port 65536 is out of range"),
        (["serve", "plain", "--host", ""], "--host '' is empty"),
        (["serve", "plain", "--path", "/tmp/x.sock"], "--path is for Unix kinds; plain is a TCP server"),
        (["serve", "threading-udp", "--path", "/tmp/x.sock"], "a Unix kind such as threading-unix-dgram"),
        (["serve", "forking-unix", "--port", "8000"], "--port is for TCP and UDP kinds"),
        (["serve", "plain-unix", "--host", "0.0.0.0"], "--host is for TCP and UDP kinds"),
        (["load", "127.0.0.1:70000"], "port must be between 1 and 65535"),
        (["load", "127.0.0.1:0"], "port must be between 1 and 65535"),
        (["load", ":8000", "--json", "/nonexistent/out.json"], "the folder /nonexistent does not exist"),
        (["load", ":8000", "--json", "/sys/out.json"], "cannot write there (Permission denied)"),
        (["load", ":8000", "--json", "/tmp"], "--json /tmp is a folder"),
        (["load", ":8000", "--server-pid", "999999999"], "--server-pid 999999999: no such process"),
        (["compare", "-d", "1", "--plot", "/nonexistent/out.png"], "the folder /nonexistent does not exist"),
        (["compare", "-d", "1", "--plot", "out.xyz"], ".xyz is not an image format matplotlib writes"),
        (["compare", "-d", "1", "--plot", "out"], "the file name has no extension"),
        (["compare", "-d", "1", "--json", "/nonexistent/c.json"], "the folder /nonexistent does not exist"),
        (["lab", "--port", "70000"], "--port 70000 is out of range"),
        (["serve", "plain", "--grace", "-1"], "--grace must be 0 or more seconds"),
        (["serve", "plain", "--request-timeout", "-5"], "--request-timeout must be 0 (off) or more seconds"),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv: list[str], expected: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sockserve")
    assert expected in lines[0]


def test_port_in_use_is_one_line_and_status_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(sockserve("serve", "plain", "--port", str(port)))
    assert "already in use" in line and str(port) in line


def test_a_host_that_does_not_resolve_is_said_first_and_alone() -> None:
    line = one_error_line(sockserve("serve", "plain", "--host", "nosuchhost.invalid"))
    assert line == ("sockserve serve: error: cannot resolve --host 'nosuchhost.invalid': "
                    "Name or service not known"), line  # no "reachable from other machines" before it
    line = one_error_line(sockserve("load", "nosuchhost.invalid:8000"))
    assert "cannot resolve 'nosuchhost.invalid' in nosuchhost.invalid:8000" in line
    assert "loopback" not in line


def test_version() -> None:
    result = sockserve("--version")
    assert result.returncode == 0 and result.stdout == f"sockserve {sockserve_package.__version__}\n"


def test_binding_an_address_this_machine_lacks_is_one_line_without_a_warning() -> None:
    # 192.0.2.1 (TEST-NET-1) is not this machine's: the bind fails, and that
    # error alone is said (the warning about other machines is for addresses
    # this machine has; see tests/test_cli_oneline.py).
    result = sockserve("serve", "plain", "--host", "192.0.2.1")
    line = one_error_line(result)
    assert "192.0.2.1" in line and "warning" not in result.stderr


# -- serve ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_its_address_and_stops_cleanly(sig: int) -> None:
    served = Served("threading", "--workload", "io", "-p", "delay_ms=1")
    try:
        line = served.first_line
        assert line.startswith("serving ThreadingTCPServer (threading, io) on 127.0.0.1:"), line
        host_port = line.split(" on ")[1].split()[0]
        host, port = host_port.rsplit(":", 1)
        assert f"pid {served.proc.pid}" in line
        assert ask((host, int(port)), b"io 1\necho\n") == b"io 1\necho\n"
    finally:
        status, out, err = served.stop(sig)
    assert status == 0, err
    assert out == ""  # nothing but the first line on stdout
    assert "stopped ThreadingTCPServer" in err and "Traceback" not in err


def test_serve_json_first_line_for_a_unix_kind(tmp_path) -> None:
    path = str(tmp_path / "s.sock")
    served = Served("forking-unix", "--path", path, "--json")
    try:
        info = json.loads(served.first_line)
        assert info == {"serving": "ForkingUnixStreamServer", "kind": "forking-unix",
                        "transport": "unix", "workload": "echo", "address": path,
                        "pid": served.proc.pid}
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(b"hi\n")
            assert sock.recv(100) == b"hi\n"
    finally:
        status, _, err = served.stop()
    assert status == 0, err
    assert not os.path.exists(path)


# -- load, compare, trace -------------------------------------------------------------


def test_load_drives_a_running_server() -> None:
    served = Served("threading", "--json")
    try:
        info = json.loads(served.first_line)
        host, port = info["address"]
        result = sockserve("load", f"{host}:{port}", "--clients", "2", "--duration", "0.5",
                           "--max-requests", "200", "--server-pid", str(info["pid"]),
                           "--no-bar")
    finally:
        status, _, err = served.stop()
    assert result.returncode == 0, result.stderr
    assert "requests in" in result.stdout and "latency ms" in result.stdout
    assert "outcomes: ok " in result.stdout and "refused 0" in result.stdout
    assert status == 0, err


def test_compare_writes_json_and_a_plot(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    out_json = tmp_path / "c.json"
    out_png = tmp_path / "c.png"
    result = sockserve("compare", "--workload", "echo", "--servers", "plain,threading",
                       "--clients", "2", "--duration", "1", "--json", str(out_json),
                       "--plot", str(out_png), "--no-bar", timeout=90)
    assert result.returncode == 0, result.stderr
    table = result.stdout.splitlines()
    assert table[0].split()[:4] == ["server", "requests", "errors", "req/s"]
    assert [row.split()[0] for row in table[2:4]] == ["plain", "threading"]
    data = json.loads(out_json.read_text())
    assert [run["server"] for run in data["runs"]] == ["plain", "threading"]
    for run in data["runs"]:
        assert run["workload"] == "echo"
        assert isinstance(run["requests"], int) and run["requests"] > 0
        assert isinstance(run["errors"], int)
        assert run["throughput_rps"] > 0
        assert set(run["latency_ms"]) >= {"p50", "p90", "p99", "p999", "max"}
        assert run["threads"] and all(len(point) == 2 for point in run["threads"])
        assert isinstance(run["children"], list)
        # Who used the CPU, per server and per round (issue 21).
        for key in ("server_cpu_s", "generator_cpu_s", "busy_cpu_s", "parallelism", "requests_per_cpu_s",
                    "generator_cores", "others_cores", "others_took"):
            assert isinstance(run[key], float), (key, run[key])
        assert len(run["rounds"]) == data["rounds"] == 4
    assert data["machine"]["cpus"] >= 1 and "loadavg_before" in data["machine"]
    assert "cores: its CPU seconds per second" in result.stdout
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_load_with_nothing_listening_is_one_line_and_status_2() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = unused.getsockname()[1]
        line = one_error_line(sockserve("load", f"127.0.0.1:{port}", "--duration", "0.5"))
    assert f"nothing accepts connections at 127.0.0.1:{port}" in line


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"),
                    reason="needs Linux /proc children lists")
def test_a_forked_handler_child_dies_on_sigterm_and_the_server_serves_on() -> None:
    # serve's own SIGTERM handler must not be inherited by handler children:
    # SIGTERM to a child ends that child, not (through a shared pipe) the server.
    served = Served("forking", "--workload", "io", "--json")
    try:
        info = json.loads(served.first_line)
        address = tuple(info["address"])
        with socket.create_connection(address, timeout=10) as slow:
            slow.sendall(b"io 8000\n")
            deadline = time.monotonic() + 10
            while not children_of(info["pid"]) and time.monotonic() < deadline:
                time.sleep(0.02)
            (child,) = children_of(info["pid"])
            time.sleep(0.3)  # let the child get past fork() into its handler
            began = time.monotonic()
            os.kill(child, signal.SIGTERM)
            assert slow.recv(100) == b""  # the child is gone: EOF, not the reply
            assert time.monotonic() - began < 5
        assert served.proc.poll() is None
        assert ask(address, b"io 1\n") == b"io 1\n"
    finally:
        status, _, err = served.stop()
    assert status == 0, err


# -- trace ----------------------------------------------------------------------


def test_trace_prints_the_call_flow_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "threading"]) == 0
    first = capsys.readouterr().out
    lines = first.splitlines()
    assert lines[0] == "ThreadingTCPServer with EchoStreamHandler, one request:"
    assert lines[1] == "BaseServer.serve_forever()"
    assert "    ThreadingMixIn.process_request()" in lines
    assert "      --- new thread ---" in lines
    # the hooks appear in the stdlib's order
    order = ["get_request", "verify_request", "process_request", "finish_request",
             "setup", "handle", "finish", "shutdown_request", "close_request"]
    found = [next(i for i, line in enumerate(lines) if f".{hook}()" in line) for hook in order]
    assert found == sorted(found)
    assert main(["trace", "ThreadingTCPServer"]) == 0
    assert capsys.readouterr().out == first  # deterministic: no ports, times or PIDs


def test_trace_a_forking_kind_with_a_workload() -> None:
    result = sockserve("trace", "forking-udp", "--workload", "io")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ForkingUDPServer with IoHandler, one request:"
    assert "      --- child process ---" in lines
    assert any(line.strip() == "WorkloadHandler.handle()" for line in lines)


@pytest.mark.parametrize("given, expected", [([], None), (["--request-timeout", "7.5"], 7.5),
                                              (["--request-timeout", "0"], None)])
def test_serve_sets_the_request_deadline_and_reuse_on_the_server_class(
        given: list[str], expected: float | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from sockserve.cli import serve as servecommand

    seen: dict[str, object] = {}

    def capture(server: object, first_line: str, watch_parent: bool, grace: float,
                feed: object = None) -> int:
        seen.update(request_timeout=getattr(server, "request_timeout"), grace=grace,
                    reuse=getattr(server, "allow_reuse_address"), name=type(server).__name__)
        return 0

    monkeypatch.setattr(servecommand, "_serve_until_signalled", capture)
    assert main(["serve", "threadpool", *given]) == 0
    assert seen == {"request_timeout": expected, "grace": 1.0, "reuse": True, "name": "ThreadPoolTCPServer"}
    assert not sockserve_package.ThreadPoolTCPServer.allow_reuse_address


def test_serve_help_shows_the_grace_and_the_request_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--grace SECONDS" in text and "(default 1)" in text
    assert "--request-timeout SECONDS" in text and "(default 0: no limit" in text
