"""The ``serve`` subcommand of :mod:`sockserve.cli.main`: one server in the
foreground until SIGINT, SIGTERM or SIGHUP.

Every argument is checked before anything binds: the kind and workload, the
port range, the host (one that does not resolve is said first, before any
warning about where it is), and that ``--path`` goes with Unix kinds and
``--host``/``--port`` with TCP/UDP ones.

Stopping: the first SIGINT, SIGTERM or SIGHUP (the terminal that started it
closed) makes a watcher thread call
``server.drain(--grace)``: the loop stops accepting at once, requests in
flight get the grace (printed), the rest are cut off (sockets closed, child
and worker processes SIGTERMed, then SIGKILLed after ``abort_grace``); then
the server closes, its socket file and temporary folder go, and the process
exits 0, about ``--grace`` + 0.3 s after the signal whatever the clients do.
Its last line on stderr says how many requests it served, and how the ones
in flight at the stop ended.

The deadline (``--request-timeout``) is off by default, as in the standard
library: a burst larger than what the server holds at once waits its turn
and is served. With a deadline, time spent waiting for a free child, worker
or thread counts toward it: a request still waiting at its own deadline is
cut off (a timeout), and beyond ``max_waiting`` waiting requests the oldest
is closed (an overflow); see the README, section "Measuring".
The server class is a same-named subclass with ``allow_reuse_address`` (a
restart binds at once, even with this run's connections in TIME_WAIT, as
``http.server`` does), ``abort_grace`` and ``request_timeout``
(``--request-timeout``, the core's total per-request deadline) set.

Timeline: ``--timeline CAP --timeline-file PATH`` records when and where
each request ran (at most CAP requests, :mod:`sockserve.core.timeline`) and,
once the server has stopped, writes it to PATH as the JSON of
``Timeline.to_dict()`` (written whole, then renamed into place, so a reader
never sees half a file). :class:`sockserve.measure.experiment.ServerProcess` reads
it back.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import signal
import stat
import sys
import threading
import time
from typing import Any

from .args import (
    MAX_SECONDS,
    CliError,
    check_port,
    is_local_address,
    kind_info,
    number,
    parse_params,
    resolve_host,
    resolve_workload,
)
from ..core.errors import format_address
from ..measure.kinds import kind_names, make_server
from ..measure.serverfeed import StatsFeed
from ..core.lifecycle import ServerState

__all__ = ["cmd_serve", "GRACE", "REQUEST_TIMEOUT", "REQUEST_TIMEOUT_HELP", "ABORT_GRACE", "STOP_SIGNALS",
           "add_report_args", "stats_feed", "add_timeline_args", "start_timeline", "save_timeline"]

#: Seconds requests in flight get to finish after SIGINT/SIGTERM (--grace).
GRACE = 1.0
#: The total deadline of one request (--request-timeout; 0, the default, is
#: no deadline, as in the standard library: a burst is served, not cut off).
REQUEST_TIMEOUT = 0.0
REQUEST_TIMEOUT_HELP = (
    "the longest one request (for a stream server: one connection) may take, idle or not, "
    "waiting for a free worker included, before it is cut off and counted as a timeout "
    "(default 0: no limit, as in the standard library, so a burst waits its turn and is served; "
    "with a limit, a request of a burst waits for a free worker until its own deadline)"
)
#: The signals that stop the server cleanly (SIGHUP: its terminal closed).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Seconds between SIGTERM and SIGKILL for a cut-off child or worker process.
ABORT_GRACE = 0.25


def _unix_sibling(name: str) -> str | None:
    """The Unix kind that matches TCP/UDP kind *name* (threading-udp -> threading-unix-dgram)."""
    base, _, rest = name.partition("-")
    candidate = f"{base}-unix-dgram" if rest == "udp" else f"{base}-unix"
    return candidate if candidate in kind_names() else None


def cmd_serve(args: argparse.Namespace) -> int:
    info = kind_info(args.kind)
    work = resolve_workload(args.workload, parse_params(args.param))
    host, port = args.host, args.port
    if info.is_unix:
        if host != "127.0.0.1" or port != 0:
            flag = "--host" if host != "127.0.0.1" else "--port"
            raise CliError(f"{flag} is for TCP and UDP kinds; {info.name} serves on a Unix socket "
                           "(give --path, or nothing for a temporary one)")
    else:
        if args.path is not None:
            sibling = _unix_sibling(info.name)
            instead = f", or a Unix kind such as {sibling}" if sibling else ""
            raise CliError(f"--path is for Unix kinds; {info.name} is a {info.transport.upper()} server: "
                           f"use --host and --port{instead}")
        check_port(port, "--port")
        addresses = resolve_host(host, f"--host {host!r}")
        beyond = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
        # Warn only for an address this machine has (or the wildcard): for
        # any other the bind fails, and its error is the one line to read.
        if any(ipaddress.ip_address(a.split("%")[0]).is_unspecified or is_local_address(a) is not False
               for a in beyond):
            print(
                f"sockserve serve: warning: binding to {host} makes this server "
                "reachable from other machines; use 127.0.0.1 (the default) to keep it "
                "on this machine",
                file=sys.stderr, flush=True,
            )
    if args.grace < 0:
        raise CliError(f"--grace must be 0 or more seconds, got {args.grace:g}")
    if args.request_timeout < 0:
        raise CliError(f"--request-timeout must be 0 (off) or more seconds, got {args.request_timeout:g}")
    # Every argument is checked before anything binds.
    report_every = check_report_every(args.report_every)
    timeline_cap = check_timeline(getattr(args, "timeline", None))
    attributes: dict[str, Any] = {
        # A restart binds at once, even with connections of this run in
        # TIME_WAIT (what http.server does).
        "allow_reuse_address": True,
        # drain() ends cut-off child processes this soon after SIGTERM.
        "abort_grace": ABORT_GRACE,
        "request_timeout": args.request_timeout or None,
    }
    try:
        server = make_server(info, work, host=host, port=port, path=args.path,
                             class_attributes=attributes)
    except (OSError, ValueError, OverflowError) as exc:
        raise CliError(str(exc)) from None
    socket_file = _socket_file_of(server)
    try:
        with server:
            start_timeline(server, timeline_cap)
            try:
                return _serve_until_signalled(server, _announce(server, info, args.workload, args.json),
                                              watch_parent=args.exit_with_parent, grace=args.grace,
                                              feed=stats_feed(server, report_every))
            finally:
                save_timeline(server, getattr(args, "timeline_file", None))
    finally:
        _remove_socket_file(socket_file)


def _socket_file_of(server: Any) -> tuple[str, int, int] | None:
    """The Unix socket file *server* bound (path, device, inode), if any."""
    address = getattr(server, "server_address", None)
    if not isinstance(address, (str, bytes)) or not address or os.fsencode(address).startswith(b"\0"):
        return None
    try:
        info = os.lstat(address)
    except OSError:
        return None
    return (os.fsdecode(address), info.st_dev, info.st_ino) if stat.S_ISSOCK(info.st_mode) else None


def _remove_socket_file(made: tuple[str, int, int] | None) -> None:
    """After close: remove the socket file this run bound, if it is still
    there and still that very file (the core may have removed it already)."""
    if made is None:
        return
    path, device, inode = made
    try:
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == (device, inode) and stat.S_ISSOCK(info.st_mode):
            os.unlink(path)
    except OSError:
        pass


def check_report_every(interval: float | None) -> float | None:
    """``--report-every``: None (off) or a positive number of seconds."""
    if interval is not None and not interval > 0:
        raise CliError("--report-every must be a positive number of seconds")
    return interval


def check_timeline(cap: int | None) -> int | None:
    """``--timeline``: None (off) or at least one request to keep."""
    if cap is not None and cap < 1:
        raise CliError(f"--timeline must be at least 1 (requests to keep), got {cap}")
    return cap


def stats_feed(server: Any, interval: float | None) -> Any:
    """``--report-every S``: a :class:`sockserve.measure.serverfeed.StatsFeed` that
    writes the server's per-interval peaks to stdout after the first line."""
    interval = check_report_every(interval)
    if interval is None:
        return None
    return StatsFeed(server, interval)


