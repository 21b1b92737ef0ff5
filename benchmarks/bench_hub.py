"""A class on one JupyterHub: N students run lesson 04's comparisons at the same moment.

Starts a real JupyterHub (dummy authenticator, SimpleLocalProcessSpawner,
everything bound to 127.0.0.1) in a temporary folder, gives each of N users
(8 by default) a student's copy of the workbook in their home, starts their
servers through the hub's REST API, and then, at the same moment, has each
user's server run the lesson top to bottom: one cell sent to a kernel in
that user's server runs nbclient on the lesson there (so the lesson's
servers, load generators and children are that user's processes).

Whatever the lesson is called and however it concludes, the harness reads
the results generically: a cell appended to the executed copy collects
every :class:`~sockserve.measure.results.Comparison` left in the lesson's
namespace, with the :func:`~sockserve.measure.conclusions.conclusions` drawn
from it. For each student the report gives what the notebook concluded and
whether each conclusion holds for what *that* student measured (every ratio
a sentence quotes is a ratio of that student's own figures; a sentence that
says a server cannot beat, or beats, another agrees with the measured
ratio), how long the lesson took (alone first, then all at once), the CPU
seconds each student's processes used (the user server's own CPU and its
reaped children's), and that no port, process or file was left behind.
The hub is stopped by its PID.

    python benchmarks/bench_hub.py [--students 8] [--lesson 04-concurrency] [--json PATH]

Needs jupyterhub (pip) and configurable-http-proxy (npm: put its
``node_modules/.bin`` on PATH, or pass ``--proxy``). Wall-clock figures depend
on the machine's load: the report prints the load average; on a shared
machine say so next to the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sockserve.workbook.launch import copy_workbook  # noqa: E402

HOST = "127.0.0.1"

#: Runs in a kernel in each student's server: the lesson, executed by nbclient, results collected.
RUN_LESSON = r'''
import json, time, nbformat
from nbclient import NotebookClient
nb = nbformat.read({lesson!r} + ".ipynb", as_version=4)
nb.cells.append(nbformat.v4.new_code_cell({collect!r}))
began = time.monotonic()
error = None
try:
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={{"metadata": {{"path": "."}}}}).execute()
except Exception as exc:
    error = f"{{type(exc).__name__}}: {{str(exc)[-400:]}}"
took = time.monotonic() - began
nbformat.write(nb, {lesson!r} + ".hub-run.ipynb")
print(json.dumps({{"seconds": took, "error": error}}))
'''

#: Appended to the lesson: every comparison in its namespace, with its conclusions.
COLLECT = r'''
import dataclasses as _dc, json as _json
from sockserve.measure.results import Comparison as _Comparison
from sockserve.measure import conclusions as _conclusions
_found, _ids = {}, set()
for _name, _value in list(globals().items()):
    if isinstance(_value, _Comparison) and not _name.startswith("_") and id(_value) not in _ids:
        _ids.add(id(_value))  # a loop variable naming a comparison again is not another one
        _found[_name] = {"comparison": _value.to_dict(),
                         "conclusions": [_dc.asdict(c) if _dc.is_dataclass(c) else {"text": str(c)}
                                         for c in _conclusions.conclusions(_value)]}
with open("hub-run-results.json", "w") as _out:
    _json.dump(_found, _out)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# -- processes, ports and CPU from /proc -----------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def descendants(root: int) -> dict[int, str]:
    """pid -> start time of every live descendant of *root* (and root)."""
    parents: dict[int, int] = {}
    starts: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields:
                parents[int(entry)] = int(fields[1])
                starts[int(entry)] = fields[19]
    found = {root: starts.get(root, "")}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found[pid] = starts[pid]
                grew = True
    return found


def cpu_seconds(pid: int) -> float | None:
    """utime + stime + cutime + cstime of *pid* (its own CPU and its reaped children's)."""
    fields = _stat(pid)
    if fields is None:
        return None
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


def listening_inodes() -> dict[str, int]:
    """socket inode -> port, for every TCP socket in LISTEN."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A":
                found[parts[9]] = int(parts[1].rsplit(":", 1)[1], 16)
    return found


def ports_of(pids: set[int]) -> set[int]:
    listening = listening_inodes()
    ports = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                match = re.fullmatch(r"socket:\[(\d+)\]", target)
                if match and match.group(1) in listening:
                    ports.add(listening[match.group(1)])
        except OSError:
            continue
    return ports


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


# -- talking to the hub and the students' servers -------------------------------------------------


class Hub:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.http = AsyncHTTPClient()

    async def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
        request = HTTPRequest(f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"},
                              body=None if body is None and method == "GET" else json.dumps(body or {}),
                              request_timeout=300, allow_nonstandard_methods=True)
        response = await self.http.fetch(request, raise_error=False)
        if response.code not in ok:
            raise RuntimeError(f"{method} {path}: {response.code} {response.body[:300]!r}")
        return json.loads(response.body) if response.body else None

    async def start_server(self, user: str) -> float:
        began = time.monotonic()
        await self.call("POST", f"/hub/api/users/{user}", ok=(201, 409))
        await self.call("POST", f"/hub/api/users/{user}/server", ok=(201, 202, 400))
        while True:
            model = await self.call("GET", f"/hub/api/users/{user}")
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return time.monotonic() - began
            if time.monotonic() - began > 180:
                raise RuntimeError(f"{user}'s server did not become ready in 180 s: {model}")
            await asyncio.sleep(0.5)

    async def server_pid(self, user: str) -> int | None:
        model = await self.call("GET", f"/hub/api/users/{user}")
        state = (model.get("servers", {}).get("") or {}).get("state") or {}
        pid = state.get("pid")
        return int(pid) if pid else None

    async def run_in_kernel(self, user: str, code: str) -> tuple[str, float]:
        """Start a kernel in *user*'s server, run *code* there, return (stdout, seconds); the kernel is shut down."""
        kernel = await self.call("POST", f"/user/{user}/api/kernels", {"name": "python3"})
        ws_url = self.url.replace("http://", "ws://") + f"/user/{user}/api/kernels/{kernel['id']}/channels"
        connection = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {self.token}"}))
        msg_id = uuid.uuid4().hex
        await connection.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex, "msg_type": "execute_request",
                       "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        began = time.monotonic()
        out: list[str] = []
        try:
            while True:
                raw = await connection.read_message()
                if raw is None:
                    raise RuntimeError(f"{user}'s kernel connection closed")
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = message["header"]["msg_type"]
                if kind == "stream":
                    out.append(message["content"]["text"])
                elif kind == "error":
                    out.append("\n".join(message["content"]["traceback"][-3:]))
                elif kind == "execute_reply":
                    break
        finally:
            took = time.monotonic() - began
            connection.close()
            await self.call("DELETE", f"/user/{user}/api/kernels/{kernel['id']}")
        return "".join(out), took

    async def read_file(self, user: str, path: str) -> Any:
        model = await self.call("GET", f"/user/{user}/api/contents/{path}?content=1")
        content = model["content"]
        return json.loads(content) if isinstance(content, str) else content


# -- judging the conclusions ----------------------------------------------------------------------

_NEGATIVE = re.compile(r"cannot beat|can't beat|no faster|not faster|cannot be faster|no gain|slower than", re.I)
_POSITIVE = re.compile(r"\bbeats?\b|\bfaster than\b|\bwins?\b", re.I)
_RATIO = re.compile(r"(\d+(?:\.\d+)?)x\b")
_AT_MOST = re.compile(r"(?:at most|up to) (\d+(?:\.\d+)?)x", re.I)


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of *values*, and the work per CPU second where it has the CPU."""
    found = {key: float(value) for key, value in values.items()
             if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if found.get("server_cpu_s") and "requests" in found:
        found.setdefault("requests_per_cpu_s", found["requests"] / found["server_cpu_s"])
    return found


def _figures(comparison: dict[str, Any]) -> dict[str, float]:
    """Every server's totals (and any other per-run number) by name."""
    figures: dict[str, float] = {}
    for run in comparison.get("runs", []):
        for key, value in _numbers(run).items():
            figures[f"{run.get('server')}.{key}"] = value
    return figures


def _ratios(comparison: dict[str, Any]) -> list[float]:
    """Every ratio a sentence may quote: of two totals, or of two servers'
    figures in the same interleaved round (the spreads are made of those)."""
    totals = list(_figures(comparison).values())
    ratios = [a / b for a in totals for b in totals if b]
    runs = comparison.get("runs", [])
    for index in range(max((len(run.get("rounds") or ()) for run in runs), default=0)):
        same_round = [value for run in runs if index < len(run.get("rounds") or ())
                      for value in _numbers(run["rounds"][index]).values()]
        ratios += [a / b for a in same_round for b in same_round if b]
    return ratios


def _round_ratios(comparison: dict[str, Any], server: str, base: str) -> list[float]:
    """*server*'s throughput over *base*'s, round by round."""
    by_server = {run.get("server"): run.get("rounds") or [] for run in comparison.get("runs", [])}
    return [a["throughput_rps"] / b["throughput_rps"]
            for a, b in zip(by_server.get(server, []), by_server.get(base, [])) if b.get("throughput_rps")]


def _span(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}x to {max(ratios):.2f}x"


def judge(conclusion: dict[str, Any], comparison: dict[str, Any]) -> str:
    """'holds', or what in the sentence disagrees with this student's figures."""
    text = str(conclusion.get("text", ""))
    figures = _figures(comparison)
    throughput = {k.split(".")[0]: v for k, v in figures.items() if k.endswith(".throughput_rps")}
    ratios = _ratios(comparison)
    problems = []
    for shown in _RATIO.findall(text):
        digits = len(shown.split(".")[1]) if "." in shown else 0
        if not any(round(r, digits) == float(shown) for r in ratios):
            problems.append(f"{shown}x is no ratio of the measured figures")
    servers = [s for s in conclusion.get("servers", ()) if s in throughput]
    value = conclusion.get("value")
    if len(servers) >= 2 and throughput.get(servers[1]):
        measured = throughput[servers[0]] / throughput[servers[1]]
        # Only a throughput conclusion's value is the throughput ratio (a work
        # conclusion's is the cores the server kept busy).
        if (conclusion.get("key") == "throughput" and isinstance(value, (int, float))
                and abs(value - measured) > 0.01 * max(1.0, measured)):
            problems.append(f"value {value:.3g} but the throughputs give {measured:.3g}")
        for most in _AT_MOST.findall(text):
            if measured > float(most):
                problems.append(f"says at most {most}x but measured {measured:.2f}x")
        rounds = _round_ratios(comparison, servers[0], servers[1])
        if rounds and "in every round" in text:
            if " more in every round" in text and not all(r > 1 for r in rounds):
                problems.append(f"says more in every round but the rounds gave {_span(rounds)}")
            if " fewer in every round" in text and not all(r < 1 for r in rounds):
                problems.append(f"says fewer in every round but the rounds gave {_span(rounds)}")
        if rounds and "cannot tell apart" in text and not min(rounds) <= 1 <= max(rounds):
            problems.append(f"says the noise cannot tell them apart but the rounds gave {_span(rounds)}")
        negated = _NEGATIVE.search(text)
        if negated and measured > 1.15:
            problems.append(f"says '{negated.group(0)}' but measured {measured:.2f}x")
        elif not negated and _POSITIVE.search(text) and measured < 1.0:
            problems.append(f"says it is faster but measured {measured:.2f}x")
    return "holds" if not problems else "; ".join(problems)


# -- the run ----------------------------------------------------------------------------------------


def write_config(base: Path, token: str, ports: dict[str, int], python: str) -> Path:
    config = base / "jupyterhub_config.py"
    args = ["--allow-root"] if os.geteuid() == 0 else []
    config.write_text(f'''
c = get_config()  # noqa: F821
c.JupyterHub.ip = "{HOST}"
c.JupyterHub.port = {ports["hub"]}
c.JupyterHub.hub_ip = "{HOST}"
c.JupyterHub.hub_port = {ports["hub_api"]}
c.ConfigurableHTTPProxy.api_url = "http://{HOST}:{ports["proxy_api"]}"
c.ConfigurableHTTPProxy.pid_file = "{base}/proxy.pid"
c.JupyterHub.db_url = "sqlite:///{base}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{base}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{base}/home/{{username}}"
c.Spawner.ip = "{HOST}"
c.Spawner.cmd = ["{python}", "-m", "jupyterhub.singleuser"]
c.Spawner.args = {args!r}
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "bench", "services": ["bench"],
                             "scopes": ["admin:users", "admin:servers", "admin:server_state", "access:servers"]}}]
''')
    return config


async def drive(hub: Hub, users: list[str], lesson: str, hub_pid: int, seen: dict[int, str],
                ports_seen: set[int]) -> dict[str, Any]:
    code = RUN_LESSON.format(lesson=lesson, collect=COLLECT)
    stop_sampling = asyncio.Event()

    async def sample() -> None:
        while not stop_sampling.is_set():
            tree = descendants(hub_pid)
            seen.update(tree)
            ports_seen.update(ports_of(set(tree)))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    result: dict[str, Any] = {"users": users}
    try:
        spawns = await asyncio.gather(*(hub.start_server(u) for u in users))
        result["spawn_s"] = spawns
        pids = {u: await hub.server_pid(u) for u in users}

        async def run(user: str) -> dict[str, Any]:
            pid = pids[user]
            before = cpu_seconds(pid) if pid else None
            out, took = await hub.run_in_kernel(user, code)
            after = cpu_seconds(pid) if pid else None
            try:
                status = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                status = {"error": out[-500:]}
            found = await hub.read_file(user, "hub-run-results.json") if not status.get("error") else {}
            return {"user": user, "wall_s": took, "lesson_s": status.get("seconds"), "error": status.get("error"),
                    "cpu_s": None if before is None or after is None else after - before, "results": found}

        # Alone first (the baseline), then everyone at the same moment.
        busy0 = machine_busy()
        result["alone"] = await run(users[0])
        busy1 = machine_busy()
        result["together"] = await asyncio.gather(*(run(u) for u in users))
        busy2 = machine_busy()
        tick = os.sysconf("SC_CLK_TCK")
        result["machine_cpu_s"] = {"alone": (busy1[0] - busy0[0]) / tick, "together": (busy2[0] - busy1[0]) / tick}
    finally:
        stop_sampling.set()
        await sampler
    return result


def report(result: dict[str, Any], leftovers: dict[str, Any], students: int, lesson: str) -> list[str]:
    lines = [f"{students} students on one JupyterHub, lesson {lesson}, {os.cpu_count()} cores; load average "
             f"{result['load'][0]:.2f} before, {result['load'][1]:.2f} after (a shared machine: other programs ran too)"]
    lines.append(f"servers spawned in {min(result['spawn_s']):.1f}-{max(result['spawn_s']):.1f} s (all at once)")

    def describe(entry: dict[str, Any], label: str) -> list[str]:
        head = (f"{label} {entry['user']}: lesson took {entry['lesson_s'] or 0:.1f} s, its processes used "
                f"{entry['cpu_s'] if entry['cpu_s'] is not None else float('nan'):.1f} CPU-s")
        out = [head + (f"; FAILED: {entry['error']}" if entry["error"] else "")]
        for name, found in entry["results"].items():
            runs = found["comparison"].get("runs", [])
            shown = ", ".join(f"{r.get('server')} {r.get('throughput_rps', 0):.0f} req/s" for r in runs)
            out.append(f"    {name}: {shown}")
            for conclusion in found["conclusions"]:
                out.append(f"      [{judge(conclusion, found['comparison'])}] {conclusion.get('text')}")
        return out

    lines += describe(result["alone"], "alone:")
    for entry in result["together"]:
        lines += describe(entry, "together:")
    together = [e["lesson_s"] for e in result["together"] if e["lesson_s"]]
    if together and result["alone"]["lesson_s"]:
        alone = result["alone"]["lesson_s"]
        lines.append(f"lesson time: alone {alone:.1f} s; {students} at once: median {statistics.median(together):.1f} s, "
                     f"slowest {max(together):.1f} s ({max(together) / alone:.1f}x alone)")
    cpu = [e["cpu_s"] for e in result["together"] if e["cpu_s"] is not None]
    if cpu and result["alone"]["cpu_s"]:
        alone_cpu, alone_s = result["alone"]["cpu_s"], result["alone"]["lesson_s"] or 1
        lines.append(f"CPU per student: alone {alone_cpu:.1f} CPU-s in {alone_s:.1f} s ({alone_cpu / alone_s:.2f} cores "
                     f"while it ran); together median {statistics.median(cpu):.1f} CPU-s; whole machine "
                     f"{result['machine_cpu_s']['together']:.1f} CPU-s during the class run")
    checked = [judge(c, f["comparison"]) for e in [result["alone"], *result["together"]]
               for f in e["results"].values() for c in f["conclusions"]]
    lines.append(f"conclusions: {len(checked)}, of which {sum(1 for v in checked if v == 'holds')} hold for the figures "
                 "beside them")
    lines.append(f"left behind: processes {leftovers['processes'] or 'none'}; listening ports "
                 f"{leftovers['ports'] or 'none'}; files {leftovers['files'] or 'none'}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--lesson", default="04-concurrency")
    parser.add_argument("--proxy", default=None, help="folder holding configurable-http-proxy (default: PATH)")
    parser.add_argument("--json", default=None, help="also write every figure here")
    args = parser.parse_args()
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in (args.proxy, bin_dir, os.environ.get("PATH", "")) if p)
    if shutil.which("configurable-http-proxy", path=path) is None:
        print("configurable-http-proxy not found: npm install configurable-http-proxy, then --proxy "
              "node_modules/.bin", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="sockserve-hub-"))
    tmp_before = {p.name for p in Path("/tmp").iterdir()}
    users = [f"student{i:02d}" for i in range(1, args.students + 1)]
    for user in users:
        copy_workbook(ROOT / "notebooks", base / "home" / user)
    token = secrets.token_hex(16)
    ports = {name: free_port() for name in ("hub", "hub_api", "proxy_api")}
    config = write_config(base, token, ports, sys.executable)
    env = {**os.environ, "PATH": path}
    log = open(base / "hub.log", "w")
    hub_proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=base, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    seen: dict[int, str] = {}
    ports_seen: set[int] = set(ports.values())
    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {}
    try:
        hub = Hub(f"http://{HOST}:{ports['hub']}", token)
        deadline = time.monotonic() + 60
        while True:
            try:
                asyncio.run(hub.call("GET", "/hub/api/"))
                break
            except Exception:
                if hub_proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the hub did not start:\n{(base / 'hub.log').read_text()[-3000:]}")
                time.sleep(0.5)
        result = asyncio.run(drive(Hub(hub.url, token), users, args.lesson, hub_proc.pid, seen, ports_seen))
    finally:
        hub_proc.send_signal(signal.SIGTERM)  # by its PID: it stops the students' servers and the proxy
        try:
            hub_proc.wait(60)
        except subprocess.TimeoutExpired:
            hub_proc.kill()
            hub_proc.wait(10)
        log.close()
    time.sleep(1.0)
    alive = [pid for pid, start in seen.items() if (_stat(pid) or [None] * 20)[19] == start]
    still = sorted(ports_of(set(alive)) | (ports_seen & set(listening_inodes().values())))
    new_tmp = sorted(p.name for p in Path("/tmp").iterdir()
                     if p.name not in tmp_before and p.name.startswith(("ssx-", "ss-", "sockserve-"))
                     and p != base)
    leftovers = {"processes": alive, "ports": still, "files": new_tmp,
                 "processes_seen": len(seen), "ports_seen": sorted(ports_seen)}
    result["load"] = (load_before, os.getloadavg()[0])
    if result.get("together") is not None:
        for line in report(result, leftovers, args.students, args.lesson):
            print(line)
    else:
        print(f"the run did not finish; hub log:\n{(base / 'hub.log').read_text()[-3000:]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"result": result, "leftovers": leftovers}, indent=1, default=str))
    shutil.rmtree(base, ignore_errors=True)
    return 0 if result.get("together") is not None and not alive and not still else 1


if __name__ == "__main__":
    sys.exit(main())
