"""The ``load`` and ``compare`` subcommands of :mod:`sockserve.cli.main`.

Before any load is sent, every argument is checked (:mod:`sockserve.cli.args`)
and the target is probed once, so a wrong address or transport is one line
with a hint (``-t udp`` when only a UDP socket is bound there) instead of
thousands of refused requests. After the run, a load in which no request got a
reply, or whose server stopped listening during the run, exits with status 1
and one line saying why. Ctrl-C stops the run early: what was measured so far
is printed and saved (``--json``, ``--plot``) marked incomplete, and the exit
status is 130.

Bounds: every run ends after ``--duration`` seconds (requests in flight then
get at most a quarter of a second more, see :mod:`sockserve.load`) or
``--max-requests`` requests. With
``--allow-remote`` (a target beyond this machine) the bounds are tighter:
see :data:`REMOTE_LIMITS`.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .args import (
    MAX_SECONDS,
    CliError,
    check_output,
    check_plot_output,
    check_workload,
    kind_info,
    number,
    parse_address,
    parse_params,
    resolve_host,
    resolve_workload,
)
from ..core.errors import format_address
from ..load.data import LoadSpec
from ..load.runner import LoadRun, LoadWorkerError
from ..measure.results import PARTIAL_MARK

__all__ = ["OPEN_LOOP_CLIENTS", "REMOTE_LIMITS", "REMOTE_HELP", "add_load_args", "add_compare_args", "cmd_load",
           "cmd_compare"]

#: Open loop without --clients: this many requests may be in flight at once.
OPEN_LOOP_CLIENTS = 64

#: The largest values the numeric flags take (each a thread, a rate or a
#: count the load generator can hold; more is a typo, not a load).
MOST = {"clients": 10_000, "rate": 1_000_000.0, "max_requests": 1_000_000_000}

#: With --allow-remote the load leaves this machine: it may go only to hosts
#: the user owns, and is held to these bounds (loopback runs keep the
#: defaults' wider ranges).
REMOTE_LIMITS = {"clients": 64, "rate": 1000.0, "duration": 60.0, "max_requests": 100_000}
REMOTE_HELP = (
    "allow a target that is not this machine (only hosts you own); the load is then bounded: at most "
    f"{REMOTE_LIMITS['clients']} clients, {REMOTE_LIMITS['rate']:g} requests/s, "
    f"{REMOTE_LIMITS['duration']:g} s and {REMOTE_LIMITS['max_requests']} requests"
)


def add_load_args(parser: argparse.ArgumentParser) -> None:
    """The options ``load`` and ``compare`` share."""
    parser.add_argument("--clients", "-c", type=number(int, MOST["clients"], "clients"), default=None,
                        help="closed loop: this many clients back to back (default 8); "
                             f"open loop: most requests in flight (default {OPEN_LOOP_CLIENTS})")
    parser.add_argument("--rate", "-r", type=number(float, MOST["rate"], "requests per second"), default=None,
                        help="open loop: start this many requests per second, whatever "
                             "the server does")
    parser.add_argument("--mode", choices=("closed", "open"), default=None,
                        help="closed or open loop (default: open when --rate is given)")
    parser.add_argument("--duration", "-d", type=number(float, MAX_SECONDS, "seconds"), default=3.0,
                        help="seconds of load (default 3), a hard bound: requests still in flight "
                             "then get a quarter of a second more and count as timeouts")
    parser.add_argument("--max-requests", type=number(int, MOST["max_requests"], "requests"), default=100_000,
                        help="stop after this many requests (default 100000)")
    parser.add_argument("--connection", choices=("new", "persistent"), default="new",
                        help="a new connection per request (default) or one per client")
    parser.add_argument("--timeout", type=number(float, MAX_SECONDS, "seconds"), default=5.0,
                        help="seconds one request may take (default 5)")


def load_spec_kwargs(args: argparse.Namespace, remote: bool = False) -> dict[str, Any]:
    """The checked LoadSpec fields from the shared options (CliError when bad)."""
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
    if remote:
        _check_remote_limits(clients, args.rate, args.duration, args.max_requests)
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


def _check_remote_limits(clients: int, rate: float | None, duration: float, max_requests: int) -> None:
    r = REMOTE_LIMITS
    for flag, value, most in (("--clients", clients, r["clients"]), ("--rate", rate, r["rate"]),
                              ("--duration", duration, r["duration"]),
                              ("--max-requests", max_requests, r["max_requests"])):
        if value is not None and value > most:
            raise CliError(f"{flag} {value:g} is above the bound for --allow-remote ({most:g}); "
                           "a load beyond this machine is kept small")


# -- probing the target --------------------------------------------------------


def _all_loopback(addresses: list[str]) -> bool:
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def _stream_accepts(address: tuple[str, int] | str) -> OSError | None:
    """None when a stream connection to *address* succeeds, else the error."""
    family = socket.AF_UNIX if isinstance(address, str) else (
        socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(5.0)
            probe.connect(address)
    except OSError as exc:
        return exc
    return None


def _udp_port_bound(address: tuple[str, int]) -> bool | None:
    """Is a UDP socket bound to this local *address*? None when we cannot tell
    (not an address of this machine, or a port we may not bind)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind(address)
    except OSError as exc:
        return True if exc.errno == errno.EADDRINUSE else None
    return False


