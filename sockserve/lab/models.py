"""The lab's models: plain objects that run servers, load and comparisons.

No ipywidgets here (and no matplotlib): the panels in :mod:`.panels` are
thin views over these classes, and the tests drive the models headless.

* :class:`ServerModel` runs one server in a background thread of this
  process (the kernel, in a notebook) and reports its status.
* :class:`TrafficModel` sends load at a server with :class:`sockserve.load.LoadRun`
  (the load runs in another process) and keeps live samples.
* :class:`CompareModel` runs :func:`sockserve.measure.experiment.compare` in a
  background thread.

Threads: each model's public methods may be called from any thread; a
model's background work only changes the model's own fields, under its
lock. Views poll :meth:`status` (a frozen snapshot) a few times a second.
Every model that runs something is tracked by :mod:`.registry` until it is
stopped, so ``stop_all()`` and interpreter exit find it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.errors import format_address
from ..core.lifecycle import ServerState
from ..core.stats import CLIENT_GONE
from ..measure.kinds import is_loopback, kind_names, make_server, resolve_kind
from . import registry
from .settings import ServerSettings, settings_of

__all__ = ["ServerModel", "ServerStatus", "describe_error", "server_kinds", "FORK_NOTE"]

#: What the lab tells a learner about forking inside a notebook kernel.
FORK_NOTE = (
    "Forking from a notebook: the kernel process already runs several threads "
    "(its I/O threads, and this server's). A child made by fork() has only the "
    "thread that forked, so a lock another thread held at that instant stays "
    "locked forever in the child; Python 3.12+ warns about this with a "
    "DeprecationWarning. sockserve makes it safe here: each child gets fresh "
    "stdout/stderr right after fork() (it never touches the kernel's output "
    "locks), a child that runs longer than child_timeout seconds is ended by "
    "an alarm, and Stop ends any child left over. The lab therefore silences "
    "that one warning for its own forking servers."
)

_FORK_WARNING = r"This process \(pid=\d+\) is multi-threaded, use of fork\(\) may lead to deadlocks"
_MESSAGE_LIMIT = 1500  # bytes per error line: one os.write below PIPE_BUF


def server_kinds() -> list[str]:
    """The server kinds a :class:`ServerModel` can run (every kind with a
    class: plain, threading, forking x TCP, UDP, Unix, Unix datagram, and
    pool kinds when they exist)."""
    return [name for name in kind_names() if resolve_kind(name).server_class is not None]


def describe_error(exc: BaseException) -> str:
    """One line in plain words for an error met while starting a server."""
    if isinstance(exc, socket.gaierror) or isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror or str(exc)
        # The core's bind errors already say what happened and what to do.
        return text[0].upper() + text[1:] if text else type(exc).__name__
    if isinstance(exc, (OverflowError, ValueError, TypeError)):
        return f"Bad setting: {exc}"
    if isinstance(exc, SystemExit):
        return f"a handler called sys.exit({exc.code!r}) in the serving thread"
    return f"{type(exc).__name__}: {exc}"


def handler_failure(handler: type, exc: BaseException, client_address: Any) -> str:
    """A handler raised *exc*: say where, in one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        place = os.path.basename(last.filename)
        if "ipykernel_" in last.filename:
            place = "a notebook cell"
        where = f" in {last.name}() at line {last.lineno} of {place}"
    message = str(exc) or "(no message)"
    return (
        f"{handler.__name__}{where} raised {type(exc).__name__}: {message}, "
        f"on the request from {format_address(client_address)}; the server goes on serving."
    )


