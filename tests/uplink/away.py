"""A broker that is away, then back: its address exists only once a test opens it (a
TCP forwarder to a real broker), so a gateway pointed at it piles up a backlog first."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from tests.mqtt.support import until
from tidegate.pipeline import Gateway


async def forward(port: int, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
    """A TCP forwarder to the broker on ``port``, for one accepted connection."""
    broker_in, broker = await asyncio.open_connection("127.0.0.1", port)

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    await asyncio.gather(pipe(client_in, broker), pipe(broker_in, client))


def away_then_back(
    gateway: Gateway,
    address: int,
    broker_port: int,
    *,
    backlog: int,
    back: Callable[[], bool],
    what: str,
) -> float:
    """Run ``gateway`` while nothing listens on ``address`` until it accepted ``backlog``
    events; then forward ``address`` to the broker on ``broker_port`` and run until
    ``back()`` holds (``what``: said if it never does). Returns when the way opened
    (the wall clock), after the gateway stopped cleanly."""
    opened_at = 0.0

    async def main() -> None:
        nonlocal opened_at
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        server: asyncio.Server | None = None
        try:
            await until(lambda: gateway.outbox.stats.accepted >= backlog, 20, "a backlog")
            opened_at = time.time()
            server = await asyncio.start_server(
                lambda r, w: forward(broker_port, r, w), "127.0.0.1", address
            )
            await until(back, 20, what)
        finally:
            stop.set()
            await task
            if server is not None:
                server.close()

    asyncio.run(main())
    return opened_at
