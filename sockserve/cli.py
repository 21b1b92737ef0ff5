"""The command line, ``python -m sockserve`` (or the ``sockserve`` script).

Subcommands (each has ``--help``)::

    serve KIND --workload W [--host H] [--port P] [--path PATH] [--json]
    load ADDRESS [--transport T] [--workload W] [--clients N] [--rate R] ...
    compare --workload W --servers plain,threading,forking [--clients N] [--rate R]
            [--duration S] [--json PATH] [--plot PATH.png]
    trace KIND [--workload W]
    kinds

``serve`` prints one line first, before serving, that says where it serves::

    serving ThreadingTCPServer (threading, echo) on 127.0.0.1:43210 pid 4242

With ``--json`` that first line is one JSON object instead (what
:class:`sockserve.experiment.ServerProcess` reads)::

    {"serving": "ThreadingTCPServer", "kind": "threading", "transport": "tcp",
     "workload": "echo", "address": ["127.0.0.1", 43210], "pid": 4242}

``address`` is ``[host, port]`` for TCP/UDP and the socket path for Unix
kinds. SIGINT (Ctrl-C) or SIGTERM stops the server cleanly (``shutdown()``
then ``server_close()``, exit status 0); a second signal ends it at once
(status 1). Nothing else is written to stdout. Besides the thread that
serves, the process has one more (the signal watcher that calls
``shutdown()``), so a plain server shows two threads when sampled.

Bad input (an unknown kind or workload, a port in use, an address that
cannot be bound or reached) is reported as one line on stderr with exit
status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import format_address
from .kinds import is_loopback, kind_names, make_server, resolve_kind

__all__ = ["main", "build_parser", "parse_address", "parse_params"]


class CliError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# -- helpers shared by the subcommands -----------------------------------------


def parse_params(items: Sequence[str] | None) -> dict[str, float]:
    """``["delay_ms=10", "trickle_ms=2"]`` -> ``{"delay_ms": 10.0, ...}``."""
    params: dict[str, float] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--param wants NAME=NUMBER, got {item!r}")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise CliError(f"--param {name}: {value!r} is not a number") from None
    return params


def parse_address(text: str) -> tuple[str, int] | str:
    """``"127.0.0.1:8000"``, ``"[::1]:8000"`` or ``":8000"`` -> (host, port);
    anything with a ``/`` (or an existing file) is a Unix socket path."""
    if "/" in text or os.path.exists(text):
        return text
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise CliError(
            f"bad address {text!r}: use HOST:PORT (e.g. 127.0.0.1:8000) or a Unix socket path"
        )
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise CliError(f"bad address {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise CliError(f"bad address {text!r}: port must be between 1 and 65535")
    return host, port


def _check_workload(name: str, params: dict[str, float] | None = None) -> None:
    from .workloads import get_workload

    try:
        get_workload(name, **(params or {}))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _kind_info(name: str) -> Any:
    try:
        return resolve_kind(name)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _add_workload_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--workload", "-w", default=None if required else "echo", required=required,
        help="what each request does: echo, io, cpu, slow, mixed (default: echo)",
    )
    parser.add_argument(
        "--param", "-p", action="append", metavar="NAME=NUMBER",
        help="a workload parameter, e.g. delay_ms=10 (repeatable)",
    )


# -- serve -------------------------------------------------------------------


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


def cmd_serve(args: argparse.Namespace) -> int:
    info = _kind_info(args.kind)
    params = parse_params(args.param)
    _check_workload(args.workload, params)
    if not info.is_unix and not is_loopback(args.host):
        print(
            f"sockserve serve: warning: binding to {args.host} makes this server "
            "reachable from other machines; use 127.0.0.1 (the default) to keep it "
            "on this machine",
            file=sys.stderr, flush=True,
        )
    try:
        server = make_server(
            info.name, args.workload, host=args.host, port=args.port, path=args.path, **params
        )
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    with server:
        return _serve_until_signalled(server, _announce(server, info, args.workload, args.json),
                                      watch_parent=args.exit_with_parent)


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


# -- load --------------------------------------------------------------------


#: Open loop without --clients: this many requests may be in flight at once.
OPEN_LOOP_CLIENTS = 64


def _load_spec_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    mode = args.mode or ("open" if args.rate is not None else "closed")
    if mode == "open" and args.rate is None:
        raise CliError("--mode open needs --rate (requests per second)")
    if mode == "closed" and args.rate is not None:
        raise CliError("--rate sets the open loop; it cannot go with --mode closed")
    if args.rate is not None and not args.rate > 0:
        raise CliError("--rate must be positive")
    if not args.duration > 0:
        raise CliError("--duration must be positive")
    clients = args.clients
    if clients is None:
        clients = OPEN_LOOP_CLIENTS if mode == "open" else 8
    if clients < 1:
        raise CliError("--clients must be at least 1")
    if args.max_requests < 1:
        raise CliError("--max-requests must be at least 1")
    if not args.timeout > 0:
        raise CliError("--timeout must be positive")
    return {
        "workload": args.workload,
        "workload_params": parse_params(args.param),
        "mode": mode,
        "clients": clients,
        "rate": args.rate,
        "duration": args.duration,
        "max_requests": args.max_requests,
        "connection": args.connection,
        "timeout": args.timeout,
    }


def _add_load_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", "-c", type=int, default=None,
                        help="closed loop: this many clients back to back (default 8); "
                             f"open loop: most requests in flight (default {OPEN_LOOP_CLIENTS})")
    parser.add_argument("--rate", "-r", type=float, default=None,
                        help="open loop: start this many requests per second, whatever "
                             "the server does")
    parser.add_argument("--mode", choices=("closed", "open"), default=None,
                        help="closed or open loop (default: open when --rate is given)")
    parser.add_argument("--duration", "-d", type=float, default=3.0,
                        help="seconds of load, a hard bound (default 3)")
    parser.add_argument("--max-requests", type=int, default=100_000,
                        help="stop after this many requests (default 100000)")
    parser.add_argument("--connection", choices=("new", "persistent"), default="new",
                        help="a new connection per request (default) or one per client")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds one request may take (default 5)")


def _check_listening(address: tuple[str, int] | str) -> None:
    """One connection first, so a wrong address is one clear error line
    rather than thousands of refused requests."""
    import socket

    family = socket.AF_UNIX if isinstance(address, str) else (
        socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(5.0)
            probe.connect(address)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CliError(f"nothing accepts connections at {format_address(address)} ({reason})") from None


def cmd_load(args: argparse.Namespace) -> int:
    from .load import LoadSpec, LoadWorkerError, run_load

    _check_workload(args.workload, parse_params(args.param))
    address = parse_address(args.address)
    transport = args.transport
    if isinstance(address, str):
        transport = transport or "unix"
        if transport not in ("unix", "unix-dgram"):
            raise CliError(f"{address!r} is a Unix socket path; --transport must be unix or unix-dgram")
    else:
        transport = transport or "tcp"
        if transport not in ("tcp", "udp"):
            raise CliError(f"{args.address!r} is HOST:PORT; --transport must be tcp or udp")
        if not args.allow_remote and not is_loopback(address[0]):
            raise CliError(
                f"{address[0]} is not a loopback address; load is sent only to this "
                "machine unless you pass --allow-remote (and own the target)"
            )
    spec = LoadSpec(address=address, transport=transport, server_pid=args.server_pid,
                    **_load_spec_kwargs(args))
    if transport in ("tcp", "unix"):
        _check_listening(address)
    try:
        result = run_load(spec, bar=args.bar)
    except (OSError, ValueError, LoadWorkerError) as exc:
        raise CliError(str(exc)) from None
    print(result.summary())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result.to_dict(), out, indent=1)
            out.write("\n")
    return 0


# -- compare -----------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    from .experiment import ServerStartError, compare
    from .load import LoadWorkerError

    _check_workload(args.workload, parse_params(args.param))
    servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    if not servers:
        raise CliError("--servers needs at least one kind, e.g. plain,threading,forking")
    for name in servers:
        _kind_info(name)
    spec = _load_spec_kwargs(args)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CliError("--plot needs matplotlib: pip install 'sockserve[lab]'") from None

    started: list[str] = []

    def on_server(name: str) -> None:
        started.append(name)
        if not args.quiet:
            print(f"sockserve compare: [{len(started)}/{len(servers)}] {name} ...",
                  file=sys.stderr, flush=True)

    try:
        comparison = compare(
            args.workload, servers, clients=spec["clients"], rate=spec["rate"],
            duration=spec["duration"], max_requests=spec["max_requests"],
            connection=spec["connection"], workload_params=spec["workload_params"],
            timeout=spec["timeout"], on_server=on_server, bar=args.bar,
        )
    except (OSError, ValueError, ServerStartError, LoadWorkerError) as exc:
        raise CliError(str(exc)) from None
    print(comparison.table())
    if args.json:
        comparison.save(args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        from .plots import save_comparison_plot

        save_comparison_plot(comparison, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


# -- trace and kinds ---------------------------------------------------------


def cmd_trace(args: argparse.Namespace) -> int:
    info = _kind_info(args.kind)
    if info.server_class is None:
        raise CliError(f"kind {info.name!r} has no socketserver hooks to trace")
    handler: str | None = None
    payload = b"hello\n"
    if args.workload is not None:
        _check_workload(args.workload)
        from .workloads import get_workload

        handler, payload = args.workload, get_workload(args.workload).request(0)
    from .trace import trace_request

    try:
        tree = trace_request(info.server_class, handler, payload)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"{tree.server} with {tree.handler}, one request:")
    print(tree.render())
    return 0


def cmd_kinds(args: argparse.Namespace) -> int:
    for name in kind_names():
        print(f"{name:22} {resolve_kind(name).description}")
    return 0


# -- the parser --------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``sockserve`` argument parser with all subcommands."""
    parser = _Parser(
        prog="sockserve",
        description="Run, load, compare and trace socketserver-style servers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve", help="run one server until Ctrl-C or SIGTERM",
        description="Run one server. The first line on stdout says where it serves "
                    "(with --json: a JSON object with serving, kind, transport, workload, "
                    "address, pid). SIGINT/SIGTERM stop it cleanly (exit 0).",
    )
    serve.add_argument("kind", help="server kind, e.g. plain, threading, forking, "
                                    "threading-udp, forking-unix (see: sockserve kinds)")
    _add_workload_args(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    serve.add_argument("--path", default=None,
                       help="socket path for Unix kinds (default: a new temporary one)")
    serve.add_argument("--json", action="store_true",
                       help="print the first line as JSON (for programs)")
    serve.add_argument("--exit-with-parent", action="store_true",
                       help="stop when the process that started this one exits")
    serve.set_defaults(func=cmd_serve)

    load = sub.add_parser(
        "load", help="drive a running server with load and print a summary",
        description="Send requests to ADDRESS (HOST:PORT or a Unix socket path) from "
                    "a separate process and print throughput and latency.",
    )
    load.add_argument("address", help="HOST:PORT, [::1]:PORT or a Unix socket path")
    load.add_argument("--transport", "-t", choices=("tcp", "udp", "unix", "unix-dgram"),
                      default=None, help="default: tcp for HOST:PORT, unix for a path")
    _add_workload_args(load)
    _add_load_args(load)
    load.add_argument("--server-pid", type=int, default=None,
                      help="sample this process's threads and children during the run")
    load.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    load.add_argument("--bar", action=argparse.BooleanOptionalAction, default=None,
                      help="draw a progress bar (default: when stderr is a terminal)")
    load.add_argument("--allow-remote", action="store_true",
                      help="allow a target that is not this machine (only hosts you own)")
    load.set_defaults(func=cmd_load)

    comp = sub.add_parser(
        "compare", help="the same load against several server kinds, one after another",
        description="Start each server kind in its own process, drive it with the same "
                    "load, and print a table (optionally JSON and a PNG plot).",
    )
    _add_workload_args(comp)
    comp.add_argument("--servers", "-s", default="plain,threading,forking",
                      help="comma-separated kinds (default plain,threading,forking)")
    _add_load_args(comp)
    comp.add_argument("--json", metavar="PATH", help="write the comparison as JSON")
    comp.add_argument("--plot", metavar="PATH.png", help="save latency, throughput and "
                                                         "concurrency plots (needs matplotlib)")
    comp.add_argument("--bar", action=argparse.BooleanOptionalAction, default=None,
                      help="draw a progress bar (default: when stderr is a terminal)")
    comp.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    comp.set_defaults(func=cmd_compare)

    tr = sub.add_parser(
        "trace", help="print the call-flow tree of one request",
        description="Serve one request with a server of KIND and print the hooks "
                    "it called, as a tree.",
    )
    tr.add_argument("kind", help="server kind, e.g. plain, threading, forking-udp")
    tr.add_argument("--workload", "-w", default=None,
                    help="serve one request of this workload (default: a plain echo "
                         "handler, the shortest tree)")
    tr.set_defaults(func=cmd_trace)

    kinds = sub.add_parser("kinds", help="list the server kinds",
                           description="List the server kinds and what they are.")
    kinds.set_defaults(func=cmd_kinds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    prog = f"sockserve {command}".strip()
    try:
        args = parser.parse_args(argv)
        status: int = args.func(args)
        return status
    except CliError as exc:
        message = str(exc)
        if not message.startswith("sockserve"):
            message = f"{prog}: error: {message}"
        print(message, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return 0