@dataclass(frozen=True)
class ServerStatus:
    """What a server panel shows, at one instant."""

    state: str  # "stopped" | "running" | "failed"
    kind: str
    workload: str
    address: str
    requests: int
    active: int
    threads: int
    children: int
    errors: int
    message: str  # the last problem, in plain words ("" when none)
    warning: str = ""  # e.g. bound beyond loopback ("" when none)

    def line(self) -> str:
        """The status line: address, state and counters."""
        if self.state == "failed":
            return f"{self.kind} ({self.workload}): not running. {self.message}"
        if self.state != "running":
            return f"{self.kind} ({self.workload}): stopped. Press Start."
        text = (
            f"{self.kind} ({self.workload}) serving on {self.address}: "
            f"requests {self.requests}, active {self.active}, threads {self.threads}, "
            f"children {self.children}, errors {self.errors}"
        )
        return f"{text}. Warning: {self.warning}" if self.warning else text


def exposure_warning(host: str) -> str:
    """A plain-words warning when *host* is not loopback-only, else ""."""
    if is_loopback(host or "127.0.0.1"):
        return ""
    return (
        f"bound to {host}, so other machines can reach this server; "
        "use 127.0.0.1 to keep it on this machine"
    )


class ServerModel:
    """One server, run in a background thread of this process.

    ``ServerModel(settings=None, /, **choices)``: what to serve is a
    :class:`~.settings.ServerSettings` (``kind``, ``workload`` or ``handler``,
    ``host``, ``port``, ``path``, ``params``), given as an object or as
    keywords; a view hands it new settings by assigning :attr:`settings`
    (read at each :meth:`start`). Callers use :meth:`start`, :meth:`stop`,
    :meth:`status`, :meth:`errors`, :attr:`address`, and :meth:`on_change`
    to hear when the server starts or stops. ``start`` never raises for a
    bad setting or a bind error: the status says what happened. The server
    is built by :func:`sockserve.measure.kinds.make_server`, the factory
    the command line uses.

    Tuning: ``request_timeout`` (30 s; None for none) is the total deadline of
    one request, from accept to the end of its handler, in every model (a
    silent or dripping client cannot hold a worker for ever: see
    ``BaseServer.request_timeout``); ``child_timeout`` (30 s) bounds how long a
    forked child may run;
    ``stop_grace`` (2 s) is how long :meth:`stop` waits for children before
    it kills them; ``stop_timeout`` (10 s) bounds each step of :meth:`stop`
    (a handler thread stuck forever cannot hang the kernel's Stop or exit).

    Errors raised by the handler are reported in one line each
    (:meth:`errors`), never as a traceback on the notebook: the lab's server
    class writes them to a pipe that forked children share with the parent.
    """

    request_timeout: float | None = 30.0
    child_timeout: float = 30.0
    stop_grace: float = 2.0
    stop_timeout: float = 10.0

    def __init__(self, settings: ServerSettings | None = None, /, **choices: Any) -> None:
        self.settings = settings_of(ServerSettings, settings, choices, "ServerModel")
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._events: tuple[int, int] | None = None
        self._tempdir: str | None = None
        self._message = ""
        self._warning = ""
        self._errors: list[str] = []
        self._partial = b""
        self._failed = False

    # -- describing ---------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def workload_name(self) -> str:
        return self.settings.workload_name

    @property
    def address(self) -> Any:
        """The bound address ((host, port) or a path), or None when stopped."""
        server = self._server
        return None if server is None else server.server_address

    @property
    def transport(self) -> str:
        return resolve_kind(self.kind).transport

    @property
    def is_forking(self) -> bool:
        return resolve_kind(self.kind).concurrency in ("forking", "prefork")

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call *callback* (no arguments, from whichever thread started or
        stopped the server) each time the server starts, stops or fails;
        returns the function that cancels it."""
        with self._lock:
            self._listeners.append(callback)

        def cancel() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return cancel

    def _changed(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback()
            except Exception as exc:  # a view's failure must not stop the server's
                print(f"sockserve.lab: a listener failed: {exc!r}", file=sys.__stderr__)

    @property
    def server(self) -> Any:
        """The running server object (None when stopped), for the curious."""
        return self._server

    def status(self) -> ServerStatus:
        self.poll_errors()
        server = self._server
        state = "running" if server is not None else ("failed" if self._failed else "stopped")
        snap: dict[str, Any] = server.stats.snapshot() if server is not None else {}
        return ServerStatus(
            state=state,
            kind=self.kind,
            workload=self.workload_name,
            address=format_address(server.server_address) if server is not None else "",
            requests=int(snap.get("started", 0)),
            active=int(snap.get("active", 0)),
            threads=int(snap.get("threads", 0)),
            children=int(snap.get("children", 0)),
            errors=int(snap.get("errors", 0)),
            message=self._message,
            warning=self._warning if server is not None else "",
        )

    def errors(self) -> list[str]:
        """The handler errors reported so far (most recent last, at most 50)."""
        self.poll_errors()
        with self._lock:
            return list(self._errors)

    # -- running ------------------------------------------------------------

    def start(self) -> ServerStatus:
        """Bind and serve in a background thread. Returns the new status;
        on failure the status is "failed" and its message says why."""
        with self._lock:
            if self._server is not None:
                return self.status()
            self._message, self._failed = "", False
            try:
                server = self._make_server()
            except Exception as exc:
                self._close_events()
                self._remove_tempdir()
                self._message, self._failed = describe_error(exc), True
                status = self.status()
                self._changed()
                return status
            self._server = server
            self._warning = ("" if isinstance(server.server_address, str)
                             else exposure_warning(self.settings.host))
            registry.track(self)
            self._thread = threading.Thread(
                target=self._serve, args=(server,), name="sockserve-lab-server", daemon=True
            )
            self._thread.start()
        # Return once the loop serves: a pre-forking server forks its workers
        # first, and a worker forked while a client of this process is
        # connected would hold a copy of that client's socket.
        deadline = time.monotonic() + self.stop_timeout
        while server.state is not ServerState.SERVING and time.monotonic() < deadline:
            if self._server is not server:
                break  # the loop failed at once
            time.sleep(0.005)
        self._changed()
        return self.status()

    def _serve(self, server: Any) -> None:
        try:
            server.serve_forever(poll_interval=0.25)
        except BaseException as exc:  # the loop broke (even sys.exit() in a handler)
            with self._lock:
                self._message, self._failed = f"The server stopped: {describe_error(exc)}", True
                if self._server is not server:
                    return
                self._server, self._thread = None, None
            self._release(server)

    def stop(self) -> None:
        """Stop serving, end every child and thread, free the port. Idempotent."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if server is None:
            registry.untrack(self)
            self._changed()
            return
        stuck: list[str] = []
        try:
            if not _bounded(server.shutdown, self.stop_timeout):
                stuck.append("the serving loop")
            elif thread is not None:
                thread.join(self.stop_timeout)
        finally:
            self._release(server, stuck)

    def _release(self, server: Any, stuck: list[str] | None = None) -> None:
        """End children, close the server, its pipe and its temp dir; never
        waits longer than about ``stop_timeout`` for any step."""
        stuck = [] if stuck is None else stuck
        try:
            self._end_children(server)
            if not _bounded(server.server_close, self.stop_timeout):
                stuck.append("a handler")
                sock = getattr(server, "socket", None)
                if sock is not None:
                    sock.close()  # free the port even so
            _kill_leftovers(server)
        finally:
            self.poll_errors()
            with self._lock:
                self._close_events()
                self._remove_tempdir()
                if stuck:
                    self._failed = True
                    self._message = (
                        f"Stopped, but {' and '.join(stuck)} did not finish within "
                        f"{self.stop_timeout:g} s (a handler may be stuck); the port is released."
                    )
            registry.untrack(self)
            self._changed()

    def _end_children(self, server: Any) -> None:
        """Give forked children ``stop_grace`` seconds, then kill the rest."""
        if getattr(server, "active_children", None) is None:
            return
        deadline = time.monotonic() + self.stop_grace
        while server.active_children and time.monotonic() < deadline:
            server.collect_children()
            time.sleep(0.02)
        for pid in list(server.active_children or ()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        server.collect_children(blocking=True)

    def _make_server(self) -> Any:
        """The server of :attr:`settings`, built by the CLI's factory with the
        lab's class attributes (error reporting, deadlines), bound."""
        settings = self.settings
        info = resolve_kind(settings.kind)
        if info.server_class is None:
            raise ValueError(f"the {info.name} kind cannot run inside the notebook")
        host, port, path = settings.host.strip() or "127.0.0.1", settings.port, settings.path
        if info.is_unix:
            if not path:
                self._tempdir = tempfile.mkdtemp(prefix="sockserve-lab-")
                path = os.path.join(self._tempdir, "server.sock")
        elif not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"the port must be a whole number from 0 to 65535, not {port!r}")
        if info.concurrency in ("forking", "prefork"):
            _quiet_fork_warning()
        reader, writer = os.pipe()
        os.set_blocking(reader, False)
        os.set_blocking(writer, False)
        self._events = (reader, writer)
        attrs: dict[str, Any] = {"handle_error": _report_handler_error, "lab_events_fd": writer}
        if hasattr(info.server_class, "request_timeout"):
            attrs["request_timeout"] = self.request_timeout
        if info.concurrency == "forking":
            attrs["child_timeout"] = self.child_timeout
        if settings.handler is not None:
            return make_server(info.name, settings.handler, host, port, path, attrs)
        return make_server(info.name, settings.workload, host, port, path, attrs, **settings.params)

    # -- handler errors ------------------------------------------------------

    def poll_errors(self) -> None:
        """Read the error lines that handlers (threads or children) wrote."""
        with self._lock:
            if self._events is None:
                return
            while True:
                try:
                    data = os.read(self._events[0], 65536)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                *lines, self._partial = (self._partial + data).split(b"\n")
                for raw in lines:
                    text = raw.decode("utf-8", "replace")
                    self._errors.append(text)
                    self._message = text
                del self._errors[:-50]

    def _close_events(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            for fd in events:
                os.close(fd)

    def _remove_tempdir(self) -> None:
        path, self._tempdir = self._tempdir, None
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<ServerModel {self.status().line()}>"


def _kill_leftovers(server: Any) -> None:
    """SIGKILL and reap any child process the server still has (forked
    children, pre-forked workers) after its own shutdown gave up."""
    pids = set(getattr(server, "active_children", None) or ()) | set(
        getattr(server, "worker_pids", None) or ()
    )
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        for pid in list(pids):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid  # reaped by the server meanwhile
            if done:
                pids.discard(pid)
        if pids:
            time.sleep(0.01)


def _bounded(action: Callable[[], object], seconds: float) -> bool:
    """Run *action* in a daemon thread; True if it ended within *seconds*.
    (A thread cannot be killed: one that never ends is left behind.)"""
    done = threading.Event()

    def run() -> None:
        try:
            action()
        except BaseException:
            pass  # the caller reports what did not finish, not how
        finally:
            done.set()

    threading.Thread(target=run, name="sockserve-lab-stop", daemon=True).start()
    return done.wait(seconds)


def _report_handler_error(self: Any, request: Any, client_address: Any) -> None:
    """``handle_error`` of the lab's servers: one line to the events pipe.

    Runs in the serving thread, a handler thread or a forked child; one
    short ``os.write`` is atomic on a pipe, so lines never interleave.
    """
    exc = sys.exc_info()[1]
    if exc is None or isinstance(exc, CLIENT_GONE + (TimeoutError,)):
        return
    line = handler_failure(self.RequestHandlerClass, exc, client_address)
    data = line.replace("\n", " ").encode("utf-8", "replace")[:_MESSAGE_LIMIT] + b"\n"
    try:
        os.write(self.lab_events_fd, data)
    except OSError:
        pass  # pipe full or closed: the error counter still counts it


def _quiet_fork_warning() -> None:
    """Python 3.12+ warns on fork() in a threaded process; see FORK_NOTE.
    (Adding the same filter again replaces it, so calling this often is fine.)"""
    if sys.version_info >= (3, 12):
        warnings.filterwarnings("ignore", message=_FORK_WARNING, category=DeprecationWarning)
