"""Reference answers for notebooks/05-measuring-honestly.ipynb (the stubs it hands out are registered with each exercise)."""

import math
import socket
import socketserver
import time


def percentile(samples, q):
    ordered = sorted(samples)                  # a copy: the caller's list stays as measured
    rank = math.ceil(q / 100 * len(ordered))   # how many samples must be at or below the answer
    return ordered[max(rank, 1) - 1]


class BurstServer(socketserver.TCPServer):
    request_queue_size = socket.SOMAXCONN      # the standard library's default is 5


class TimingMixIn:
    def finish_request(self, request, client_address):
        began = time.perf_counter()
        try:
            super().finish_request(request, client_address)   # runs the handler
        finally:
            self.durations.append(time.perf_counter() - began)


SOLUTIONS = {
    "measuring-percentile": (percentile,),
    "measuring-burst-backlog": (BurstServer,),
    "measuring-timing-mixin": (TimingMixIn,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    'measuring-percentile': ['ceil', 'sorted('],
    'measuring-burst-backlog': ['request_queue_size', 'SOMAXCONN'],
    'measuring-timing-mixin': ['finish_request', 'perf_counter'],
}
