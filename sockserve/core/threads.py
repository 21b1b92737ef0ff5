"""``ThreadingMixIn``: each request in a new thread.

Put the mixin first so its ``process_request`` wins::

    class ThreadingTCPServer(ThreadingMixIn, TCPServer): pass

Everything else (accepting, verifying, the handler's ``setup/handle/finish``)
is the server's own. :func:`serve_in_thread` is how a request runs in a
thread that is not the serving one; the thread pool
(:mod:`sockserve.core.threadpool`) uses it too.
"""

from __future__ import annotations

import threading

from .logs import report_escape
from .stats import Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from .servers import BaseServer
    from .servers import BaseServer as _Server
else:
    _Server = object

__all__ = ["ThreadingMixIn", "HandlerThreads", "NoThreads", "serve_in_thread"]


class HandlerThreads(list):  # type: ignore[type-arg]
    """The non-daemon handler threads a server must join on close.

    Finished threads are dropped whenever a new one is added, so a
    long-running server does not keep every thread it ever started.
    """

    def append(self, thread: threading.Thread) -> None:
        self.reap()
        if not thread.daemon:
            super().append(thread)

    def discard(self, thread: threading.Thread) -> None:
        """Forget *thread* (it never started)."""
        if thread in self:
            self.remove(thread)

    def pop_all(self) -> list[threading.Thread]:
        """Remove and return every thread, atomically enough for one writer."""
        taken, self[:] = self[:], []
        return taken

    def join(self) -> None:
        """Wait for every recorded thread to end."""
        for thread in self.pop_all():
            thread.join()

    def reap(self) -> None:
        """Forget threads that have ended."""
        self[:] = [thread for thread in self if thread.is_alive()]


class NoThreads:
    """Null object used when the server need not wait for its threads."""

    def append(self, thread: threading.Thread) -> None:
        pass

    def discard(self, thread: threading.Thread) -> None:
        pass

    def join(self) -> None:
        pass

    def __len__(self) -> int:
        return 0


_NO_THREADS = NoThreads()


def serve_in_thread(server: BaseServer, request: Any, client_address: Any, key: int) -> None:
    """Run the handler of a request already started in the ledger, as the
    standard library's handler threads do: an ``Exception`` goes to
    ``handle_error``; ``SystemExit`` or ``KeyboardInterrupt`` is said in one
    line and re-raised (it ends this thread only); ``shutdown_request``
    always runs last."""
    try:
        server._ledger.run(key, server.finish_request, request, client_address)
    except Exception:
        server.handle_error(request, client_address)
    except BaseException as exc:
        report_escape(server, client_address, exc)
        raise
    finally:
        server.shutdown_request(request)


class ThreadingMixIn(_Server):
    """Handle each request in a new thread.

    Overrides ``process_request`` (start the thread) and ``server_close``
    (join the threads, see ``block_on_close``).

    Class attributes that tune it:

    ``daemon_threads`` (False)
        make handler threads daemons: the interpreter may exit while they
        run, and ``server_close()`` does not wait for them.
    ``block_on_close`` (True)
        ``server_close()`` waits for all non-daemon handler threads.

    Callers may use ``process_request_thread`` as a thread target (from a
    pool of their own, say); it runs ``finish_request`` and always ends with
    ``shutdown_request``, and it keeps ``stats`` and ``drain()`` right by
    itself: the thread counts itself in ``stats.threads`` and enters the
    request in the ledger if ``process_request`` did not.

    As in the standard library, ``handle_error`` gets the ``Exception`` s a
    handler raises; ``SystemExit`` and ``KeyboardInterrupt`` end the
    handler's thread (only that one: the server goes on), are logged in one
    line and counted as errors.
    """

    daemon_threads: bool = False
    block_on_close: bool = True
    _threads: HandlerThreads | NoThreads = _NO_THREADS

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Body of a handler thread: finish, report errors, shut down."""
        key = id(request)
        self._ledger.start_thread(key, request)
        try:
            serve_in_thread(self, request, client_address, key)
        finally:
            self.stats.thread_ended()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread that runs ``process_request_thread``."""
        threads = self._threads
        if threads is _NO_THREADS and self.block_on_close:
            threads = self._threads = HandlerThreads()
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=_thread_name(type(self)),
        )
        thread.daemon = self.daemon_threads
        threads.append(thread)
        key = id(request)
        self._ledger.enter(key, request)
        try:
            thread.start()
        except BaseException:
            # No thread (RLIMIT_NPROC, memory): the request ends here,
            # unserved, counted as an error; the loop says why and closes it.
            threads.discard(thread)
            self._ledger.drop(key, Outcome.ERROR)
            raise

    def server_close(self) -> None:
        """Close the server, then wait for handler threads (see block_on_close)."""
        super().server_close()
        self._threads.join()


_thread_names: dict[type, str] = {}


def _thread_name(cls: type) -> str:
    """"ThreadingTCPServer handler": made once per class (a name given costs
    less than the one threading would make up)."""
    name = _thread_names.get(cls)
    if name is None:
        name = _thread_names[cls] = f"{cls.__name__} handler"
    return name
