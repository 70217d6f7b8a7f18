"""The control API's server: a Unix socket that `tidegate status|tail|reload` talk to.

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

The socket is created mode 0660 in a folder of mode 0750 (where it is, see
``tidegate.ops.control_socket``): the service user and its group may talk to
the gateway, nobody else. There is no other authentication: a group member
may ask for a reload of the file root wrote and, on a gateway with a
``remote_rules:`` section, replace its remote rule file (``rules_update``,
validated and rolled back when the gateway is not healthy after it; see
``tidegate.remote.control``). Other parts serve their requests through
``requests``. The client is ``tidegate.ops.control_client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from tidegate.ops import unix_socket
from tidegate.ops.config import ControlSection
from tidegate.ops.control_client import MAX_LINE, ControlError, encode_line
from tidegate.ops.control_socket import data_dir_socket, serving_path
from tidegate.ops.reload import ReloadOutcome
from tidegate.ops.sdnotify import Notifier
from tidegate.ops.status import GatewayMonitor
from tidegate.ops.tap import EventTap
from tidegate.outgoing import Outgoing
from tidegate.payload import event_document

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0
"""A client that connects and sends no request within this is dropped."""
SOCKET_MODE = 0o660

Reload = Callable[[], Awaitable[ReloadOutcome]]
"""Re-read the configuration file and apply what can change without a restart
(``Gateway.reload_rules``)."""

Request = Callable[[dict[str, Any]], AsyncIterator[dict[str, Any]]]
"""A request served by another part of the gateway (``rules_update``, see
``tidegate.remote.control``): given the request, it yields the reply lines."""


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


def _someone_listens(path: Path) -> bool:
    try:
        unix_socket.connect(path, 2.0).close()
    except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
        return False
    return True


def tail_event(item: Outgoing) -> dict[str, Any]:
    """A routed event as `tidegate tail` shows it: the event and its topic."""
    return {**event_document(item.event), "topic": item.topic}


_line = encode_line


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
        link: Path | None = None,
        requests: Mapping[str, Request] | None = None,
    ) -> None:
        self.path = path
        self.requests = dict(requests or {})
        self.monitor = monitor
        self.tap = tap
        self._reload = reload
        self._notifier = notifier
        self.tail_buffer = tail_buffer
        self.required = required
        """When the socket cannot be bound: True raises ControlError, False logs a warning."""
        self.link = link
        """A symlink to the socket where clients look for it (``<data_dir>/control.sock``
        when systemd's runtime directory holds the socket itself)."""
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
        data_dir: Path,
        monitor: GatewayMonitor,
        tap: EventTap,
        *,
        reload: Reload | None = None,
        notifier: Notifier | None = None,
        requests: Mapping[str, Request] | None = None,
    ) -> ControlServer | None:
        if not section.enabled:
            return None
        path = serving_path(section.socket, data_dir)
        where_clients_look = data_dir_socket(data_dir)
        return cls(
            path,
            monitor,
            tap,
            reload=reload,
            notifier=notifier,
            tail_buffer=section.tail_buffer,
            required=section.socket is not None,
            link=where_clients_look
            if section.socket is None and path != where_clients_look
            else None,
            requests=requests,
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
        if self.link is not None:
            self._make_link(self.link)
        return True

    async def _bind(self) -> None:
        path = self.path
        sock = unix_socket.stream_socket()
        try:
            # Under systemd the RuntimeDirectory exists (0750); elsewhere make it like that.
            path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            if path.parent.stat().st_uid not in (os.geteuid(), 0):
                # e.g. a folder in /tmp made by someone else: they could swap our socket.
                raise ControlError(f"{path.parent} belongs to another user; not serving there")
            await self._remove_stale(path)
            unix_socket.bind(sock, path)
            os.chmod(path, SOCKET_MODE)
            self._inode = path.stat().st_ino
            self._server = await asyncio.start_unix_server(
                self._serve_client, sock=sock, limit=MAX_LINE
            )
        except OSError as exc:
            sock.close()
            raise ControlError(
                f"cannot serve the control socket {path}: {exc.strerror or exc}"
            ) from None
        except BaseException:
            sock.close()
            raise

    async def _remove_stale(self, path: Path) -> None:
        if not _existing_socket(path):
            return
        if await asyncio.to_thread(_someone_listens, path):
            raise ControlError(f"another gateway is already serving {path}")
        os.unlink(path)  # left behind by a gateway that was killed

    def _make_link(self, link: Path) -> None:
        """Point ``link`` at the socket, replacing a stale link or socket, never a live one."""
        try:
            if link.is_symlink() or not _existing_socket(link) or not _someone_listens(link):
                staged = link.with_name(f".{link.name}.{os.getpid()}")
                staged.unlink(missing_ok=True)
                staged.symlink_to(self.path)
                staged.replace(link)
                return
            log.warning(
                "another gateway serves %s: clients of this data directory reach it, not "
                "this one (%s)",
                link,
                self.path,
            )
        except (OSError, ControlError) as exc:
            log.warning("clients will not find the control socket at %s: %s", link, exc)

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
        # Remove only our own socket and link: another gateway may have replaced them.
        with contextlib.suppress(OSError):
            if self.link is not None and os.readlink(self.link) == str(self.path):
                self.link.unlink()
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
                outcome = ReloadOutcome(False, f"{type(exc).__name__}: {exc}")
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
        elif op in self.requests:
            async for reply in self.requests[op](request):
                await self._send(writer, reply)
        else:
            known = ", ".join(("status", "tail", "reload", *self.requests))
            error = f"unknown request '{op}'; known: {known}"
            await self._send(writer, {"ok": False, "error": error})

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
                out = [_line({"event": tail_event(item)}) for item in batch.result()]
                if subscription.dropped > reported_drops:
                    out.append(_line({"dropped": subscription.dropped - reported_drops}))
                    reported_drops = subscription.dropped
                writer.write(b"".join(out))
                await writer.drain()
        finally:
            self.tap.unsubscribe(subscription)
            hangup.cancel()
            closing.cancel()
