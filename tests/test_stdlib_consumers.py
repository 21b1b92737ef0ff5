"""Drop-in proof: the standard library's own socketserver users run on sockserve.

Each case runs in a fresh interpreter where ``sys.modules["socketserver"]``
is sockserve *before* the consumer module is imported, checks that the
consumer's server class really inherits from sockserve, and exchanges a real
request with it over loopback.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PRELUDE = textwrap.dedent(
    """
    import sys, threading
    import sockserve
    sys.modules["socketserver"] = sockserve

    def run(server):
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 5})
        thread.start()
        return thread

    def stop(server, thread):
        server.shutdown()
        thread.join(10)
        server.server_close()
        assert not thread.is_alive()
    """
)

CASES = {
    "http.server": """
        import http.server, urllib.request, os, tempfile, time
        assert issubclass(http.server.HTTPServer, sockserve.TCPServer)
        assert issubclass(http.server.ThreadingHTTPServer, sockserve.ThreadingMixIn)
        root = tempfile.mkdtemp()
        with open(os.path.join(root, "hello.txt"), "w") as f:
            f.write("hello from sockserve")
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=root, **k)
            def log_message(self, *args):
                pass
        for cls in (http.server.HTTPServer, http.server.ThreadingHTTPServer):
            server = cls(("127.0.0.1", 0), Quiet)
            thread = run(server)
            host, port = server.server_address[:2]
            with urllib.request.urlopen(f"http://{host}:{port}/hello.txt", timeout=10) as reply:
                assert reply.status == 200
                assert reply.read() == b"hello from sockserve"
            stop(server, thread)
            # ThreadingHTTPServer's handler threads are daemons that
            # server_close() does not wait for: give the last one a moment.
            deadline = time.monotonic() + 10
            while server.stats.completed < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.stats.completed == 1, server.stats.snapshot()
        print("OK")
    """,
    "xmlrpc.server": """
        import xmlrpc.server, xmlrpc.client
        assert issubclass(xmlrpc.server.SimpleXMLRPCServer, sockserve.TCPServer)
        server = xmlrpc.server.SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
        server.register_function(lambda a, b: a + b, "add")
        thread = run(server)
        host, port = server.server_address[:2]
        with xmlrpc.client.ServerProxy(f"http://{host}:{port}/") as proxy:
            assert proxy.add(2, 3) == 5
        stop(server, thread)
        print("OK")
    """,
    "wsgiref.simple_server": """
        import wsgiref.simple_server, urllib.request
        assert issubclass(wsgiref.simple_server.WSGIServer, sockserve.TCPServer)
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"wsgi on sockserve: " + environ["PATH_INFO"].encode()]
        class Quiet(wsgiref.simple_server.WSGIRequestHandler):
            def log_message(self, *args):
                pass
        server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
        thread = run(server)
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10) as reply:
            assert reply.read() == b"wsgi on sockserve: /ping"
        stop(server, thread)
        print("OK")
    """,
    "logging.config.listen": """
        import logging, logging.config, socket, struct, json, time
        assert issubclass(logging.config.listen.__globals__["ThreadingTCPServer"], sockserve.ThreadingTCPServer)
        seen = []
        def verify(data):
            seen.append(data)
            return data
        listener = logging.config.listen(0, verify=verify)
        listener.start()
        listener.ready.wait(10)
        port = listener.port
        config = {"version": 1, "loggers": {"from-sockserve": {"level": "ERROR"}}}
        payload = json.dumps(config).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(struct.pack(">L", len(payload)) + payload)
        deadline = time.monotonic() + 10
        while logging.getLogger("from-sockserve").level != logging.ERROR:
            assert time.monotonic() < deadline, "the configuration never arrived"
            time.sleep(0.02)
        logging.config.stopListening()
        listener.join(10)
        assert not listener.is_alive()
        assert seen == [payload]
        print("OK")
    """,
}


@pytest.mark.parametrize("consumer", sorted(CASES))
def test_stdlib_consumer_runs_on_sockserve(consumer: str) -> None:
    script = PRELUDE + textwrap.dedent(CASES[consumer])
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("OK")