def add_report_args(serve: argparse.ArgumentParser) -> None:
    """The ``--report-every`` flag of ``serve`` (see :mod:`sockserve.measure.serverfeed`)."""
    serve.add_argument("--report-every", type=number(float, MAX_SECONDS, "seconds"), default=None,
                       metavar="SECONDS",
                       help="after the first line, print one JSON line of the server's counts "
                            "every SECONDS (peak threads and children in each interval)")


def add_timeline_args(serve: argparse.ArgumentParser) -> None:
    """The ``--timeline`` and ``--timeline-file`` flags of ``serve``."""
    serve.add_argument("--timeline", type=number(int, MAX_TIMELINE, "requests"), default=None, metavar="CAP",
                       help="record when and where each request ran (at most CAP requests)")
    serve.add_argument("--timeline-file", default=None, metavar="PATH",
                       help="with --timeline: write the record to PATH as JSON once the server stopped")


#: The most requests ``--timeline`` keeps.
MAX_TIMELINE = 10_000_000


def start_timeline(server: Any, cap: int | None) -> None:
    """Start recording *server*'s timeline, keeping at most *cap* requests
    (None: do not record)."""
    if check_timeline(cap) is None:
        return
    server.stats.record_timeline(cap)


def save_timeline(server: Any, path: str | None) -> None:
    """Write the timeline recorded so far to *path* (JSON), if one was
    recorded and a path given; a failure to write is said on stderr."""
    timeline = server.stats.stop_timeline() if path else None
    if timeline is None or path is None:
        return
    try:
        with open(path + ".part", "w", encoding="utf-8") as out:
            json.dump(timeline.to_dict(), out)
        os.replace(path + ".part", path)
    except OSError as exc:
        print(f"sockserve serve: could not write the timeline to {path}: {exc}", file=sys.stderr, flush=True)


