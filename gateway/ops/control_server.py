"""The control API: a Unix socket that `tidegate status|tail|reload` talk to.

Line-delimited JSON, one request per connection. The client sends one line::

    {"v": 1, "op": "status"}
    {"v": 1, "op": "tail", "source": "green*", "name": "*"}
    {"v": 1, "op": "reload"}

and the server answers with one line, ``{"ok": true, ...}`` or
``{"ok": false, "error": "one line"}``::

    {"ok": true, "status": {...the status document, see tidegate.ops.status...}}
    {"ok": true, "reload": {"ok": false, "summary": "...", "details": ["file:3:5: ..."]}}
    {"ok": true, "tail": {"source": "green*", "name": "*"}}

after which a tail goes on with one line per event, ``{"event": {...}}``, a
``{"dropped": n}`` line when the client read too slowly and ``n`` events
were left out, and ``{"end": "reason"}`` when the gateway stops. The client
ends a tail by closing the connection.

The socket is created mode 0660 in the runtime directory (0750 under
systemd): the service user and its group may talk to the gateway, nobody
else. There is no other authentication, and no request changes data: the
worst a group member can do is ask for a reload of the file root wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Generator, Mapping
from pathlib import Path
from typing import Any

import orjson

from tidegate.config.yaml_limits import lenient_load
from tidegate.errors import TidegateError
from tidegate.ops.config import ControlSection
from tidegate.ops.reload import ReloadOutcome
from tidegate.ops.sdnotify import Notifier
from tidegate.ops.status import GatewayMonitor
from tidegate.ops.tap import EventTap
from tidegate.outgoing import Outgoing
from tidegate.timefmt import rfc3339

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024
"""Longest request line the server reads; also the reader limit for replies' sake."""
REQUEST_TIMEOUT = 5.0
"""A client that connects and sends no request within this is dropped."""
SOCKET_MODE = 0o660
SOCKET_NAME = "control.sock"
SYSTEM_SOCKET = Path("/run/tidegate") / SOCKET_NAME


class ControlError(TidegateError):
    """The control API could not be served or reached."""


class GatewayNotRunning(ControlError):
    """Nothing listens on the control socket."""


# -- reload ------------------------------------------------------------------------------


Reload = Callable[[], Awaitable[ReloadOutcome]]
"""Re-read the configuration file and apply what can change without a restart
(``Gateway.reload_rules``)."""


# -- where the socket is ---------------------------------------------------------------------


def default_socket_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the gateway puts its socket when the config names none."""
    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:  # systemd's RuntimeDirectory=tidegate: /run/tidegate
        return Path(runtime) / SOCKET_NAME
    if os.geteuid() == 0:
        return SYSTEM_SOCKET
    user_runtime = env.get("XDG_RUNTIME_DIR")
    if user_runtime:
        return Path(user_runtime) / "tidegate" / SOCKET_NAME
    return Path(f"/tmp/tidegate-{os.getuid()}") / SOCKET_NAME


def configured_socket(config_path: Path) -> Path | None:
    """``control.socket`` from a config file, read leniently: a client must
    find the gateway even when the file has since been edited into an
    invalid state (that is when `tidegate reload` is most useful)."""
    data = lenient_load(config_path)  # bounded: the file may be hostile, not only invalid
    control = data.get("control") if isinstance(data, dict) else None
    value = control.get("socket") if isinstance(control, dict) else None
    return Path(value) if isinstance(value, str) and value.startswith("/") else None


def locate_socket(
    explicit: Path | None, config_path: Path | None, environ: Mapping[str, str] | None = None
) -> Path:
    """The socket a client should use: ``--socket``, else the config's
    ``control.socket``, else the first default location that exists."""
    if explicit is not None:
        return explicit
    if config_path is not None:
        configured = configured_socket(config_path)
        if configured is not None:
            return configured
    env = os.environ if environ is None else environ
    candidates = [default_socket_path(env), SYSTEM_SOCKET]
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / "tidegate" / SOCKET_NAME)
    return next((c for c in candidates if c.exists()), candidates[0])


# -- the server ----------------------------------------------------------------------------


def _existing_socket(path: Path) -> bool:
    """Whether ``path`` is a socket; False when nothing is there; refuses anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path} exists and is not a socket; refusing to replace it")
    return True


def event_json(item: Outgoing) -> dict[str, Any]:
    event = item.event
    doc: dict[str, Any] = {
        "time": rfc3339(event.time),
        "source": event.source,
        "name": event.name,
        "value": event.value,
        "id": event.id,
        "topic": item.topic,
    }
    if event.unit is not None:
        doc["unit"] = event.unit
    if event.tags:
        doc["tags"] = event.tags
    return doc


