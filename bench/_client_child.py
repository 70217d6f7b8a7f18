"""One measured row of ``./dev bench mqtt_clients`` in a fresh process: imports only
the module of the client it runs (so its peak RSS is that client's) and prints one
JSON line.

``python -m bench._client_child MODULE PREFIX publish|receive PORT MESSAGES [SESSION]``
"""

from __future__ import annotations

import importlib
import json
import sys

from bench._client_common import Meter


def main(argv: list[str]) -> None:
    module, prefix, mode, port, messages, *session = argv
    fn = getattr(importlib.import_module(module), f"{prefix}_{mode}")
    args = (int(port), int(messages), *session[:1]) if mode == "receive" else (
        int(port), int(messages))
    print(json.dumps(fn(*args, Meter())))


if __name__ == "__main__":
    main(sys.argv[1:])