def probe_target(address: tuple[str, int] | str, transport: str, local: bool) -> None:
    """CliError (with a hint) when nothing of *transport* is at *address*."""
    where = format_address(address)
    if transport in ("tcp", "unix"):
        failure = _stream_accepts(address)
        if failure is None:
            return
        reason = failure.strerror or type(failure).__name__
        hint = ""
        if transport == "tcp" and isinstance(address, tuple) and local and _udp_port_bound(address):
            hint = "; a UDP socket is bound there: add -t udp"
        if transport == "unix" and failure.errno == errno.EPROTOTYPE:
            reason, hint = "it is a datagram socket", "; add -t unix-dgram"
        raise CliError(f"nothing accepts connections at {where} ({reason}){hint}")
    if transport == "udp":
        assert isinstance(address, tuple)
        bound = _udp_port_bound(address) if local else None
        if bound is False:
            hint = "; a TCP server listens there: leave out -t udp" if _stream_accepts(address) is None else ""
            raise CliError(f"nothing is bound to UDP {where}{hint}")
        return
    assert isinstance(address, str)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
    except OSError as exc:
        if exc.errno == errno.EPROTOTYPE:
            raise CliError(f"{where} is a stream socket: use -t unix (the default for a path)") from None
        raise CliError(f"nothing is bound at {where} ({exc.strerror or type(exc).__name__})") from None


def _still_there(address: tuple[str, int] | str, transport: str, local: bool) -> bool:
    if transport in ("tcp", "unix"):
        return _stream_accepts(address) is None
    if transport == "udp":
        assert isinstance(address, tuple)
        return (_udp_port_bound(address) if local else None) is not False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            assert isinstance(address, str)
            probe.connect(address)
    except OSError:
        return False
    return True


_WHY = {
    "refused": "nothing listens there",
    "reset": "the server closed every connection before replying",
    "timeout": "no reply came within --timeout",
    "error": "every request failed",
}


def verdict(result: Any, address: tuple[str, int] | str, transport: str, local: bool) -> str | None:
    """Why this run failed (one line), or None when it got replies and its
    server is still there."""
    outcomes = result.outcomes
    counts = ", ".join(f"{n} {name}" for name, n in outcomes.items() if n and name != "ok")
    if not result.requests and not result.cancelled:
        spec = result.spec
        return (f"no request was sent: {spec.clients} clients did not get going within {spec.duration:g} s "
                "(use fewer --clients or a longer --duration)")
    if result.requests and not result.ok:
        worst = max((n, name) for name, n in outcomes.items() if name != "ok")[1]
        example = result.examples.get(worst)
        return (f"no request got a reply ({counts}): {_WHY.get(worst, worst)}"
                + (f" (first: {example})" if example else ""))
    if outcomes.get("refused", 0) and not _still_there(address, transport, local):
        return (f"the server stopped during the run: {outcomes['refused']} requests refused, "
                f"and nothing is at {format_address(address)} any more")
    return None


# -- running with Ctrl-C -----------------------------------------------------------


def _wait_interruptibly(done: threading.Event, on_interrupt: Any) -> bool:
    """Wait for *done*; on Ctrl-C call *on_interrupt* once and keep waiting.
    True when interrupted."""
    interrupted = False
    while True:
        try:
            while not done.wait(0.2):
                pass
            return interrupted
        except KeyboardInterrupt:
            if interrupted:
                raise  # a second Ctrl-C: give up on the partial result
            interrupted = True
            print("sockserve: interrupted, stopping the run and keeping what was measured "
                  "(Ctrl-C again to abandon it)", file=sys.stderr, flush=True)
            on_interrupt()


T = TypeVar("T")


def _in_background(work: Callable[[], T], name: str, on_interrupt: Callable[[], object],
                   expected: tuple[type[BaseException], ...]) -> tuple[T, bool]:
    """Run *work* in a daemon thread called *name* while this (main) thread
    waits, so that Ctrl-C reaches it (see :func:`_wait_interruptibly`).
    Returns what *work* returned and whether it was interrupted. What *work*
    raised is raised here, in the main thread: an *expected* kind as a
    one-line :class:`CliError`."""
    finished = threading.Event()
    returned: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            returned.append(work())
        except BaseException as exc:  # reported below, in the main thread
            failure.append(exc)
        finally:
            finished.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    interrupted = _wait_interruptibly(finished, on_interrupt)
    if failure:
        if isinstance(failure[0], expected):
            raise CliError(str(failure[0])) from None
        raise failure[0]
    return returned[0], interrupted


def _write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1)
        out.write("\n")


# -- load --------------------------------------------------------------------


