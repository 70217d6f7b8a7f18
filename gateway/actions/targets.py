"""What an action asks of the driver that owns the device: one small protocol per kind.

The drivers implement these methods (``tidegate.drivers.gpio.output``,
``tidegate.drivers.modbus.driver``, ``tidegate.drivers.mqtt.driver``); the loader has
already checked that each action names a driver of the kind it acts through, so a
driver without the method here is a defect, reported as a failed action.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from tidegate.actions.args import Scalar
from tidegate.actions.config import (
    ActionConfig,
    GpioAction,
    ModbusAction,
    MqttAction,
    SerialAction,
)
from tidegate.actions.template import fill
from tidegate.drivers.serial.templates import HexTemplate
from tidegate.errors import ActionError, ActionRefused


@runtime_checkable
class SwitchesOutput(Protocol):
    async def set_output(self, on: bool, *, cause: str) -> bool: ...
    async def toggle_output(self, *, cause: str) -> bool: ...
    async def pulse_output(self, duration: float, *, cause: str) -> None: ...


@runtime_checkable
class WritesRegisters(Protocol):
    async def write(self, device: str, register: str, value: Any) -> Any: ...


@runtime_checkable
class PublishesLocally(Protocol):
    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None: ...


@runtime_checkable
class WritesFrames(Protocol):
    async def transact(
        self, frame: bytes, *, reply_timeout: float | None = None
    ) -> bytes | None: ...


def _target(driver: object, protocol: type, action: ActionConfig) -> Any:
    if not isinstance(driver, protocol):
        raise ActionError(
            f"{action.name}: driver {action.driver!r} cannot do a {action.type} action "
            f"({type(driver).__name__} has no {protocol.__name__} methods)"
        )
    return driver


async def perform(
    action: ActionConfig, driver: object, args: Mapping[str, Scalar], *, cause: str
) -> Scalar | dict[str, Any] | None:
    """Do ``action`` with checked ``args`` through ``driver``; what the device now holds."""
    if isinstance(action, GpioAction):
        output: SwitchesOutput = _target(driver, SwitchesOutput, action)
        if action.do == "toggle":
            return await output.toggle_output(cause=cause)
        if action.do == "pulse":
            duration = action.duration if action.duration is not None else args["duration"]
            await output.pulse_output(float(duration), cause=cause)
            return True
        state = action.state if action.state is not None else args["state"]
        return await output.set_output(bool(state), cause=cause)
    if isinstance(action, ModbusAction):
        registers: WritesRegisters = _target(driver, WritesRegisters, action)
        value = action.value if action.value is not None else args["value"]
        written = await registers.write(action.device, action.register_, value)
        return dict(written) if isinstance(written, Mapping) else written
    if isinstance(action, MqttAction):
        broker: PublishesLocally = _target(driver, PublishesLocally, action)
        topic = fill(action.name, action.topic, args)
        if not topic or any(c in topic for c in "+#\x00"):
            raise ActionRefused(
                f"{action.name}: the arguments make {topic!r}, not a topic one publishes to "
                "(give the argument a `pattern`)",
                reason="bad_arguments",
            )
        payload = fill(action.name, action.payload, args)
        await broker.publish(topic, payload.encode(), qos=action.qos, retain=action.retain)
        return payload
    if isinstance(action, SerialAction):
        port: WritesFrames = _target(driver, WritesFrames, action)
        reply = await port.transact(action.frame.render(args), reply_timeout=action.reply_timeout)
        if reply is None:
            return None
        return reply.hex(" ") if isinstance(action.frame, HexTemplate) else _text(reply)
    raise ActionError(f"{action.name}: a {action.type} action is not implemented")


def _text(reply: bytes) -> str:
    """A text reply as the result: decoded as Latin-1 (every byte a character), its
    line ending dropped."""
    return reply.decode("latin-1").rstrip("\r\n")