def _announce(server: Any, info: Any, workload: str, as_json: bool) -> str:
    address = server.server_address
    if isinstance(address, tuple):
        shown: Any = [address[0], address[1]]
    else:
        shown = os.fsdecode(address)
    if as_json:
        return json.dumps({
            "serving": type(server).__name__,
            "kind": info.name,
            "transport": info.transport,
            "workload": workload,
            "address": shown,
            "pid": os.getpid(),
        })
    return (
        f"serving {type(server).__name__} ({info.name}, {workload}) on "
        f"{format_address(address)} pid {os.getpid()}"
    )


# (pipe reader, pipe writer, signal handlers to restore) while serve runs.
_FORK_RESET: list[tuple[int, int, dict[Any, Any]]] = []
_fork_reset_registered = False


def _reset_in_child() -> None:
    """In a forked handler child: SIGINT/SIGTERM/SIGHUP act as usual again (they
    end the child) instead of stopping the parent through the shared pipe."""
    for reader, writer, previous in _FORK_RESET:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(reader)
        os.close(writer)
    _FORK_RESET.clear()


def _register_fork_reset() -> None:
    global _fork_reset_registered
    if not _fork_reset_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_in_child)
        _fork_reset_registered = True


def _children_of(server: Any) -> set[int]:
    """Child processes the server knows of: forked handlers, prefork workers."""
    pids = set(getattr(server, "active_children", None) or ())
    pids |= set(getattr(server, "worker_pids", None) or ())
    return pids


def _wait_until_serving(server: Any, loop_ended: threading.Event, bound: float = 10.0) -> None:
    """Return once *server*'s loop serves (or has ended), at most *bound* s."""
    deadline = time.monotonic() + bound
    while not loop_ended.is_set() and time.monotonic() < deadline:
        state = getattr(server, "state", None)
        if state is not None:
            if state not in (ServerState.CREATED, ServerState.BOUND, ServerState.LISTENING):
                return  # serving (or already stopping or closed)
        elif getattr(server, "_server", None) is not None:
            return  # AsyncioServer (no lifecycle state): its event loop accepts
        time.sleep(0.01)


