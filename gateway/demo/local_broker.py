"""A private Mosquitto on a free loopback port, for `tidegate simulate` and tests.

It never touches a system broker: it writes its own config into a working
directory, listens on 127.0.0.1 only, keeps nothing on disk (unless asked to,
so tests can restart it without losing a subscriber's session), and queues
generously for slow subscribers (Mosquitto's stock ``max_queued_messages``
of 1000 silently drops QoS-1 messages to a subscriber that falls behind).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tidegate.errors import TidegateError

CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """The mosquitto binary; ``$TIDEGATE_MOSQUITTO`` overrides the search."""
    override = os.environ.get("TIDEGATE_MOSQUITTO")
    if override is not None:
        return override if Path(override).is_file() else None
    for name in CANDIDATES:
        path = shutil.which(name) if "/" not in name else (name if Path(name).exists() else None)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


class LocalBroker:
    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        binary: str | None = None,
        *,
        persistent: bool = False,
        extra_config: str = "",
    ) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise TidegateError(
                "mosquitto is not installed (Debian/Raspberry Pi OS: sudo apt install mosquitto)"
            )
        self.binary = found
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.persistent = persistent
        self.extra_config = extra_config

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} {self.host}",
                    # Started as root, mosquitto would switch to its own user and
                    # lose access to our working directory: stay who we are.
                    f"user {pwd.getpwuid(os.getuid()).pw_name}",
                    "allow_anonymous true",
                    *(
                        [
                            "persistence true",
                            f"persistence_location {self.workdir}/",
                            "autosave_interval 0",
                        ]
                        if self.persistent
                        else ["persistence false"]
                    ),
                    "max_queued_messages 1000000",
                    "max_queued_bytes 0",
                    "max_inflight_messages 1000",
                    "set_tcp_nodelay true",
                    f"log_dest file {self.log_path}",
                    "log_type error",
                    "log_type warning",
                    self.extra_config,
                    "",
                ]
            )
        )
        return conf

    def start(self, timeout: float = 10.0) -> None:
        conf = self._write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise TidegateError(
                    f"mosquitto exited with code {self.process.returncode} "
                    f"(port {self.port} in use?); see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TidegateError(f"mosquitto did not listen on port {self.port} in {timeout} s")
            time.sleep(0.02)  # polling the port: the condition itself, with a deadline

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
