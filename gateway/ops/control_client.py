"""The control API's client: what `tidegate status|tail|reload` use.

The protocol (line-delimited JSON, one request per connection) is described
in ``tidegate.ops.control_server``. This side is blocking and light: it is
all a `tidegate status` imports besides the typer app.
"""

from __future__ import annotations

import errno
import grp
import socket
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any

import orjson

from tidegate.errors import TidegateError
from tidegate.ops import unix_socket
from tidegate.ops.reload import ReloadOutcome

PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024
"""Longest request line the server reads; also the reader limit for replies' sake."""


class ControlError(TidegateError):
    """The control API could not be served or reached."""


class GatewayNotRunning(ControlError):
    """Nothing listens on the control socket."""


def encode_line(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(doc) + b"\n"


class ControlClient:
    """Blocking client for the CLI: one request per connection."""

    def __init__(
        self,
        path: Path,
        timeout: float = 10.0,
        not_running: str | Callable[[], str] | None = None,
    ) -> None:
        self.path = path
        self.timeout = timeout
        # The one line when nothing listens; a callable is asked only then (it may
        # look for the gateway elsewhere, which costs a few connects).
        self.not_running = not_running or f"no gateway is running (nothing listens on {path})"

    def _connect(self) -> socket.socket:
        try:
            return unix_socket.connect(self.path, self.timeout)
        except (FileNotFoundError, NotADirectoryError, ConnectionRefusedError):
            said = self.not_running
            raise GatewayNotRunning(said if isinstance(said, str) else said()) from None
        except PermissionError:
            raise ControlError(self._permission_hint()) from None
        except OSError as exc:
            raise ControlError(
                f"cannot reach the gateway at {self.path}: {exc.strerror or exc}"
            ) from None

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
            sock.sendall(encode_line({"v": PROTOCOL_VERSION, **request}))
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
        replies = self.replies(request, idle_timeout)
        try:
            next(replies)
            yield from replies
        finally:
            replies.close()

    def replies(
        self, request: Mapping[str, Any], idle_timeout: float | None = None
    ) -> Generator[dict[str, Any], None, None]:
        """Send a request; yield every reply line, the first one checked."""
        lines = self._lines(request, idle_timeout)
        try:
            first = next(lines, None)
            if first is None:
                raise ControlError("the gateway closed the connection without answering")
            yield _checked(first)
            yield from lines
        finally:
            lines.close()

    def status(self) -> dict[str, Any]:
        doc = self.request({"op": "status"})["status"]
        if not isinstance(doc, dict):
            raise ControlError("the gateway sent a status that is not a JSON object")
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