def _line(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(doc) + b"\n"


class ControlServer:
    """Serves the control API for one gateway, on the gateway's event loop."""

    def __init__(
        self,
        path: Path,
        monitor: GatewayMonitor,
        tap: EventTap,
        *,
        reload: Reload | None = None,
        notifier: Notifier | None = None,
        tail_buffer: int = 1000,
        required: bool = True,
    ) -> None:
        self.path = path
        self.monitor = monitor
        self.tap = tap
        self._reload = reload
        self._notifier = notifier
        self.tail_buffer = tail_buffer
        self.required = required
        """When the socket cannot be bound: True raises ControlError, False logs a warning."""
        self._server: asyncio.Server | None = None
        self._inode: int | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        monitor.tail_listeners = lambda: tap.listeners

    @classmethod
    def from_config(
        cls,
        section: ControlSection,
        monitor: GatewayMonitor,
        tap: EventTap,
        *,
        reload: Reload | None = None,
        notifier: Notifier | None = None,
    ) -> ControlServer | None:
        if not section.enabled:
            return None
        return cls(
            section.socket or default_socket_path(),
            monitor,
            tap,
            reload=reload,
            notifier=notifier,
            tail_buffer=section.tail_buffer,
            required=section.socket is not None,
        )

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> bool:
        """Bind the socket. Returns whether it listens (see ``required``)."""
        try:
            await self._bind()
        except ControlError as exc:
            if self.required:
                raise
            log.warning("control API off: %s", exc)
            return False
        log.info("control API on %s", self.path)
        return True

    async def _bind(self) -> None:
        path = self.path
        try:
            # Under systemd the RuntimeDirectory exists (0750); elsewhere make it like that.
            path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            if path.parent.stat().st_uid not in (os.geteuid(), 0):
                # e.g. a /tmp/tidegate-UID made by someone else: they could swap our socket.
                raise ControlError(f"{path.parent} belongs to another user; not serving there")
            await self._remove_stale(path)
            self._server = await asyncio.start_unix_server(
                self._serve_client, path=str(path), limit=MAX_LINE
            )
            os.chmod(path, SOCKET_MODE)
            self._inode = path.stat().st_ino
        except OSError as exc:
            raise ControlError(
                f"cannot serve the control socket {path}: {exc.strerror or exc}"
            ) from None

    async def _remove_stale(self, path: Path) -> None:
        if not _existing_socket(path):
            return
        try:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 2.0)
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
            os.unlink(path)  # left behind by a gateway that was killed
            return
        writer.close()
        raise ControlError(f"another gateway is already serving {path}")

    async def close(self) -> None:
        """Stop listening, end tails with a last line, remove the socket."""
        self._closing.set()
        if self._server is not None:
            self._server.close()
        if self._clients:
            _, pending = await asyncio.wait(self._clients, timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        # Remove only our own socket: another gateway may have replaced a stale one.
        with contextlib.suppress(OSError):
            if self._inode is not None and self.path.stat().st_ino == self._inode:
                self.path.unlink()

    async def reload(self) -> ReloadOutcome:
        """Run the reload handler (one at a time); also what SIGHUP should call."""
        if self._reload is None:
            return ReloadOutcome(False, "this gateway cannot reload its configuration")
        async with self._reload_lock:
            if self._notifier is not None:
                self._notifier.reloading()
            try:
                outcome = await self._reload()  # it logs what it did
            except Exception as exc:
                log.exception("reload failed")
                outcome = ReloadOutcome(False, f"reload failed: {type(exc).__name__}: {exc}")
            finally:
                if self._notifier is not None:  # still serving, whatever the outcome
                    self._notifier.ready()
        if self._notifier is not None:
            self._notifier.status(f"last reload: {'ok' if outcome.ok else 'refused'}")
        return outcome

    # -- one connection -----------------------------------------------------------------

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or never asked: nothing to tell anyone
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), REQUEST_TIMEOUT)
        except asyncio.LimitOverrunError:
            await self._send(writer, {"ok": False, "error": "request too long"})
            return
        try:
            request = orjson.loads(line)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            await self._send(writer, {"ok": False, "error": "a request is a JSON object with 'op'"})
            return
        op = request["op"]
        if op == "status":
            await self._send(writer, {"ok": True, "status": await self.monitor.status()})
        elif op == "reload":
            outcome = await self.reload()
            await self._send(writer, {"ok": True, "reload": outcome.to_json()})
        elif op == "tail":
            await self._tail(reader, writer, request)
        else:
            await self._send(
                writer,
                {"ok": False, "error": f"unknown request '{op}'; known: status, tail, reload"},
            )

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, doc: Mapping[str, Any]) -> None:
        writer.write(_line(doc))
        await writer.drain()

    async def _tail(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: dict[str, Any]
    ) -> None:
        source, name = request.get("source", "*"), request.get("name", "*")
        if not isinstance(source, str) or not isinstance(name, str):
            await self._send(writer, {"ok": False, "error": "'source' and 'name' are glob strings"})
            return
        subscription = self.tap.subscribe(source, name, self.tail_buffer)
        # Anything the client sends, or its EOF, ends the tail: that is how it hangs up.
        hangup = asyncio.ensure_future(reader.read(1))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await self._send(writer, {"ok": True, "tail": {"source": source, "name": name}})
            reported_drops = 0
            while True:
                batch = asyncio.ensure_future(subscription.next_batch())
                done, _ = await asyncio.wait(
                    {batch, hangup, closing}, return_when=asyncio.FIRST_COMPLETED
                )
                if batch not in done:
                    batch.cancel()
                    if closing in done:
                        await self._send(writer, {"end": "the gateway is stopping"})
                    return
                out = [_line({"event": event_json(item)}) for item in batch.result()]
                if subscription.dropped > reported_drops:
                    out.append(_line({"dropped": subscription.dropped - reported_drops}))
                    reported_drops = subscription.dropped
                writer.write(b"".join(out))
                await writer.drain()
        finally:
            self.tap.unsubscribe(subscription)
            hangup.cancel()
            closing.cancel()


