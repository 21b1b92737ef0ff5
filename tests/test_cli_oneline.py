"""The command line's one-line rule for every input (issue 23 item 4), and
``serve`` under SIGHUP (issue 24 item 9).

Every numeric flag of every subcommand rejects ``inf``, ``nan`` and huge
values in one line with exit status 2, before any work starts: the work
(binding, probing, comparing, copying the workbook) is replaced by a
sentinel that fails the test if it is reached.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sockserve.cli.main import main
from sockserve.load import LoadSpec


class WorkStarted(Exception):
    """Raised by the stand-ins for the commands' work."""


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import sockserve.cli.load as loadcommand
    import sockserve.cli.serve as servecommand
    import sockserve.measure.experiment as experiment
    import sockserve.workbook.launch as launch

    def started(*args: Any, **kwargs: Any) -> Any:
        raise WorkStarted

    monkeypatch.setattr(servecommand, "make_server", started)
    monkeypatch.setattr(loadcommand, "probe_target", started)
    monkeypatch.setattr(experiment, "compare", started)
    monkeypatch.setattr(launch, "copy_workbook", started)
    monkeypatch.setattr(launch, "clone_workbook", lambda: None)
    monkeypatch.setattr(launch, "shipped_workbook", lambda: Path("/nonexistent"))
    monkeypatch.setattr(launch, "missing_lab_modules", lambda: [])
    monkeypatch.setattr(os, "execv", started)


#: (subcommand and its other arguments, flag) for every numeric flag.
NUMERIC_FLAGS = [
    (["serve", "plain"], "--port"),
    (["serve", "plain"], "--grace"),
    (["serve", "plain"], "--request-timeout"),
    (["serve", "plain"], "--report-every"),
    (["serve", "plain"], "--timeline"),
    (["serve", "plain", "--workload", "io"], "--param delay_ms"),
    (["load", ":8000"], "--clients"),
    (["load", ":8000", "--mode", "open"], "--rate"),
    (["load", ":8000"], "--duration"),
    (["load", ":8000"], "--max-requests"),
    (["load", ":8000"], "--timeout"),
    (["load", ":8000"], "--server-pid"),
    (["load", ":8000", "--workload", "io"], "--param delay_ms"),
    (["compare"], "--clients"),
    (["compare", "--mode", "open"], "--rate"),
    (["compare"], "--duration"),
    (["compare"], "--max-requests"),
    (["compare"], "--timeout"),
    (["compare", "--workload", "io"], "--param delay_ms"),
    (["lab"], "--port"),
]
BAD_VALUES = ["inf", "-inf", "nan", "1e309", "1e300", "-1e300", "99999999999999999999999"]


def _argv(prefix: list[str], flag: str, value: str) -> list[str]:
    if flag.startswith("--param "):
        return [*prefix, "--param", f"{flag.split()[1]}={value}"]
    return [*prefix, flag, value]


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize("prefix, flag", NUMERIC_FLAGS,
                         ids=[f"{p[0]} {f}" for p, f in NUMERIC_FLAGS])
