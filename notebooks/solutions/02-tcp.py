"""Reference answers for notebooks/02-tcp.ipynb (the stubs it hands out are registered with each exercise)."""

import sockserve


class UpperEcho(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())


class Calculator(sockserve.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            words = line.split()
            try:
                if len(words) != 3 or words[0] not in (b"ADD", b"MUL"):
                    raise ValueError("not a command")
                a, b = int(words[1]), int(words[2])
            except ValueError:
                self.wfile.write(b"ERR expected ADD a b or MUL a b\n")
                continue
            result = a + b if words[0] == b"ADD" else a * b
            self.wfile.write(b"%d\n" % result)


class RestartableServer(sockserve.TCPServer):
    allow_reuse_address = True


SOLUTIONS = {
    "tcp-upper-echo": (UpperEcho,),
    "tcp-calculator": (Calculator,),
    "tcp-rebind": (RestartableServer,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    'tcp-upper-echo': ['.upper()'],
    'tcp-calculator': ['int('],
    'tcp-rebind': ['allow_reuse_address', 'SO_REUSEADDR'],
}
