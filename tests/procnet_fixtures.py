"""Fixture text of Linux's socket tables, shared by test_procnet and test_kernelview."""

from __future__ import annotations

import sys

import pytest

little_endian = pytest.mark.skipif(
    sys.byteorder != "little", reason="the fixture text is what a little-endian kernel prints"
)

# What Linux prints, one socket per line, for port 8000 (1F40) and others.
# Addresses are 32-bit words in the machine's byte order: 0100007F is 127.0.0.1.
_TCP_HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
)


def _tcp_line(n: int, local: str, remote: str, state: str, queues: str = "00000000:00000000", inode: int = 0) -> str:
    return (f"{n:4d}: {local} {remote} {state} {queues} 00:00000000 00000000  1000        0 {inode} 1 "
            "0000000000000000 100 0 0 10 0\n")


_LO = "0100007F"
TCP_FIXTURE = _TCP_HEADER + "".join([
    _tcp_line(0, f"{_LO}:1F40", "00000000:0000", "0A", "00000000:00000003", 4242),  # LISTEN, 3 queued
    # the server's side: local port 8000, one socket in every other state
    *(_tcp_line(i, f"{_LO}:1F40", f"{_LO}:{0xC000 + i:04X}", f"{i:02X}") for i in range(1, 12) if i != 10),
    # the client's side: remote port 8000
    _tcp_line(20, f"{_LO}:D000", f"{_LO}:1F40", "02"),  # SYN-SENT: a dropped SYN
    _tcp_line(21, f"{_LO}:D001", f"{_LO}:1F40", "06"),  # TIME-WAIT
    _tcp_line(22, f"{_LO}:D002", f"{_LO}:1F40", "06"),
    _tcp_line(23, f"{_LO}:D003", f"{_LO}:1F40", "01"),
    # noise: another server, and port 8000's digits elsewhere on the line
    _tcp_line(30, f"{_LO}:1F41", f"{_LO}:E000", "01"),
    _tcp_line(31, "00000000:0016", "00000000:0000", "0A", "00000000:00000000", 8000),
    "   99: garbage line\n",
])

TCP6_FIXTURE = _TCP_HEADER + "".join([
    # a dual-stack listener on [::]:8000, a v4 client's accepted socket (v4-mapped), and ::1 both ways
    _tcp_line(0, "00000000000000000000000000000000:1F40", "00000000000000000000000000000000:0000", "0A",
              "00000000:00000001"),
    _tcp_line(1, "0000000000000000FFFF00000100007F:1F40", "0000000000000000FFFF00000100007F:C5E2", "01"),
    _tcp_line(2, "00000000000000000000000001000000:1F40", "00000000000000000000000001000000:892A", "08"),
    _tcp_line(3, "00000000000000000000000001000000:892A", "00000000000000000000000001000000:1F40", "05"),
])

UNIX_FIXTURE = """Num       RefCount Protocol Flags    Type St Inode Path
000000006b06bd51: 00000002 00000000 00010000 0001 01 78446 /tmp/ss-x/server.sock
00000000469951bb: 00000003 00000000 00000000 0001 02     0 /tmp/ss-x/server.sock
0000000009163e23: 00000003 00000000 00000000 0001 02     0 /tmp/ss-x/server.sock
00000000acacedfd: 00000003 00000000 00000000 0001 03 78454 /tmp/ss-x/server.sock
00000000acacedfe: 00000003 00000000 00000000 0001 04 78455 /tmp/ss-x/server.sock
0000000082c0ffee: 00000003 00000000 00000000 0001 03 78460
00000000deadbeef: 00000002 00000000 00010000 0001 01 78470 /tmp/ss-x/other.sock
00000000feedface: 00000002 00000000 00000000 0002 01 78480 @abstract name
"""
