"""``sockserve load`` and ``sockserve compare`` (sockserve.cli.load): the
target probed before any load with a hint for the wrong transport, a non-zero
exit when no reply came or the server died, the duration as a hard bound
whatever the client count, Ctrl-C keeping what was measured, and the bounds
of --allow-remote. Every command runs as a subprocess, as a user types it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sockserve.cli.load import REMOTE_LIMITS


def sockserve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sockserve", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_error_line(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@contextmanager
def served(*args: str) -> Iterator[tuple[dict[str, object], subprocess.Popen[str]]]:
    """``sockserve serve ARGS --json``: yields its first line and the process; stopped by PID."""
    proc = subprocess.Popen([sys.executable, "-m", "sockserve", "serve", *args, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline()), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def wait_for_replies(server: subprocess.Popen[str], count: int = 3) -> None:
    """Read the stats lines of a server started with ``--report-every`` until it
    has answered *count* requests (so each of two clients has had a reply)."""
    assert server.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        assert line, "the server ended before answering"
        if json.loads(line).get("completed", 0) >= count:
            return
    pytest.fail(f"the server had not answered {count} requests after 60 s")


def target(info: dict[str, object]) -> str:
    address = info["address"]
    if isinstance(address, list):
        return f"{address[0]}:{address[1]}"
    assert isinstance(address, str)
    return address


# -- the probe before the load ----------------------------------------------------


def test_a_udp_server_loaded_over_tcp_gets_the_hint_to_add_t_udp() -> None:
    with served("threading-udp") as (info, _):
        line = one_error_line(sockserve("load", target(info), "-d", "0.5"))
    assert "nothing accepts connections at" in line and line.endswith("a UDP socket is bound there: add -t udp")


def test_udp_load_where_only_tcp_listens_is_refused_before_sending() -> None:
    with served("threading") as (info, _):
        began = time.monotonic()
        line = one_error_line(sockserve("load", target(info), "-t", "udp", "-d", "30"))
    assert f"nothing is bound to UDP {target(info)}" in line
    assert line.endswith("a TCP server listens there: leave out -t udp")
    assert time.monotonic() - began < 10  # no load was run (it would take 30 s)


def test_udp_load_with_nothing_there_is_one_line_not_thousands_of_refusals() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    line = one_error_line(sockserve("load", f"127.0.0.1:{port}", "-t", "udp", "-d", "1"))
    assert line == f"sockserve load: error: nothing is bound to UDP 127.0.0.1:{port}"


def test_unix_socket_of_the_other_type_gets_the_right_transport_hint(tmp_path: Path) -> None:
    dgram, stream = str(tmp_path / "d.sock"), str(tmp_path / "s.sock")
    with served("threading-unix-dgram", "--path", dgram), served("threading-unix", "--path", stream):
        assert one_error_line(sockserve("load", dgram, "-d", "0.5")).endswith(
            "(it is a datagram socket); add -t unix-dgram")
        assert one_error_line(sockserve("load", stream, "-t", "unix-dgram", "-d", "0.5")).endswith(
            f"{stream} is a stream socket: use -t unix (the default for a path)")


def test_a_udp_load_says_nothing_about_connections() -> None:
    with served("threading-udp") as (info, _):
        # Four replies, however long a busy machine takes to give them.
        result = sockserve("load", target(info), "-t", "udp", "-c", "2", "-d", "30", "--max-requests", "4",
                           "--no-bar")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("echo over udp, closed loop, 2 clients") and "connections" not in first


# -- no reply, a dying server --------------------------------------------------------


def test_a_load_that_gets_no_reply_exits_1_and_says_why() -> None:
    """A server that accepts and closes at once: every request is reset."""
    with socket.socket() as rude:
        rude.bind(("127.0.0.1", 0))
        rude.listen(64)
        rude.settimeout(0.2)
        stop = threading.Event()

        def close_everything() -> None:
            while not stop.is_set():
                try:
                    conn, _ = rude.accept()
                except OSError:
                    continue
                conn.close()

        closer = threading.Thread(target=close_everything, daemon=True)
        closer.start()
        try:
            result = sockserve("load", "127.0.0.1:%d" % rude.getsockname()[1], "-c", "2", "-d", "0.5", "--no-bar")
        finally:
            stop.set()
            closer.join(5)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "outcomes: ok 0" in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("sockserve load: error: no request got a reply (")
    assert "the server closed every connection before replying" in line


def test_a_load_whose_server_dies_mid_run_exits_1() -> None:
    with served("threading", "--report-every", "0.05") as (info, server):
        load = subprocess.Popen([sys.executable, "-m", "sockserve", "load", target(info), "-c", "2", "-d", "5",
                                 "--no-bar"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_replies(server)  # mid-run: the load is under way
        server.kill()  # dies, as a crash would: nothing listens any more
        server.wait(10)
        out, err = load.communicate(timeout=60)
    assert load.returncode == 1, (out, err)
    assert "ok " in out and "refused" in out
    (line,) = err.strip().splitlines()
    assert line.startswith("sockserve load: error: the server stopped during the run:")
    assert f"nothing is at {target(info)} any more" in line


# -- the duration, a hard bound ------------------------------------------------------


def test_duration_holds_when_many_clients_wait_on_a_server_that_falls_behind() -> None:
    """300 clients against a one-at-a-time server whose requests take 200 ms:
    nearly all are still waiting at the deadline. They get at most a quarter
    of a second more and count as timeouts; they used to get their whole
    --timeout, so the run took the duration plus the timeout (here 30 s, so
    that the two cannot be mistaken for each other however busy the machine)."""
    with served("plain", "-w", "io") as (info, _):
        began = time.monotonic()
        result = sockserve("load", target(info), "-w", "io", "-p", "delay_ms=200", "-c", "300", "-d", "2",
                           "--timeout", "30", "--no-bar", timeout=120)
        wall = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert "first timeout: still in flight when the run ended" in result.stdout
    assert wall < 2 + 10, f"load -c 300 -d 2 --timeout 30 took {wall:.1f} s"


# -- Ctrl-C keeps what was measured --------------------------------------------------


def test_ctrl_c_during_load_prints_and_saves_the_partial_result(tmp_path: Path) -> None:
    out_json = tmp_path / "partial.json"
    with served("threading", "--report-every", "0.05") as (info, server):
        load = subprocess.Popen([sys.executable, "-m", "sockserve", "load", target(info), "-c", "2", "-d", "30",
                                 "--json", str(out_json), "--no-bar"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_replies(server)
        began = time.monotonic()
        load.send_signal(signal.SIGINT)
        out, err = load.communicate(timeout=30)
        stopped_in = time.monotonic() - began
    assert load.returncode == 130, (out, err)
    assert "incomplete: interrupted (Ctrl-C) after" in out and "of 30 s" in out
    assert "interrupted, stopping the run" in err and "Traceback" not in err
    data = json.loads(out_json.read_text())
    assert data["incomplete"] is True and data["cancelled"] is True
    assert data["outcomes"]["ok"] > 0 and data["elapsed"] < 20
    assert stopped_in < 10


def test_ctrl_c_during_compare_keeps_the_runs_so_far(tmp_path: Path) -> None:
    out_json = tmp_path / "partial.json"
    compare = subprocess.Popen([sys.executable, "-m", "sockserve", "compare", "-s", "plain,threading,forking",
                                "-c", "2", "-d", "4", "--rounds", "2", "--json", str(out_json), "--bar"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert compare.stderr is not None
    # Into the second run: its progress bar ("... N req ...", redrawn after a carriage
    # return) has counted a reply.
    seen = ""
    deadline = time.monotonic() + 60
    while not re.search(r"\[2/6\] threading \(round 1 of 2\).* [1-9]\d* req ", seen, re.S) and time.monotonic() < deadline:
        chunk = os.read(compare.stderr.fileno(), 4096).decode(errors="replace")
        assert chunk, f"compare ended early:\n{seen}"
        seen += chunk
    compare.send_signal(signal.SIGINT)
    out, err = compare.communicate(timeout=60)
    assert compare.returncode == 130, (out, seen + err)
    lines = out.splitlines()
    # Both rows are marked: plain ran 1 of its 2 rounds, threading's first was cut short.
    assert [line.split()[0] for line in lines[2:4]] == ["plain*", "threading*"], out
    assert not any(line.startswith("forking") for line in lines), out
    assert ("* stopped before the end: plain* ran 1 of 2 rounds; threading* ran 1 of 2 "
            "rounds, the last cut short; forking did not run") in out
    assert "incomplete: interrupted (Ctrl-C); measured plain, threading of plain, threading, forking" in out
    data = json.loads(out_json.read_text())
    assert data["incomplete"] is True and data["servers"] == ["plain", "threading", "forking"]
    assert [run["server"] for run in data["runs"]] == ["plain", "threading"]
    assert [run["partial"] for run in data["runs"]] == [True, True]
    assert data["runs"][1]["load"]["cancelled"] is True and data["runs"][1]["requests"] > 0


# -- --allow-remote is bounded ---------------------------------------------------------


@pytest.mark.parametrize("flag, value", [("--clients", "65"), ("--rate", "1001"), ("--duration", "61"),
                                         ("--max-requests", "100001")])
def test_allow_remote_is_bounded_and_refused_before_any_traffic(flag: str, value: str) -> None:
    # 192.0.2.1 is TEST-NET-1: the bounds are checked before anything is sent.
    args = ["load", "192.0.2.1:80", "--allow-remote", flag, value]
    if flag == "--rate":
        args += ["--clients", "8"]
    line = one_error_line(sockserve(*args))
    assert f"{flag} {value} is above the bound for --allow-remote" in line


def test_allow_remote_bounds_are_in_help() -> None:
    text = " ".join(sockserve("load", "--help").stdout.split())
    r = REMOTE_LIMITS
    assert (f"at most {r['clients']} clients, {r['rate']:g} requests/s, {r['duration']:g} s and "
            f"{r['max_requests']} requests") in text
