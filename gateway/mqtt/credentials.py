"""Reading secrets (the MQTT password) from a file, the environment or a
systemd credential, never from the YAML file, and never into a log line.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator

from tidegate.config.types import Section
from tidegate.errors import SecretUnreadable


class Secret:
    """A string that does not show itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def _read(path: Path, what: str, named: str) -> Secret:
    try:
        return Secret(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise SecretUnreadable(
            f"cannot read {named} from {what} {path}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        # Not the exception's text: it quotes the bytes around the bad one.
        raise SecretUnreadable(
            f"cannot read {named} from {what} {path}: it is not UTF-8 text"
        ) from None


class MqttCredentials(Section):
    """How a broker connection logs in: a user name and, from outside the YAML file,
    a password (part of ``tidegate.mqtt.connection.MqttConnection``)."""

    username: str | None = Field(None, description="User name, if the broker wants one.")
    password_file: Path | None = Field(
        None, description="File whose content (trimmed) is the password."
    )
    password_env: str | None = Field(None, description="Environment variable holding the password.")
    password_credential: str | None = Field(
        None,
        description="systemd credential name (`LoadCredential=`) holding the password.",
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> MqttCredentials:
        sources = [self.password_file, self.password_env, self.password_credential]
        if sum(s is not None for s in sources) > 1:
            raise ValueError(
                "give the password one way: password_file, password_env or password_credential"
            )
        if self.username is None and any(s is not None for s in sources):
            raise ValueError("a password needs a `username`")
        return self


def read_password(mqtt: MqttCredentials) -> Secret | None:
    """The password the config points at; what is not there is a SecretUnreadable."""
    return read_secret(
        mqtt.password_file,
        mqtt.password_env,
        mqtt.password_credential,
        named="the MQTT password",
        key="password_credential",
    )


def read_secret(
    file: Path | None,
    env: str | None,
    credential: str | None,
    *,
    named: str,
    key: str,
) -> Secret | None:
    """A secret from a file, an environment variable or a systemd credential (at most one
    is given; none: None); ``named`` names it in messages, ``key`` is the credential's key."""
    if file is not None:
        return _read(file, "file", named)
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise SecretUnreadable(f"{named} variable ${env} is not set in the environment")
        return Secret(value)
    if credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretUnreadable(
                f"{key} '{credential}' needs systemd's "
                "LoadCredential= ($CREDENTIALS_DIRECTORY is not set)"
            )
        return _read(Path(directory) / credential, "credential", named)
    return None
