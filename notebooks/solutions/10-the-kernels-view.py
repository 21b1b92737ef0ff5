"""Reference answers for notebooks/10-the-kernels-view.ipynb (the stubs it hands out are registered with each exercise)."""

import socket
import time

import sockserve
from sockserve.kernel import view as kernelview


def close_wait_count(server, clients=3):
    for _ in range(clients):
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"hi\n")
            client.recv(64)
    # close() sends a FIN; give it a moment to reach the server's side.
    time.sleep(0.2)
    return kernelview.read(server).count("CLOSE-WAIT")


class BacklogServer(sockserve.TCPServer):
    def __init__(self, server_address, handler, backlog=5, bind_and_activate=True):
        self.backlog = backlog  # before super().__init__, which may call server_activate()
        super().__init__(server_address, handler, bind_and_activate)

    def server_activate(self):
        self.socket.listen(self.backlog)


SOLUTIONS = {
    "kernel-close-wait": (close_wait_count,),
    "kernel-backlog": (BacklogServer,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    "kernel-close-wait": ['count("CLOSE-WAIT")', "time.sleep(0.2)", "create_connection"],
    "kernel-backlog": ["self.socket.listen(self.backlog)", "self.backlog = backlog"],
}
