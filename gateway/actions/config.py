"""The ``actions:`` section: what the gateway can do to its devices.

An action is named once and used by rules (``action: {run: NAME}``) and by cloud
commands (``commands: {allow: [{name: ..., action: NAME}]}``) alike, with the same
checks: its arguments are declared (type, range, choices) and checked before anything
moves; an output's interlocks (its driver's ``interlock:``) hold whoever asks. Each
action names the driver that owns the device, by its ``name``:

- ``gpio``: a ``gpio`` driver in ``mode: output``; ``do: set`` (argument ``state``,
  true/false, unless the action fixes ``state:``), ``toggle``, or ``pulse`` (on for
  ``duration``, or the argument ``duration`` in seconds).
- ``modbus``: write a ``modbus`` driver's ``device``'s ``register`` (argument
  ``value`` in engineering units, unless the action fixes ``value:``).
- ``serial``: write a frame to a ``serial`` driver's port, made from a template with
  the framing's checksum; with ``reply_timeout``, wait for the device's answer.
- ``mqtt``: publish to an ``mqtt`` driver's broker (the local one: Tasmota's
  ``cmnd/…/POWER``, Zigbee2MQTT's ``…/set``); ``topic`` and ``payload`` take
  ``{argument}`` placeholders.

Every action taken is an event too (source ``actions``, name: the action's, value: what
the device now holds or answered, tags ``cause`` and ``outcome``), so the cloud sees
what the gateway did; a refused or failed one is counted and logged.

```yaml
actions:
  - name: vent
    type: gpio
    driver: vent-relay            # a gpio driver in mode: output
    do: set                       # argument state: true/false
  - name: boiler-setpoint
    type: modbus
    driver: meters
    device: boiler
    register: setpoint
    args: {value: {type: number, min: 5, max: 30}}
  - name: lamp
    type: mqtt
    driver: local-broker
    topic: cmnd/tasmota_lamp/POWER
    payload: "{state}"
    args: {state: {type: string, choices: ["ON", "OFF", "TOGGLE"]}}
```
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from tidegate.actions.args import ArgSpec, ArgType
from tidegate.actions.template import TemplateText, placeholders
from tidegate.config.types import Duration, Name, Section
from tidegate.drivers.serial.templates import FrameTemplate

ArgName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


class _Action(Section):
    """What every action has."""

    kinds: ClassVar[dict[str, frozenset[ArgType]]] = {}
    """Arguments the kind itself needs, with the types that serve each."""

    name: Name = Field(description="The action's name, as rules and commands call it.")
    type: str = Field(description="Action kind: gpio, modbus, serial or mqtt.")
    driver: Name = Field(description="The driver (by `name`) that owns the device.")
    description: str = Field("", description="What it does, for people (shown by `status`).")
    args: dict[ArgName, ArgSpec] | None = Field(
        None,
        description="The arguments a call may carry, each with its type and bounds; "
        "unset: the kind's own (`state` for gpio set, `duration` for pulse, `value` for modbus).",
    )

    def needs(self) -> dict[str, frozenset[ArgType]]:
        """The arguments this action needs, and the types that serve each."""
        return {}

    def default_args(self) -> dict[str, ArgSpec]:
        return {name: ArgSpec(type=sorted(types)[0]) for name, types in self.needs().items()}

    def arg_specs(self) -> dict[str, ArgSpec]:
        """What a call is checked against."""
        return self.default_args() if self.args is None else dict(self.args)

    @model_validator(mode="after")
    def _args_cover_needs(self) -> _Action:
        if self.args is None:
            return self
        for name, types in self.needs().items():
            spec = self.args.get(name)
            if spec is None:
                raise ValueError(f"`args` must declare {name!r}: this action needs it")
            if spec.type not in types:
                raise ValueError(
                    f"argument {name!r} must be {' or '.join(sorted(types))}, not {spec.type}"
                )
        return self


class GpioAction(_Action):
    """Switch a ``gpio`` output line."""

    type: Literal["gpio"] = Field(description="Action kind.")
    do: Literal["set", "toggle", "pulse"] = Field(
        "set", description="set (to `state`), toggle, or pulse (on for `duration`, then off)."
    )
    state: bool | None = Field(None, description="set: always this state; unset: the argument.")
    duration: Duration | None = Field(
        None, gt=0, description="pulse: always this long; unset: the argument `duration` (s)."
    )

    def needs(self) -> dict[str, frozenset[ArgType]]:
        if self.do == "set" and self.state is None:
            return {"state": frozenset({"bool"})}
        if self.do == "pulse" and self.duration is None:
            return {"duration": frozenset({"number", "int"})}
        return {}

    def default_args(self) -> dict[str, ArgSpec]:
        if self.do == "pulse" and self.duration is None:
            return {"duration": ArgSpec(type="number", min=0.001, max=3600)}
        return super().default_args()

    @model_validator(mode="after")
    def _keys_of_do(self) -> GpioAction:
        if self.state is not None and self.do != "set":
            raise ValueError("`state` is for do: set")
        if self.duration is not None and self.do != "pulse":
            raise ValueError("`duration` is for do: pulse")
        return self


class ModbusAction(_Action):
    """Write a register or coil of a ``modbus`` driver's device."""

    type: Literal["modbus"] = Field(description="Action kind.")
    device: Name = Field(description="The device, by its name under the driver's `devices:`.")
    register_: Name = Field(
        alias="register", description="The register (or coil), by its name in the device's map."
    )
    value: float | bool | None = Field(
        None, description="Always write this; unset: the argument `value`."
    )

    def needs(self) -> dict[str, frozenset[ArgType]]:
        return {} if self.value is not None else {"value": frozenset({"number", "int", "bool"})}

    def default_args(self) -> dict[str, ArgSpec]:
        return {} if self.value is not None else {"value": ArgSpec(type="number")}


