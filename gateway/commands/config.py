"""The ``commands:`` section: what the cloud may ask of this gateway, and how it must ask.

Only the commands listed under ``allow`` exist; anything else is refused
(``unknown_command``). Each is a declared action (``action:``, see ``actions:``) or one
of the built-ins (an entry without ``action``): ``ping``, ``status``, ``rebirth``
(the uplinks' formats announce themselves again: Home Assistant discovery, Sparkplug
births), ``rules_update`` (a new rules file, see ``remote_rules:``) and ``config_update``
(a whole config file, applied with a restart: ``remote_rules: {whole_config: true}``).

Each uplink (``uplinks`` limits which) subscribes at QoS 1 to ``<topic>/+``, where
``topic`` defaults to ``<topic_prefix>/cmd``; a command is a JSON object published to
``<topic>/<command name>``::

    {"id": "7f1c…", "args": {"state": true}, "ts": 1764740000.5,
     "deadline": 1764740060, "sig": "<hex HMAC-SHA256>"}

- ``id`` (required: 1 to 128 letters, digits, ``-``, ``_``, ``.`` or ``:``, since it is a
  level of the result's topic): a repeated id is answered with the first result, never
  acted on twice (ids are remembered as long as the audit keeps them, and always for
  twice ``max_skew``); an id another command used is refused (``bad_request``).
- ``args``: checked against the action's declared arguments before anything moves.
- ``deadline`` (epoch seconds) or the MQTT 5 Message Expiry Interval: a command still
  waiting at its deadline is refused (``expired``), never run late.
- ``ts`` and ``sig``: required for a signed command (``signed``, the default once a
  key is given). ``sig`` is the hex HMAC-SHA256, keyed with the key's text, of the
  command's name, a newline, and the message without ``sig`` as canonical JSON (keys
  sorted, no spaces, UTF-8): ``tidegate cmd send`` makes them. ``ts`` must be within
  ``max_skew`` of the gateway's clock (a replay of an old message is refused).

Results (JSON: ``id``, ``command``, ``status``, and ``result``, ``reason`` or
``message``) go to the MQTT 5 Response Topic with the command's Correlation Data, or
else to ``<topic>/result/<id>``: ``accepted`` once it passed every check, then
``done``, ``refused`` (``reason``: ``unknown_command``, ``bad_request``,
``bad_arguments``, ``not_authorised``, ``expired``, ``rate_limited``, ``interlock``,
``busy``) or ``failed`` (the device did not do it). Every command and its result is
kept in the outbox file's audit table (the newest ``audit_keep``; ``tidegate buffer
commands`` exports it); refusals are counted by reason in ``tidegate status``.

An uplink's format may also take commands in its platform's own way, checked and
audited the same (a command declared ``signed`` cannot come that way): ThingsBoard's
server-side RPC (``thingsboard``), Home Assistant switches, numbers and buttons
(``homeassistant``), Sparkplug B NCMD/DCMD metric writes (``sparkplug_b``), and on
``preset: azure_iot_hub`` the hub's direct methods (its only way: the hub ends a
connection that subscribes to a topic of the device's own).

```yaml
commands:
  key_credential: cmd-key         # HMAC key; or key_file / key_env
  allow:
    - name: vent                  # -> actions: vent
      action: vent
      rate_limit: {count: 6, per: 1m}
    - name: ping                  # built in
    - name: rules_update          # built in: needs remote_rules:
    - name: config_update         # built in: needs remote_rules: {whole_config: true}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tidegate.config.types import Duration, Name, Section

BUILTINS = ("ping", "status", "rebirth", "rules_update", "config_update")
"""The commands the gateway has without an action."""


class RateLimit(Section):
    """At most ``count`` calls in any ``per``."""

    count: int = Field(gt=0, description="Calls allowed in any window of `per`.")
    per: Duration = Field(gt=0, description="The window, e.g. 1m.")


class CommandSpec(Section):
    """One command the cloud may send."""

    name: Name = Field(description="The command's name: the last level of its topic.")
    action: Name | None = Field(
        None,
        description="The action it runs (`actions:`); unset: a built-in "
        "(ping, status, rebirth, rules_update, config_update).",
    )
    signed: bool | None = Field(
        None,
        description="Require a valid signature and a fresh `ts`; default: yes when "
        "the section has a key.",
    )
    rate_limit: RateLimit | None = Field(None, description="Refuse calls beyond this rate.")

    @model_validator(mode="after")
    def _builtin_or_action(self) -> CommandSpec:
        if self.action is None and self.name not in BUILTINS:
            raise ValueError(
                f"command {self.name!r} needs `action: NAME` (built-ins: {', '.join(BUILTINS)})"
            )
        if self.action is not None and self.name in BUILTINS:
            raise ValueError(f"{self.name!r} is a built-in command: give it no `action`")
        return self


class CommandsSection(Section):
    """Commands from the cloud (see the section's description)."""

    topic: str | None = Field(
        None,
        description="Commands arrive on `<topic>/<name>`; default: `<uplink topic_prefix>/cmd`.",
    )
    uplinks: list[Name] | None = Field(
        None, description="The uplinks that take commands; default: every one."
    )
    key_file: Path | None = Field(None, description="File holding the HMAC key (its text).")
    key_env: str | None = Field(None, description="Environment variable holding the HMAC key.")
    key_credential: str | None = Field(
        None, description="systemd credential (`LoadCredential=`) holding the HMAC key."
    )
    max_skew: Duration = Field(
        300.0, gt=0, description="A signed command's `ts` may be this far from our clock."
    )
    audit_keep: int = Field(
        10_000, gt=0, le=1_000_000, description="Commands kept in the audit table (newest)."
    )
    results_qos: Literal[0, 1] = Field(
        1,
        description="QoS of the results published: 1 for two in flight at once (the outbox's "
        "window leaves them two of the broker's Receive Maximum), the rest at 0.",
    )
    allow: list[CommandSpec] = Field(
        default_factory=list, description="The commands that exist; nothing else does."
    )

    @property
    def has_key(self) -> bool:
        return any(k is not None for k in (self.key_file, self.key_env, self.key_credential))

    def signed(self, spec: CommandSpec) -> bool:
        return self.has_key if spec.signed is None else spec.signed

    @model_validator(mode="after")
    def _consistent(self) -> CommandsSection:
        keys = [k for k in (self.key_file, self.key_env, self.key_credential) if k is not None]
        if len(keys) > 1:
            raise ValueError("give the key one way: key_file, key_env or key_credential")
        names = [c.name for c in self.allow]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"command {twice[0]!r} is listed twice under `allow`")
        for spec in self.allow:
            if spec.signed and not keys:
                raise ValueError(
                    f"command {spec.name!r} is signed, but the section has no key "
                    "(key_file, key_env or key_credential)"
                )
        if self.topic is not None and ("+" in self.topic or "#" in self.topic):
            raise ValueError(f"topic {self.topic!r}: no wildcards (commands are <topic>/<name>)")
        return self
