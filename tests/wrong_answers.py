"""The bank of wrong answers: at least three per exercise, each of which its check must fail.

Each :class:`Wrong` is the source a learner might put in the exercise's cell
(defining the names the lesson's ``check(...)`` line passes), with a few
words on what is wrong. The issue's list of answers that used to pass is
here, marked ``(issue 25)``. ``tests/test_exercises.py`` checks every one;
``tests/test_course.py`` pastes some into an nbgrader submission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sockserve.exercises.stubs import stub_namespace


@dataclass(frozen=True)
class Wrong:
    exercise: str
    why: str
    source: str

    def answer(self, names: tuple[str, ...]) -> tuple[Any, ...]:
        """The objects *names* the source defines (compiled afresh each call)."""
        namespace = stub_namespace()
        exec(compile(self.source, f"<wrong answer: {self.why}>", "exec"), namespace)  # noqa: S102
        return tuple(namespace[name] for name in names)


def _bank(exercise: str, *cases: tuple[str, str]) -> list[Wrong]:
    return [Wrong(exercise, why, source.strip("\n") + "\n") for why, source in cases]


BANK: list[Wrong] = [
    # -- 01 architecture ------------------------------------------------------------------
    *_bank(
        "arch-hook-order",
        ("handler hooks first", """
hook_order = ["setup", "handle", "finish", "get_request", "verify_request", "process_request",
              "finish_request", "shutdown_request", "close_request"]
"""),
        ("stops before the cleanup", """
hook_order = ["get_request", "verify_request", "process_request", "finish_request", "setup", "handle", "finish"]
"""),
        ("includes serve_forever", """
hook_order = ["serve_forever", "get_request", "verify_request", "process_request", "finish_request", "setup",
              "handle", "finish", "shutdown_request", "close_request"]
"""),
        ("close before shutdown", """
hook_order = ["get_request", "verify_request", "process_request", "finish_request", "setup", "handle", "finish",
              "close_request", "shutdown_request"]
"""),
    ),
    *_bank(
        "arch-counting-mixin",
        ("calls TCPServer.process_request by name, dropping threading (issue 25)", """
class CountingMixIn:
    count = 0

    def process_request(self, request, client_address):
        self.count += 1
        sockserve.TCPServer.process_request(self, request, client_address)
"""),
        ("overrides finish_request instead (issue 25: the hint said no hook at all)", """
class CountingMixIn:
    count = 0

    def finish_request(self, request, client_address):
        self.count += 1
        super().finish_request(request, client_address)
"""),
        ("counts but never hands the request on", """
class CountingMixIn:
    count = 0

    def process_request(self, request, client_address):
        self.count += 1
"""),
        ("hands on but does not count", """
class CountingMixIn:
    count = 0

    def process_request(self, request, client_address):
        super().process_request(request, client_address)
"""),
    ),
    # -- 02 tcp ---------------------------------------------------------------------------
    *_bank(
        "tcp-upper-echo",
        ("answers one line only", """
class UpperEcho(sockserve.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())
"""),
        ("writes str (issue 25: the fix said 'loop over the lines')", """
class UpperEcho(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.decode().upper())
"""),
        ("echoes without upper case", """
class UpperEcho(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)
"""),
        ("drops the newline", """
class UpperEcho(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.strip().upper())
"""),
    ),
    *_bank(
        "tcp-calculator",
        ("no except ValueError (issue 25: the fix said 'loop over the lines')", """