class MqttAction(_Action):
    """Publish to the broker of an ``mqtt`` driver (the local one)."""

    type: Literal["mqtt"] = Field(description="Action kind.")
    topic: TemplateText = Field(
        min_length=1, description="Topic, with `{argument}` placeholders; no wildcards."
    )
    payload: TemplateText = Field("", description="Payload text, with `{argument}` placeholders.")
    qos: Literal[0, 1] = Field(1, description="QoS 1: done once the broker acknowledged it.")
    retain: bool = Field(False, description="Publish with the retain flag.")

    @model_validator(mode="after")
    def _placeholders_declared(self) -> MqttAction:
        if "+" in self.topic or "#" in self.topic:
            raise ValueError(f"topic {self.topic!r}: no wildcards in a topic one publishes to")
        used = placeholders(self.topic) | placeholders(self.payload)
        missing = sorted(used - set(self.arg_specs()))
        if missing:
            raise ValueError(f"placeholder {{{missing[0]}}} is not a declared argument (`args`)")
        return self


class SerialAction(_Action):
    """Write a frame to a ``serial`` driver's port, and with ``reply_timeout`` wait for
    the device's answer (the next frame its framing cuts: the action's result, not an
    event)."""

    type: Literal["serial"] = Field(description="Action kind.")
    frame: FrameTemplate = Field(
        description='The frame: text (`"SET {value:.1f}\\r\\n"`) or `{hex: "01 06 00 01 '
        '{value:04X}", checksum: crc16-modbus}`; `{argument}` placeholders.'
    )
    reply_timeout: Duration | None = Field(
        None, gt=0, description="Wait this long for the device's reply; unset: none expected."
    )

    @model_validator(mode="after")
    def _placeholders_declared(self) -> SerialAction:
        used = self.frame.placeholders()
        if used and self.args is None:
            raise ValueError(
                f"declare the arguments of the frame's placeholders under `args` "
                f"({', '.join(sorted(used))}: their types and bounds)"
            )
        missing = sorted(used - set(self.arg_specs()))
        if missing:
            raise ValueError(f"placeholder {{{missing[0]}}} is not a declared argument (`args`)")
        return self


ActionConfig = Annotated[
    GpioAction | ModbusAction | MqttAction | SerialAction,
    Field(discriminator="type"),
]
"""One action: a model per kind, chosen by ``type``."""

ACTION_DRIVER_TYPES: dict[str, str] = {
    "gpio": "gpio",
    "modbus": "modbus",
    "mqtt": "mqtt",
    "serial": "serial",
}
"""The driver ``type`` each action kind acts through."""


def describe(action: Any) -> str:
    """One line for status: the kind and its target."""
    if isinstance(action, GpioAction):
        return f"gpio {action.do} {action.driver}"
    if isinstance(action, ModbusAction):
        return f"modbus write {action.driver}/{action.device}.{action.register_}"
    if isinstance(action, MqttAction):
        return f"mqtt publish {action.driver}: {action.topic}"
    if isinstance(action, SerialAction):
        reply = " and read the reply" if action.reply_timeout else ""
        return f"serial write {action.driver}{reply}"
    return f"{action.type} {action.driver}"
