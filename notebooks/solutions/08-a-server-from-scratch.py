"""Reference answers for notebooks/08-a-server-from-scratch.ipynb (the stubs it hands out are registered with each exercise)."""

import select
import selectors


def serve_blocking(listener, server):
    """One connection at a time: wait for a client, serve it to the end, close it."""
    while not server.stopping:                                       # serve_forever's loop
        ready, _, _ = select.select([listener], [], [], server.poll_interval)
        if not ready:
            continue                                                 # service_actions() would run here
        conn, address = listener.accept()                            # get_request()
        with conn:                                                   # shutdown_request(), close_request()
            for line in conn.makefile("rb"):                         # finish_request() -> handle()
                conn.sendall(server.respond(line))


def serve_selectors(listener, server):
    """Every connection at once, in one thread: act only on sockets that are ready."""
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, data=None)
    try:
        while not server.stopping:
            for key, _ in selector.select(timeout=server.poll_interval):
                if key.data is None:                                 # the listener: a new client
                    conn, address = listener.accept()
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ, data=bytearray())
                    continue
                conn, pending = key.fileobj, key.data
                try:
                    data = conn.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionError:
                    data = b""
                if not data:                                         # the client closed: so do we
                    selector.unregister(conn)
                    conn.close()
                    continue
                pending += data
                while b"\n" in pending:
                    line, _, rest = bytes(pending).partition(b"\n")
                    pending[:] = rest
                    conn.sendall(server.respond(line + b"\n"))      # small replies fit the send buffer
    finally:
        for key in list(selector.get_map().values()):
            if key.data is not None:
                key.fileobj.close()
        selector.close()


async def echo_lines(reader, writer):
    """The asyncio way: one coroutine per connection, `await` where the blocking code would block."""
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    finally:
        writer.close()


SOLUTIONS = {
    "scratch-blocking": (serve_blocking,),
    "scratch-selectors": (serve_selectors,),
    "scratch-asyncio": (echo_lines,),
}
# Words a first hint must not say (it would give the answer away).
GIVEAWAYS = {
    "scratch-blocking": ["while not server.stopping", "select.select(", "listener.accept()"],
    "scratch-selectors": ["selectors.DefaultSelector", "EVENT_READ", "setblocking(False)"],
    "scratch-asyncio": ["await reader.readline()", "writer.drain()", "writer.close()"],
}
