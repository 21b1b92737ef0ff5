"""The command line, ``python -m sockserve`` (or the ``sockserve`` script).

Subcommands (each has ``--help``)::

    serve KIND --workload W [--host H] [--port P] [--path PATH] [--json]
    load ADDRESS [--transport T] [--workload W] [--clients N] [--rate R] ...
    compare --workload W --servers plain,threading,forking [--clients N] [--rate R]
            [--duration S] [--json PATH] [--plot PATH.png]
    trace KIND [--workload W]
    kinds
    lab [--dir DIR] [--solutions] [--port P] [--no-browser] [-- JUPYTER ARGS]
    teach course FOLDER [--lessons L1,L2] | teach progress FOLDER [--csv PATH]

``serve`` prints one line first, before serving, that says where it serves::

    serving ThreadingTCPServer (threading, echo) on 127.0.0.1:43210 pid 4242

With ``--json`` that first line is one JSON object instead (what
:class:`sockserve.measure.experiment.ServerProcess` reads)::

    {"serving": "ThreadingTCPServer", "kind": "threading", "transport": "tcp",
     "workload": "echo", "address": ["127.0.0.1", 43210], "pid": 4242}

``address`` is ``[host, port]`` for TCP/UDP and the socket path for Unix
kinds. SIGINT (Ctrl-C), SIGTERM or SIGHUP stops the server at once, whatever its clients
do: it stops accepting, gives requests in flight ``--grace`` seconds (1 by
default), cuts off the rest (``drain()``), closes (no child, worker, socket
file or temporary folder is left) and exits 0; the port can be bound again
at once. A second signal kills what is left and exits 1. Nothing else is written to stdout. Besides the thread that
serves, the process has one more (the signal watcher that calls
``shutdown()``), so a plain server shows two threads when sampled.

Bad input (an unknown kind or workload, a port out of range or in use, a
host that does not resolve, an address that cannot be bound or reached, an
output file that cannot be written) is reported as one line on stderr with
exit status 2, before any work starts, never as a traceback. A load or
comparison that ran but got no reply (or whose server died) exits 1 with one
line saying why; Ctrl-C during one prints and saves what was measured, marked
incomplete, and exits 130. The subcommands live in :mod:`.servecommand`,
:mod:`.loadcommand` and :mod:`.launch` (``lab``); the argument checks in
:mod:`.cliargs`.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from .args import (
    MAX_SECONDS,
    CliError,
    Parser,
    add_command,
    check_port,
    check_workload,
    kind_info,
    number,
    parse_address,
    parse_params,
)
from ..load.protocol import request_line
from ..measure.kinds import kind_names, resolve_kind
from .load import OPEN_LOOP_CLIENTS, REMOTE_HELP, add_compare_args, add_load_args, cmd_compare, cmd_load
from .serve import GRACE, REQUEST_TIMEOUT, REQUEST_TIMEOUT_HELP, add_report_args, add_timeline_args, cmd_serve
from .teach import add_teach_parser

__all__ = ["main", "build_parser", "parse_address", "parse_params", "CliError", "OPEN_LOOP_CLIENTS"]


def _add_workload_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--workload", "-w", default=None if required else "echo", required=required,
        help="what each request does: echo, io, cpu, slow, mixed (default: echo)",
    )
    parser.add_argument(
        "--param", "-p", action="append", metavar="NAME=NUMBER",
        help="a workload parameter, e.g. delay_ms=10 (repeatable)",
    )


# -- trace and kinds ---------------------------------------------------------


def cmd_trace(args: argparse.Namespace) -> int:
    info = kind_info(args.kind)
    if info.server_class is None:
        raise CliError(f"kind {info.name!r} has no socketserver hooks to trace")
    handler: str | None = None
    payload = b"hello\n"
    if args.workload is not None:
        handler, payload = args.workload, request_line(args.workload, check_workload(args.workload), 0)
    from ..measure.trace import trace_request  # only trace needs it (about 5 ms of every command's start)

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


# -- lab -----------------------------------------------------------------------


def cmd_lab(args: argparse.Namespace) -> int:
    """Open JupyterLab on the workbook (see :mod:`sockserve.workbook.launch`); replaces this process."""
    from ..workbook import launch  # only lab needs the workbook (about 10 ms of every command's start)

    if args.port is not None:
        check_port(args.port, "--port", allow_zero=False)
        _check_port_free(args.port)
    missing = launch.missing_lab_modules()
    if missing:
        raise CliError(f"the lab needs the lab extra ({', '.join(missing)} not installed here); "
                       f"install it with: {launch.install_command()}")
    clone = launch.clone_workbook()
    if clone is not None and args.dir is None:
        folder = clone
        _say(f"opening the workbook of this clone, {folder} (its solutions/ included; for a student's copy "
             "without them: sockserve lab --dir FOLDER)")
    else:
        source = launch.shipped_workbook() or clone
        if source is None:
            raise CliError("this installation has no workbook (sockserve/notebooks is missing); "
                           f"reinstall it: {launch.install_command()}")
        folder = Path(args.dir or launch.DEFAULT_FOLDER).expanduser().resolve()
        try:
            report = launch.copy_workbook(source, folder, solutions=args.solutions)
        except OSError as exc:
            raise CliError(f"cannot copy the workbook into {folder}: {exc.strerror or exc}") from None
        for line in report.lines():
            _say(line)
    is_root = os.geteuid() == 0
    if is_root:
        _say("running as root, so passing --allow-root to JupyterLab (it refuses to start as root "
             "otherwise); it listens on 127.0.0.1 only")
    argv = launch.jupyter_command(folder, port=args.port, no_browser=args.no_browser,
                                  extra=list(args.jupyter_args), is_root=is_root)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
    return 0  # not reached


def _check_port_free(port: int) -> None:
    """CliError, before anything is copied, when JupyterLab could not bind
    127.0.0.1:*port* (it sets SO_REUSEADDR too, so TIME_WAIT is no obstacle)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(f"--port {port} is in use on 127.0.0.1 (another JupyterLab?); choose "
                               "another, or leave --port out to take the next free one") from None
            raise CliError(f"--port {port}: cannot listen there ({exc.strerror or exc})") from None


