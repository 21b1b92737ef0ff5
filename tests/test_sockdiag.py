"""Asking the kernel for listen queues over sock_diag netlink (sockserve.kernel.sockdiag)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from sockserve.kernel import sockdiag

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sock_diag is Linux's")


@linux_only
def test_sock_diag_reports_the_backlog_of_tcp_and_unix_listeners(sock_dir: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(7)
        assert sockdiag.tcp_listen_queues(listener.getsockname()[1]) == [("127.0.0.1", 0, 7)]
    with socket.socket(socket.AF_UNIX) as unix_listener:
        unix_listener.bind(os.path.join(sock_dir, "d.sock"))
        unix_listener.listen(5)
        assert sockdiag.unix_listen_queue(os.fstat(unix_listener.fileno()).st_ino) == (0, 5)
    assert sockdiag.unix_listen_queue(0) is None
