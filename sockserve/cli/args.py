"""The command line's argument checks: each bad value becomes one
:class:`CliError` line before any work starts.

What is checked here (and used by :mod:`sockserve.cli.main`): ports in range,
hosts that resolve (said first, before any remark about where the address
is), addresses (``HOST:PORT`` or a Unix socket path), ``NAME=NUMBER``
parameters, output files for ``--json``/``--plot`` (the folder exists and is
writable, the format is known), kinds and workloads. Standard library only;
matplotlib is asked for its formats only when a plot is wanted.

Every numeric flag parses through :func:`number`, so ``inf``, ``nan`` and
absurdly large values are one line (argparse's own usage error, exit 2) for
every flag of every subcommand, before any other check runs.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..load.protocol import workload_values
from ..measure.kinds import resolve_kind
from ..measure.workloads import fixed_work, get_workload

__all__ = [
    "CliError",
    "Parser",
    "check_port",
    "resolve_host",
    "parse_address",
    "parse_params",
    "check_output",
    "check_plot_output",
    "check_workload",
    "resolve_workload",
    "kind_info",
    "number",
    "MAX_SECONDS",
    "is_local_address",
]

#: The most seconds any duration flag takes (a day): beyond it, values only
#: overflow the clocks and timers they are handed to.
MAX_SECONDS = 86_400.0


class CliError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def add_command(sub: Any, name: str, run: Callable[[argparse.Namespace], int], summary: str,
                description: str) -> argparse.ArgumentParser:
    """Add the subcommand *name* to *sub* (what ``add_subparsers`` returned):
    ``run(args)`` carries it out and returns the exit status; *summary* is its
    line in the list of commands, *description* the top of its ``--help``.
    Returns its parser, for its arguments."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=description)
    parser.set_defaults(func=run)
    return parser


def number(kind: type, most: float, unit: str) -> Any:
    """An argparse ``type`` for a flag that takes a *kind* (int or float)
    of at most *most* (in absolute value) *unit*: anything else (not a
    number, ``inf``, ``nan``, a huge value) is a one-line usage error.
    Lower bounds (positive, at least 1) are each command's own check."""
    whole = kind is int

    def parse(text: str) -> Any:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            what = "a whole number" if whole else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} of {unit}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"{text} is not a finite number; give {unit} up to {most:g}")
        if abs(value) > most:
            raise argparse.ArgumentTypeError(f"{text} is too large: at most {most:g} {unit}")
        return value

    parse.__name__ = unit
    return parse


def is_local_address(address: str) -> bool | None:
    """Does this machine have *address* (so that a server can bind it)?
    Asked by binding a throwaway UDP socket to it (port 0, nothing sent);
    None when the bind fails for another reason."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError as exc:
        return False if exc.errno == errno.EADDRNOTAVAIL else None
    return True


def check_port(port: int, flag: str, *, allow_zero: bool = True) -> int:
    """*port* if it is a TCP/UDP port number (0 = "any free one" when allowed)."""
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        free = " (0 picks a free one)" if allow_zero else ""
        raise CliError(f"{flag} {port} is out of range: a port is {low} to 65535{free}")
    return port


def resolve_host(host: str, what: str) -> list[str]:
    """The addresses *host* names; CliError when it is empty or does not
    resolve. *what* names it in the message (``"--host 'x'"``)."""
    if not host.strip():
        raise CliError(f"{what} is empty: give an address such as 127.0.0.1 (this machine only)")
    try:
        found = socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CliError(f"cannot resolve {what}: {reason}") from None
    return sorted({str(addr[4][0]) for addr in found})


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


def check_output(path: str, flag: str) -> str:
    """*path* if a file can be written there (its folder exists, we may write
    in it, it is not a folder): tried by opening it for appending, so nothing
    that exists is changed, and a file made for the try is removed again."""
    if not path:
        raise CliError(f"{flag} needs a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"{flag} {path} is a folder; give a file name")
    if not os.path.isdir(folder):
        raise CliError(f"{flag} {path}: the folder {folder} does not exist")
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            # The folder exists (checked above), yet no file can be made in
            # it: a file system such as /proc or /sys that holds no files of ours.
            raise CliError(f"{flag} {path}: the folder {folder} does not take new files "
                           "(a system folder such as /proc); choose another folder") from None
        raise CliError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    if not existed:
        os.unlink(path)
    return path


def check_plot_output(path: str, flag: str = "--plot") -> str:
    """:func:`check_output`, plus a file format matplotlib can write."""
    check_output(path, flag)
    try:
        from matplotlib.backend_bases import FigureCanvasBase  # matplotlib is optional: imported on use
    except ImportError:
        raise CliError(f"{flag} needs matplotlib: pip install 'sockserve[lab]'") from None
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if not extension:
        raise CliError(f"{flag} {path}: the file name has no extension, which chooses the image "
                       f"format; add one of .{', .'.join(formats)} (e.g. {path}.png)")
    if extension not in formats:
        raise CliError(f"{flag} {path}: .{extension} is not an image format matplotlib writes; "
                       f"use one of .{', .'.join(formats)}")
    return path


def check_workload(name: str, params: dict[str, float] | None = None) -> dict[str, float]:
    """The values in effect for workload *name* with *params* (the wire
    protocol's check: no handler is built, nothing calibrated), or CliError."""
    try:
        return workload_values(name, params or {})
    except ValueError as exc:
        raise CliError(str(exc)) from None


def resolve_workload(name: str, params: dict[str, float] | None = None, *, fixed: bool = False) -> Any:
    """The :class:`~sockserve.measure.workloads.Workload` *name* with *params*,
    resolved once for the whole command (CliError when bad). With *fixed*,
    this process's cpu calibration is handed in
    (:func:`~sockserve.measure.workloads.fixed_work`), as a comparison does."""
    try:
        return fixed_work(name, params) if fixed else get_workload(name, **(params or {}))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def kind_info(name: str) -> Any:
    """The kind's description (see :func:`sockserve.measure.kinds.resolve_kind`), or CliError."""
    try:
        return resolve_kind(name)
    except ValueError as exc:
        raise CliError(str(exc)) from None
