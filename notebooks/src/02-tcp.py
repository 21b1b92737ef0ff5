# %% [markdown]
# # 02 · TCP: a line protocol, `rfile`/`wfile`, and "address already in use"
#
# **The question.** A TCP client sends *lines*; what does a `StreamRequestHandler` actually receive, and how does
# it answer? And why does a server you just stopped sometimes refuse to start again with
# `[Errno 98] Address already in use`?
#
# We answer both by running servers on `127.0.0.1` and looking: at the lines the handler sees, and at the kernel's
# own table of TCP sockets on your machine.

# %%
import errno
import socket

import sockserve
from sockserve.workbook import ask, background, leave_time_wait, lines, time_wait_sockets


# %% [markdown]
# ## 1. A small line protocol
#
# A `StreamRequestHandler` gets two file-like objects: `self.rfile` (bytes *from* the client) and `self.wfile`
# (bytes *to* the client). Iterating over `self.rfile` yields one line at a time, until the client closes its side.
# Here is a tiny key-value store: `SET key value` answers `OK`, `GET key` answers the value.

# %%
class KeyValue(sockserve.StreamRequestHandler):
    """SET key value -> OK;  GET key -> the value or ERR;  anything else -> ERR."""

    def handle(self):
        store = self.server.store          # shared by every connection of this server
        for raw in self.rfile:             # one line at a time, until the client closes
            words = raw.decode().split()
            if len(words) == 3 and words[0] == "SET":
                store[words[1]] = words[2]
                reply = "OK"
            elif len(words) == 2 and words[0] == "GET":
                reply = store.get(words[1], "ERR no such key")
            else:
                reply = "ERR say 'SET key value' or 'GET key'"
            self.wfile.write(reply.encode() + b"\n")


server = sockserve.ThreadingTCPServer(("127.0.0.1", 0), KeyValue)
server.store = {}
with background(server):
    print("serving on", server.server_address)
    print(lines(ask(server.server_address, b"SET colour blue\n", b"GET colour\n", b"GET size\n", b"HELLO\n")))
    print("--- a second connection sees the same store:")
    print(lines(ask(server.server_address, b"GET colour\n")))
print("requests (connections) completed:", server.stats.snapshot()["completed"])

# %% [markdown]
# One *request*, for a stream server, is one **connection**: the handler above served four lines in its first
# request. The server counts connections, not lines.
#
# **Try it live (optional).** Run the cell below: it shows two panels that start a server in this kernel and send
# it load; press *Start*, then *Send*, and watch the counters move. (Nothing runs until you press a button;
# `stop_all()` at the end of the lesson stops whatever you started.)

# %% tags=["nbval-ignore-output"]
from sockserve.lab import ServerPanel, TrafficPanel, stop_all

live = ServerPanel(kind="threading", workload="echo")
display(live, TrafficPanel(live, clients=4, duration=2.0))

# %% [markdown]
# ## 2. What `rfile` and `wfile` are
#
# TCP carries a stream of bytes, not messages. The client below sends `SET a 1\nGE` and `T a\n` as two separate
# writes, 50 ms apart, and then two commands in a single write. `rfile.readline()` puts the lines back together,
# whatever the pieces were:

# %%
server = sockserve.TCPServer(("127.0.0.1", 0), KeyValue)
server.store = {}
with background(server):
    replies = ask(server.server_address, b"SET a 1\nGE", b"T a\n", b"SET b 2\nGET b\n", pause=0.05)
print(lines(replies))


class Show(sockserve.StreamRequestHandler):
    def handle(self):
        self.wfile.write(f"rfile: {type(self.rfile).__name__}, wfile: {type(self.wfile).__name__}\n".encode())


with background(sockserve.TCPServer(("127.0.0.1", 0), Show)) as server:
    print(lines(ask(server.server_address)))
print("rbufsize =", sockserve.StreamRequestHandler.rbufsize, " wbufsize =", sockserve.StreamRequestHandler.wbufsize)

# %% [markdown]
# `rfile` is buffered (it reads what has arrived and hands it out line by line); `wfile` is unbuffered by default
# (`wbufsize = 0`): every `write()` goes straight to the socket, so you never forget to flush a reply.
#
# ## 3. "Address already in use", reproduced
#
# **Case 1: a live server holds the port.** Only one socket may listen on an address:

