"""Servers: the objects that own *connections*.

``BaseServer`` is the loop and the hooks; ``TCPServer`` and ``UDPServer`` add
a socket. The Unix variants (in :mod:`sockserve.core.unix`) change only the
address family. Concurrency is added by the mixins (:mod:`.threads`,
:mod:`.forking`, :mod:`.threadpool`, :mod:`.prefork`), which override
``process_request`` and, to manage their threads or processes, a few more
hooks (each says which).

The call flow for one request, the same as the standard library's::

    serve_forever()
      _handle_request_noblock()
        get_request()                     -> request, client_address
        verify_request(request, client_address)
        process_request(request, client_address)      <- mixins override this
          finish_request(request, client_address)
            RequestHandlerClass(request, client_address, self)
              setup() / handle() / finish()
          shutdown_request(request)
            close_request(request)

Where sockserve differs from the standard library, on purpose:

* ``shutdown()`` wakes ``serve_forever`` at once through a socket pair rather
  than waiting for its next ``poll_interval`` tick, and called from a handler
  running in the serving thread it asks the loop to stop and returns instead
  of deadlocking.
* when ``accept()`` fails for lack of descriptors or memory, the loop backs
  off (10 ms, doubling to 0.5 s) instead of spinning, and resumes by itself.
* ``request_queue_size`` defaults to ``socket.SOMAXCONN``, not 5.
* a failed ``bind()`` says what happened and what to do (same type, same errno).
* every server keeps live statistics in ``server.stats``, recorded through
  its ledger (:mod:`sockserve.core.ledger`).
* ``handle_error`` reports a client that went away (reset, broken pipe) as one
  debug log line, not as a traceback.
"""

from __future__ import annotations

import _socket
import os
import selectors
import socket
import sys
import threading
import time
import types

from . import logs, socketfiles
from .deadlines import Watchdog
from .drain import DrainReport, abort_socket, drain_server
from .errors import bind_explained, format_address
from .ledger import Ledger
from .lifecycle import ServerState
from .loop import Loop, accept_backoff, selector_class
from .stats import FOLD_MASK, ServerStats

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["BaseServer", "TCPServer", "UDPServer"]

_AF_UNIX = getattr(socket, "AF_UNIX", None)

#: The package (``sockserve``, or whatever code that swapped it in calls it:
#: ``sys.modules["socketserver"] = sockserve``). Its ``socket`` and
#: ``_ServerSelector`` are read from it when a server makes its socket and
#: when a loop starts, as the standard library reads its module's globals,
#: so ``mock.patch("sockserve.socket")`` (or ``"socketserver.socket"``
#: after the swap) reaches every server made afterwards. Code that runs
#: per request uses the real module: only sockets that are exactly
#: ``socket.socket`` take its fast paths.
_PACKAGE = sys.modules[__name__.partition(".")[0]]
#: The socket class whose private accept and receive-into paths are used.
_PLAIN_SOCKET = socket.socket
#: What ``socket.close()`` calls once no file object holds the socket, and
#: the class whose instances close_request closes so (None: the socket
#: module was replaced, by eventlet say: every socket is asked to close).
_close_socket: Any = _socket.socket.close
_FAST_CLOSE: Any = (
    _PLAIN_SOCKET if issubclass(_PLAIN_SOCKET, _socket.socket) and hasattr(_PLAIN_SOCKET, "_real_close") else None
)


class _PerInstance:
    """A class attribute whose value is made per instance on first use.

    ``BaseServer.__init__`` makes the server's state eagerly, but code that
    mocks ``__init__`` away (as test suites built on the standard library do)
    still gets working hooks: the first access makes the value and stores it
    in the instance, where later accesses find it directly.
    """

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        with _first_use:
            value = obj.__dict__.get(self._name, _UNSET)
            if value is _UNSET:
                value = obj.__dict__[self._name] = self._factory(obj)
        return value


_first_use = threading.Lock()
_UNSET: Any = object()


def _class_default(target: Any) -> Any:
    """*target*'s public attributes (methods bound to it) in a
    ``types.SimpleNamespace``: what a server made by ``object.__new__`` (a
    test double: no ``__new__``, no ``__init__``) finds as its ``stats``
    and ledger. Not *target* itself: while a class attribute of that name
    is an instance of a Python class, the interpreter (3.11) does not
    specialize the instance's own lookup of the name, which every request
    makes; a SimpleNamespace is of a built-in type, so it does."""
    return types.SimpleNamespace(**{
        name: getattr(target, name) for name in dir(target) if not name.startswith("_")
    })