def _say(line: str) -> None:
    print(f"sockserve lab: {line}", file=sys.stderr, flush=True)


# -- the parser --------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``sockserve`` argument parser with all subcommands."""
    parser = Parser(
        prog="sockserve",
        description="Run, load, compare and trace socketserver-style servers.",
    )
    parser.add_argument("--version", action="version", version=f"sockserve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = add_command(
        sub, "serve", cmd_serve, "run one server until Ctrl-C, SIGTERM or SIGHUP",
        "Run one server. The first line on stdout says where it serves (with --json: a JSON object with "
        "serving, kind, transport, workload, address, pid). SIGINT, SIGTERM or SIGHUP (its terminal closed) "
        "stop it cleanly (exit 0); its last line on stderr says how many requests it served.")
    serve.add_argument("kind", help="server kind, e.g. plain, threading, forking, "
                                    "threading-udp, forking-unix (see: sockserve kinds)")
    _add_workload_args(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="TCP/UDP kinds: address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=0,
                       help="TCP/UDP kinds: port, 0 to 65535 (default 0: a free one)")
    serve.add_argument("--path", default=None,
                       help="Unix kinds: socket path (default: a new temporary one)")
    serve.add_argument("--json", action="store_true",
                       help="print the first line as JSON (for programs)")
    serve.add_argument("--grace", type=number(float, MAX_SECONDS, "seconds"), default=GRACE, metavar="SECONDS",
                       help="on SIGINT/SIGTERM, requests in flight get this long to finish before they "
                            f"are cut off (default {GRACE:g})")
    serve.add_argument("--request-timeout", type=number(float, MAX_SECONDS, "seconds"), default=REQUEST_TIMEOUT,
                       metavar="SECONDS", help=REQUEST_TIMEOUT_HELP)
    serve.add_argument("--exit-with-parent", action="store_true",
                       help="stop when the process that started this one exits")
    add_report_args(serve)
    add_timeline_args(serve)

    load = add_command(
        sub, "load", cmd_load, "drive a running server with load and print a summary",
        "Send requests to ADDRESS (HOST:PORT or a Unix socket path) from a separate process and print "
        "throughput and latency.")
    load.add_argument("address", help="HOST:PORT, [::1]:PORT or a Unix socket path")
    load.add_argument("--transport", "-t", choices=("tcp", "udp", "unix", "unix-dgram"),
                      default=None, help="default: tcp for HOST:PORT, unix for a path")
    _add_workload_args(load)
    add_load_args(load)
    load.add_argument("--server-pid", type=int, default=None,
                      help="sample this process's threads and children during the run")
    load.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    load.add_argument("--bar", action=argparse.BooleanOptionalAction, default=None,
                      help="draw a progress bar (default: when stderr is a terminal)")
    load.add_argument("--allow-remote", action="store_true", help=REMOTE_HELP)

    comp = add_command(
        sub, "compare", cmd_compare, "the same load against several server kinds, in interleaved rounds",
        "Start each server kind in its own process, drive them with the same load in interleaved rounds, "
        "and print a table (optionally JSON and a PNG plot).")
    _add_workload_args(comp)
    comp.add_argument("--servers", "-s", default="plain,threading,forking",
                      help="comma-separated kinds (default plain,threading,forking)")
    add_load_args(comp)
    add_compare_args(comp)
    comp.add_argument("--json", metavar="PATH", help="write the comparison as JSON")
    comp.add_argument("--plot", metavar="PATH.png", help="save latency, throughput and "
                                                         "concurrency plots (needs matplotlib)")
    comp.add_argument("--bar", action=argparse.BooleanOptionalAction, default=None,
                      help="draw a progress bar (default: when stderr is a terminal)")
    comp.add_argument("--quiet", "-q", action="store_true", help="no progress lines")

    tr = add_command(sub, "trace", cmd_trace, "print the call-flow tree of one request",
                     "Serve one request with a server of KIND and print the hooks it called, as a tree.")
    tr.add_argument("kind", help="server kind, e.g. plain, threading, forking-udp")
    tr.add_argument("--workload", "-w", default=None,
                    help="serve one request of this workload (default: a plain echo "
                         "handler, the shortest tree)")

    add_command(sub, "kinds", cmd_kinds, "list the server kinds", "List the server kinds and what they are.")

    lab = add_command(
        sub, "lab", cmd_lab, "open JupyterLab on the workbook (needs the lab extra)",
        "Open JupyterLab on the workbook's index, bound to 127.0.0.1. From a clone it opens notebooks/; "
        "installed from a wheel (or with --dir) it first copies the lessons and the teacher's guide into "
        "--dir, without the reference solutions unless --solutions is given (never overwriting a file you "
        "changed), and opens that copy. Arguments after -- go to jupyter lab.")
    lab.add_argument("--dir", default=None, metavar="FOLDER",
                     help="copy the workbook here and open it (default when installed: "
                          "./sockserve-workbook; from a clone: the clone's notebooks/ itself)")
    lab.add_argument("--port", type=int, default=None,
                     help="port for JupyterLab (default: 8888 or the next free one)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser; print the URL")
    lab.add_argument("--solutions", action="store_true",
                     help="for a teacher: copy the reference solutions too, into solutions/ (a student's copy "
                          "has none)")
    lab.add_argument("jupyter_args", nargs="*", metavar="JUPYTER_ARGS",
                     help="after --: further arguments for jupyter lab")
    add_teach_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    prog = f"sockserve {command}".strip()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            # Blame the subcommand whose flags these are not (argparse blames
            # the top-level command, whose --help does not list them).
            sub = f"sockserve {args.command}"
            raise CliError(f"{sub}: error: unrecognized arguments: {' '.join(unknown)} "
                           f"(see {sub} --help)")
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
