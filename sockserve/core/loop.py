"""What one ``serve_forever`` holds: the poller, the descriptors it watches,
and the wake-up socket pair that makes ``shutdown()`` instant.

``BaseServer.serve_forever`` is the only serve loop. It makes a
:class:`Loop`, lets the server add to it (``_loop_opened``: a prefork
server watches its workers' reports, supervises them after each wait and
polls at least every 0.2 s), then waits in ``poll()`` for the listening
socket, the wake-up socket or a watched descriptor, and after each wait
calls the loop's ``tick`` (if one was set) and ``service_actions()``::

    listening socket readable  -> _handle_request_noblock()
    wake-up socket readable    -> a stop was asked for (shutdown(), from any
                                  thread, a forked child or a worker)
    a watched descriptor       -> its callback

The loop waits with ``select.poll()`` itself, unless the package's
``_ServerSelector`` (the standard library's name) was replaced, or ``poll``
is gone (green-thread libraries such as eventlet remove it): then it waits
with that selector class, or ``selectors.SelectSelector``, through
:class:`SelectorPoll`.

This module also says how the loop reacts to ``accept()`` failing
(:func:`accept_backoff`): out of descriptors or memory it pauses accepting
(10 ms, doubling to 0.5 s) instead of spinning, and resumes by itself.
"""

from __future__ import annotations

import errno
import math
import os
import select
import selectors
import socket
import threading
from collections.abc import Callable

from . import logs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Loop", "ServerSelector", "SelectorPoll", "selector_class", "accept_backoff", "RESOURCE_ERRNOS"]

# poll() scales better than select() and, unlike epoll, costs no extra
# descriptor to create, which matters when descriptors run out.
_POLLIN = getattr(select, "POLLIN", 1)

#: The selector class the standard library's socketserver waits with (its
#: ``_ServerSelector``, which the package re-exports under that name): poll
#: where the system offers it, else select.
ServerSelector: type[selectors.BaseSelector] = getattr(selectors, "PollSelector", selectors.SelectSelector)


def selector_class(chosen: type[selectors.BaseSelector]) -> type[selectors.BaseSelector]:
    """The class to wait with when *chosen* is the package's
    ``_ServerSelector``: *chosen* itself, unless it is the default and
    ``poll`` has gone since import (eventlet's ``monkey_patch()``), then
    ``selectors.SelectSelector`` (green under eventlet)."""
    if chosen is ServerSelector and not hasattr(select, "poll"):
        return selectors.SelectSelector
    return chosen


class SelectorPoll:
    """``select.poll``'s interface (what :class:`Loop` uses of it) over a
    selector: ``register``/``modify``/``unregister`` a descriptor for
    POLLIN (0: not watched for now), ``poll(ms)`` returns ``[(fd, POLLIN)]``."""

    __slots__ = ("_selector",)

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector

    def register(self, fd: Any, events: int) -> None:
        if events:
            self._selector.register(fd, selectors.EVENT_READ)

    def modify(self, fd: Any, events: int) -> None:
        self.unregister(fd)
        self.register(fd, events)

    def unregister(self, fd: Any) -> None:
        try:
            self._selector.unregister(fd)
        except KeyError:
            pass  # not watched (modify with 0 events took it out)

    def poll(self, timeout_ms: int | None = None) -> list[tuple[int, int]]:
        ready = self._selector.select(None if timeout_ms is None else timeout_ms / 1000)
        return [(key.fd, _POLLIN) for key, _events in ready]

    def close(self) -> None:
        self._selector.close()


def _poller(chosen: type[selectors.BaseSelector]) -> Any:
    """``select.poll()`` (no selector keys to build per wait) when *chosen*
    is the default and poll exists; else a :class:`SelectorPoll`."""
    if chosen is ServerSelector and hasattr(select, "poll"):
        return select.poll()
    return SelectorPoll(selector_class(chosen)())

#: accept() errors that mean "out of resources": back off, do not spin.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BACKOFF_FIRST = 0.01
_BACKOFF_MAX = 0.5


