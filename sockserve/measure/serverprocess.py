"""One server in its own process, for experiments.

:class:`ServerProcess` runs one server (``python -m sockserve serve KIND
--json ...``) in a child process and knows its PID and address; it is what
:func:`sockserve.measure.experiment.compare` starts for each server kind.

Resource handling: a :class:`ServerProcess` is always stopped, by PID, when
``stop()`` is called, when its ``with`` block ends, when the object is
garbage collected, or when the interpreter exits; the server itself also
exits if the process that started it dies (``--exit-with-parent``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from typing import IO, Any

from ..core.timeline import Timeline
from .kinds import KindInfo, resolve_kind
from .serverfeed import FeedLine, parse_feed
from .workloads import Workload, fixed_work

__all__ = ["ServerProcess", "ServerStartError", "child_environment"]


def _package_parent() -> str:
    """The directory that holds this sockserve package: a source tree's
    root, or site-packages. As many levels above this file as its module
    name has parts (sockserve.measure.serverprocess: three), so it stays
    right wherever the module moves inside the package."""
    path = os.path.abspath(__file__)
    for _ in __name__.split("."):
        path = os.path.dirname(path)
    return path


def child_environment() -> dict[str, str]:
    """This process's environment with the directory that holds this
    sockserve package first on ``PYTHONPATH``: a child Python started with
    it imports this very sockserve, whether it is installed (a wheel, an
    editable install) or only a source tree on this process's path, and
    whatever the child's working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_parent(), env.get("PYTHONPATH", "")) if p)
    return env


class ServerStartError(RuntimeError):
    """The server process did not start serving; the message says why (its
    last line on stderr: a port in use, an unknown kind, ...)."""