#: A bare server counts nothing (statistics off), and records its requests
#: in one ledger that all bare servers share.
_BARE_STATS = ServerStats(enabled=False)
_BARE_LEDGER = Ledger(_BARE_STATS)
_getdefaulttimeout = socket.getdefaulttimeout
_monotonic = time.monotonic


class BaseServer:
    """The serving loop and its hooks, independent of any socket type.

    Callers use: ``serve_forever(poll_interval)``, ``shutdown()``,
    ``drain(timeout)``, ``handle_request()``, ``server_close()`` (or
    ``with server:``), ``fileno()``, ``stats`` and ``state``.

    Subclasses may override: ``server_bind``, ``server_activate``,
    ``get_request``, ``verify_request``, ``process_request``,
    ``finish_request``, ``shutdown_request``, ``close_request``,
    ``handle_error``, ``handle_timeout``, ``service_actions``,
    ``server_close``. ``__init__`` may be extended (call it), not replaced.
    Mixins also use: ``_ledger`` (the requests in flight; its ``run``
    runs a handler and records its end), ``_loop`` (the running loop),
    ``_loop_opened``/``_loop_closing`` (set up and tear down with the
    loop), ``_stopping()``/``_wait_stopped()`` (the stop flag and event),
    ``_drain_wait``/``_abort_inflight``/``_end_expired`` (for ``drain()``
    and deadlines).

    Class attributes that tune it:

    ``timeout`` (default None)
        seconds ``handle_request()`` waits for a request before calling
        ``handle_timeout()``; None waits forever.
    ``request_timeout`` (None)
        sockserve only: the most seconds one request may take, from accept
        to the end of its handler, waits for a worker included; then its
        socket is shut down (or, in a child process, ``TimeoutError`` is
        raised in the handler) and it counts as a timeout. None: no limit,
        as in the standard library. See :mod:`sockserve.core.deadlines`.
    ``abort_grace`` (1.0)
        seconds ``drain()`` gives aborted requests to end (child processes
        get SIGKILL after it).
    ``collect_stats`` (True)
        False makes ``stats`` count nothing (for measuring what counting
        costs); ``stats.snapshot()`` then says ``"enabled": False``.

    The standard library's private state keeps its names, for code that
    reaches into it: ``_BaseServer__shutdown_request`` (set it to True and
    ``serve_forever`` returns after the current iteration) and
    ``_BaseServer__is_shut_down`` (the event ``shutdown()`` waits on). An
    instance whose ``__init__`` never ran (a mock) still works: the state
    every request touches (``stats``, the ledger) is made by ``__new__``,
    the rest on first use; one made by ``object.__new__`` (no ``__new__``
    either) counts nothing (its ``stats`` are disabled).

    Thread safety: ``serve_forever`` runs in one thread; ``shutdown()`` may
    be called from any other, from a handler in any thread, and from a
    handler in a forked child or prefork worker (the request travels to the
    parent, which stops).
    """

    timeout: float | None = None
    request_timeout: float | None = None
    abort_grace: float = 1.0
    collect_stats: bool = True

    # The standard library's names (mangled by this class body on purpose).
    __shutdown_request: bool = False
    __is_shut_down = _PerInstance(lambda server: threading.Event())

    state: ServerState = ServerState.CREATED
    # Made by __new__ (not class-level defaults made on first use: the
    # interpreter does not specialize an attribute that a class-level
    # descriptor shadows, and these are read for every request). A server
    # made by object.__new__ (a test double) gets these plain class-level
    # defaults instead: statistics that count nothing, and a ledger shared
    # by all such servers.
    stats: ServerStats = _class_default(_BARE_STATS)
    _ledger: Ledger = _class_default(_BARE_LEDGER)
    _accept_backoff: float = 0.0
    _read_per_request: tuple[str, ...] = ("request_timeout",)
    _loop_lock = _PerInstance(lambda server: threading.Lock())
    _loop: Loop | None = None  # the newest running loop (mixins watch descriptors in it)
    _loops: tuple[Loop, ...] = ()  # every running loop
    _socket_shared = False  # the socket was made non-blocking for a second loop
    _watchdog: Watchdog | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        server = super().__new__(cls)
        server.stats = ServerStats(enabled=bool(cls.collect_stats))
        server._ledger = Ledger(server.stats)
        server._accept_backoff = 0.0  # read for every request: the instance's own
        # Class-level settings read for every request, copied to the instance
        # (which the interpreter reads faster): set them on the class before
        # making a server, or on the server itself.
        # (A plain value only: a property or other descriptor is left to work
        # as it does on the class.)
        for name in cls._read_per_request:
            value = getattr(cls, name)
            if not hasattr(type(value), "__get__"):
                setattr(server, name, value)
        return server

    def __init__(self, server_address: Any, RequestHandlerClass: Any) -> None:
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        self.__is_shut_down = threading.Event()
        self.__shutdown_request = False
        if bool(self.collect_stats) != self.stats.enabled:
            # collect_stats set on the instance before this ran
            self.stats = self._ledger.stats = ServerStats(enabled=bool(self.collect_stats))
        self.state = ServerState.CREATED
        self._loop_lock = threading.Lock()

    # -- the loop -------------------------------------------------------------

    def server_activate(self) -> None:
        """Start accepting requests (TCPServer calls listen() here)."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until ``shutdown()`` is called.

        ``service_actions()`` runs after each request and at least every
        *poll_interval* seconds. ``shutdown()`` does not wait for that tick.
        """
        self.__is_shut_down.clear()
        loop: Loop | None = None
        try:
            with self._loop_lock:
                # Another serve_forever of this server may run too: each loop
                # has its own wake-up pair, and a stop wakes every one.
                loop = self._loop = Loop(
                    self.fileno(), poll_interval, _PACKAGE._ServerSelector)  # type: ignore[attr-defined]
                self._loops = (*self._loops, loop)
                if len(self._loops) == 2:
                    self._share_socket(True)
            loop.watch(loop.wakeup_fd, self._woken)
            self._loop_opened(loop)
            listening, watched, poll, wait_ms, tick = (
                loop.listening, loop.watched, loop.poller.poll, loop.wait_ms, loop.tick)
            self._set_state(ServerState.SERVING)
            while not self.__shutdown_request:
                ready = poll(wait_ms)
                if self.__shutdown_request:
                    break
                for fd, _events in ready:
                    if fd == listening:
                        self._handle_request_noblock()
                        if self._accept_backoff:
                            loop.pause(self._accept_backoff)
                    else:
                        try:
                            callback = watched[fd]
                        except KeyError:
                            continue  # unwatched by a callback earlier in this round
                        callback()
                if tick is not None:
                    tick()
                self.service_actions()
        finally:
            try:
                self._loop_closing()
            finally:
                with self._loop_lock:
                    others = self._loops = tuple(other for other in self._loops if other is not loop)
                    if self._loop is loop:
                        self._loop = others[-1] if others else None
                    # Blocking again only once no loop is left: a loop that stays
                    # may have seen the socket ready for a connection the one that
                    # left accepted, and would then wait in accept() for ever.
                    if not others:
                        self._share_socket(False)
                if loop is not None:
                    loop.close()
                if not others:  # the last loop to return
                    self.__shutdown_request = False
                    if self.state is not ServerState.CLOSED:
                        self.state = ServerState.LISTENING
                    self.__is_shut_down.set()

    def _share_socket(self, shared: bool) -> None:
        """Two loops wait on one socket (*shared*), or none does any more:
        from the second loop's start to the last loop's return it does not
        block, so that a loop that loses the race for a connection goes back
        to waiting instead of blocking in ``accept()`` (where no
        ``shutdown()`` could reach it)."""
        sock = getattr(self, "socket", None)
        try:
            if shared and sock is not None and sock.gettimeout() is None:
                sock.setblocking(False)
                self._socket_shared = True
            elif not shared and self._socket_shared and sock is not None:
                sock.setblocking(True)
                self._socket_shared = False
        except OSError:
            pass  # closed meanwhile

    def _loop_opened(self, loop: Loop) -> None:
        """``serve_forever`` set up *loop*: watch more descriptors, work
        after each wait (``loop.tick``), or wait less (a prefork server
        forks and supervises its workers so). Call super()."""

    def _loop_closing(self) -> None:
        """``serve_forever`` is about to return. Call super()."""

    def _woken(self) -> None:
        """The wake-up socket turned readable: a stop was asked for (this
        process sets the flag too; a child process cannot)."""
        loop = self._loop
        if loop is not None:
            loop.take_wakeup()
        self.__shutdown_request = True

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait until it has returned.

        Returns at once (within a few milliseconds) whatever ``poll_interval``
        was given and whatever the clients do: requests still in flight go on
        in their threads or processes (``drain()`` bounds them). Called from
        a handler running in the serving thread, or in a forked child or
        prefork worker, it only asks the loop to stop and returns.
        """
        if not self._request_stop():
            self.__is_shut_down.wait()

    def _request_stop(self) -> bool:
        """Ask ``serve_forever`` to stop, without waiting. True when the
        caller must not wait: it is the serving thread itself, or a child
        process (whose request reaches the parent through the wake-up
        socket)."""
        loop = self._loop
        if loop is not None and loop.pid != os.getpid():
            # A forked child or prefork worker: no lock (one held by another
            # thread at fork time would never be released here).
            loop.wake()
            return True
        with self._loop_lock:
            self.__shutdown_request = True
            if self.state is ServerState.SERVING:
                self.state = ServerState.STOPPING
            loops = self._loops
            if not loops:
                return False
            here = threading.get_ident()
            for loop in loops:
                loop.wake()
            return any(loop.thread == here for loop in loops)

    def _stopping(self) -> bool:
        """True once a stop was asked for and the loop has not yet returned."""
        return self.__shutdown_request

    def _wait_stopped(self, timeout: float | None = None) -> bool:
        """Wait up to *timeout* seconds for ``serve_forever`` to return."""
        return bool(self.__is_shut_down.wait(timeout))

    def _loop_running(self) -> bool:
        """True while ``serve_forever`` runs (in this process)."""
        return self._loop is not None

    def service_actions(self) -> None:
        """Called by ``serve_forever`` after each loop iteration. Override it
        for periodic work (ForkingMixIn reaps children here)."""

    def handle_request(self) -> None:
        """Wait for one request and handle it.

        Waits at most ``timeout`` (the smaller of the socket's and the
        server's) and calls ``handle_timeout()`` when none came.
        """
        sock = getattr(self, "socket", None)
        timeout = sock.gettimeout() if sock is not None else None
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with selector_class(_PACKAGE._ServerSelector)() as selector:
            selector.register(self, selectors.EVENT_READ)  # type: ignore[arg-type]
            while True:
                if selector.select(timeout):
                    return self._handle_request_noblock()
                if deadline is not None:
                    timeout = deadline - time.monotonic()
                    if timeout < 0:
                        return self.handle_timeout()

    def _handle_request_noblock(self) -> None:
        """Take one request that is known to be waiting and handle it."""
        try:
            request, client_address = self.get_request()  # type: ignore[attr-defined]
        except OSError as exc:
            self._accept_backoff = accept_backoff(self, exc, self._accept_backoff)
            return
        if self._accept_backoff:
            self._accept_backoff = 0.0
        stats = self.stats
        if stats.enabled:
            # note_accepted(), inlined: this runs for every request.
            accepted = stats.accepted = stats.accepted + 1
            if not accepted & FOLD_MASK:
                stats.fold()
        if self.request_timeout is not None or stats.timeline is not None:
            self._stamp_accepted(request)
        if self.verify_request(request, client_address):
            try:
                self.process_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
                self.shutdown_request(request)
            except BaseException:
                self.shutdown_request(request)
                raise
        else:
            stats.note_rejected()
            self._ledger.forget(id(request))
            self.shutdown_request(request)

    def _stamp_accepted(self, request: Any) -> None:
        """Remember when *request* was accepted (for its deadline and the
        timeline); start the deadline watchdog if it is not running."""
        self._ledger.accepted[id(request)] = _monotonic()
        if self.request_timeout is not None and self._watchdog is None:
            self._watchdog = Watchdog(self)  # (the serving thread only comes here)
            self._watchdog.start()

    def handle_timeout(self) -> None:
        """Called when ``handle_request()`` waited ``timeout`` in vain."""

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Return False to refuse the request (it is closed, not handled).
        Accepts everything here; override it for an allowlist."""
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Handle the request in this thread, then shut it down.
        Mixins override this to use a thread or a process."""
        # Entered, started, run and ended in the ledger (the serving thread
        # runs one handler at a time: no lock, see Ledger.run).
        self._ledger.run(id(request), self.finish_request, request, client_address, True)
        self.shutdown_request(request)

    def server_close(self) -> None:
        """Release what the server holds. Safe to call more than once."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.close()
        self._set_state(ServerState.CLOSED)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Run the handler: ``RequestHandlerClass(request, client_address, self)``.

        On a datagram server, a reply to a Unix client that closed its socket
        (ECONNREFUSED) or removed its file (ENOENT) means the client went
        away: it is re-raised as ``ConnectionAbortedError``, so it is counted
        and logged as a disconnect, like a reset on a stream."""
        try:
            self.RequestHandlerClass(request, client_address, self)
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            if exc.filename is not None or getattr(self, "socket_type", None) != socket.SOCK_DGRAM:
                raise  # a file the handler opened, or not a datagram reply
            raise ConnectionAbortedError(
                exc.errno,
                f"client {format_address(client_address)} went away before "
                f"the reply: {exc.strerror}",
            ) from exc

    def shutdown_request(self, request: Any) -> None:
        """End the request at the protocol level, then close it."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Release the request's resources. Nothing to do here."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report an exception raised while handling a request.

        Called from inside the ``except`` clause, so ``sys.exc_info()`` holds
        it. A client that went away (reset, broken pipe) is logged at debug
        level; anything else is printed with its traceback to stderr. The
        server keeps serving either way. Override to log elsewhere.
        """
        logs.handler_failed(self, client_address)

    # -- drain and deadlines ----------------------------------------------------

    def drain(self, timeout: float) -> DrainReport:
        """Stop accepting, give requests in flight up to *timeout* seconds,
        abort the rest, and report (see :mod:`sockserve.core.drain`).

        Call it instead of, or after, ``shutdown()``, from another thread
        than the serving one; then ``server_close()``. Tune with the class
        attribute ``abort_grace`` (seconds an aborted request is given to
        notice before the drain returns; processes get SIGKILL after it).
        """
        return drain_server(self, timeout)

    def _drain_wait(self, seconds: float) -> None:
        """drain(): wait up to *seconds* for requests to end."""
        self._ledger.wait_empty(seconds)

    def _abort_inflight(self, items: list[Any]) -> None:
        """drain(): cut off the requests whose ledger items these are."""
        for item in items:
            abort_socket(item)

    def _end_expired(self, item: Any) -> None:
        """A request's deadline passed (the watchdog's thread): cut it off."""
        abort_socket(item)

    def _set_state(self, new: ServerState) -> None:
        if self.state is not ServerState.CLOSED:
            self.state = new

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *args: object) -> None:
        self.server_close()

    def __repr__(self) -> str:
        address = getattr(self, "server_address", None)  # None: __init__ never ran
        where = "(no address)" if address is None else format_address(address)
        return f"<{type(self).__name__} {where} {self.state.value}>"


class TCPServer(BaseServer):
    """A server on a stream socket (TCP by default).

    ``TCPServer(server_address, RequestHandlerClass, bind_and_activate=True)``
    makes the socket and, unless told not to, binds and listens at once; if
    that fails the socket is closed before the error is raised.

    Class attributes that tune it:

    ``address_family`` (socket.AF_INET)
        set ``socket.AF_INET6`` for IPv6; the Unix servers set AF_UNIX.
    ``socket_type`` (socket.SOCK_STREAM)
    ``request_queue_size`` (socket.SOMAXCONN)
        the listen backlog. The standard library uses 5, which makes bursts
        of new connections wait for SYN retransmits (1 s, then 3 s).
    ``allow_reuse_address`` (False)
        set SO_REUSEADDR before bind, to rebind a port still in TIME_WAIT.
    ``allow_reuse_port`` (False)
        set SO_REUSEPORT before bind (IPv4/IPv6 only).
    """

    address_family: int = socket.AF_INET
    socket_type: int = socket.SOCK_STREAM
    request_queue_size: int = socket.SOMAXCONN
    allow_reuse_address: bool = False
    allow_reuse_port: bool = False

    _socket_file: socketfiles.SocketFile | None = None
    _socket_path: Any = None
    _accept_shape: tuple[socket.socket, int, int, int] | None = None

    def __init__(
        self, server_address: Any, RequestHandlerClass: Any, bind_and_activate: bool = True
    ) -> None:
        BaseServer.__init__(self, server_address, RequestHandlerClass)
        self.socket: socket.socket = _PACKAGE.socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    def server_bind(self) -> None:
        """Set the reuse options asked for, bind, and record the real address
        (with port 0, the port the system picked)."""
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if (
            self.allow_reuse_port
            and hasattr(socket, "SO_REUSEPORT")
            and self.address_family in (socket.AF_INET, socket.AF_INET6)
        ):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if self.address_family == _AF_UNIX:
            # Stale files, socket_mode and concurrent starts: see socketfiles.
            self._socket_file = socketfiles.bind_path(
                self.socket,
                self.server_address,
                replace_stale=getattr(self, "replace_stale_socket", False),
                mode=getattr(self, "socket_mode", None),
            )
            self._socket_path = self.server_address
        else:
            bind_explained(self.socket, self.server_address, self.address_family)
        self.server_address = self.socket.getsockname()
        self._set_state(ServerState.BOUND)

    def server_activate(self) -> None:
        """listen() with ``request_queue_size`` as the backlog."""
        self.socket.listen(self.request_queue_size)
        self._set_state(ServerState.LISTENING)

    def server_close(self) -> None:
        """Close the listening socket. A Unix socket file stays, as in the
        standard library, unless the class sets ``remove_socket_file``."""
        self.socket.close()
        identity, self._socket_file = self._socket_file, None
        if identity is not None and getattr(self, "remove_socket_file", False):
            socketfiles.release_path(self._socket_path, identity)
        BaseServer.server_close(self)

    def fileno(self) -> int:
        """The listening socket's descriptor (what the loop waits on)."""
        return self.socket.fileno()

    def get_request(self) -> tuple[Any, Any]:
        """Accept one connection: ``(socket, client_address)``.

        Same result as ``self.socket.accept()``, at half the cost for a plain
        socket: ``socket.accept`` rebuilds the family and type as enums for
        every connection, which costs more than the rest of accepting. A
        socket of another class (an ``ssl.SSLSocket``, say) is asked to
        accept as usual."""
        listener = self.socket
        if type(listener) is not _PLAIN_SOCKET:
            return listener.accept()
        shape = self._accept_shape
        if shape is None or shape[0] is not listener:
            shape = self._accept_shape = (
                listener, int(listener.family), int(listener.type), listener.proto
            )
        fd, address = listener._accept()  # type: ignore[attr-defined]
        connection = _PLAIN_SOCKET(shape[1], shape[2], shape[3], fd)
        if _getdefaulttimeout() is None and listener.gettimeout():
            connection.setblocking(True)  # as socket.accept() does
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        """Half-close our side (the client sees EOF), then close."""
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client may already be gone
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Close the connection's socket.

        A plain socket that no file object holds any more (the handler
        closed its streams) is closed as ``socket.close()`` would close it,
        without its two Python-level calls; any other is asked to close."""
        if type(request) is _FAST_CLOSE and request._io_refs <= 0:
            request._closed = True
            _close_socket(request)
        else:
            request.close()


class UDPServer(TCPServer):
    """A server on a datagram socket (UDP by default).

    Each datagram is one request: ``get_request`` returns
    ``((data, server_socket), client_address)``. Nothing is closed per
    request, since every reply goes out through the one server socket.

    Class attributes that tune it (besides TCPServer's):

    ``max_packet_size`` (8192)
        longest datagram read; the rest of a longer one is dropped by the
        system, and ``stats.truncated`` counts it.
    """

    allow_reuse_address: bool = False
    allow_reuse_port: bool = False
    socket_type: int = socket.SOCK_DGRAM
    max_packet_size: int = 8192
    _read_per_request = (*BaseServer._read_per_request, "max_packet_size")

    def get_request(self) -> tuple[Any, Any]:
        """Read one datagram: ``((data, self.socket), client_address)``.

        Asks for one byte more than ``max_packet_size``: a datagram that
        fills it was longer than the limit, so it is cut to the limit (as
        the standard library's ``recvfrom(max_packet_size)`` would cut it)
        and counted in ``stats.truncated``."""
        sock = self.socket
        size = self.max_packet_size
        data, client_address = sock.recvfrom(size + 1)
        if len(data) > size:
            self.stats.note_truncated()
            data = data[:size]
        return (data, sock), client_address

    def server_activate(self) -> None:
        """Nothing to do: a datagram socket does not listen."""
        self._set_state(ServerState.LISTENING)

    def shutdown_request(self, request: Any) -> None:
        """Nothing to shut down per datagram."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Nothing to close per datagram."""

