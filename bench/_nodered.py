"""Node-RED for ``bench.bridge_vs_nodered``: install it, write its flow, start it; and
the process bookkeeping both bridges are measured with (CPU, peak RSS, listening sockets).

Node-RED is installed with npm into a temporary folder beside the cache and moved into
``~/.cache/tidegate-bench/node-red`` (``$XDG_CACHE_HOME`` if set) once the install has
finished, so a half-finished install never looks cached and a second run reuses it.
It runs headless: no editor, no admin API, no HTTP server at all (``httpAdminRoot`` and
``httpNodeRoot`` are false; ``uiHost`` is 127.0.0.1 all the same), telemetry and
diagnostics off, its ``userDir`` in the bench's temporary folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NPM_SPECS = ("node-red@4.1", "node-red@4")
"""What to install: 4.1 (the version the issue compares with), else the newest 4.x."""
NPM_TIMEOUT = 900.0
MIN_NODE_MAJOR = 18
"""Node-RED 4 needs Node.js 18 or later."""

FUNCTION = """\
const t = msg.payload && msg.payload.AM2301 && msg.payload.AM2301.Temperature;
if (typeof t !== "number") { return null; }
const source = msg.topic.split("/")[1];
const seq = (context.get("seq") || 0) + 1;
context.set("seq", seq);
msg.topic = "%(out_prefix)s/" + source + "/temperature";
msg.payload = {id: msg._msgid, gateway: "bench", source: source, name: "temperature",
               value: t * 1.8 + 32, time: new Date().toISOString(), seq: seq, unit: "°F"};
return msg;
"""
"""The rule's work in JavaScript: take one field, convert it, build an event like
tidegate's (id, gateway, source, name, value, time, seq, unit), route it by source."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tidegate-bench" / "node-red"


@dataclass(frozen=True)
class NodeRed:
    node: str
    red_js: Path
    version: str
    how: str
    """How it came to be here (installed now, or found in the cache), for the output."""


def _installed_version(prefix: Path) -> str | None:
    package = prefix / "node_modules" / "node-red" / "package.json"
    with contextlib.suppress(OSError, ValueError):
        version = json.loads(package.read_text())["version"]
        if isinstance(version, str) and version.startswith("4."):
            return version
    return None


def _node_major(node: str) -> int | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30,
                             check=True).stdout
        match = re.match(r"v(\d+)\.", out.strip())
        return int(match.group(1)) if match else None
    return None


