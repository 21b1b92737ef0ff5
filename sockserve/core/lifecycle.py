"""The states a server passes through, written down once as data.

The rules (what may follow what) live here, next to the states, so that the
server code, the documentation and the workbook's lifecycle diagram all read
the same table::

    CREATED --server_bind--> BOUND --server_activate--> LISTENING
    LISTENING --serve_forever--> SERVING --shutdown--> STOPPING --> LISTENING
    any state --server_close--> CLOSED

``serve_forever`` may run again after it returned, and ``handle_request``
works from LISTENING without a serving loop. A server built with
``bind_and_activate=False`` stays CREATED until the caller binds it.
"""

from __future__ import annotations

import enum

__all__ = ["ServerState", "TRANSITIONS", "transition_allowed"]


class ServerState(enum.Enum):
    """Where a server is in its life. Read it from ``server.state``."""

    CREATED = "created"
    BOUND = "bound"
    LISTENING = "listening"
    SERVING = "serving"
    STOPPING = "stopping"
    CLOSED = "closed"


#: For each state, the states that may follow it (and the hook that moves it).
TRANSITIONS: dict[ServerState, dict[ServerState, str]] = {
    ServerState.CREATED: {
        ServerState.BOUND: "server_bind",
        ServerState.LISTENING: "server_activate",
        ServerState.SERVING: "serve_forever",
        ServerState.CLOSED: "server_close",
    },
    ServerState.BOUND: {
        ServerState.LISTENING: "server_activate",
        ServerState.SERVING: "serve_forever",
        ServerState.CLOSED: "server_close",
    },
    ServerState.LISTENING: {
        ServerState.BOUND: "server_bind",
        ServerState.SERVING: "serve_forever",
        ServerState.CLOSED: "server_close",
    },
    ServerState.SERVING: {
        ServerState.STOPPING: "shutdown",
        ServerState.LISTENING: "serve_forever returns",
        ServerState.CLOSED: "server_close",
    },
    ServerState.STOPPING: {
        ServerState.LISTENING: "serve_forever returns",
        ServerState.CLOSED: "server_close",
    },
    ServerState.CLOSED: {},
}


def transition_allowed(old: ServerState, new: ServerState) -> bool:
    """Return True when the table above lets *old* move to *new*."""
    return old is new or new in TRANSITIONS[old]
