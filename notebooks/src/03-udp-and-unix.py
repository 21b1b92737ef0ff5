# %% [markdown]
# # 03 · UDP and Unix sockets
#
# **The question.** What changes when a server receives *datagrams* instead of a byte stream, or listens on a
# *file path* instead of a port? In particular: what happens to a datagram longer than the server expects, and what
# happens to the socket file when a Unix server stops?
#
# Same classes, same hooks: `UDPServer` is a `TCPServer` with `socket_type = SOCK_DGRAM`, and the Unix servers
# change only `address_family`. The differences are in what one *request* is.

# %%
import os
import socket
import socketserver
import tempfile

import sockserve
from sockserve.workbook import ask, ask_datagram, background, round_trip_seconds

workdir = tempfile.mkdtemp(prefix="ss-lesson03-", dir="/tmp")   # for the Unix socket files


# %% [markdown]
# ## 1. One datagram, one request
#
# For a datagram server, `get_request()` returns `((data, server_socket), client_address)`: one request is one
# datagram, and there is no connection to accept or close. `DatagramRequestHandler` wraps the datagram in
# `self.rfile` (an in-memory `BytesIO`) and sends whatever `handle()` wrote to `self.wfile` back in `finish()`, as
# one datagram.

# %%
class Shout(sockserve.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read().upper() + b"!")


with background(sockserve.UDPServer(("127.0.0.1", 0), Shout)) as server:
    for word in (b"one", b"two", b"three"):
        print(word, "->", ask_datagram(server.server_address, word))
print("requests completed:", server.stats.snapshot()["completed"], "(one per datagram)")


class Describe(sockserve.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(f"packet={self.packet!r} rfile={type(self.rfile).__name__} "
                         f"wfile={type(self.wfile).__name__}".encode())


with background(sockserve.UDPServer(("127.0.0.1", 0), Describe)) as server:
    print(ask_datagram(server.server_address, b"hi").decode())


# %% [markdown]
# ## 2. `max_packet_size` and truncation
#
# The server reads each datagram with one `recvfrom(max_packet_size)` (8192 bytes by default). A longer datagram
# is **cut**: the kernel drops the rest, and nothing tells the handler. Let us measure what a handler sees for
# datagrams of growing size, on your machine:

# %%
class Length(sockserve.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(str(len(self.packet)).encode())


for cls in (sockserve.UDPServer, socketserver.UDPServer):
    with background(cls(("127.0.0.1", 0), Length)) as server:
        seen = {size: int(ask_datagram(server.server_address, b"x" * size)) for size in (100, 8192, 8193, 20000)}
        truncated = server.stats.snapshot()["truncated"] if hasattr(server, "stats") else "not counted"
    print(f"{cls.__module__.split('.')[0]:12} sent -> seen: {seen}   truncated: {truncated}")


# %% [markdown]
# Both cut at 8192 bytes; sockserve also counts it (`server.stats.truncated`, read from the `MSG_TRUNC` flag of
# `recvmsg`), so a too-small `max_packet_size` shows up in the statistics instead of as mysteriously short
# requests. Raise `max_packet_size` (a class attribute) when your protocol sends bigger datagrams; 65507 bytes is
# the most a UDP datagram over IPv4 can carry.
#
# ## 3. Unix stream servers: a path instead of a port
#
# A Unix-domain server binds a **path**; the kernel creates a socket file there, and clients connect to the path.
# Only processes on this machine that may open the file can connect, and there is no TCP underneath.

# %%
class Echo(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


path = os.path.join(workdir, "echo.sock")
with background(sockserve.UnixStreamServer(path, Echo)) as server:
    print("listening on", server.server_address)
    print("is a socket file:", os.path.exists(path) and not os.path.isfile(path))
    print(ask(path, b"over a Unix socket\n"))
print("file still there after server_close():", os.path.exists(path))

# %% [markdown]
# `server_close()` closed the socket but left the file, as the standard library does (code written for it removes
# the file itself afterwards, and must find it there). The next run on that path then cannot bind; here is the
# standard library's server trying:

# %% tags=["raises-exception"]
socketserver.UnixStreamServer(path, socketserver.StreamRequestHandler)   # the next run

# %% [markdown]
# A bare `Address already in use`, although nothing listens. sockserve recognises such a *stale* file (the kernel's
# list of Unix sockets, `/proc/net/unix`, has no socket bound to it; nobody is connected to, to find out) and says
# so. Set `replace_stale_socket = True` on the class to remove a stale file and bind, and `remove_socket_file = True`
# to have `server_close()` remove the file the server made:

# %%
try:
    sockserve.UnixStreamServer(path, Echo)
except OSError as exc:
    print(type(exc).__name__, "-", exc)


class Restartable(sockserve.UnixStreamServer):
    replace_stale_socket = True
    remove_socket_file = True


with background(Restartable(path, Echo)) as server:
    print(ask(path, b"bound over the stale file\n"))
print("file still there after server_close():", os.path.exists(path))

# %% [markdown]
# **Is a Unix socket faster than TCP on loopback?** Here is the median time of one small round trip on one open
# connection, both servers on your machine (timings vary from run to run):

# %% tags=["nbval-ignore-output"]
tcp = sockserve.ThreadingTCPServer(("127.0.0.1", 0), Echo)
unix = sockserve.ThreadingUnixStreamServer(os.path.join(workdir, "rt.sock"), Echo)
with background(tcp), background(unix):
    for name, address in (("TCP loopback", tcp.server_address), ("Unix stream", unix.server_address)):
        print(f"{name:13} median round trip: {round_trip_seconds(address, count=500) * 1e6:7.1f} µs")

# %% [markdown]
# ## 4. Unix datagram servers: the client needs an address too
#
# A datagram server replies to the address the datagram came from. Over UDP the kernel gives every client socket a
# port automatically; a Unix datagram client socket gets **no** path unless it binds one, and then the server has
# nowhere to send the reply. So a Unix datagram client binds its own path first:

# %%
server_path = os.path.join(workdir, "shout.sock")
client_path = os.path.join(workdir, "client.sock")
with background(sockserve.UnixDatagramServer(server_path, Shout)) as server:
    reply = ask_datagram(server_path, b"hello", client_path=client_path)
    print("reply:", reply)
print("client's socket file left behind:", os.path.exists(client_path))

# %% [markdown]
# ## Exercises
#
# Reference solutions: `solutions/03-udp-and-unix.py` (a teacher's copy: `sockserve lab --solutions`). A check
# first says what your code did and which idea it misses; if the same exercise fails again, it also says what to
# change.
#
# **Exercise 1.** Finish `Reverse`: answer each datagram with its bytes reversed (`b"hello"` -> `b"olleh"`).

# %%
from sockserve.exercises import check


class Reverse(sockserve.DatagramRequestHandler):
    def handle(self):
        pass  # your code here


check("udp-reverse", Reverse)


# %% [markdown]
# **Exercise 2.** Write `BigDatagramServer`, a `UDPServer` whose handlers see datagrams of up to 16 KiB whole.

# %%
class BigDatagramServer(sockserve.UDPServer):
    pass  # your code here


check("udp-big-datagrams", BigDatagramServer)


# %% [markdown]
# **Exercise 3.** `ask_unix` below sends a datagram to a Unix datagram server, but no reply ever comes back (the
# check waits 2 seconds). Fix it so it returns the reply, and leaves no socket file behind.

# %%
def ask_unix(server_path, payload, client_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(payload, server_path)
        return sock.recv(65536)  # why does no reply ever come?


check("unix-dgram-client", ask_unix)

# %%
import shutil

shutil.rmtree(workdir)   # tidy up this lesson's socket files
