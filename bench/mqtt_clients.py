"""MQTT client libraries side by side: CPU per QoS 1 message, publishing and receiving.

Issue 12: "if the MQTT client library's per-message cost is the wall, measure the
alternatives and choose with figures". One private Mosquitto on loopback; each
client runs in a fresh child process of its own (so its CPU and peak RSS are its
own), MQTT 3.1.1, a ~175 B payload:

- publish: N messages at QoS 1 with 200 in flight, counted at PUBACK (connecting is
  left out): messages/s, CPU µs per message (``time.process_time`` of the child,
  all its threads), peak RSS of the child;
- receive: N messages the parent put beforehand into a persistent session of the
  child's (so no load generator competes during the measurement), drained and
  acknowledged at QoS 1; measured from before CONNECT to the last message handed to
  the application. Afterwards the parent resumes the session and counts anything
  Mosquitto sends again (received but never acknowledged): it must be 0.

Clients: ``wire`` (tidegate's own MQTT code: ``WireClient``, the uplink's client, in
bench/_wire_bare.py's loop, the reference of issue 12's goal; ``WireSubscriber``, the
``mqtt`` driver's, for receiving), ``paho-bare`` (bench/_paho_bare.py's ``loop()``,
the goal's reference while the uplink published with paho), ``paho-thread``
(``loop_start``), ``paho-asyncio`` (``tidegate.mqtt.paho_bridge.AsyncioPaho``, as the
``mqtt`` driver drives paho), ``paho-tuned`` (public API, its own select loop),
``paho-private`` (also overrides two private socket methods), ``gmqtt``,
``aiomqtt``, ``zmqtt``, ``amqtt``, and ``floor``, a hand-written protocol that is not
a client: the least Python can spend per message. Libraries not in the venv are
skipped with one line (``pip install gmqtt zmqtt amqtt`` for the full set; they are
not tidegate's dependencies). Rounds alternate the clients' order and the table
shows each figure's median over the rounds.

What came of it: the gateway publishes and (the ``mqtt`` driver, at QoS 0 and 1)
receives with its own code, ``tidegate.mqtt.wire`` (the ``wire`` row: a few times
cheaper per message than paho however paho is driven, and close to the floor);
paho-mqtt remains for what that code does not do, a subscription at QoS 2.

Run: ``./dev bench mqtt_clients [--messages N] [--rounds R] [--clients a,b,c]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import _client_feed as feed
from bench._client_common import PAYLOAD, WINDOW, Client
from tidegate.demo.local_broker import LocalBroker

_P, _A = "bench._client_paho", "bench._client_aio"
CLIENTS = [
    Client("wire", "tidegate", "tidegate.mqtt.wire: the uplink's and the mqtt driver's",
           "bench._client_wire", "wire"),
    Client("paho-bare", "paho-mqtt", "loop() in one thread: the ratios' reference", _P,
           "bare"),
    Client("paho-thread", "paho-mqtt", "loop_start(): paho's network thread", _P, "thread"),
    Client("paho-asyncio", "paho-mqtt", "tidegate's AsyncioPaho (as the mqtt driver)", _P,
           "asyncio"),
    Client("paho-tuned", "paho-mqtt", "public API: own select, loop_read/write", _P, "tuned"),
    Client("paho-private", "paho-mqtt", "PRIVATE _sock_recv/_sock_send buffered", _P,
           "private"),
    Client("gmqtt", "gmqtt", "asyncio-native", _A, "gmqtt"),
    Client("aiomqtt", "aiomqtt", "asyncio over paho", _A, "aiomqtt"),
    Client("zmqtt", "zmqtt", "asyncio-native", _A, "zmqtt"),
    Client("amqtt", "amqtt", "asyncio-native (also a broker)", _A, "amqtt"),
    Client("floor", "", "hand-written floor (not a client)", "bench._client_floor", "floor"),
]
BY_NAME = {c.name: c for c in CLIENTS}
REFERENCE = "paho-bare"
FIGURES = ("pub_rate", "pub_cpu", "recv_rate", "recv_cpu", "rss")


def _version(client: Client) -> str | None:
    if not client.distribution:
        return "-"
    try:
        return importlib.metadata.version(client.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run_child(client: Client, mode: str, port: int, messages: int, session: str = "",
               ) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench._client_child", client.module, client.prefix, mode,
         str(port), str(messages), session],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"{client.name} {mode} failed: {lines[-1]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _measure(client: Client, port: int, messages: int, tag: str) -> dict[str, float]:
    pub = _run_child(client, "publish", port, messages)
    published = {
        "pub_rate": messages / pub["seconds"],
        "pub_cpu": pub["cpu"] / messages * 1e6,
        "rss": pub["rss_kib"] / 1024,
    }
    if not client.receives:
        return published
    session = f"bench-{client.name}-{tag}"
    feed.create_session(port, session)
    feed.fill(port, session, messages)
    recv = _run_child(client, "receive", port, messages, session)
    again = feed.unacknowledged(port, session)
    if again:
        raise RuntimeError(f"{client.name}: {again} messages received but not acknowledged")
    return {
        **published,
        "recv_rate": messages / recv["seconds"],
        "recv_cpu": recv["cpu"] / messages * 1e6,
        "rss": max(pub["rss_kib"], recv["rss_kib"]) / 1024,
    }


def _cell(f: dict[str, float], key: str, width: int, form: str) -> str:
    """A figure, or "-" where the client has none (a publishing-only client's receive)."""
    return format(f[key], form).rjust(width) if key in f else "-".rjust(width)


def _print_tables(rows: list[tuple[Client, str, dict[str, float]]], rounds: int,
                  messages: int) -> None:
    print(f"\n{messages:,} messages of {len(PAYLOAD)} B per row, QoS 1, MQTT 3.1.1, "
          f"{WINDOW} in flight when publishing; median of {rounds} round(s); "
          "CPU = the child process's, all threads")
    head = "{:<13} {:>8} {:>10} {:>9} {:>10} {:>9} {:>7}  {}"
    print(head.format("client", "version", "pub msg/s", "pub µs", "recv msg/s", "recv µs",
                      "RSS MB", "how"))
    for client, version, f in rows:
        print(f"{client.name:<13} {version:>8} {f['pub_rate']:>10,.0f} {f['pub_cpu']:>9.1f} "
              f"{_cell(f, 'recv_rate', 10, ',.0f')} {_cell(f, 'recv_cpu', 9, '.1f')} "
              f"{f['rss']:>7.1f}  {client.note}")
    ref = next((f for c, _, f in rows if c.name == REFERENCE), None)
    if ref is None:
        return
    print(f"\nratio to {REFERENCE} (rates: >1 is faster; CPU and RSS: <1 is cheaper)")
    print("{:<13} {:>9} {:>7} {:>10} {:>8} {:>7}".format(
        "client", "pub msg/s", "pub µs", "recv msg/s", "recv µs", "RSS"))
    for client, _, f in rows:
        r = {k: f[k] / ref[k] for k in FIGURES if k in f}
        print(f"{client.name:<13} {r['pub_rate']:>9.2f} {r['pub_cpu']:>7.2f} "
              f"{_cell(r, 'recv_rate', 10, '.2f')} {_cell(r, 'recv_cpu', 8, '.2f')} "
              f"{r['rss']:>7.2f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench mqtt_clients")
    parser.add_argument("--messages", type=int, default=100_000, help="messages per row")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds, the clients' order alternating; the median is shown")
    parser.add_argument("--clients", default=",".join(BY_NAME),
                        help="comma-separated, from: " + ", ".join(BY_NAME))
    args = parser.parse_args(argv)
    chosen: list[tuple[Client, str]] = []
    for name in args.clients.split(","):
        client = BY_NAME.get(name.strip())
        if client is None:
            parser.error(f"unknown client {name!r}")
        version = _version(client)
        if version is None:
            print(f"{client.name}: {client.distribution} is not installed in this venv; skipped")
            continue
        chosen.append((client, version))
    runs: dict[str, list[dict[str, float]]] = {c.name: [] for c, _ in chosen}
    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as workdir, \
            LocalBroker(Path(workdir) / "broker") as broker:
        for r in range(args.rounds):
            order = chosen if r % 2 == 0 else chosen[::-1]
            for client, _ in order:
                if r > 0 and not runs[client.name]:
                    continue  # it failed in the first round: say so once
                try:
                    runs[client.name].append(_measure(client, broker.port, args.messages, str(r)))
                except RuntimeError as err:
                    print(f"{client.name}: does not work here, skipped ({err})")
                    continue
                f = runs[client.name][-1]
                received = (f"  receive {f['recv_rate']:>9,.0f}/s {f['recv_cpu']:>6.1f} µs"
                            if client.receives else "")
                print(f"round {r + 1}: {client.name:<13} publish {f['pub_rate']:>9,.0f}/s "
                      f"{f['pub_cpu']:>6.1f} µs{received}", flush=True)
    rows = [
        (client, version, {k: statistics.median(run[k] for run in runs[client.name])
                           for k in FIGURES if k in runs[client.name][0]})
        for client, version in chosen if runs[client.name]
    ]
    _print_tables(rows, args.rounds, args.messages)


if __name__ == "__main__":
    main(sys.argv[1:])
