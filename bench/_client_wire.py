"""tidegate's own uplink client, ``tidegate.mqtt.wire.WireClient``, as the publisher uses it.

Publishing only: the client has no subscriptions (the ``mqtt`` driver's side stays on
paho), so its row has no receive figures. The loop is bench/_wire_bare.py's, the
baseline ``./dev bench full_path`` sets the gateway's CPU per event against: a window
of WINDOW messages topped up once REFILL of them are acknowledged (``on_publish``),
each top-up going out in one write.
"""

from __future__ import annotations

import asyncio

from bench._client_common import PAYLOAD, WINDOW, Meter, peak_rss_kib
from bench._wire_bare import publish_wire


def wire_publish(port: int, messages: int, meter: Meter) -> dict[str, float]:
    # publish_wire measures itself (from the first PUBLISH, connecting left out).
    result = asyncio.run(publish_wire(port, messages, PAYLOAD, WINDOW, "3.1.1"))
    return {**result, "rss_kib": peak_rss_kib()}
