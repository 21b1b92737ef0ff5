# %% [markdown]
# # 08 · A server from scratch
#
# **The question.** What does `socketserver` actually do for you? In this lesson you write a server with nothing but
# the `socket` and `selectors` modules: first a blocking accept loop that serves one client at a time, then an event
# loop that serves many clients at once in a single thread. Then you meet asyncio, which packages that event loop.
# Each server you write is measured in the same comparison harness as sockserve's servers and drawn on the same
# timeline, and each piece of your code maps onto one hook of `BaseServer`.

# %%
# %matplotlib inline
import asyncio
import select
import selectors
import socket

import sockserve
from sockserve.exercises import check
from sockserve.measure.experiment import compare
from sockserve.workbook.fromscratch import scratch_kind
from sockserve.plots.timeline import describe_timelines, plot_timelines
from sockserve.workbook import background, show
from sockserve.workbook.sentences import lines_and_connections
from sockserve.measure.workloads import handler_for

# %% [markdown]
# ## 1. Four system calls
#
# A TCP server is a socket that the kernel lets clients connect to. It takes four calls, each of which a sockserve
# server makes in one of its hooks:

# %%
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))                              # TCPServer.server_bind()
listener.listen()                                            # TCPServer.server_activate()

client = socket.create_connection(listener.getsockname())    # the kernel completes the handshake by itself ...
conn, address = listener.accept()                            # ... accept() takes it off the queue: get_request()
client.sendall(b"hello\n")
print("the server read   ", conn.recv(1024))                 # what a handler's rfile reads
conn.sendall(b"HELLO\n")
print("the client read   ", client.recv(1024))
conn.close()                                                 # shutdown_request() -> close_request()
print("then end of file: ", client.recv(1024))
client.close()
listener.close()

# %% [markdown]
# Note the order: the client's `connect()` returned *before* the server called `accept()`. The kernel answers the
# handshake and queues the finished connection (the *listen queue*, whose length is `listen()`'s backlog, sockserve's
# `request_queue_size`); `accept()` only takes the next one from that queue. And the server's `close()` is what the
# client sees as end of file: `b''`.
#
# ## 2. The blocking accept loop
#
# A server repeats: wait for a client, serve it, close it. The one thing that needs care is *stopping*: a loop that
# blocks in `accept()` can only notice that it should stop when the next client arrives. `BaseServer.serve_forever`
# therefore waits in `select()` with a timeout, `poll_interval`, and looks at its stop flag each time the wait ends.
#
# Your loop gets two things: `listener` (the listening socket, already bound) and `server`, which offers
# `server.stopping` (True once someone called `shutdown()`), `server.poll_interval` and `server.respond(line)` (the
# reply to one request line of the workload, after its work is done). Each piece of your loop is one hook of
# `BaseServer`:
#
# | your loop | `BaseServer` |
# |---|---|
# | `while not server.stopping:` | `serve_forever(poll_interval)` until `shutdown()` |
# | `select.select([listener], [], [], server.poll_interval)` | the wait inside `serve_forever`, at most `poll_interval` seconds |
# | nothing ready: go round again | `service_actions()`, called on every round |
# | `conn, address = listener.accept()` | `get_request()` |
# | (refuse a client here) | `verify_request(request, client_address)` |
# | read the lines, `conn.sendall(server.respond(line))` | `process_request()` -> `finish_request()` -> the handler's `setup`/`handle`/`finish` |
# | `conn.close()` | `shutdown_request()` -> `close_request()` |
#
# **Exercise 1.** Write `serve_blocking(listener, server)`: until `server.stopping`, wait up to `server.poll_interval`
# for the listener to be readable; then accept the client, answer each of its lines with `server.respond(line)`
# (`for line in conn.makefile("rb")` reads lines until the client closes), and close the connection.

# %%
def serve_blocking(listener, server):
    pass  # your code here


blocking = check("scratch-blocking", serve_blocking)
blocking


# %% [markdown]
# ## 3. Many clients, one thread: an event loop
#
# Your blocking loop serves one *connection* at a time, and a connection is a request for a stream server (as in
# `socketserver`): while one client keeps its connection open, every other client waits in the listen queue. The
# hierarchy's answer is a thread or a process per connection (`ThreadingMixIn`, `ForkingMixIn`). The other answer
# is to never block: ask the kernel which sockets are ready and only touch those. `selectors.DefaultSelector` is
# that question (`epoll` on Linux, `kqueue` on BSD and macOS):
#
# * `selector.register(sock, selectors.EVENT_READ, data=...)` watches a socket; `data` is yours to keep (a buffer);
# * `selector.select(timeout)` waits until some are ready and returns `(key, events)` pairs; `key.fileobj` is the
#   socket and `key.data` your data;
# * the listener is ready when a client waits to be accepted; a connection when bytes (or end of file) arrived.
#
# Because `recv()` returns whatever bytes have arrived, a line may come in pieces: keep a buffer per connection and
# answer each complete line. (Replies here are short; a full event loop would also watch `EVENT_WRITE` for replies
# larger than the socket's send buffer.)
#
# **Exercise 2.** Write `serve_selectors(listener, server)`: one thread serves many clients at once with a
# `selectors.DefaultSelector`, answering each complete line with `server.respond(line)` and closing each connection
# when its client is done, until `server.stopping`.

# %%
def serve_selectors(listener, server):
    pass  # your code here


event_loop = check("scratch-selectors", serve_selectors)
event_loop

