"""The driver contract: how sources plug into the pipeline.

A driver module (in ``tidegate.drivers`` or registered under the
``tidegate.drivers`` entry-point group) defines a config class derived from
``DriverConfig`` whose ``type`` field is a ``Literal`` of the driver's type
name, and a ``Driver`` subclass that names it in ``config_type``. The module
exposes the class as ``DRIVER``. Construction does no I/O; ``run`` opens the
device, emits events, survives the device going away, and returns only when
cancelled (or when a finite source is exhausted).
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, get_args

from pydantic import Field

from tidegate.config.types import Name, Section
from tidegate.event import Event

Emit = Callable[[Sequence[Event]], Awaitable[None]]
"""Hand events to the pipeline. Awaiting it is the backpressure: it blocks while
the pipeline's bounded queue is full."""

Reject = Callable[[bytes, str], None]
"""Record input that could not become an event: the raw bytes and the reason.
It is counted and kept in the dead-letter table; it never raises."""


class DriverConfig(Section):
    """Keys every driver has. Driver modules subclass this and narrow ``type``."""

    name: Name = Field(description="Instance name; becomes the events' `source`.")
    type: str = Field(description="Driver kind, e.g. `sim`, `serial`, `gpio`, `mqtt`.")


class DriverState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(slots=True)
class DriverHealth:
    """What `tidegate status` shows for a driver; drivers update it as they go."""

    state: DriverState = DriverState.STARTING
    events: int = 0
    errors: int = 0
    last_error: str | None = None
    last_event_monotonic: float | None = None
    since_monotonic: float = field(default_factory=time.monotonic)

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


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What the core hands a driver besides its own config."""

    gateway_id: str
    reject: Reject


class Driver(ABC):
    """Base class of every driver."""

    config_type: ClassVar[type[DriverConfig]]

    def __init__(self, config: DriverConfig, context: DriverContext) -> None:
        self.config = config
        self.context = context
        self.health = DriverHealth()

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    async def run(self, emit: Emit) -> None:
        """Open the device and emit events until cancelled."""


def driver_type_name(driver: type[Driver]) -> str:
    """The ``type:`` value a driver class answers to (its config's Literal)."""
    annotation = driver.config_type.model_fields["type"].annotation
    args = get_args(annotation)
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{driver.__qualname__}.config_type.type must be a Literal of one string")
    return args[0]
