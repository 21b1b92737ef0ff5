"""Reference answers for notebooks/07-building-on-sockserve.ipynb (the stubs it hands out are registered with each exercise)."""

import json
from http.server import BaseHTTPRequestHandler

import sockserve


class AllowlistServer(sockserve.ThreadingTCPServer):
    allowed = {"127.0.0.1"}

    def verify_request(self, request, client_address):
        return client_address[0] in self.allowed


class StatsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/stats":
            self.send_error(404)
            return
        body = json.dumps(self.server.stats.snapshot()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class BoundedServer(sockserve.ThreadPoolMixIn, sockserve.TCPServer):
    pool_size = 4


SOLUTIONS = {
    "building-allowlist": (AllowlistServer,),
    "building-http-stats": (StatsHandler,),
    "building-bounded": (BoundedServer,),
}
# Words the first failure's hint must not say (it would give the answer away).
GIVEAWAYS = {
    'building-allowlist': ['verify_request', 'client_address[0]'],
    'building-http-stats': ['do_GET'],
    'building-bounded': ['ThreadPoolMixIn', 'pool_size'],
}
