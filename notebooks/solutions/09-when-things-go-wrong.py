"""Reference answers for notebooks/09-when-things-go-wrong.ipynb (the stubs it hands out are registered with each exercise)."""

import socket
import sys
import threading

import sockserve


class RecordingServer(sockserve.ThreadingTCPServer):
    def __init__(self, *args, **kwargs):
        self.failures = []
        super().__init__(*args, **kwargs)

    def handle_error(self, request, client_address):
        # Called inside the server's `except` clause: the exception is being handled now.
        self.failures.append((client_address, sys.exc_info()[1]))


class Patient(sockserve.StreamRequestHandler):
    timeout = 0.3  # each read waits at most this long (settimeout on the connection)

    def handle(self):
        try:
            for line in self.rfile:
                self.wfile.write(line.upper())
        except TimeoutError:
            self.wfile.write(b"idle timeout\n")


class Deadline(sockserve.StreamRequestHandler):
    seconds = 0.5

    def setup(self):
        super().setup()
        # A watchdog: at the deadline, shut the connection down; a blocked read then returns b"".
        self.watchdog = threading.Timer(self.seconds, self._cut)
        self.watchdog.start()

    def _cut(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())

    def finish(self):
        self.watchdog.cancel()
        super().finish()


def zombie_pids(pids):
    found = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
        except FileNotFoundError:
            continue  # reaped already: gone, not a zombie
        # "PID (name) STATE ...": the name may hold spaces and ')', so split after the last one.
        if text.rsplit(")", 1)[1].split()[0] == "Z":
            found.append(pid)
    return found


class TwoLines(sockserve.StreamRequestHandler):
    disable_nagle_algorithm = True  # TCP_NODELAY: small writes go out at once

    def handle(self):
        for line in self.rfile:
            self.wfile.write(b"length %d\n" % len(line))
            self.wfile.write(line)


def ask_to_eof(address, data):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # "I have sent everything": a FIN, and we can still read
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


SOLUTIONS = {
    "wrong-handle-error": (RecordingServer,),
    "wrong-idle-timeout": (Patient,),
    "wrong-deadline": (Deadline,),
    "wrong-zombies": (zombie_pids,),
    "wrong-nagle": (TwoLines,),
    "wrong-half-close": (ask_to_eof,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    "wrong-handle-error": ["sys.exc_info", "self.failures = []", "self.failures.append"],
    "wrong-idle-timeout": ["timeout = 0.3", "except TimeoutError", "line.upper()"],
    "wrong-deadline": ["threading.Timer", "SHUT_RDWR", "line.upper()"],
    "wrong-zombies": ['rsplit(")", 1)', "except FileNotFoundError", "/proc/{pid}/stat"],
    "wrong-nagle": ["disable_nagle_algorithm = True", "len(line)"],
    "wrong-half-close": ["shutdown(socket.SHUT_WR)", "sock.recv("],
}