def cmd_load(args: argparse.Namespace) -> int:
    check_workload(args.workload, parse_params(args.param))
    address = parse_address(args.address)
    transport = args.transport
    local = True
    if isinstance(address, str):
        transport = transport or "unix"
        if transport not in ("unix", "unix-dgram"):
            raise CliError(f"{address!r} is a Unix socket path; --transport must be unix or unix-dgram")
    else:
        transport = transport or "tcp"
        if transport not in ("tcp", "udp"):
            raise CliError(f"{args.address!r} is HOST:PORT; --transport must be tcp or udp")
        local = _all_loopback(resolve_host(address[0], f"{address[0]!r} in {args.address}"))
        if not local and not args.allow_remote:
            raise CliError(
                f"{address[0]} is not a loopback address; load is sent only to this "
                "machine unless you pass --allow-remote (and own the target)"
            )
    kwargs = load_spec_kwargs(args, remote=not local)
    if args.json:
        check_output(args.json, "--json")
    if args.server_pid is not None:
        _check_pid(args.server_pid)
    try:
        spec = LoadSpec(address=address, transport=transport, server_pid=args.server_pid, **kwargs)
    except ValueError as bad:
        raise CliError(str(bad)) from None
    probe_target(address, transport, local)
    run = LoadRun(spec, bar=_bar(args.bar))
    result, interrupted = _in_background(run.run, "sockserve-load-follow", run.cancel,
                                         (OSError, ValueError, LoadWorkerError))
    print(result.summary())
    if interrupted:
        print(f"incomplete: interrupted (Ctrl-C) after {result.elapsed:.2f} s of {spec.duration:g} s")
    if args.json:
        data = result.to_dict()
        data["incomplete"] = interrupted
        _write_json(args.json, data)
        print(f"wrote {args.json}", file=sys.stderr)
    if interrupted:
        return 130
    why = verdict(result, address, transport, local)
    if why is not None:
        print(f"sockserve load: error: {why}", file=sys.stderr)
        return 1
    return 0


def _bar(choice: bool | None) -> bool:
    if choice is None:
        return sys.stderr is not None and sys.stderr.isatty()
    return choice


def _check_pid(pid: int) -> None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise CliError(f"--server-pid {pid}: no such process") from None
    except PermissionError:
        pass  # it exists (another user's); sampling /proc may still work
    except (OverflowError, ValueError):
        raise CliError(f"--server-pid {pid}: not a process id") from None


# -- compare -----------------------------------------------------------------


def add_compare_args(parser: argparse.ArgumentParser) -> None:
    """The options of ``compare`` beyond the load's."""
    parser.add_argument("--rounds", type=int, default=None,
                        help="split each server's --duration into this many rounds, run in turn "
                             "with the other servers' (A B C A B C ...; default: rounds of at least "
                             "0.25 s, at most 5)")


def cmd_compare(args: argparse.Namespace) -> int:
    # Imported here: the comparison machinery (about 8 ms) is not for serve, load or trace.
    from ..measure.experiment import Comparison, ServerStartError, compare, default_rounds

    servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    if not servers:
        raise CliError("--servers needs at least one kind, e.g. plain,threading,forking")
    kinds = [kind_info(name) for name in servers]
    servers = [info.name for info in kinds]
    spec = load_spec_kwargs(args)
    if args.json:
        check_output(args.json, "--json")
    if args.plot:
        check_plot_output(args.plot)
    if args.rounds is not None and args.rounds < 1:
        raise CliError("--rounds must be at least 1")
    rounds = args.rounds or default_rounds(spec["duration"])
    work = resolve_workload(args.workload, spec["workload_params"], fixed=True)

    started: list[str] = []

    def on_server(name: str) -> None:
        started.append(name)
        if not args.quiet:
            step, of = len(started), len(servers) * rounds
            print(f"sockserve compare: [{step}/{of}] {name} (round {(step - 1) // len(servers) + 1} "
                  f"of {rounds}) ...", file=sys.stderr, flush=True)

    stop = threading.Event()

    def run_comparison() -> Comparison:
        return compare(
            work, kinds, clients=spec["clients"], rate=spec["rate"],
            duration=spec["duration"], max_requests=spec["max_requests"],
            connection=spec["connection"], timeout=spec["timeout"], rounds=rounds,
            on_server=on_server, bar=_bar(args.bar), stop=stop,
        )

    comparison, interrupted = _in_background(run_comparison, "sockserve-compare", stop.set,
                                             (OSError, ValueError, ServerStartError, LoadWorkerError))
    if comparison.runs:
        print(comparison.table())
    if interrupted:
        ran = [run.server for run in comparison.runs]
        print(f"incomplete: interrupted (Ctrl-C); measured {', '.join(ran) or 'nothing'} "
              f"of {', '.join(servers)} (marked {PARTIAL_MARK}: cut short)")
    if args.json and comparison.runs:
        data = comparison.to_dict()
        data["incomplete"] = interrupted
        _write_json(args.json, data)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot and comparison.runs:
        from ..plots.comparison import save_comparison_plot  # with --plot only, as compare's machinery above

        save_comparison_plot(comparison, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    if interrupted:
        return 130
    silent = [run.server for run in comparison.runs if run.requests and run.requests == run.errors]
    if silent:
        print(f"sockserve compare: error: no request got a reply from {', '.join(silent)}", file=sys.stderr)
        return 1
    return 0
