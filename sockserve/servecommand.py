"""The ``serve`` subcommand of :mod:`sockserve.cli`: one server in the
foreground until SIGINT or SIGTERM.

Every argument is checked before anything binds: the kind and workload, the
port range, the host (one that does not resolve is said first, before any
warning about where it is), and that ``--path`` goes with Unix kinds and
``--host``/``--port`` with TCP/UDP ones.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import signal
import sys
import threading
from typing import Any

from .cliargs import CliError, check_port, check_workload, kind_info, parse_params, resolve_host
from .errors import format_address
from .kinds import kind_names, make_server

__all__ = ["cmd_serve"]


def _unix_sibling(name: str) -> str | None:
    """The Unix kind that matches TCP/UDP kind *name* (threading-udp -> threading-unix-dgram)."""
    base, _, rest = name.partition("-")
    candidate = f"{base}-unix-dgram" if rest == "udp" else f"{base}-unix"
    return candidate if candidate in kind_names() else None


def cmd_serve(args: argparse.Namespace) -> int:
    info = kind_info(args.kind)
    params = parse_params(args.param)
    check_workload(args.workload, params)
    host = "127.0.0.1" if args.host is None else args.host
    port = 0 if args.port is None else args.port
    if info.is_unix:
        if args.host is not None or args.port is not None:
            flag = "--host" if args.host is not None else "--port"
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
        if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
            print(
                f"sockserve serve: warning: binding to {host} makes this server "
                "reachable from other machines; use 127.0.0.1 (the default) to keep it "
                "on this machine",
                file=sys.stderr, flush=True,
            )
    try:
        server = make_server(info.name, args.workload, host=host, port=port, path=args.path, **params)
    except (OSError, ValueError, OverflowError) as exc:
        raise CliError(str(exc)) from None
    with server:
        return _serve_until_signalled(server, _announce(server, info, args.workload, args.json),
                                      watch_parent=args.exit_with_parent)


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
    """In a forked handler child: SIGINT/SIGTERM act as usual again (they
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


def _serve_until_signalled(server: Any, first_line: str, watch_parent: bool) -> int:
    """Serve in this (main) thread until SIGINT/SIGTERM; exit status.

    The signal handler only writes a byte to a pipe (async-signal-safe, takes
    no lock); a watcher thread reads it and calls ``server.shutdown()`` from
    outside the loop, which is the documented way to stop it.
    """
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    signalled: list[int] = []
    parent = os.getppid()

    def on_signal(signum: int, frame: Any) -> None:
        signalled.append(signum)
        if len(signalled) > 1:
            os.write(2, b"sockserve serve: second signal, stopping at once\n")
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
        while True:
            ready, _, _ = select.select([reader], [], [], 0.25)
            if ready:
                break
            if watch_parent and os.getppid() != parent:
                break  # the process that started us is gone: do not outlive it
        server.shutdown()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    _FORK_RESET[:] = [(reader, writer, previous)]
    _register_fork_reset()
    thread = threading.Thread(target=watcher, name="sockserve signal watcher", daemon=True)
    thread.start()
    try:
        print(first_line, flush=True)
        server.serve_forever(poll_interval=0.5)
    finally:
        # serve_forever only returns once the watcher called shutdown(); if it
        # raised instead, wake the watcher so it does not outlive us.
        try:
            os.write(writer, b"x")
        except OSError:
            pass
        thread.join(5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _FORK_RESET.clear()
        os.close(reader)
        os.close(writer)
    print(f"sockserve serve: stopped {type(server).__name__}", file=sys.stderr, flush=True)
    return 0