def ensure_node_red() -> NodeRed | str:
    """Node-RED 4.x ready to start, or why it is skipped (one line)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        return f"{missing} not found (Debian: sudo apt install nodejs npm)"
    major = _node_major(node)
    if major is None or major < MIN_NODE_MAJOR:
        return f"Node.js {major or '?'} found; Node-RED 4 needs {MIN_NODE_MAJOR} or later"
    cache = cache_dir()
    red_js = cache / "node_modules" / "node-red" / "red.js"
    version = _installed_version(cache)
    if version is not None and red_js.is_file():
        return NodeRed(node, red_js, version, f"found in {cache}, not reinstalled")
    cache.parent.mkdir(parents=True, exist_ok=True)
    failure = ""
    for spec in NPM_SPECS:
        staging = Path(tempfile.mkdtemp(prefix="node-red-install-", dir=cache.parent))
        t0 = time.perf_counter()
        try:
            out = subprocess.run(
                [npm, "install", "--prefix", str(staging), spec, "--no-audit", "--no-fund",
                 "--loglevel=error"],
                capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            return f"npm install {spec} took over {NPM_TIMEOUT:.0f} s"
        version = _installed_version(staging)
        if out.returncode == 0 and version is not None:
            shutil.rmtree(cache, ignore_errors=True)
            staging.rename(cache)
            seconds = time.perf_counter() - t0
            return NodeRed(node, red_js, version,
                           f"installed now with npm into a temporary folder ({seconds:.0f} s), "
                           f"cached in {cache} for the next run")
        shutil.rmtree(staging, ignore_errors=True)
        lines = [line for line in (out.stderr or out.stdout).strip().splitlines()
                 if "complete log" not in line]
        failure = f"npm install {spec} failed (exit {out.returncode}): " + (
            lines[0] if lines else "no output")
    return failure


def write_node_red_files(work: Path, *, broker_port: int, in_filter: str, out_prefix: str,
                         client_id: str) -> Path:
    """The settings file (which names the flows file and userDir) for one run."""
    user_dir = work / "node-red-user"
    user_dir.mkdir(parents=True, exist_ok=True)
    flows = [
        {"id": "bench-tab", "type": "tab", "label": "bench", "disabled": False},
        {"id": "bench-broker", "type": "mqtt-broker", "name": "local",
         "broker": "127.0.0.1", "port": str(broker_port), "clientid": client_id,
         "autoConnect": True, "usetls": False, "protocolVersion": "4", "keepalive": "60",
         "cleansession": True, "autoUnsubscribe": True, "birthTopic": "", "closeTopic": "",
         "willTopic": ""},
        {"id": "bench-in", "type": "mqtt in", "z": "bench-tab", "name": "in",
         "topic": in_filter, "qos": "1", "datatype": "json", "broker": "bench-broker",
         "nl": False, "rap": True, "rh": 0, "inputs": 0, "wires": [["bench-fn"]]},
        {"id": "bench-fn", "type": "function", "z": "bench-tab", "name": "to event",
         "func": FUNCTION % {"out_prefix": out_prefix}, "outputs": 1, "timeout": 0,
         "noerr": 0, "initialize": "", "finalize": "", "libs": [], "wires": [["bench-out"]]},
        {"id": "bench-out", "type": "mqtt out", "z": "bench-tab", "name": "out", "topic": "",
         "qos": "1", "retain": "false", "broker": "bench-broker", "wires": []},
    ]
    flows_file = user_dir / "flows.json"
    flows_file.write_text(json.dumps(flows))
    settings = {
        "flowFile": str(flows_file),
        "userDir": str(user_dir),
        "uiHost": "127.0.0.1",
        "httpAdminRoot": False,
        "httpNodeRoot": False,
        "disableEditor": True,
        "credentialSecret": False,
        "telemetry": {"enabled": False, "updateNotification": False},
        "diagnostics": {"enabled": False, "ui": False},
        "runtimeState": {"enabled": False, "ui": False},
        "externalModules": {"autoInstall": False, "palette": {"allowInstall": False}},
        "functionExternalModules": False,
        "logging": {"console": {"level": "info", "metrics": False, "audit": False}},
        "editorTheme": {"projects": {"enabled": False}},
    }
    settings_file = work / "node-red-settings.js"
    settings_file.write_text("module.exports = " + json.dumps(settings, indent=1) + ";\n")
    return settings_file


def start_node_red(red: NodeRed, settings: Path, log: Path) -> subprocess.Popen[bytes]:
    user_dir = json.loads(settings.read_text().removeprefix("module.exports = ").rstrip(";\n"))
    with log.open("ab") as out:
        return subprocess.Popen(
            [red.node, str(red.red_js), "--settings", str(settings),
             "--userDir", user_dir["userDir"]],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


# --- processes ------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    return text[text.rindex(")") + 2:].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (a bridge that forks a worker is measured whole)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree += children
        frontier += children
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid``'s tree, all threads (``/proc/PID/stat``)."""
    total = 0
    for member in process_tree(pid):
        fields = _stat_fields(member)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def settled_cpu_seconds(pid: int, *, quiet: float = 0.02, every: float = 0.5,
                        deadline: float = 15.0) -> float:
    """CPU once the tree went quiet (≤ ``quiet`` s of CPU in ``every`` s): the work a
    bridge does after the last delivery (deleting acknowledged rows, collecting garbage)
    counts too; idle timers stay below ``quiet``."""
    end = time.monotonic() + deadline
    before = cpu_seconds(pid)
    while time.monotonic() < end:
        time.sleep(every)  # sampling a rate, not waiting for an event
        now = cpu_seconds(pid)
        if now - before <= quiet:
            return now
        before = now
    return before