# %% tags=["raises-exception"]
first = sockserve.TCPServer(("127.0.0.1", 0), KeyValue)
try:
    second = sockserve.TCPServer(first.server_address, KeyValue)
finally:
    first.server_close()

# %% [markdown]
# The error is the same `OSError` with `errno.EADDRINUSE` (98 on Linux) that `socketserver` raises, but sockserve's
# message says which address and what to do.
#
# **Case 2: nobody listens, and it still fails.** When a TCP connection ends, the side that closes *first* keeps a
# record of it for about a minute, in the state `TIME_WAIT`, so that late packets of the old connection cannot be
# mistaken for a new one. A server closes its connections first (after the reply), so *its* port collects
# `TIME_WAIT` entries. Let us make three, and ask the kernel (`/proc/net/tcp`) how many it holds for that port:

# %%
port = leave_time_wait(connections=3)   # served 3 requests, then server_close(); nothing listens now
print("TIME_WAIT sockets on the old server's port:", time_wait_sockets(port))
try:
    sockserve.TCPServer(("127.0.0.1", port), KeyValue)
except OSError as exc:
    print("rebinding failed:", errno.errorcode[exc.errno])


# %% [markdown]
# That is the classic "I stopped my server and cannot restart it" error. The fix is the socket option
# `SO_REUSEADDR`, which `TCPServer` sets in `server_bind()` when the class attribute `allow_reuse_address` is true
# (the standard library's `http.server.HTTPServer` does this). On Linux there is a catch: the **old** server's
# sockets must have had it too. So set it on the class, and every run has it:

# %%
class ReusingServer(sockserve.TCPServer):
    allow_reuse_address = True


port = leave_time_wait(connections=3, server_class=ReusingServer)
print("TIME_WAIT sockets:", time_wait_sockets(port))
again = ReusingServer(("127.0.0.1", port), KeyValue)
print("rebound the same port:", again.server_address[1] == port)

# SO_REUSEADDR does not let two servers listen on one port at the same time:
try:
    ReusingServer(("127.0.0.1", port), KeyValue)
except OSError as exc:
    print("a second live listener:", errno.errorcode[exc.errno])
again.server_close()

# %% [markdown]
# **The fixes, in order of preference:**
#
# 1. In tests and notebooks, bind port `0` and read the real port from `server.server_address` (every cell of this
#    workbook does that): nothing to collide with.
# 2. For a server that restarts on a fixed port, set `allow_reuse_address = True` on its class.
# 3. If a *live* server holds the port (case 1), stop it, or pick another port: `ss -ltnp` shows who listens.
#
# (`allow_reuse_port = True`, i.e. `SO_REUSEPORT`, is something else: it lets several live servers share one port
# and the kernel spreads connections between them.)
#
# ## Exercises
#
# Change the stub in each cell and run it: the check at its end runs your code against a live server. A check
# first says what your code did and which idea it misses; if the same exercise fails again, it also says what to
# change. The reference solutions are in `solutions/02-tcp.py`
# (a teacher's copy: `sockserve lab --solutions`); try first.
#
# **Exercise 1.** Finish `UpperEcho`: answer every line with the same line in upper case, until the client closes.

# %%
from sockserve.exercises import check


class UpperEcho(sockserve.StreamRequestHandler):
    def handle(self):
        pass  # your code here: read lines from self.rfile, write replies to self.wfile


check("tcp-upper-echo", UpperEcho)


# %% [markdown]
# **Exercise 2.** A line protocol: `ADD a b` answers the sum, `MUL a b` the product (integers, one per line), and
# anything else a line starting with `ERR`. A bad line must not end the connection (hint: `int("two")` raises
# `ValueError`).

# %%
class Calculator(sockserve.StreamRequestHandler):
    def handle(self):
        pass  # your code here


check("tcp-calculator", Calculator)


# %% [markdown]
# **Exercise 3.** Write `RestartableServer`, a `TCPServer` that can bind its port again right after an earlier
# `RestartableServer` on that port was closed, while its connections are still in `TIME_WAIT`. The check also makes
# sure a port with a *live* server stays refused.

# %%
class RestartableServer(sockserve.TCPServer):
    pass  # your code here: one class attribute


check("tcp-rebind", RestartableServer)

# %%
stop_all()   # stops any server or load the panels above started
print("Every server and load the panels started is stopped.")
