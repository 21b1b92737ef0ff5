"""Lesson 10's checks fail wrong answers for the right reason, and teach in two steps."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import sockserve
from sockserve.kernel import view as kernelview
from sockserve.exercises import FIX_PREFIX, check, reset_attempts

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net (Linux)")


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    reset_attempts()
    yield
    reset_attempts()


def _clients(server: Any, clients: int) -> None:
    for _ in range(clients):
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"hi\n")
            client.recv(64)


def counts_the_clients_side(server: Any, clients: int = 3) -> int:
    _clients(server, clients)
    time.sleep(0.2)
    return kernelview.read(server).count("CLOSE-WAIT", "client")


def one_client_only(server: Any, clients: int = 3) -> int:
    _clients(server, 1)
    time.sleep(0.2)
    return kernelview.read(server).count("CLOSE-WAIT")


def test_close_wait_counted_on_the_wrong_side_fails_first_with_the_concept_then_the_fix() -> None:
    first = check("kernel-close-wait", counts_the_clients_side)
    assert not first.passed and "CLOSE-WAIT is the state of a connection" in first.message
    assert FIX_PREFIX not in first.message
    second = check("kernel-close-wait", counts_the_clients_side)
    assert not second.passed and FIX_PREFIX in second.message and "server's side" in second.message


def test_clients_that_never_reach_the_handler_are_named() -> None:
    result = check("kernel-close-wait", one_client_only)
    assert not result.passed and "reached the handler" in result.message


class ListensInBind(sockserve.TCPServer):
    def __init__(self, address: Any, handler: Any, backlog: int = 5, bind_and_activate: bool = True) -> None:
        self.backlog = backlog
        super().__init__(address, handler, bind_and_activate)

    def server_bind(self) -> None:
        super().server_bind()
        self.socket.listen(self.backlog)


class IgnoresTheBacklog(sockserve.TCPServer):
    def __init__(self, address: Any, handler: Any, backlog: int = 5, bind_and_activate: bool = True) -> None:
        self.backlog = backlog
        super().__init__(address, handler, bind_and_activate)


class BacklogAsInstanceAttribute(sockserve.TCPServer):
    """Another right answer: the default server_activate listens with request_queue_size."""

    def __init__(self, address: Any, handler: Any, backlog: int = 5, bind_and_activate: bool = True) -> None:
        self.request_queue_size = backlog
        super().__init__(address, handler, bind_and_activate)


def test_backlog_checks_run_the_server_and_read_the_kernel() -> None:
    early = check("kernel-backlog", ListensInBind)
    assert not early.passed and "after server_bind() alone" in early.message
    reset_attempts("kernel-backlog")
    ignored = check("kernel-backlog", IgnoresTheBacklog)
    assert not ignored.passed and "queue's maximum" in ignored.message and FIX_PREFIX not in ignored.message
    again = check("kernel-backlog", IgnoresTheBacklog)
    assert FIX_PREFIX in again.message
    assert check("kernel-backlog", BacklogAsInstanceAttribute).passed
    wrong_base = check("kernel-backlog", sockserve.UDPServer)
    assert not wrong_base.passed