class Calculator(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            words = line.split()
            if len(words) != 3 or words[0] not in (b"ADD", b"MUL"):
                self.wfile.write(b"ERR\\n")
                continue
            a, b = int(words[1]), int(words[2])
            self.wfile.write(b"%d\\n" % (a + b if words[0] == b"ADD" else a * b))
"""),
        ("compares bytes with str", """
class Calculator(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            words = line.split()
            try:
                a, b = int(words[1]), int(words[2])
            except (ValueError, IndexError):
                self.wfile.write(b"ERR\\n")
                continue
            if words[0] == "ADD":
                self.wfile.write(b"%d\\n" % (a + b))
            elif words[0] == "MUL":
                self.wfile.write(b"%d\\n" % (a * b))
            else:
                self.wfile.write(b"ERR\\n")
"""),
        ("adds for every command", """
class Calculator(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            try:
                _, a, b = line.split()
                self.wfile.write(b"%d\\n" % (int(a) + int(b)))
            except ValueError:
                self.wfile.write(b"ERR\\n")
"""),
        ("ends the connection on a bad line", """
class Calculator(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            try:
                op, a, b = line.split()
                a, b = int(a), int(b)
            except ValueError:
                self.wfile.write(b"ERR\\n")
                return
            self.wfile.write(b"%d\\n" % (a + b if op == b"ADD" else a * b))
"""),
    ),
    *_bank(
        "tcp-rebind",
        ("shares a live port (SO_REUSEPORT)", """
class RestartableServer(sockserve.TCPServer):
    allow_reuse_address = True
    allow_reuse_port = True
"""),
        ("a longer backlog instead", """
class RestartableServer(sockserve.TCPServer):
    request_queue_size = 128
"""),
        ("reuse set to False", """
class RestartableServer(sockserve.TCPServer):
    allow_reuse_address = False
"""),
    ),
    # -- 03 udp and unix ------------------------------------------------------------------
    *_bank(
        "udp-reverse",
        ("writes str: a TypeError (issue 25: it was reported as 'wrote nothing')", """
class Reverse(sockserve.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read().decode()[::-1])
"""),
        ("echoes without reversing", """
class Reverse(sockserve.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())
"""),
        ("reverses only the first 10 bytes", """
class Reverse(sockserve.DatagramRequestHandler):
    def handle(self):
        data = self.rfile.read()
        self.wfile.write(data[:10][::-1] + data[10:])
"""),
    ),
    *_bank(
        "udp-big-datagrams",
        ("max_packet_size = 12000, the size the hint printed (issue 25)", """
class BigDatagramServer(sockserve.UDPServer):
    max_packet_size = 12000
"""),
        ("more than a datagram can carry", """
class BigDatagramServer(sockserve.UDPServer):
    max_packet_size = 100000
"""),
        ("16000 bytes, not 16 KiB", """
class BigDatagramServer(sockserve.UDPServer):
    max_packet_size = 16000
"""),
        ("the socket's receive buffer instead", """
class BigDatagramServer(sockserve.UDPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        super().server_bind()
"""),
    ),
    *_bank(
        "unix-dgram-client",
        ("never binds the client socket", """
def ask_unix(server_path, payload, client_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(payload, server_path)
        return sock.recv(65536)
"""),
        ("binds but leaves the socket file", """
def ask_unix(server_path, payload, client_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.bind(client_path)
        sock.sendto(payload, server_path)
        return sock.recv(65536)
"""),
        ("returns nothing", """
def ask_unix(server_path, payload, client_path):
    import os
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.bind(client_path)
        try:
            sock.sendto(payload, server_path)
            sock.recv(65536)
        finally:
            os.unlink(client_path)
"""),
    ),
    # -- 04 concurrency -------------------------------------------------------------------
    *_bank(
        "concurrency-mixin-order",
        ("the stub's order with a body", """
class MyThreadingServer(sockserve.TCPServer, sockserve.ThreadingMixIn):
    daemon_threads = True
"""),
        ("the forking mixin", """
class MyThreadingServer(sockserve.ForkingMixIn, sockserve.TCPServer):
    pass
"""),
        ("its own process_request that handles in line", """
class MyThreadingServer(sockserve.ThreadingMixIn, sockserve.TCPServer):
    def process_request(self, request, client_address):
        self.finish_request(request, client_address)
        self.shutdown_request(request)
"""),
    ),
    *_bank(
        "concurrency-own-threads",
        ("handles in the serving thread", """
class OwnThreadingMixIn:
    def process_request(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
"""),
        ("a thread, but a crash leaves the connection open", """
class OwnThreadingMixIn:
    def process_request(self, request, client_address):
        def work():
            self.finish_request(request, client_address)
            self.shutdown_request(request)
        threading.Thread(target=work, daemon=True).start()
"""),
        ("a thread that swallows the crash silently", """
class OwnThreadingMixIn:
    def process_request(self, request, client_address):
        def work():
            try:
                self.finish_request(request, client_address)
            except Exception:
                pass
            finally:
                self.shutdown_request(request)
        threading.Thread(target=work, daemon=True).start()
"""),
        ("derives from ThreadingMixIn", """
class OwnThreadingMixIn(sockserve.ThreadingMixIn):
    pass
"""),
    ),
    *_bank(
        "concurrency-ideal-throughput",
        ("threads scale cpu work with cores (issue 25: an overestimate was 'not the best')", """
def ideal_rps(kind, workload, clients, ms, cores):
    if kind == "plain":
        return 1000 / ms
    if workload == "io":
        return clients * 1000 / ms
    return min(clients, cores) * 1000 / ms
"""),
        ("forking cpu ignores the number of clients", """
def ideal_rps(kind, workload, clients, ms, cores):
    if kind == "plain":
        return 1000 / ms
    if workload == "io":
        return clients * 1000 / ms
    if kind == "threading":
        return 1000 / ms
    return cores * 1000 / ms
"""),
        ("milliseconds taken as seconds", """
def ideal_rps(kind, workload, clients, ms, cores):
    if kind == "plain":
        return 1 / ms
    if workload == "io":
        return clients / ms
    if kind == "threading":
        return 1 / ms
    return min(clients, cores) / ms
"""),
        ("plain scales with clients", """
def ideal_rps(kind, workload, clients, ms, cores):
    if workload == "io" or kind == "plain":
        return clients * 1000 / ms
    if kind == "threading":
        return 1000 / ms
    return min(clients, cores) * 1000 / ms
"""),
    ),
    # -- 05 measuring honestly ------------------------------------------------------------
    *_bank(
        "measuring-percentile",
        ("sorts the caller's list in place", """
import math

def percentile(samples, q):
    samples.sort()
    return samples[max(math.ceil(q / 100 * len(samples)), 1) - 1]
"""),
        ("rounds the rank down", """
def percentile(samples, q):
    ordered = sorted(samples)
    return ordered[max(int(q / 100 * len(ordered)) - 1, 0)]
"""),
        ("interpolates", """
import statistics

def percentile(samples, q):
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[min(int(q * 10), 999) - 1]
"""),
        ("forgets to sort", """
import math

def percentile(samples, q):
    return samples[max(math.ceil(q / 100 * len(samples)), 1) - 1]
"""),
    ),
    *_bank(
        "measuring-burst-backlog",
        ("a backlog of 10", """
class BurstServer(socketserver.TCPServer):
    request_queue_size = 10
"""),
        ("the backlog set after listening", """
class BurstServer(socketserver.TCPServer):
    def server_activate(self):
        super().server_activate()
        self.request_queue_size = 128
"""),
        ("threads instead of a backlog", """
class BurstServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
"""),
        ("a deep backlog asked for, a short one given to listen()", """
class BurstServer(socketserver.TCPServer):
    request_queue_size = 128

    def server_activate(self):
        self.socket.listen(5)
"""),
    ),
    *_bank(
        "measuring-timing-mixin",
        ("times process_request instead", """
import time

class TimingMixIn:
    def process_request(self, request, client_address):
        began = time.perf_counter()
        super().process_request(request, client_address)
        self.durations.append(time.perf_counter() - began)
"""),
        ("milliseconds, not seconds", """
import time

class TimingMixIn:
    def finish_request(self, request, client_address):
        began = time.perf_counter()
        super().finish_request(request, client_address)
        self.durations.append((time.perf_counter() - began) * 1000)
"""),
        ("never runs the handler", """
import time

class TimingMixIn:
    def finish_request(self, request, client_address):
        began = time.perf_counter()
        self.durations.append(time.perf_counter() - began)
"""),
        ("records the start time", """
import time

class TimingMixIn:
    def finish_request(self, request, client_address):
        began = time.perf_counter()
        super().finish_request(request, client_address)
        self.durations.append(began)
"""),
    ),
    # -- 06 shutting down -----------------------------------------------------------------
    *_bank(
        "shutdown-stop",
        ("server_close() alone (issue 25)", """
def stop(server, thread):
    server.server_close()
    thread.join()
"""),
        ("shutdown without a join", """
def stop(server, thread):
    server.shutdown()
    server.server_close()
"""),
        ("never closes the socket", """
def stop(server, thread):
    server.shutdown()
    thread.join()
"""),
        ("closes before stopping", """
def stop(server, thread):
    server.server_close()
    server.shutdown()
    thread.join()
"""),
    ),
    *_bank(
        "shutdown-quick-close",
        ("block_on_close = False alone: threads keep Python alive", """
class QuickCloseServer(sockserve.ThreadingTCPServer):
    block_on_close = False
"""),
        ("waits for the handler", """
class QuickCloseServer(sockserve.ThreadingTCPServer):
    block_on_close = True
"""),
        ("daemon_threads set False", """
class QuickCloseServer(sockserve.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True
"""),
    ),
    *_bank(
        "shutdown-drain",
        ("shutdown and close, no drain", """
def stop_within(server, seconds):
    server.shutdown()
    server.server_close()
"""),
        ("drains but forgets to close", """
def stop_within(server, seconds):
    return server.drain(seconds)
"""),
        ("drains with no time for the quick ones", """
def stop_within(server, seconds):
    report = server.drain(0)
    server.server_close()
    return report
"""),
        ("closes but returns nothing", """
def stop_within(server, seconds):
    server.drain(seconds)
    server.server_close()
"""),
    ),
    *_bank(
        "shutdown-stop-handler",
        ("self.server.shutdown() in the handler, which deadlocks socketserver (issue 25)", """
class StopHandler(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            if line.strip() == b"STOP":
                self.wfile.write(b"bye\\n")
                self.server.shutdown()
                return
            self.wfile.write(line)
"""),
        ("says bye but never stops the server", """
class StopHandler(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            if line.strip() == b"STOP":
                self.wfile.write(b"bye\\n")
                return
            self.wfile.write(line)
"""),
        ("stops without saying bye", """
class StopHandler(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            if line.strip() == b"STOP":
                threading.Thread(target=self.server.shutdown).start()
                return
            self.wfile.write(line)
"""),
        ("closes the server's socket instead", """
class StopHandler(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            if line.strip() == b"STOP":
                self.wfile.write(b"bye\\n")
                self.server.socket.close()
                return
            self.wfile.write(line)
"""),
    ),
    # -- 07 building on sockserve ---------------------------------------------------------
    *_bank(
        "building-allowlist",
        ("compares the whole (ip, port) pair", """
class AllowlistServer(sockserve.ThreadingTCPServer):
    allowed = {"127.0.0.1"}

    def verify_request(self, request, client_address):
        return client_address in self.allowed
"""),
        ("a fixed address instead of the attribute", """
class AllowlistServer(sockserve.ThreadingTCPServer):
    allowed = {"127.0.0.1"}

    def verify_request(self, request, client_address):
        return client_address[0] == "127.0.0.1"
"""),
        ("refuses in the handler's place by closing", """
class AllowlistServer(sockserve.ThreadingTCPServer):
    allowed = {"127.0.0.1"}

    def process_request(self, request, client_address):
        if client_address[0] not in self.allowed:
            request.close()
            return
        super().process_request(request, client_address)
"""),
        ("accepts everyone", """
class AllowlistServer(sockserve.ThreadingTCPServer):
    allowed = {"127.0.0.1"}

    def verify_request(self, request, client_address):
        return True
"""),
    ),
    *_bank(
        "building-http-stats",
        ("hard-coded JSON (issue 25)", """
import json

class StatsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/stats":
            self.send_error(404)
            return
        body = json.dumps({"accepted": 1, "completed": 0, "active": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
"""),
        ("text/plain", """
import json

class StatsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(self.server.stats.snapshot()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
"""),
        ("every path answers the stats", """
import json

class StatsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(self.server.stats.snapshot()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
"""),
        ("the snapshot's repr, not JSON", """
class StatsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/stats":
            self.send_error(404)
            return
        body = repr(self.server.stats.snapshot()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
"""),
    ),
    *_bank(
        "building-bounded",
        ("a thread per request, unbounded", """
class BoundedServer(sockserve.ThreadingTCPServer):
    daemon_threads = True
"""),
        ("one at a time", """
class BoundedServer(sockserve.TCPServer):
    pass
"""),
        ("a pool that is too big", """
class BoundedServer(sockserve.ThreadPoolMixIn, sockserve.TCPServer):
    pool_size = 8
"""),
    ),
    # -- 08 a server from scratch ---------------------------------------------------------
    *_bank(
        "scratch-blocking",
        ("accept() with no select: cannot stop while idle (issue 25: passed 6 of 8 runs)", """
def serve_blocking(listener, server):
    while not server.stopping:
        conn, address = listener.accept()
        with conn:
            for line in conn.makefile("rb"):
                conn.sendall(server.respond(line))
"""),
        ("recv(1024) chunks taken as lines (issue 25)", """
import select

def serve_blocking(listener, server):
    while not server.stopping:
        ready, _, _ = select.select([listener], [], [], server.poll_interval)
        if not ready:
            continue
        conn, address = listener.accept()
        with conn:
            while chunk := conn.recv(1024):
                conn.sendall(server.respond(chunk))
"""),
        ("never closes the connection", """
import select

def serve_blocking(listener, server):
    while not server.stopping:
        ready, _, _ = select.select([listener], [], [], server.poll_interval)
        if not ready:
            continue
        conn, address = listener.accept()
        for line in conn.makefile("rb"):
            conn.sendall(server.respond(line))
"""),
        ("serves one client and returns", """
def serve_blocking(listener, server):
    conn, address = listener.accept()
    with conn:
        for line in conn.makefile("rb"):
            conn.sendall(server.respond(line))
"""),
    ),
    *_bank(
        "scratch-selectors",
        ("the blocking loop again", """
import select

def serve_selectors(listener, server):
    while not server.stopping:
        ready, _, _ = select.select([listener], [], [], server.poll_interval)
        if not ready:
            continue
        conn, address = listener.accept()
        with conn:
            for line in conn.makefile("rb"):
                conn.sendall(server.respond(line))
"""),
        ("a recv() chunk taken as a line", """
import selectors

def serve_selectors(listener, server):
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    while not server.stopping:
        for key, _ in selector.select(timeout=server.poll_interval):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                continue
            data = key.fileobj.recv(65536)
            if not data:
                selector.unregister(key.fileobj)
                key.fileobj.close()
                continue
            key.fileobj.sendall(server.respond(data))
    selector.close()
"""),
        ("a thread per connection", """
import select

def serve_selectors(listener, server):
    def serve(conn):
        with conn:
            for line in conn.makefile("rb"):
                conn.sendall(server.respond(line))
    while not server.stopping:
        ready, _, _ = select.select([listener], [], [], server.poll_interval)
        if ready:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""),
        ("never closes finished clients", """
import selectors

def serve_selectors(listener, server):
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, data=None)
    while not server.stopping:
        for key, _ in selector.select(timeout=server.poll_interval):
            if key.data is None:
                conn, _ = listener.accept()
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ, data=bytearray())
                continue
            data = key.fileobj.recv(65536)
            if not data:
                selector.unregister(key.fileobj)
                continue
            key.data.extend(data)
            while b"\\n" in key.data:
                line, _, rest = bytes(key.data).partition(b"\\n")
                key.data[:] = rest
                key.fileobj.sendall(server.respond(line + b"\\n"))
    selector.close()
"""),
    ),
    *_bank(
        "scratch-asyncio",
        ("answers one line and ends (issue 25)", """
async def echo_lines(reader, writer):
    line = await reader.readline()
    writer.write(line)
    await writer.drain()
    writer.close()
"""),
        ("calls time.sleep() on the event loop (issue 25)", """
async def echo_lines(reader, writer):
    try:
        while line := await reader.readline():
            time.sleep(0.001)
            writer.write(line)
            await writer.drain()
    finally:
        writer.close()
"""),
        ("never closes the writer", """
async def echo_lines(reader, writer):
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
"""),
        ("a plain function", """
def echo_lines(reader, writer):
    pass
"""),
    ),
    # -- 09 when things go wrong ----------------------------------------------------------
    *_bank(
        "wrong-handle-error",
        ("records only resets", """
import sys

class RecordingServer(sockserve.ThreadingTCPServer):
    def __init__(self, *args, **kwargs):
        self.failures = []
        super().__init__(*args, **kwargs)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionResetError):
            self.failures.append((client_address, sys.exc_info()[1]))
"""),
        ("records strings", """
import sys

class RecordingServer(sockserve.ThreadingTCPServer):
    def __init__(self, *args, **kwargs):
        self.failures = []
        super().__init__(*args, **kwargs)

    def handle_error(self, request, client_address):
        self.failures.append(f"{client_address}: {sys.exc_info()[1]}")
"""),
        ("no failures list", """
class RecordingServer(sockserve.ThreadingTCPServer):
    def handle_error(self, request, client_address):
        pass
"""),
        ("records the request instead of the address", """
import sys

class RecordingServer(sockserve.ThreadingTCPServer):
    def __init__(self, *args, **kwargs):
        self.failures = []
        super().__init__(*args, **kwargs)

    def handle_error(self, request, client_address):
        self.failures.append((request, sys.exc_info()[1]))
"""),
    ),
    *_bank(
        "wrong-idle-timeout",
        ("no timeout at all", """
class Patient(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())
"""),
        ("times out silently", """
class Patient(sockserve.StreamRequestHandler):
    timeout = 0.3

    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())
"""),
        ("a timeout ten times too short", """
class Patient(sockserve.StreamRequestHandler):
    timeout = 0.03

    def handle(self):
        try:
            for line in self.rfile:
                self.wfile.write(line.upper())
        except TimeoutError:
            self.wfile.write(b"idle timeout\\n")
"""),
        ("a deadline for the whole connection", """
class Patient(sockserve.StreamRequestHandler):
    def handle(self):
        ends = time.monotonic() + 0.3
        self.connection.settimeout(0.3)
        try:
            for line in self.rfile:
                if time.monotonic() > ends:
                    raise TimeoutError
                self.wfile.write(line.upper())
        except TimeoutError:
            self.wfile.write(b"idle timeout\\n")
"""),
    ),
    *_bank(
        "wrong-deadline",
        ("a per-read timeout only", """
class Deadline(sockserve.StreamRequestHandler):
    timeout = 0.5

    def handle(self):
        try:
            for line in self.rfile:
                self.wfile.write(line.upper())
        except TimeoutError:
            pass
"""),
        ("no bound at all", """
class Deadline(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())
"""),
        ("checks the deadline only between whole lines", """
class Deadline(sockserve.StreamRequestHandler):
    def handle(self):
        ends = time.monotonic() + 0.5
        for line in self.rfile:
            self.wfile.write(line.upper())
            if time.monotonic() > ends:
                return
"""),
    ),
    *_bank(
        "wrong-zombies",
        ("splits the stat line at spaces", """
def zombie_pids(pids):
    found = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().split()
        except FileNotFoundError:
            continue
        if fields[2] == "Z":
            found.append(pid)
    return found
"""),
        ("crashes on a reaped child", """
def zombie_pids(pids):
    found = []
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
        if text.rsplit(")", 1)[1].split()[0] == "Z":
            found.append(pid)
    return found
"""),
        ("every process that exists", """
import os

def zombie_pids(pids):
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
"""),
    ),
    *_bank(
        "wrong-nagle",
        ("two small writes with Nagle on", """
class TwoLines(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(b"length %d\\n" % len(line))
            self.wfile.write(line)
"""),
        ("the length without the newline", """
class TwoLines(sockserve.StreamRequestHandler):
    disable_nagle_algorithm = True

    def handle(self):
        for line in self.rfile:
            self.wfile.write(b"length %d\\n" % len(line.strip()))
            self.wfile.write(line)
"""),
        ("the two lines in the wrong order", """
class TwoLines(sockserve.StreamRequestHandler):
    disable_nagle_algorithm = True

    def handle(self):
        for line in self.rfile:
            self.wfile.write(line + b"length %d\\n" % len(line))
"""),
    ),
    *_bank(
        "wrong-half-close",
        ("close() instead of a half-close", """
def ask_to_eof(address, data):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        sock.close()
        return sock.recv(65536)
"""),
        ("never says it is done", """
def ask_to_eof(address, data):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
"""),
        ("one recv() only", """
def ask_to_eof(address, data):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(65536)
"""),
    ),
    # -- 10 the kernel's view -------------------------------------------------------------
    *_bank(
        "kernel-close-wait",
        ("counts while the clients are still connected", """
from sockserve.kernel import view as kernelview

def close_wait_count(server, clients=3):
    socks = [socket.create_connection(server.server_address, timeout=5) for _ in range(clients)]
    for sock in socks:
        sock.sendall(b"hi\\n")
        sock.recv(64)
    count = kernelview.read(server).count("CLOSE-WAIT")
    for sock in socks:
        sock.close()
    return count
"""),
        ("returns the number of clients", """
def close_wait_count(server, clients=3):
    for _ in range(clients):
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"hi\\n")
            client.recv(64)
    return clients
"""),
        ("counts TIME-WAIT instead", """
from sockserve.kernel import view as kernelview

def close_wait_count(server, clients=3):
    for _ in range(clients):
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"hi\\n")
            client.recv(64)
    time.sleep(0.2)
    return kernelview.read(server).count("TIME-WAIT")
"""),
    ),
    *_bank(
        "kernel-backlog",
        ("request_queue_size set after super().__init__, already listening (issue 25)", """
class BacklogServer(sockserve.TCPServer):
    def __init__(self, server_address, handler, backlog=5, bind_and_activate=True):
        super().__init__(server_address, handler, bind_and_activate)
        self.request_queue_size = backlog
"""),
        ("backlog stored after super().__init__", """
class BacklogServer(sockserve.TCPServer):
    def __init__(self, server_address, handler, backlog=5, bind_and_activate=True):
        self.backlog = 5
        super().__init__(server_address, handler, bind_and_activate)
        self.backlog = backlog

    def server_activate(self):
        self.socket.listen(self.backlog)
"""),
        ("listens in server_bind", """
class BacklogServer(sockserve.TCPServer):
    def __init__(self, server_address, handler, backlog=5, bind_and_activate=True):
        self.backlog = backlog
        super().__init__(server_address, handler, bind_and_activate)

    def server_bind(self):
        super().server_bind()
        self.socket.listen(self.backlog)

    def server_activate(self):
        pass
"""),
        ("no backlog argument", """
class BacklogServer(sockserve.TCPServer):
    request_queue_size = 3
"""),
    ),
]
