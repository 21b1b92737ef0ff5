"""ReportBoard: the shared memory where forked children leave their reports."""

from __future__ import annotations

import os

import pytest

from sockserve.core.reportboard import ReportBoard


def test_a_child_writes_what_the_parent_reads() -> None:
    board = ReportBoard(4)
    try:
        slot = board.free.pop()
        pid = os.fork()
        if pid == 0:
            board.times[2 * slot] = 1.5
            board.times[2 * slot + 1] = 2.25
            board.map[slot] = 1
            os._exit(0)
        os.waitpid(pid, 0)
        assert board.map.find(b"\x01", 0, board.slots) == slot
        assert (board.times[2 * slot], board.times[2 * slot + 1]) == (1.5, 2.25)
    finally:
        board.close()


def test_release_clears_the_flag_and_frees_the_slot() -> None:
    board = ReportBoard(3)
    try:
        assert sorted(board.free) == [0, 1, 2]
        slot = board.free.pop()
        board.owners[slot] = 1234
        board.map[slot] = 1
        board.release(slot)
        assert board.map.find(b"\x01", 0, board.slots) == -1
        assert board.owners[slot] == 0
        assert sorted(board.free) == [0, 1, 2]
    finally:
        board.close()


def test_the_want_byte_is_outside_the_flags_and_the_times() -> None:
    board = ReportBoard(5)
    try:
        board.waiting(True)
        assert board.map[board.want] == 1
        assert board.map.find(b"\x01", 0, board.slots) == -1  # not mistaken for a report
        for i in range(2 * board.slots):
            board.times[i] = -1.0  # every time filled: the want byte survives
        assert board.map[board.want] == 1
        board.waiting(False)
        assert board.map[board.want] == 0
    finally:
        board.close()


def test_wake_ups_are_drained_and_close_releases_everything() -> None:
    board = ReportBoard(2)
    reader, writer = board.wake
    os.write(writer, b"\0\0\0")
    board.drain_wake()
    with pytest.raises(BlockingIOError):
        os.read(reader, 1)
    board.close()
    for fd in (reader, writer):
        with pytest.raises(OSError):
            os.fstat(fd)
    assert board.map.closed