class Loop:
    """The state of one ``serve_forever``: made when it starts, closed when
    it returns.

    ``listening`` is the server's descriptor, ``wait_ms`` the longest
    ``poll()`` wait (None: no limit), ``watched`` maps other descriptors to
    their callbacks, ``tick`` is called after each wait (None: nothing),
    ``thread`` and ``pid`` say where the loop runs, ``accepting`` whether
    it polls the listening socket (see :meth:`accept`). *selector* is the
    package's ``_ServerSelector`` when ``serve_forever`` started (see
    :func:`selector_class`).

    Thread safety: :meth:`wake` from any thread or forked process; the rest
    from the serving thread (or, for ``watch``, while it waits).
    """

    __slots__ = ("listening", "wait_ms", "watched", "tick", "thread", "pid", "poller", "accepting", "_wakeup",
                 "_selector")

    def __init__(self, listening: int, poll_interval: float | None,
                 selector: type[selectors.BaseSelector] = ServerSelector) -> None:
        self.listening = listening
        self.wait_ms = None if poll_interval is None else max(0, math.ceil(poll_interval * 1000))
        self.watched: dict[int, Callable[[], Any]] = {}
        self.tick: Callable[[], Any] | None = None
        self.thread = threading.get_ident()
        self.pid = os.getpid()
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._wakeup = (reader, writer)
        self.accepting = True
        self._selector = selector
        self.poller = _poller(selector)
        self.poller.register(listening, _POLLIN)

    @property
    def wakeup_fd(self) -> int:
        """The wake-up pair's reading end (watched with the server's callback)."""
        return self._wakeup[0].fileno()

    @property
    def waker_fd(self) -> int:
        """The wake-up pair's writing end (a prefork worker keeps it open)."""
        return self._wakeup[1].fileno()

    def watch(self, fd: int, callback: Callable[[], Any]) -> None:
        """Also wake for *fd* turning readable, and call *callback* then."""
        if fd not in self.watched:
            self.watched[fd] = callback
            self.poller.register(fd, _POLLIN)

    def unwatch(self, fd: int) -> None:
        """Stop watching *fd* (nothing if it was not watched)."""
        if self.watched.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def accept(self, on: bool) -> None:
        """Poll the listening socket (*on*) or leave new connections in the
        kernel's backlog."""
        self.poller.modify(self.listening, _POLLIN if on else 0)
        self.accepting = on

    def wake(self) -> None:
        """Make the loop's ``poll()`` return (any thread, any process)."""
        try:
            self._wakeup[1].send(b"\0")
        except OSError:
            pass  # buffer full: a wake-up is already pending; or closed

    def take_wakeup(self) -> None:
        """Empty the wake-up socket."""
        try:
            while self._wakeup[0].recv(512):
                pass
        except OSError:
            pass  # drained (BlockingIOError)

    def pause(self, seconds: float) -> None:
        """Sleep *seconds*, but return at once when woken."""
        poller = _poller(self._selector)
        poller.register(self._wakeup[0], _POLLIN)
        poller.poll(math.ceil(seconds * 1000))
        if isinstance(poller, SelectorPoll):
            poller.close()

    def close(self) -> None:
        if isinstance(self.poller, SelectorPoll):
            self.poller.close()
        for sock in self._wakeup:
            sock.close()


def accept_backoff(server: Any, exc: OSError, current: float) -> float:
    """How long the loop pauses after ``accept()`` failed with *exc*, having
    paused *current* seconds last time (0: not pausing).

    Out of descriptors or memory (:data:`RESOURCE_ERRNOS`): counted in
    ``stats.accept_errors``, said once, and the pause doubles. EBADF (the
    socket was closed under a running loop): the loop is asked to stop.
    Anything else (another process took the connection, the client gave up
    first): nothing to do."""
    if exc.errno == errno.EBADF:
        logs.warning(
            "%s was closed while serve_forever() was running; the loop stops "
            "(call shutdown() before server_close())",
            type(server).__name__,
        )
        server._request_stop()
        return current
    if exc.errno not in RESOURCE_ERRNOS:
        return current
    server.stats.note_accept_error()
    if current:
        return min(current * 2, _BACKOFF_MAX)
    logs.warning(
        "%s cannot accept a connection: %s (%s); pausing accept() and "
        "retrying until descriptors or memory free up",
        type(server).__name__,
        exc.strerror,
        errno.errorcode.get(exc.errno or 0, exc.errno),
    )
    return _BACKOFF_FIRST
