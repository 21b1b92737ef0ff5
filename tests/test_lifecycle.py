"""The server lifecycle table and the states a real server goes through."""

from __future__ import annotations

import threading
import time

from sockserve import ServerState, TCPServer, StreamRequestHandler
from sockserve.core.lifecycle import TRANSITIONS, transition_allowed


def test_table_covers_every_state_and_closed_is_final() -> None:
    assert set(TRANSITIONS) == set(ServerState)
    assert TRANSITIONS[ServerState.CLOSED] == {}
    for state in ServerState:
        if state is not ServerState.CLOSED:
            assert transition_allowed(state, ServerState.CLOSED)
    assert not transition_allowed(ServerState.CLOSED, ServerState.SERVING)


def test_a_real_server_follows_the_table() -> None:
    seen = []
    server = TCPServer(("127.0.0.1", 0), StreamRequestHandler, bind_and_activate=False)
    seen.append(server.state)
    server.server_bind()
    seen.append(server.state)
    server.server_activate()
    seen.append(server.state)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    deadline = time.monotonic() + 10
    while server.state is not ServerState.SERVING and time.monotonic() < deadline:
        time.sleep(0.005)
    seen.append(server.state)
    server.shutdown()
    thread.join(10)
    seen.append(server.state)
    server.server_close()
    seen.append(server.state)
    assert seen == [
        ServerState.CREATED, ServerState.BOUND, ServerState.LISTENING,
        ServerState.SERVING, ServerState.LISTENING, ServerState.CLOSED,
    ]
    for old, new in zip(seen, seen[1:]):
        assert transition_allowed(old, new), (old, new)