def _terminate(popen: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Stop *popen* by PID: SIGINT, then SIGTERM, then SIGKILL; reap it.

    Waits up to *timeout* for the clean stop, then 2 s after SIGTERM.
    Returns the exit status (None if it could not be reaped).
    """
    if popen.poll() is not None:
        return popen.returncode
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            popen.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            return popen.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return popen.poll()


def _cleanup(popen: subprocess.Popen[bytes] | None, files: list[IO[bytes]], tmpdir: str | None) -> None:
    """Finalizer body: must not refer to the ServerProcess itself."""
    if popen is not None:
        _terminate(popen, 5.0)
    for handle in files:
        handle.close()
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)


class ServerProcess:
    """A server of *kind* serving *workload* in a child process.

    Callers use: ``start()`` (returns self once the server serves),
    ``address`` (``(host, port)`` or a socket path), ``pid``, ``kind``
    (a :class:`~sockserve.measure.kinds.KindInfo`), ``stop(timeout)``,
    ``reports()`` and ``stderr_text()``; or ``with ServerProcess(...) as server:``.

    The child is ``python -m sockserve serve KIND --json --exit-with-parent
    --report-every 0.1``; its stdout and stderr go to temporary files (never
    to pipes that could fill up and block it), and ``reports()`` reads the
    server's per-interval counts from the first (see
    :mod:`sockserve.measure.serverfeed`; ``report_every = None`` turns them off). ``stop()`` sends SIGINT (the server shuts down
    cleanly and exits 0), then SIGTERM after *timeout*, then SIGKILL.
    Unix kinds without a *path* get one in a private temporary directory,
    removed on stop. For the cpu and mixed workloads the server is handed
    this process's calibration (``params["iterations_per_ms"]``) unless
    *params* name one (see :func:`sockserve.measure.workloads.fixed_work`).
    *kind* may be a resolved :class:`~sockserve.measure.kinds.KindInfo` and
    *workload* a :class:`~sockserve.measure.workloads.Workload` (then without
    *params*): a comparison resolves them once and hands them down.
    ``workload`` is then the Workload, ``params`` its values.

    With *timeline* (a cap: the most requests to keep), the server records
    when and where each request ran and writes the record to a private
    temporary file when it stops; ``timeline`` holds it after ``stop()``
    (a :class:`~sockserve.core.timeline.Timeline`, or None).
    """

    start_timeout: float = 20.0  # seconds to wait for the "serving" line
    #: Seconds between the server's own reports (``reports()``); None: none.
    report_every: float | None = 0.1

    def __init__(
        self,
        kind: str | KindInfo,
        workload: str | Workload = "echo",
        host: str = "127.0.0.1",
        port: int = 0,
        path: str | None = None,
        *,
        timeline: int | None = None,
        **params: float,
    ) -> None:
        self.kind = resolve_kind(kind)
        if timeline is not None and timeline < 1:
            raise ValueError(f"timeline is a cap (requests to keep): at least 1, got {timeline!r}")
        self.timeline_cap = timeline
        #: The recorded timeline once stopped, if asked for.
        self.timeline: Timeline | None = None
        if isinstance(workload, str):
            workload = fixed_work(workload, params)
        elif params:
            raise ValueError("a Workload carries its parameters: give none beside it")
        self.workload = workload
        self.host = host
        self.port = port
        self.path = path
        self.params = dict(workload.params)
        self.address: tuple[str, int] | str | None = None
        self.server_class: str | None = None
        self.returncode: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._tmpdir: str | None = None
        self._finalizer: Any = None  # weakref.finalize
        self._stderr_at_stop = ""
        self._reports_at_stop: list[FeedLine] = []

    @property
    def pid(self) -> int | None:
        """The server's PID (None before start)."""
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._popen is not None and self._popen.poll() is None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [sys.executable, "-m", "sockserve", "serve", self.kind.name,
               "--workload", self.workload.name, "--json", "--exit-with-parent"]
        if self.kind.is_unix:
            cmd += ["--path", str(self.path)]
        else:
            cmd += ["--host", self.host, "--port", str(self.port)]
        for name, value in self.params.items():
            cmd += ["--param", f"{name}={value}"]
        if self.report_every:
            cmd += ["--report-every", f"{self.report_every:g}"]
        if self.timeline_cap is not None:
            cmd += ["--timeline", str(self.timeline_cap), "--timeline-file", str(self._timeline_path())]
        return cmd

    def _timeline_path(self) -> str:
        """Where the server writes its timeline (in the private temporary
        directory that ``start()`` makes)."""
        return os.path.join(self._tmpdir or tempfile.gettempdir(), "timeline.json")

    def start(self) -> ServerProcess:
        """Start the server and wait until it serves; raises ServerStartError."""
        if self._popen is not None:
            raise RuntimeError("this ServerProcess was already started")
        if (self.kind.is_unix and self.path is None) or self.timeline_cap is not None:
            self._tmpdir = tempfile.mkdtemp(prefix="sockserve-")
        if self.kind.is_unix and self.path is None:
            assert self._tmpdir is not None
            self.path = os.path.join(self._tmpdir, "server.sock")
        self._stdout = tempfile.TemporaryFile()
        self._stderr = tempfile.TemporaryFile()
        env = child_environment()
        env["PYTHONUNBUFFERED"] = "1"
        self._popen = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._stdout,
            stderr=self._stderr, env=env, close_fds=True,
            # Its own session: a Ctrl-C in the terminal reaches the caller,
            # which then stops the server in order, rather than both at once.
            start_new_session=True,
        )
        self._finalizer = weakref.finalize(
            self, _cleanup, self._popen, [self._stdout, self._stderr], self._tmpdir
        )
        try:
            self._read_announcement()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_announcement(self) -> None:
        assert self._popen is not None and self._stdout is not None
        deadline = time.monotonic() + self.start_timeout
        line = b""
        while time.monotonic() < deadline:
            line = os.pread(self._stdout.fileno(), 65536, 0)
            if b"\n" in line:
                break
            if self._popen.poll() is not None:
                line = os.pread(self._stdout.fileno(), 65536, 0)
                if b"\n" in line:
                    break
                raise ServerStartError(
                    self._last_error() or f"the server exited with status {self._popen.returncode}"
                )
            time.sleep(0.01)
        else:
            raise ServerStartError(
                f"the {self.kind.name} server did not start within {self.start_timeout} s"
            )
        info = json.loads(line.split(b"\n", 1)[0])
        address = info["address"]
        self.address = (str(address[0]), int(address[1])) if isinstance(address, list) else address
        self.server_class = info["serving"]

    def _last_error(self) -> str:
        lines = [line for line in self.stderr_text().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    def reports(self) -> list[FeedLine]:
        """The server's per-interval reports so far (``--report-every``):
        peak threads and children of each interval, its counters, and the
        cpu calibration its handler uses. Read them before :meth:`stop`;
        after it, the reports read at stop time."""
        if self._stdout is None or self._stdout.closed:
            return list(self._reports_at_stop)
        data = b""
        while True:
            chunk = os.pread(self._stdout.fileno(), 1 << 20, len(data))
            if not chunk:
                break
            data += chunk
        return parse_feed(data)

    def stderr_text(self) -> str:
        """What the server wrote to stderr (so far, or until it stopped)."""
        if self._stderr is None or self._stderr.closed:
            return self._stderr_at_stop
        return os.pread(self._stderr.fileno(), 1 << 20, 0).decode("utf-8", "replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGINT, SIGTERM after *timeout*, then SIGKILL) and
        reap it. Safe to call more than once."""
        if self._popen is None:
            return
        self.returncode = _terminate(self._popen, timeout)
        if not self._stderr_at_stop:
            self._stderr_at_stop = self.stderr_text()
        if not self._reports_at_stop:
            self._reports_at_stop = self.reports()
        if self.timeline_cap is not None and self.timeline is None and self._tmpdir is not None:
            self.timeline = _read_timeline(self._timeline_path())
        if self._finalizer is not None:
            self._finalizer()  # closes the files and removes the temporary dir

    def __enter__(self) -> ServerProcess:
        if self._popen is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else ("stopped" if self._popen else "not started")
        return f"<ServerProcess {self.kind.name} {self.workload.name} pid={self.pid} {self.address} {state}>"


def _read_timeline(path: str) -> Timeline | None:
    """The timeline a stopped server wrote to *path* (None if it wrote none:
    it was killed, say)."""
    try:
        with open(path, encoding="utf-8") as src:
            data = json.load(src)
    except (OSError, ValueError):
        return None
    try:
        return Timeline.from_dict(data) if isinstance(data, dict) else None
    except (KeyError, TypeError, ValueError):
        return None
