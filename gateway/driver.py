"""The driver contract: how sources plug into the pipeline.

A driver is a config type and a runtime type, in two modules (Vector's model).
The config module is light (pydantic and our config types only), because
``tidegate check`` reads every driver's schema and must start fast; it declares
the driver's ``type:`` name (a ``Literal``) and names its runtime class::

    class SerialConfig(DriverConfig, runtime="tidegate.drivers.serial.driver:SerialDriver"):
        type: Literal["serial"] = Field("serial", description="Driver kind.")
        port: str = ...

A kind with modes (``gpio``: edge, counter, level, output) declares one config per
mode, each with the same ``type``, and the union of them as its schema; a mode run
by a class of its own names it (gpio's ``output``), the others inherit the kind's.
The runtime module holds the class that does the work, typed by its config::

    class SerialDriver(Driver[SerialConfig]):
        async def run(self, emit: Emit) -> None: ...

``tidegate.drivers.builtins`` lists the built-in configs; third-party drivers
register theirs under the ``tidegate.drivers`` entry-point group
(``tidegate.driver_kinds``). Construction does no I/O; ``run`` opens the device,
emits events, survives the device going away, and returns only when cancelled
(or when a finite source is exhausted).
"""

from __future__ import annotations

import enum
import time
import types
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, Union, get_args, get_origin

from pydantic import Field
from typing_extensions import TypeVar

from tidegate.config.types import Name, Section
from tidegate.event import Event

Emit = Callable[[Sequence[Event]], Awaitable[None]]
"""Hand events to the pipeline. Awaiting it is the backpressure: it blocks while
the pipeline's bounded queue is full."""

Reject = Callable[[bytes, str], None]
"""Record input that could not become an event: the raw bytes and the reason.
It is counted and kept in the dead-letter table; it never raises."""


