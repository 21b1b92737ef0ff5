"""Reference answers for notebooks/05-measuring-honestly.ipynb (and the stubs it hands out)."""

import math
import socket
import socketserver


def percentile(samples, q):
    ordered = sorted(samples)                  # a copy: the caller's list stays as measured
    rank = math.ceil(q / 100 * len(ordered))   # how many samples must be at or below the answer
    return ordered[max(rank, 1) - 1]


class BurstServer(socketserver.TCPServer):
    request_queue_size = socket.SOMAXCONN      # the standard library's default is 5


# The stubs the notebook gives the learner.
def percentile_stub(samples, q):
    pass  # your code here


class BurstServerStub(socketserver.TCPServer):
    pass  # your code here


SOLUTIONS = {
    "measuring-percentile": (percentile,),
    "measuring-burst-backlog": (BurstServer,),
}
EMPTY_ATTEMPTS = {
    "measuring-percentile": (percentile_stub,),
    "measuring-burst-backlog": (BurstServerStub,),
}
