"""Reference answers for notebooks/03-udp-and-unix.ipynb (the stubs it hands out are registered with each exercise)."""

import os
import socket

import sockserve


class Reverse(sockserve.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read()[::-1])


class BigDatagramServer(sockserve.UDPServer):
    max_packet_size = 16384


def ask_unix(server_path, payload, client_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.bind(client_path)
        try:
            sock.sendto(payload, server_path)
            return sock.recv(65536)
        finally:
            os.unlink(client_path)


SOLUTIONS = {
    "udp-reverse": (Reverse,),
    "udp-big-datagrams": (BigDatagramServer,),
    "unix-dgram-client": (ask_unix,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    'udp-reverse': ['[::-1]'],
    'udp-big-datagrams': ['max_packet_size', '16384'],
    'unix-dgram-client': ['bind', 'unlink'],
}
