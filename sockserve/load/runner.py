"""The load generator: drive a server with many clients and measure it.

Callers use :func:`run_load` (blocking) or :class:`LoadRun` (a handle that
runs in the background, for widgets), both with a :class:`LoadSpec`; they get
a :class:`LoadResult` back. Everything here is plain data that round-trips to
JSON (``to_dict``/``from_dict``).

Where the load runs: always in a separate process (``python -m
sockserve.load.worker``, see :mod:`sockserve.load.worker`), never in the
caller's process, so neither a notebook kernel's GIL nor a server running in
the caller distorts the figures. The spec goes to the worker as one JSON line
on its stdin; progress and the result come back as JSON lines on its stdout.
Inside the worker each client is a thread. The pieces: :mod:`.data`
(the plain data classes), :mod:`.clients` (the TCP/UDP/Unix clients),
:mod:`.worker` (pacing, recording, sampling and the worker's entry point)
and this module (the caller's side); :mod:`sockserve.load` exports the
names of this module and of :mod:`.data`.

What is measured:

* ``mode="closed"``: ``clients`` clients each send a request, wait for its
  reply, and send the next one at once. Latency runs from the send.
* ``mode="open"``: requests are *scheduled* at a fixed ``rate`` (request *i*
  at ``i / rate`` seconds) and sent by up to ``clients`` clients at once.
  Latency runs from each request's scheduled time, not its actual send, so
  when the server stalls (or the generator falls behind) the requests that
  should have gone out meanwhile count their full delay: coordinated
  omission cannot hide a stall (the correction wrk2 makes).
* Every run stops at ``max_requests`` requests or ``duration`` seconds,
  whichever comes first; requests in flight then get at most ``timeout``
  more, and never more than a quarter of a second (``loadworker.END_GRACE``),
  and are counted as ``"timeout"`` if they do not make it.
* A run also ends early, and says why in ``LoadResult.ended_by`` (see
  :data:`ENDINGS`), when it is cancelled, when the sampled server process
  exits, or when nothing accepts connections any more (a run of refusals
  and no reply for half a second): then requests in flight get a short
  grace and the rest are counted as ``abandoned``, not as outcomes.
* Each request ends as one of :data:`OUTCOMES`. ``latency`` and
  ``timeline`` hold the successful ones.
* With ``server_pid`` the worker samples the server's thread count and
  child-process count 20 times a second (Linux ``/proc``; empty elsewhere).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from .data import LoadResult, LoadSpec, Progress

__all__ = ["LoadRun", "run_load", "LoadWorkerError"]

log = logging.getLogger("sockserve")


class LoadWorkerError(RuntimeError):
    """The worker process failed (its stderr is in the message)."""


class TextBar:
    """A one-line progress bar redrawn in place on a terminal stream."""

    def __init__(self, stream: IO[str], width: int = 24) -> None:
        self._stream = stream
        self._width = width
        self._drawn = False

    def update(self, p: Progress) -> None:
        filled = round(p.fraction * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        line = (
            f"\r[{bar}] {p.fraction * 100:3.0f}% {p.elapsed:5.1f}s "
            f"{p.requests} req {p.errors} err "
            f"p50 {p.latency_ms.get('p50', 0.0):.2f}ms p99 {p.latency_ms.get('p99', 0.0):.2f}ms"
        )
        if p.threads is not None:
            line += f" thr {p.threads}"
        if p.children:
            line += f" kids {p.children}"
        self._stream.write(line + "\x1b[K")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: Run the worker from this very sockserve (installed or not): the package's
#: parent directory goes first on sys.path, before the current directory
#: that ``python -m`` would put there.
_WORKER_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from sockserve.load import worker; worker.entry()"
)


#: Extra seconds the parent allows beyond duration + timeout (process start,
#: imports, a loaded machine) before it kills the worker as hung.
WATCHDOG_GRACE = 30.0


class LoadRun:
    """One load run in a worker process, watched from this one.

    Use ``LoadRun(spec).start()`` and then read ``progress`` (the latest
    :class:`Progress`, or None), ``done``, ``result`` (a :class:`LoadResult`
    once done) and ``error``; ``cancel()`` ends the run early (requests in
    flight get a short grace, and the partial result arrives as usual);
    ``stop(timeout)`` cancels and waits at most *timeout* seconds (killing
    a worker that does not answer); ``wait(timeout)`` blocks for the result. ``run()`` does the whole run in
    the calling thread instead of starting a background one (what
    :func:`run_load` does). Also a context manager: leaving it cancels an
    unfinished run and waits for it.

    ``progress`` (a callable) is called with each :class:`Progress` from the
    thread that reads the worker (the background thread after ``start()``);
    with ``bar=True`` a text bar is drawn on ``sys.stderr``.

    Thread safety: ``cancel()``, ``wait()`` and the attributes may be used
    from any thread.
    """

    def __init__(
        self,
        spec: LoadSpec,
        progress: Callable[[Progress], None] | None = None,
        bar: bool = False,
    ) -> None:
        self.spec = spec
        self.progress: Progress | None = None
        self.result: LoadResult | None = None
        self.error: BaseException | None = None
        self._callback = progress
        self._bar = TextBar(sys.stderr) if bar else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._cancelled = False

    @property
    def done(self) -> bool:
        """True once the run ended (with a result or an error)."""
        return self._finished.is_set()

    @property
    def pid(self) -> int | None:
        """The worker process's PID (None before start)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> LoadRun:
        """Start the worker and a background thread that follows it."""
        self._spawn()
        self._thread = threading.Thread(target=self._follow, name="sockserve-load", daemon=True)
        self._thread.start()
        return self

    def run(self) -> LoadResult:
        """Run to the end in this thread and return the result."""
        self._spawn()
        self._follow()
        return self.wait()

    def cancel(self) -> None:
        """Ask the worker to stop sending; the partial result still comes."""
        with self._lock:
            self._cancelled = True
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdin.closed:
                return
            try:
                proc.stdin.write(b"cancel\n")
                proc.stdin.flush()
            except OSError:
                pass  # the worker already ended

    def stop(self, timeout: float = 1.0) -> LoadResult | None:
        """Cancel and wait at most *timeout* seconds for the partial result.

        The worker gives requests in flight a short grace
        (``loadworker.STOP_GRACE``) and then sends what it measured; if it
        has not within *timeout*, it is killed and None is returned (the
        run's ``error`` says so). Never blocks much longer than *timeout*.
        """
        if self._proc is None:
            return None
        self.cancel()
        if self._finished.wait(timeout):
            return self.result
        with self._lock:
            proc = self._proc
        try:
            proc.kill()  # its stdout closes: the following thread ends at once
        except OSError:
            pass
        self._finished.wait(0.5)
        return self.result

    def wait(self, timeout: float | None = None) -> LoadResult:
        """Block until the run ends; return its result or raise its error.
        TimeoutError if it has not ended within *timeout* seconds."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"the load run did not end within {timeout} s")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def __enter__(self) -> LoadRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc is not None:
            if not self.done:
                self.cancel()
            try:
                self.wait()
            except BaseException:
                if exc_info[0] is None:
                    raise

    # -- the parent's side of the worker protocol ----------------------------

    def _spawn(self) -> None:
        if self._proc is not None:
            raise RuntimeError("a LoadRun can be started only once")
        self._stderr = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOT, _package_root()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                close_fds=True,
            )
        except BaseException:
            self._stderr.close()
            raise
        assert proc.stdin is not None
        with self._lock:
            self._proc = proc
            try:
                proc.stdin.write(json.dumps(self.spec.to_dict()).encode() + b"\n")
                if self._cancelled:
                    proc.stdin.write(b"cancel\n")
                proc.stdin.flush()
            except OSError:
                pass  # the worker died at start: _follow reports its stderr

    def _follow(self) -> None:
        """Read the worker's lines until its result (or its end)."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        watchdog = time.monotonic() + self.spec.duration + 2 * self.spec.timeout + WATCHDOG_GRACE
        try:
            for message in _lines(proc.stdout, watchdog):
                kind = message.get("type")
                if kind == "progress":
                    self._note_progress(Progress.from_dict(message["progress"]))
                elif kind == "error":
                    error = message["error"]
                    if error.get("kind") == "ValueError":
                        raise ValueError(error["message"])
                    raise LoadWorkerError(error["message"])
                elif kind == "result":
                    self.result = LoadResult.from_dict(message["result"])
                    break
            if self.result is None:
                proc.wait(5)
                raise LoadWorkerError(
                    f"the load worker ended without a result (exit status {proc.returncode})"
                    + self._stderr_tail()
                )
            self._note_progress(_final_progress(self.result))
        except BaseException as exc:
            self.error = exc
        finally:
            self._close()
            self._finished.set()
        if self._thread is None and isinstance(self.error, (KeyboardInterrupt, SystemExit)):
            raise self.error

    def _note_progress(self, p: Progress) -> None:
        self.progress = p
        if self._bar is not None:
            self._bar.update(p)
        if self._callback is not None:
            try:
                self._callback(p)
            except Exception:
                log.exception("the load progress callback failed; the run goes on")

    def _stderr_tail(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return "; its stderr:\n" + text[-3000:] if text else ""

    def _close(self) -> None:
        """Reap the worker (killing it if it has not ended) and close pipes."""
        if self._bar is not None:
            self._bar.close()
        proc = self._proc
        assert proc is not None
        with self._lock:
            if proc.stdin is not None and not proc.stdin.closed:
                try:
                    proc.stdin.close()  # EOF also tells a live worker to stop
                except OSError:
                    pass
        if self.result is None:
            proc.kill()  # interrupted or hung: its result is not wanted any more
        try:
            proc.wait(self.spec.timeout + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            if proc.returncode and self.error is None and self.result is None:
                self.error = LoadWorkerError(f"load worker exit status {proc.returncode}" + self._stderr_tail())
            self._stderr.close()


def _lines(stream: IO[bytes], watchdog: float) -> Any:
    """JSON messages from the worker's stdout; LoadWorkerError if it hangs
    past *watchdog* (a time.monotonic() value)."""
    fd = stream.fileno()
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = watchdog - time.monotonic()
            if left <= 0:
                raise LoadWorkerError("the load worker overran its time bound and was killed")
            if not selector.select(min(left, 1.0)):
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                if line.strip():
                    yield json.loads(line)


def _final_progress(result: LoadResult) -> Progress:
    ms = result.latency_ms()
    return Progress(
        elapsed=result.elapsed,
        duration=result.spec.duration,
        requests=result.requests,
        ok=result.ok,
        errors=result.errors,
        latency_ms={"p50": ms["p50"], "p99": ms["p99"]},
        threads=result.threads[-1][1] if result.threads else None,
        children=result.children[-1][1] if result.children else None,
        done=True,
        max_requests=result.spec.max_requests,
        outcomes=dict(result.outcomes),
    )


def run_load(
    spec: LoadSpec,
    progress: Callable[[Progress], None] | None = None,
    bar: bool | None = None,
) -> LoadResult:
    """Run *spec* in a worker process and return what it measured.

    Blocks until the run ends (at most about ``duration + timeout``).
    *progress* is called a few times a second with a :class:`Progress`, in
    this thread. *bar*: draw a text progress bar on stderr; None (default)
    draws it only when stderr is a terminal. Interrupting (Ctrl-C) stops the
    worker and re-raises. Raises :class:`LoadWorkerError` if the worker fails.
    """
    if bar is None:
        bar = sys.stderr is not None and sys.stderr.isatty()
    return LoadRun(spec, progress=progress, bar=bar).run()
