"""Forking from a real ipykernel while another thread prints: nothing hangs,
nothing is lost.

Before sockserve's children replaced their inherited stdout/stderr, 2,000
forked requests from an ipykernel process while a thread printed left a few
children blocked forever on the kernel's output-stream lock (and
``server_close()`` waited forever for them). This test repeats exactly that:
a kernel (started with jupyter_client, with ipykernel's descriptor capture on,
as in JupyterLab) runs a forking :class:`sockserve.lab.models.ServerModel`
whose handler prints from every child, a thread floods stdout and stderr, and
the kernel sends the requests to itself. (Without the fix, this exact cell
left 4 of the first ~170 children blocked on a futex in each of two runs.) It asserts every request answered,
every child ended by itself (no alarm, no kill), every child's line reached
the notebook's output, and stopping returned promptly. Bounded in time
throughout.
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Forked requests; SOCKSERVE_FORK_STRESS overrides it (the issue's figure is
#: 2,000; the hang showed within the first ~170 children, so 600 in the test
#: run keeps a wide margin at under a third of the time).
REQUESTS = int(os.environ.get("SOCKSERVE_FORK_STRESS", "600"))

CELL = r"""
import json, os, socket, sys, threading, time
import sockserve
from sockserve.lab.models import ServerModel

N, CLIENTS = {requests}, 4

class Marked(sockserve.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        print("child-served", line.split()[1].decode())   # from the child
        self.wfile.write(line)

stop_noise = threading.Event()
def noise():
    n = 0
    while not stop_noise.is_set():
        sys.stdout.write("noise\n")          # one write per line (see the test)
        n += 1
        if n % 50 == 0:
            sys.stderr.write("noise\n")
noisy = threading.Thread(target=noise, daemon=True)
noisy.start()

model = ServerModel(kind="forking", handler=Marked)
status = model.start()
assert status.state == "running", status
answered = []
lock = threading.Lock()
deadline = time.monotonic() + {load_budget}

failed = threading.Event()   # one lost request ends the run early: the test fails

def client(k):
    for i in range(k, N, CLIENTS):
        if failed.is_set() or time.monotonic() > deadline:
            return
        try:
            with socket.create_connection(model.address, timeout=10) as s:
                s.sendall(b"req %d\n" % i)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            failed.set()
            return
        if data != b"req %d\n" % i:
            failed.set()
            return
        with lock:
            answered.append(i)

t0 = time.monotonic()
clients = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
for t in clients: t.start()
for t in clients: t.join()
load_s = time.monotonic() - t0

# Every child must end by itself: the serving loop reaps them; no alarm
# (child_timeout is 30 s) and no kill within this window.
server = model.server
wait_end = time.monotonic() + 15
while server.active_children and time.monotonic() < wait_end:
    time.sleep(0.05)
left = sorted(server.active_children or ())
wchan = {{}}
for pid in left:
    try:
        wchan[pid] = open(f"/proc/{{pid}}/wchan").read()
    except OSError:
        pass
t1 = time.monotonic()
model.stop()
stop_s = time.monotonic() - t1
stop_noise.set()
noisy.join(5)

def ppid(pid):
    try:
        with open(f"/proc/{{pid}}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
kids = [int(p) for p in os.listdir("/proc") if p.isdigit() and ppid(p) == os.getpid()]
time.sleep(0.5)   # let ipykernel's descriptor watcher forward the last lines
sys.stdout.flush()
print("RESULT " + json.dumps(dict(
    answered=len(answered), left=left, wchan=wchan, kids=kids, load_s=load_s, stop_s=stop_s,
    errors=model.errors(), noise_alive=noisy.is_alive())), file=sys.stderr)
"""


@pytest.mark.timeout(300)
@pytest.mark.allow_leaks  # jupyter_client's heartbeat thread winds down on its own time
def test_forking_in_ipykernel_while_a_thread_prints() -> None:
    env = dict(os.environ)
    # ipykernel disables its fd capture under pytest; JupyterLab has it on.
    env.pop("PYTEST_CURRENT_TEST", None)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    km, kc = _start_kernel(env)
    stdout: list[str] = []
    stderr: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            (stdout if msg["content"]["name"] == "stdout" else stderr).append(
                msg["content"]["text"]
            )
        elif msg["msg_type"] == "error":
            stderr.append("\n".join(msg["content"]["traceback"]))

    try:
        reply = kc.execute_interactive(
            CELL.format(requests=REQUESTS, load_budget=120), timeout=240, output_hook=hook
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    err_text = "".join(stderr)
    assert reply["content"]["status"] == "ok", err_text[-3000:]
    found = re.search(r"RESULT (\{.*\})", err_text)
    assert found, err_text[-3000:]
    result = json.loads(found.group(1))
    print(f"fork stress: {result}", file=sys.stderr)
    assert result["answered"] == REQUESTS, result
    assert result["left"] == [], f"children hung (kernel wait channel): {result['wchan']}"
    assert result["kids"] == [], result
    assert result["stop_s"] < 10, result
    assert result["errors"] == [], result
    # The noise is written one whole "noise\n" per write; removing it leaves
    # exactly what ipykernel's descriptor watcher forwarded from the children.
    child_text = "".join(stdout).replace("noise\n", "")
    served = set(re.findall(r"child-served (\d+)\n", child_text))
    assert len(served) == REQUESTS, f"{REQUESTS - len(served)} child lines lost"


def _start_kernel(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.kernel_spec.argv[0] = sys.executable  # this venv's interpreter
    km.start_kernel(env=env, cwd=ROOT)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
    except RuntimeError:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


RESTART_CELL = r"""
import json, os, socket, time
import sockserve
from sockserve.lab import ServerPanel

class Hang(sockserve.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        time.sleep(600)   # far beyond child_timeout: only the lab's clean-up can end it soon

forking = ServerPanel(kind="forking", handler=Hang, key="restart-forking")
forking.start()
threading_panel = ServerPanel(kind="threading", workload="io", key="restart-threading")
threading_panel.start()
hold = socket.create_connection(forking.address)
hold.sendall(b"x\n")
deadline = time.monotonic() + 10
while not forking.model.server.active_children and time.monotonic() < deadline:
    time.sleep(0.02)
print("INFO " + json.dumps({
    "ports": [forking.address[1], threading_panel.address[1]],
    "children": sorted(forking.model.server.active_children or ()),
    "pid": os.getpid(),
}))
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(120)
@pytest.mark.allow_leaks  # jupyter_client's heartbeat thread winds down on its own time
def test_kernel_restart_leaves_no_server_port_or_child() -> None:
    import socket
    import time

    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    km, kc = _start_kernel(env)
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    try:
        reply = kc.execute_interactive(RESTART_CELL, timeout=60, output_hook=hook)
        assert reply["content"]["status"] == "ok", "".join(out)[-3000:]
        found = re.search(r"INFO (\{.*\})", "".join(out))
        assert found, "".join(out)[-3000:]
        info = json.loads(found.group(1))
        assert len(info["children"]) == 1 and _alive(info["children"][0])
        # The message JupyterLab's "Restart Kernel" sends. The kernel exits on
        # its own; we look before jupyter_client would signal the kernel's
        # whole process group. (ipykernel also terminates the children in its
        # process group on shutdown when psutil is installed; the lab's atexit
        # clean-up, tested in test_lab_models, does not rely on that.)
        kc.shutdown(restart=True)
        deadline = time.monotonic() + 30
        while _alive(info["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(info["pid"]), "the kernel did not exit on a shutdown request"
        assert not any(_alive(pid) for pid in info["children"]), "a forked child outlived the kernel"
        for port in info["ports"]:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
