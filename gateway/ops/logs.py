"""Log setup: one line per event worth a human's attention, on stderr.

Under systemd (``$JOURNAL_STREAM`` set) lines carry no timestamp of our own:
journald adds one. Elsewhere they start with the local time.
"""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str = "info") -> None:
    if os.environ.get("JOURNAL_STREAM"):
        fmt = "%(levelname)s %(name)s: %(message)s"
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # paho logs through its own logger only when asked; keep third parties quiet.
    for noisy in ("asyncio", "aiomqtt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