# -- the client -------------------------------------------------------------------------------


class ControlClient:
    """Blocking client for the CLI: one request per connection."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise GatewayNotRunning(
                f"no gateway is running (nothing listens on {self.path})"
            ) from None
        except PermissionError:
            sock.close()
            raise ControlError(self._permission_hint()) from None
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot reach the gateway at {self.path}: {exc.strerror}") from None
        return sock

    def _permission_hint(self) -> str:
        try:
            group = grp.getgrgid(self.path.stat().st_gid).gr_name
        except (OSError, KeyError):
            return f"permission denied on {self.path}"
        return f"permission denied on {self.path}: run as root or join the group '{group}'"

    def _lines(
        self, request: Mapping[str, Any], idle_timeout: float | None
    ) -> Generator[dict[str, Any], None, None]:
        """Reply lines; after the first one, reads wait at most ``idle_timeout`` (None: forever)."""
        sock = self._connect()
        try:
            sock.sendall(_line({"v": PROTOCOL_VERSION, **request}))
            stream = sock.makefile("rb")
            while True:
                try:
                    line = stream.readline(MAX_LINE * 64)
                except TimeoutError:
                    raise ControlError(
                        f"the gateway did not answer within {self.timeout:.0f} s"
                    ) from None
                except OSError as exc:
                    if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                        return
                    raise
                if not line:
                    return
                doc = orjson.loads(line)
                if not isinstance(doc, dict):
                    raise ControlError("the gateway sent something that is not a JSON object")
                sock.settimeout(idle_timeout)
                yield doc
        finally:
            sock.close()

    def request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Send one request, return the reply; a refused request raises ControlError."""
        for reply in self._lines(request, self.timeout):
            return _checked(reply)
        raise ControlError("the gateway closed the connection without answering")

    def stream(
        self, request: Mapping[str, Any], idle_timeout: float | None = None
    ) -> Generator[dict[str, Any], None, None]:
        """Send a streaming request; yield the lines after the (checked) first reply."""
        lines = self._lines(request, idle_timeout)
        try:
            first = next(lines, None)
            if first is None:
                raise ControlError("the gateway closed the connection without answering")
            _checked(first)
            yield from lines
        finally:
            lines.close()

    def status(self) -> dict[str, Any]:
        doc = self.request({"op": "status"})["status"]
        assert isinstance(doc, dict)
        return doc

    def reload(self) -> ReloadOutcome:
        return ReloadOutcome.from_json(self.request({"op": "reload"})["reload"])

    def tail(self, source: str = "*", name: str = "*") -> Generator[dict[str, Any], None, None]:
        """Yields ``{"event": {...}}``, ``{"dropped": n}`` and finally ``{"end": why}``."""
        # No timeout once the tail runs: a quiet stream is not a dead gateway.
        yield from self.stream({"op": "tail", "source": source, "name": name}, idle_timeout=None)


def _checked(reply: dict[str, Any]) -> dict[str, Any]:
    if reply.get("ok") is not True:
        raise ControlError(str(reply.get("error") or "the gateway refused the request"))
    return reply
