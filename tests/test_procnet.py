"""Parsing Linux's socket tables (sockserve.kernel.procnet) from fixture text."""

from __future__ import annotations

import pytest

from sockserve.kernel import procnet
from sockserve.kernel.procnet import count_tcp, count_unix, decode_address, parse_tcp, parse_unix

from procnet_fixtures import TCP6_FIXTURE, TCP_FIXTURE, UNIX_FIXTURE, _LO, _tcp_line, little_endian


@little_endian
def test_addresses_decode_ipv4_ipv6_and_v4_mapped() -> None:
    assert decode_address("0100007F:1F40") == ("127.0.0.1", 8000)
    assert decode_address("00000000:0000") == ("0.0.0.0", 0)
    assert decode_address("00000000000000000000000001000000:892A") == ("::1", 0x892A)
    assert decode_address("0000000000000000FFFF00000100007F:C5E2") == ("::ffff:127.0.0.1", 0xC5E2)
    assert decode_address("B80D0120000000000000000001000000:0050") == ("2001:db8::1", 80)
    with pytest.raises(ValueError, match="not an address"):
        decode_address("7F:1")


@little_endian
def test_every_tcp_state_is_parsed_and_counted_on_its_side() -> None:
    rows = parse_tcp(TCP_FIXTURE)
    assert len(rows) == 1 + 10 + 4 + 2  # the header and the garbage line are skipped
    assert {r.state for r in rows} == set(procnet.TCP_STATES)
    listener = rows[0]
    assert (listener.local, listener.local_port, listener.state, listener.rx_queue, listener.inode) == (
        "127.0.0.1", 8000, "LISTEN", 3, 4242)
    server, client, queue = count_tcp(rows, 8000)
    assert server == {state: 1 for state in procnet.TCP_STATES}
    assert client == {"SYN-SENT": 1, "TIME-WAIT": 2, "ESTABLISHED": 1}
    assert queue == 3
    # another port sees only its own sockets
    assert count_tcp(rows, 8001) == ({"ESTABLISHED": 1}, {}, None)


@little_endian
def test_ipv6_and_v4_mapped_sockets_count_for_the_port() -> None:
    rows = parse_tcp(TCP6_FIXTURE)
    assert [r.local for r in rows] == ["::", "::ffff:127.0.0.1", "::1", "::1"]
    server, client, queue = count_tcp(rows, 8000)
    assert server == {"LISTEN": 1, "ESTABLISHED": 1, "CLOSE-WAIT": 1}
    assert client == {"FIN-WAIT-2": 1}
    assert queue == 1


@little_endian
def test_a_connection_listed_twice_is_counted_once_in_its_later_state() -> None:
    # the table changed while it was read: one connection went from ESTABLISHED to TIME-WAIT
    text = TCP_FIXTURE + _tcp_line(40, f"{_LO}:D003", f"{_LO}:1F40", "06")
    _server, client, _queue = count_tcp(parse_tcp(text), 8000)
    assert client == {"SYN-SENT": 1, "TIME-WAIT": 3}
    # two SO_REUSEPORT listeners on one address are two sockets
    text = TCP_FIXTURE + _tcp_line(41, f"{_LO}:1F40", "00000000:0000", "0A", "00000000:00000002", 4243)
    server, _client, queue = count_tcp(parse_tcp(text), 8000)
    assert server["LISTEN"] == 2 and queue == 5


@little_endian
def test_a_host_keeps_only_the_sockets_of_that_address() -> None:
    rows = parse_tcp(TCP_FIXTURE) + parse_tcp(TCP6_FIXTURE)
    # port 8000 on ::1 is another server than port 8000 on 127.0.0.1
    assert count_tcp(rows, 8000, "::1") == ({"CLOSE-WAIT": 1}, {"FIN-WAIT-2": 1}, None)
    server, client, queue = count_tcp(rows, 8000, "127.0.0.1")
    assert server["LISTEN"] == 1 and server["ESTABLISHED"] == 2  # v4-mapped counts as 127.0.0.1
    assert client == {"SYN-SENT": 1, "TIME-WAIT": 2, "ESTABLISHED": 1} and queue == 3
    # a wildcard or a name matches every address
    assert count_tcp(rows, 8000, "::") == count_tcp(rows, 8000, "localhost") == count_tcp(rows, 8000)



@little_endian
def test_peers_keep_only_the_connections_with_those_client_ports() -> None:
    rows = parse_tcp(TCP_FIXTURE)
    # the server's side of client port 0xC006 (TIME-WAIT) and the clients at 0xD001, 0xD003:
    # the listener always, nothing else of the port (other clients, the other TIME-WAITs)
    server, client, queue = count_tcp(rows, 8000, peers={0xC006, 0xD001, 0xD003})
    assert server == {"LISTEN": 1, "TIME-WAIT": 1} and queue == 3
    assert client == {"TIME-WAIT": 1, "ESTABLISHED": 1}
    # no peers at all: the listener alone
    assert count_tcp(rows, 8000, peers=()) == ({"LISTEN": 1}, {}, 3)
    # a peer port of another server's connection is not this server's
    assert count_tcp(rows, 8000, peers={0xE000}) == ({"LISTEN": 1}, {}, 3)

def test_unix_rows_count_the_listener_the_queue_and_the_accepted() -> None:
    rows = parse_unix(UNIX_FIXTURE)
    assert len(rows) == 8
    assert rows[0] == procnet.UnixRow("LISTEN", True, 1, 78446, "/tmp/ss-x/server.sock")
    assert rows[5].path == "" and rows[7].path == "@abstract name" and rows[7].socket_type == 2
    server, queue, listener = count_unix(rows, "/tmp/ss-x/server.sock")
    assert server == {"LISTEN": 1, "CONNECTING": 2, "CONNECTED": 1, "DISCONNECTING": 1}
    assert (queue, listener) == (2, 78446)
    assert count_unix(rows, "/tmp/ss-x/gone.sock") == ({}, None, 0)