def test_every_numeric_flag_rejects_inf_nan_and_huge_values_in_one_line(
        prefix: list[str], flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(_argv(prefix, flag, value))  # WorkStarted escapes if the value got through
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"sockserve {prefix[0]}: error:"), lines[0]
    assert flag.split()[-1].lstrip("-") in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("prefix, flag, good", [
    (["serve", "plain"], "--grace", "2.5"),
    (["load", ":8000"], "--duration", "1"),
    (["compare"], "--timeout", "3"),
    (["lab"], "--port", "0"),  # 0 is refused by the port check, not by the parse
])
def test_the_sentinel_is_reached_by_good_values(prefix: list[str], flag: str, good: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The control for the table above: a good value gets to the work."""
    if flag == "--port":
        assert main([*prefix, flag, good]) == 2
        assert "out of range" in capsys.readouterr().err
        return
    with pytest.raises(WorkStarted):
        main([*prefix, flag, good])


@pytest.mark.parametrize("argv, expected", [
    (["load", ":8000", "--rate", "inf"], "argument --rate/-r: inf is not a finite number"),
    (["load", ":8000", "-d", "inf"], "argument --duration/-d: inf is not a finite number"),
    (["load", ":8000", "--timeout", "inf"], "argument --timeout: inf is not a finite number"),
    (["compare", "-d", "inf"], "argument --duration/-d: inf is not a finite number; give seconds up to 86400"),
    (["load", ":8000", "--clients", "1000000"], "1000000 is too large: at most 10000 clients"),
    (["compare", "-d", "1", "--plot", "out"],
     "--plot out: the file name has no extension, which chooses the image format; add one of"),
    (["load", ":8000", "--json", "/proc/x.json"], "--json /proc/x.json: the folder /proc does not take new files"),
    (["serve", "plain", "--bogus"], "sockserve serve: error: unrecognized arguments: --bogus "
                                    "(see sockserve serve --help)"),
    (["load", ":8000", "--bogus", "1"], "sockserve load: error: unrecognized arguments: --bogus 1"),
    (["compare", "--servers", "plain", "--frob"], "sockserve compare: error: unrecognized arguments: --frob"),
])
def test_the_reworded_messages(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_loadspec_says_finite_for_inf() -> None:
    for field in ("duration", "timeout"):
        with pytest.raises(ValueError, match=f"{field} must be a finite, positive number of seconds, got inf"):
            LoadSpec(address=("127.0.0.1", 1), **{field: math.inf})
    with pytest.raises(ValueError, match="positive, finite rate"):
        LoadSpec(address=("127.0.0.1", 1), mode="open", rate=math.inf)


def test_no_warning_for_an_address_this_machine_does_not_have(capsys: pytest.CaptureFixture[str]) -> None:
    # 192.0.2.1 (TEST-NET-1) is not this machine's: the bind fails, and that is the one line.
    assert main(["serve", "plain", "--host", "192.0.2.1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "192.0.2.1" in lines[0] and "warning" not in lines[0], lines


def test_a_warning_for_an_address_this_machine_has(no_work: None, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import sockserve.cli.serve as servecommand

    monkeypatch.setattr(servecommand, "is_local_address", lambda address: True)
    with pytest.raises(WorkStarted):  # warned, then went on to bind
        main(["serve", "plain", "--host", "192.0.2.1"])
    err = capsys.readouterr().err
    assert "warning: binding to 192.0.2.1 makes this server reachable from other machines" in err


def test_lab_port_in_use_is_said_before_anything_is_copied(no_work: None, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = main(["lab", "--port", str(port), "--dir", str(tmp_path / "wb")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--port {port} is in use on 127.0.0.1" in err
    assert not (tmp_path / "wb").exists()


def test_serve_help_says_the_default_deadline_is_off(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--request-timeout SECONDS" in text and "(default 0: no limit" in text
    assert "a burst waits its turn and is served" in text
    assert "SIGHUP" in text


# -- serve, run for real ----------------------------------------------------------------


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "sockserve", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline()


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(p) for p in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


def _ask(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as reader:
            return reader.read()


def test_serve_last_line_says_how_many_requests_it_served() -> None:
    proc, first = _start("threading", "--workload", "echo")
    port = int(first.rsplit(" pid ", 1)[0].rsplit(":", 1)[1])
    try:
        for n in range(5):
            assert _ask(port, b"echo %d\n" % n)
    finally:
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    last = err.strip().splitlines()[-1]
    assert last.startswith("sockserve serve: stopped ThreadingTCPServer (served 5 requests: 5 completed;"), last
    assert last.endswith("none in flight at the stop)"), last


@pytest.mark.parametrize("kind", ["forking", "forking-unix", "prefork-unix"])
def test_sighup_stops_serve_like_sigterm_and_leaves_nothing_behind(kind: str) -> None:
    """Before: SIGHUP killed serve at once; a forking child of an idle client
    outlived it and kept the port; Unix kinds left their socket file and folder."""
    proc, first = _start(kind, "--workload", "echo", "--grace", "0.2")
    address = first.split(" on ", 1)[1].rsplit(" pid ", 1)[0]
    unix = address.startswith("/")
    idle = socket.socket(socket.AF_UNIX if unix else socket.AF_INET, socket.SOCK_STREAM)
    try:
        idle.settimeout(10)
        idle.connect(address if unix else ("127.0.0.1", int(address.rsplit(":", 1)[1])))
        deadline = time.monotonic() + 5
        while not _children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        children = _children(proc.pid)
        assert children, "no child serves the idle client"
        os.kill(proc.pid, signal.SIGHUP)
        _, err = proc.communicate(timeout=15)
    finally:
        idle.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "SIGHUP: stopping" in err, err
    deadline = time.monotonic() + 3
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(Path(f"/proc/{pid}").exists() for pid in children), "a child outlived serve"
    if unix:
        assert not os.path.exists(address) and not os.path.exists(os.path.dirname(address))
    else:
        with socket.socket() as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", int(address.rsplit(":", 1)[1])))  # the port is free
