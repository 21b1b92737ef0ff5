"""Lesson 09's checks run the learner's code, fail wrong answers for the right reason, and teach in two steps."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import sockserve
from sockserve.exercises import FIX_PREFIX, CheckResult, check, reset_attempts


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    reset_attempts()
    yield
    reset_attempts()


def twice(name: str, answer: Any) -> tuple[CheckResult, CheckResult]:
    """The same wrong answer checked twice, as the first attempts: the hint, then the hint and the fix."""
    reset_attempts(name)
    first, second = check(name, answer), check(name, answer)
    assert not first.passed and not second.passed
    assert FIX_PREFIX not in first.message and FIX_PREFIX in second.message
    return first, second


class OnlyResets(sockserve.ThreadingTCPServer):
    def __init__(self, *args: Any) -> None:
        self.failures: list[Any] = []
        super().__init__(*args)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionResetError):
            self.failures.append((client_address, exc))


class RecordsStrings(OnlyResets):
    def handle_error(self, request: Any, client_address: Any) -> None:
        self.failures.append(f"{client_address}: {sys.exc_info()[1]}")


def test_handle_error_answers_that_filter_or_lose_the_address_fail() -> None:
    first, _ = twice("wrong-handle-error", OnlyResets)
    assert "BrokenPipeError" in first.message or "ValueError" in first.message
    shape = check("wrong-handle-error", RecordsStrings)
    assert not shape.passed and "(client_address, exception)" in shape.message


class NoTimeout(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


class SilentTimeout(NoTimeout):
    timeout = 0.3


def test_idle_timeout_answers_that_wait_forever_or_say_nothing_fail() -> None:
    never = check("wrong-idle-timeout", NoTimeout)
    assert not never.passed and "still connected" in never.message
    first, second = twice("wrong-idle-timeout", SilentTimeout)
    assert "cannot tell a timeout from a crash" in first.message and "TimeoutError" in second.message


def test_a_per_read_timeout_does_not_pass_for_a_deadline() -> None:
    check("wrong-deadline", object)  # a first failure (not a handler class), so that ...
    held = check("wrong-deadline", SilentTimeout)  # ... this one shows the hint and the fix
    assert not held.passed and "per-read timeout never trips" in held.message and "threading.Timer" in held.message


def naive_zombies(pids: list[int]) -> list[int]:
    found = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    found.append(pid)
        except FileNotFoundError:
            pass
    return found


def careless_zombies(pids: list[int]) -> list[int]:
    found = []
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                found.append(pid)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_zombie_answers_fooled_by_a_name_or_a_reaped_child_fail() -> None:
    first, second = twice("wrong-zombies", naive_zombies)
    assert "'x) Z (y'" in first.message and "last ')'" in second.message
    gone = check("wrong-zombies", careless_zombies)
    assert not gone.passed and "no /proc entry" in gone.message


class TwoWrites(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(b"length %d\n" % len(line))
            self.wfile.write(line)


class OneWrite(sockserve.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(b"length %d\n" % len(line) + line)


def test_two_small_writes_with_nagle_fail_and_one_write_passes() -> None:
    first, second = twice("wrong-nagle", TwoWrites)
    assert "Nagle" in first.message and "disable_nagle_algorithm" in second.message
    assert check("wrong-nagle", OneWrite).passed


def closes_then_reads(address: Any, data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        sock.close()
        return sock.recv(1024)


def never_says_it_is_done(address: Any, data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        return sock.recv(65536)


def reads_once(address: Any, data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(4096)


def test_half_close_answers_that_close_wait_or_read_once_fail() -> None:
    closed = check("wrong-half-close", closes_then_reads)
    assert not closed.passed and "close() ends the connection" in closed.message
    first, second = twice("wrong-half-close", never_says_it_is_done)
    assert "end of file" in first.message and "SHUT_WR" in second.message
    partial = check("wrong-half-close", reads_once)
    assert not partial.passed and "one recv()" in partial.message