def _serve_until_signalled(server: Any, first_line: str, watch_parent: bool, grace: float,
                           feed: Any = None) -> int:
    """Serve in this (main) thread until SIGINT/SIGTERM/SIGHUP; exit status.

    The signal handler only writes a byte to a pipe (async-signal-safe, takes
    no lock); a watcher thread reads it and calls ``server.drain(grace)``
    from outside the loop: the loop stops accepting at once, requests in
    flight get *grace* seconds, the rest are cut off (their sockets closed,
    their processes ended). A second signal kills what is left and exits 1.
    """
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    signalled: list[int] = []
    parent = os.getppid()
    reports: list[Any] = []
    loop_ended = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        signalled.append(signum)
        if len(signalled) > 1:
            os.write(2, b"sockserve serve: second signal, stopping at once\n")
            for pid in _children_of(server):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            path = getattr(server, "_socket_path", None)
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            os._exit(1)
        try:
            os.write(writer, b"s")
        except OSError:
            pass

    def watcher() -> None:
        why = "the process that started it ended"
        while True:
            ready, _, _ = select.select([reader], [], [], 0.25)
            if ready:
                if not signalled:
                    return  # woken by the main thread: the loop ended by itself
                why = signal.Signals(signalled[0]).name
                break
            if watch_parent and os.getppid() != parent:
                break  # the process that started us is gone: do not outlive it
        print(f"sockserve serve: {why}: stopping; requests in flight get up to {grace:g} s to finish",
              file=sys.stderr, flush=True)
        # A signal right after the first line may come before the loop runs:
        # drain() then would have no loop to stop, and the loop would start
        # afterwards and serve on. So wait for it to serve first.
        _wait_until_serving(server, loop_ended)
        reports.append(server.drain(grace))

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    _FORK_RESET[:] = [(reader, writer, previous)]
    _register_fork_reset()
    thread = threading.Thread(target=watcher, name="sockserve signal watcher", daemon=True)
    thread.start()
    try:
        print(first_line, flush=True)
        if feed is not None:
            feed.start()
        server.serve_forever(poll_interval=0.5)
    finally:
        loop_ended.set()
        if feed is not None:
            feed.stop()
        # serve_forever returns once the watcher's drain() stopped the loop;
        # if it raised instead, wake the watcher so it does not outlive us.
        if thread.is_alive() and not signalled:
            try:
                os.write(writer, b"x")
            except OSError:
                pass
        thread.join(grace + 10)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _FORK_RESET.clear()
        os.close(reader)
        os.close(writer)
    print(f"sockserve serve: stopped {type(server).__name__} ({served_line(server, reports[0] if reports else None)})",
          file=sys.stderr, flush=True)
    return 0


_ENDINGS = (("completed", "completed"), ("errors", "errors"), ("disconnects", "disconnects"),
            ("timeouts", "timeouts"), ("aborted", "cut off"), ("overflows", "refused (queue full)"),
            ("rejected", "rejected by verify_request"))


def served_line(server: Any, report: Any) -> str:
    """What the last line says: the requests served over the whole run, by
    how they ended, then how the ones in flight at the stop fared."""
    stats = getattr(server, "stats", None)
    snapshot = stats.snapshot() if stats is not None else {}
    accepted = int(snapshot.get("accepted", 0))
    ends = [f"{snapshot[key]} {words}" for key, words in _ENDINGS if snapshot.get(key)]
    text = f"served {accepted} request{'' if accepted == 1 else 's'}"
    if ends:
        text += ": " + ", ".join(ends)
    if report is not None:
        if report.in_flight:
            text += (f"; {report.in_flight} in flight at the stop: {report.completed} finished "
                     f"within the grace, {report.aborted} cut off, in {report.waited:.2f} s")
        else:
            text += "; none in flight at the stop"
    return text