# %% [markdown]
# ## 4. Measured beside the hierarchy
#
# `scratch_kind(name, loop)` turns your loop into a server kind that the comparison harness runs like sockserve's own
# (your loop in a thread of this notebook's process, the load generator in another process). Eight clients each keep
# one connection open and trickle their requests a byte at a time (the `slow` workload), for half a second per
# server. `timeline=True` records, for every connection, when it was accepted, when the server started on it and
# when it closed, and which thread or process served it. A connection is what `socketserver` calls a *request*: the
# load generator counts the request *lines* each connection carried, the timeline counts connections, and the lines
# under the comparison give both. The servers you wrote join the comparison once their check passes.

# %% tags=["nbval-ignore-output"]
servers = ["plain", "threading", "asyncio"]
if blocking:
    servers.insert(1, scratch_kind("my-blocking", serve_blocking))
if event_loop:
    servers.insert(-1, scratch_kind("my-selectors", serve_selectors, concurrency="asyncio"))
slow = compare("slow", servers, clients=8, duration=0.5, connection="persistent", timeout=1.0, timeline=True)
for run in slow.runs:
    print(lines_and_connections(run))
show(plot_timelines(slow), describe_timelines(slow))

# %% [markdown]
# **What to look for.** One lane per thread (or process) that served a connection; thin and light where a
# connection waited, thick and dark while it was served.
#
# * `plain` (and your blocking loop): one lane, one connection at a time. The first client is served for the whole
#   run; the other seven get their turn only when the load generator closes the first at the end. Their long wait
#   is not drawn: it happened in the kernel's listen queue, *before* `accept()`, where no server hook can see it
#   (the slowest reply in the lines above is that wait).
# * `threading`: a lane per connection, all at once: eight threads, each mostly waiting for bytes.
# * `asyncio` (and your selectors loop): one lane, and yet all eight connections open together, stacked inside it.
#   One thread, no waiting: the loop only ever touches a socket that is ready.
#
# ## 5. asyncio, and the rule of every event loop
#
# `asyncio` is an event loop like yours (it uses `selectors` underneath) that lets you write each connection's code
# as if it were blocking: a *coroutine* that `await`s where your loop would have returned to `select()`.
# sockserve's `asyncio` kind (`sockserve.measure.aio.AsyncioServer`) serves the same workloads that way. Its `io` workload
# waits with `await asyncio.sleep(...)`, which hands the thread back to the loop; your selectors loop calls
# `server.respond(line)`, which waits with `time.sleep(...)` *inside* the loop, and every other connection waits with
# it. Eight clients, each request waiting 20 ms:

# %% tags=["nbval-ignore-output"]
servers = ["threading", "asyncio"]
if event_loop:
    servers.append("my-selectors")
waiting = compare("io", servers, clients=8, duration=0.5, workload_params={"delay_ms": 20}, timeline=True)
print(waiting.table())
show(plot_timelines(waiting), describe_timelines(waiting))

# %% [markdown]
# Here each request opens a new connection, so the threading server starts a new thread for every request: up to
# 8 clients × 0.5 s / 20 ms = 200 threads, each living for one request. A lane per thread would make that figure
# metres tall, so threads that never ran at the same time share a row: the rows show how many threads ran at once,
# and the line under the figure says how many there were in all.
#
# The asyncio server's requests overlap in its one lane; in your selectors loop (once it passes) they line up one
# after the other, exactly like `plain`. That is the rule of every event loop, asyncio's included: **never block the
# loop**. CPU work blocks it too, however it is written; `cpu` and `mixed` requests on the asyncio kind run one at a
# time. Threads do not fully escape this either: under the GIL, a thread doing pure-Python work lets the others run
# only every few milliseconds, so a long CPU request makes the short ones behind it wait (the `mixed` workload shows
# this *convoy* on a timeline: `compare("mixed", ["threading", "asyncio"], timeline=True)`).
#
# **Exercise 3.** Write the coroutine `echo_lines(reader, writer)` that `asyncio.start_server` runs for each
# connection: answer each line with the line itself until the client closes (`await reader.readline()` returns
# `b''`), then close the writer.

# %%
async def echo_lines(reader, writer):
    pass  # your code here


check("scratch-asyncio", echo_lines)


# %% [markdown]
# ## 6. Back to `BaseServer`: `poll_interval` and `service_actions`
#
# Your loop's `select(..., server.poll_interval)` is `serve_forever(poll_interval)`. In the standard library,
# `shutdown()` only sets a flag, so it takes up to `poll_interval` (0.5 s by default) to be noticed; sockserve also
# wakes the loop at once (through a socket pair the loop watches), so `shutdown()` returns immediately whatever the
# interval. What `poll_interval` still sets is how often the loop does its chores when no client comes: each round
# ends with `service_actions()`, the hook for periodic work in the serving thread. `ForkingMixIn` uses it to reap
# finished children (without it, they would stay zombies); a server of yours can use it to expire caches or write
# statistics. Rounds counted while an idle server waits 0.6 s:

# %% tags=["nbval-ignore-output"]
class Counting(sockserve.TCPServer):
    rounds = 0

    def service_actions(self):
        self.rounds += 1


for poll_interval in (0.25, 0.1, 0.02):
    server = Counting(("127.0.0.1", 0), handler_for("echo"))
    with background(server, poll_interval=poll_interval):
        select.select([], [], [], 0.6)  # no client comes for 0.6 s
    print(f"poll_interval {poll_interval:4}: service_actions ran {server.rounds:2} times in 0.6 s")

# %% [markdown]
# Everything else in `socketserver` is the code you wrote, cut into hooks so that a subclass or a mixin can replace
# one piece: `ThreadingMixIn` replaces only `process_request` (the "serve the connection" line of your loop) to run
# it in a new thread, and the loop stays the same. An event loop cannot be made that way: every connection's code
# must give the thread back, which is why asyncio is a different library rather than one more mixin.
#
# Reference solutions: `solutions/08-a-server-from-scratch.py` (a teacher's copy: `sockserve lab --solutions`).