def peak_rss_kib(pid: int) -> int:
    """VmHWM of ``pid``'s tree (the sum of each member's own peak)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _loopback(hex_address: str) -> bool:
    if len(hex_address) == 8:  # IPv4, little-endian: 127.x.x.x has 0x7f as its last byte
        return hex_address[6:8] == "7F"
    return hex_address in ("00000000000000000000000001000000",
                           "0000000000000000FFFF00000100007F")


def listening_beyond_loopback(pids: list[int]) -> list[str]:
    """TCP/UDP sockets of these processes' trees bound beyond 127.0.0.0/8 and ::1."""
    inodes: set[str] = set()
    for pid in pids:
        for member in process_tree(pid):
            inodes |= _socket_inodes(member)
    found: list[str] = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                listening = state == "0A" if table.startswith("tcp") else True
                address = local.split(":")[0]
                if listening and inode in inodes and not _loopback(address):
                    found.append(f"{table} {local}")
    return found


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; a process started in its own session is
    stopped with its whole group (the feeder's shell and its mosquitto_pub)."""
    if process.poll() is not None:
        return
    group = os.getpgid(process.pid) if process.pid == _session_of(process.pid) else None
    with contextlib.suppress(ProcessLookupError):
        if group is not None:
            os.killpg(group, signal.SIGTERM)
        else:
            process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if group is not None:
                os.killpg(group, signal.SIGKILL)
            else:
                process.kill()
        process.wait()


def _session_of(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        return os.getsid(pid)
    return None


# --- readiness --------------------------------------------------------------------------

def _probe(celsius: float) -> bytes:
    return (b'{"Time":"2026-03-01T00:00:00","AM2301":{"Temperature":%.1f,"Humidity":40.2},'
            b'"TempUnit":"C"}' % celsius)


PROBE, FENCE = 20.0, 99.5
"""°C of the probes, and of the last one (its °F value tells it apart on the way out)."""


def _fahrenheit(payload: bytes | bytearray) -> float | None:
    with contextlib.suppress(ValueError, TypeError, KeyError):
        value = json.loads(payload)["value"]
        return float(value) if isinstance(value, (int, float)) else None
    return None


def wait_until_bridging(port: int, out_filter: str, in_topic: str,
                        alive: Callable[[], None], *, deadline: float = 120.0,
                        every: float = 0.25) -> None:
    """Publish a probe to ``in_topic`` every ``every`` s until one comes out on
    ``out_filter``, then one last probe and wait for it: the probes before it either came
    out before it (the path keeps order) or were sent before the bridge subscribed and
    went nowhere, so none is in flight when the timed input starts. ``alive`` raises when
    the bridge died."""
    import paho.mqtt.client as paho  # noqa: PLC0415 -- paho only where a bench needs it
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415 -- same

    came_out = threading.Semaphore(0)
    fenced = threading.Event()
    subscribed = threading.Event()
    fence = round(FENCE * 1.8 + 32, 6)

    def on_message(_client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        value = _fahrenheit(message.payload)
        if value is not None and round(value, 6) == fence:
            fenced.set()
        came_out.release()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe")
    client.on_connect = lambda c, *_: c.subscribe(out_filter, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        end = time.monotonic() + deadline
        if not subscribed.wait(10):
            raise RuntimeError("the probe could not subscribe")
        while True:
            alive()
            if time.monotonic() > end:
                raise RuntimeError(f"no probe came through in {deadline:.0f} s")
            client.publish(in_topic, _probe(PROBE), qos=1)
            if came_out.acquire(timeout=every):
                break
        client.publish(in_topic, _probe(FENCE), qos=1)
        while not fenced.wait(every):
            alive()
            if time.monotonic() > end:
                raise RuntimeError(f"the last probe did not come through in {deadline:.0f} s")
    finally:
        client.disconnect()
        client.loop_stop()