class DriverConfig(Section):
    """Keys every driver has. A driver's config subclasses this, narrows ``type`` to
    a ``Literal`` of its name and names its runtime class with ``runtime=``."""

    runtime: ClassVar[str | None] = None
    """Where the driver's class is, as ``"module:Class"``; imported only when a
    driver of this kind is built, so checking a config never loads it."""

    name: Name = Field(description="Instance name; becomes the events' `source`.")
    type: str = Field(description="Driver kind, e.g. `sim`, `serial`, `gpio`, `mqtt`.")

    def __init_subclass__(cls, *, runtime: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if runtime is not None:
            module, _, qualname = runtime.partition(":")
            if not module or not qualname:
                raise TypeError(
                    f"{cls.__qualname__}: runtime must be 'module:Class', got {runtime!r}"
                )
            cls.runtime = runtime


def config_models(schema: Any) -> tuple[type[DriverConfig], ...]:
    """The config classes in a driver's schema: the class itself, or the members of a
    union of one class per mode (``Annotated`` layers are looked through)."""
    if isinstance(schema, type):
        if issubclass(schema, DriverConfig):
            return (schema,)
        raise TypeError(f"{schema.__qualname__} is not a DriverConfig")
    if get_origin(schema) is Annotated:
        return config_models(get_args(schema)[0])
    if get_origin(schema) in (Union, types.UnionType):
        return tuple(model for member in get_args(schema) for model in config_models(member))
    raise TypeError(f"{schema!r} is neither a DriverConfig nor a union of them")


def kind_name(schema: Any) -> str:
    """The ``type:`` value a schema answers to: its ``type`` field's one-string
    ``Literal``, the same in every member of a union."""
    names = set()
    for model in config_models(schema):
        args = get_args(model.model_fields["type"].annotation)
        if len(args) != 1 or not isinstance(args[0], str):
            raise TypeError(f"{model.__qualname__}.type must be a Literal of one string")
        names.add(args[0])
    if len(names) != 1:
        raise TypeError(f"the configs of one driver kind name different types: {sorted(names)}")
    return names.pop()


class DriverState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(slots=True)
class DeviceHealth:
    """One device behind a driver (a Modbus slave, a 1-Wire sensor, an I²C chip):
    whether it answers, while the driver as a whole keeps running."""

    stale: bool = False
    """True while the device does not answer; its readings are missing, not invented."""
    last_error: str | None = None
    last_seen_monotonic: float | None = None


@dataclass(slots=True)
class DriverHealth:
    """What `tidegate status` shows for a driver; drivers update it as they go."""

    state: DriverState = DriverState.STARTING
    events: int = 0
    errors: int = 0
    last_error: str | None = None
    last_event_monotonic: float | None = None
    since_monotonic: float = field(default_factory=time.monotonic)
    counters: dict[str, int] = field(default_factory=dict)
    """Driver-specific tallies by name (``device_time``, ``clock_fallback``,
    ``illegal_data_address``, …): shown by ``status`` and exported as metrics."""
    devices: dict[str, DeviceHealth] = field(default_factory=dict)
    """Per-device state, by a label the driver picks (a Modbus device's or an I²C chip's
    name, a 1-Wire sensor's id)."""

    def set_state(self, state: DriverState, error: str | None = None) -> None:
        if state is not self.state:
            self.state = state
            self.since_monotonic = time.monotonic()
        if error is not None:
            self.errors += 1
            self.last_error = error

    def count(self, n: int) -> None:
        self.events += n
        self.last_event_monotonic = time.monotonic()

    def reconnecting(self, message: str, *, first: bool) -> None:
        """The device or bus is out of reach. The first failure of an outage is one
        error; the retries after it keep the message current without counting again."""
        if first:
            self.set_state(DriverState.RECONNECTING, message)
        else:
            self.set_state(DriverState.RECONNECTING)
            self.last_error = message

    def devices_unreachable(self, labels: Iterable[str], message: str) -> None:
        """Every device behind a lost bus is stale with the bus's message: the outage
        is the driver's one error, not one more per device; a device's next answer
        makes it fresh."""
        for label in labels:
            found = self.device(label)
            found.stale, found.last_error = True, message

    def tally(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to a driver-specific counter (created at 0)."""
        self.counters[counter] = self.counters.get(counter, 0) + n

    def device(self, label: str) -> DeviceHealth:
        """The health of one device behind the driver, created on first use."""
        found = self.devices.get(label)
        if found is None:
            found = self.devices[label] = DeviceHealth()
        return found

    def device_answered(self, label: str) -> None:
        found = self.device(label)
        found.stale = False
        found.last_seen_monotonic = time.monotonic()

    def device_failed(self, label: str, error: str, *, stale: bool = True) -> None:
        """Record a device's failure; ``stale`` says it stopped answering (counted
        as a driver error either way)."""
        found = self.device(label)
        found.last_error = error
        found.stale = found.stale or stale
        self.errors += 1
        self.last_error = f"{label}: {error}"


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What the core hands a driver besides its own config."""

    gateway_id: str
    reject: Reject


ConfigT_co = TypeVar("ConfigT_co", bound=DriverConfig, default=DriverConfig, covariant=True)


class Driver(ABC, Generic[ConfigT_co]):
    """Base class of every driver; ``Driver[XConfig]`` names the config it runs on."""

    config_type: ClassVar[Any] = DriverConfig
    """The schema from ``Driver[...]``: a DriverConfig class, or a union of them."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Driver):
                cls.config_type = get_args(base)[0]

    def __init__(self, config: ConfigT_co, context: DriverContext) -> None:
        if not isinstance(config, config_models(self.config_type)):
            raise TypeError(
                f"{type(self).__qualname__} runs on {self.config_type!r}, "
                f"not on {type(config).__qualname__}"
            )
        self.config = config
        self.context = context
        self.health = DriverHealth()

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    async def run(self, emit: Emit) -> None:
        """Open the device and emit events until cancelled."""

