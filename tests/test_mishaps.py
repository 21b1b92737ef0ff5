"""What goes wrong between clients and servers (sockserve.workbook.mishaps): each situation shows what the lesson says."""

from __future__ import annotations

import os
import statistics
import sys

import pytest

import sockserve
from sockserve.workbook import mishaps

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")


def test_a_reset_and_a_broken_pipe_are_what_the_handler_meets() -> None:
    reset, unread, left = mishaps.client_mishaps()
    assert (reset.call, reset.exception, reset.errno_name) == ("readline()", "ConnectionResetError", "ECONNRESET")
    # closing with the greeting unread makes the client's kernel reset, not close politely
    assert (unread.exception, unread.errno_name) == ("ConnectionResetError", "ECONNRESET")
    # the first write after the client left goes out; a later one fails
    assert left.exception == "BrokenPipeError" and left.errno_name == "EPIPE"
    assert left.call.startswith("write #") and left.call != "write #1"


def test_an_idle_timeout_cuts_a_silent_client_but_not_a_dripping_one() -> None:
    # The quick client asks a moment after the slow one is in (longer on a busy
    # machine), so it waits the hold less that moment, or about the timeout if cut.
    silent = mishaps.slow_client("silent", hold=1.5)
    assert silent.slow_cut_after is None and silent.quick_waited >= 1.0
    cut = mishaps.slow_client("silent", hold=1.5, timeout=0.1)
    assert cut.slow_cut_after is not None and cut.quick_waited < 0.75
    # A byte every 0.05 s, ten times within the idle timeout: never cut, even with a thread stalled a while.
    drip = mishaps.slow_client("dripping", hold=1.5, timeout=0.5)
    assert drip.slow_cut_after is None and drip.quick_waited >= 1.0
    with pytest.raises(ValueError, match="silent"):
        mishaps.slow_client("rude")


def test_slow_clients_get_a_thread_each_or_fill_the_pool() -> None:
    threads = mishaps.slow_crowd(sockserve.ThreadingTCPServer, slow_clients=6, hold=0.5)
    assert threads.peak_active == 7 and threads.quick_waited < 0.4
    pool = mishaps.slow_crowd(sockserve.ThreadPoolTCPServer, slow_clients=6, hold=0.5, pool_size=3)
    assert pool.peak_active == 3 and pool.quick_waited >= 0.45


def test_request_timeout_cuts_a_dripping_client_and_frees_a_pool_worker() -> None:
    drip = mishaps.slow_client("dripping", hold=1.0, timeout=0.2, request_timeout=0.3)
    assert drip.slow_cut_after is not None and drip.quick_waited < 0.8
    bounded = mishaps.slow_crowd(sockserve.ThreadPoolTCPServer, slow_clients=6, hold=1.0, pool_size=3,
                                 request_timeout=0.2)
    assert bounded.quick_waited < 0.8


@linux_only
def test_ended_children_are_zombies_until_collect_children() -> None:
    run = mishaps.zombies(children=3)
    assert run.before == ["Z", "Z", "Z"] and run.active_before == 3
    assert run.after == ["", "", ""] and run.active_after == 0


@linux_only
def test_process_state_reads_the_letter_after_the_name() -> None:
    assert mishaps.process_state(os.getpid()) in ("R", "S")
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        assert mishaps.process_state(pid) in ("R", "S", "Z", "X")
    finally:
        os.waitpid(pid, 0)
    assert mishaps.process_state(pid) == ""


def test_nagle_and_delayed_acks_slow_a_two_piece_reply() -> None:
    slow = statistics.median(mishaps.exchange_times(False, exchanges=8))
    quick = statistics.median(mishaps.exchange_times(True, exchanges=8))
    assert slow > 10 * quick, (slow, quick)


def test_a_half_close_lets_the_client_read_the_reply() -> None:
    half, closed, neither = mishaps.half_close()
    assert half.reply == b"1000 bytes\n"
    assert closed.reply == b"" and "gone" in closed.note
    assert neither.reply == b"no end of file after 1 s\n"


def test_shutdown_before_close_ends_the_connection_despite_another_descriptor() -> None:
    assert mishaps.eof_seen(shutdown_first=True)
    assert not mishaps.eof_seen(shutdown_first=False, wait=0.3)
