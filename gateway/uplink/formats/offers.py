"""What a format knows of the commands its uplink takes (``FormatContext.commands``):
each declared command with the shape of its one argument, so a platform's own controls
(Home Assistant's switch, number and button entities, a ThingsBoard widget's bare
value, a Sparkplug metric write) can be turned into the command's arguments.

Read from the config once, when the uplinks are built; kept free of the actions'
runtime so that a format imports nothing it does not need."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from tidegate.actions.config import ActionConfig
    from tidegate.config.schema import GatewayConfig

Entity = Literal["switch", "number", "button"]


class CommandOffer(NamedTuple):
    """One command under ``commands.allow``, as a platform's control would call it."""

    name: str
    entity: Entity | None = None
    """The Home Assistant entity that calls it; None: none fits (several arguments...)."""
    arg: str | None = None
    """The action's one argument (a bare value goes there); None: it takes none or several."""
    arg_type: str | None = None
    """``bool``, ``int``, ``number`` or ``string``."""
    min: float | None = None
    max: float | None = None
    step: float | None = None
    driver: str | None = None
    """The driver its action acts through (Sparkplug: the device a DCMD goes to)."""


def offers_for(config: GatewayConfig, uplink: str) -> tuple[CommandOffer, ...]:
    """The commands uplink ``uplink`` takes (none without ``commands:``, or when the
    section's ``uplinks`` leaves it out)."""
    section = config.commands
    if section is None or (section.uplinks is not None and uplink not in section.uplinks):
        return ()
    actions = {a.name: a for a in config.actions}
    out = []
    for spec in section.allow:
        offer = _offer(spec.name, actions.get(spec.action) if spec.action is not None else None)
        # A signed command cannot come from a platform's control: no entity calls it.
        out.append(offer._replace(entity=None) if section.signed(spec) else offer)
    return tuple(out)


def _offer(name: str, action: ActionConfig | None) -> CommandOffer:
    """A command of ``action`` (None: a built-in) as a control would call it."""
    if action is None:
        # A built-in: rebirth and ping are a press of a button; status and
        # rules_update answer with more than an entity can show.
        return CommandOffer(name, "button" if name in ("rebirth", "ping") else None)
    specs = action.arg_specs()
    required = {n: s for n, s in specs.items() if s.default is None}
    driver = action.driver
    if len(specs) != 1:
        # No one argument a bare value could fill: a button when none is required.
        return CommandOffer(name, None if required else "button", driver=driver)
    (arg, spec), *_ = specs.items()
    entity: Entity | None = None
    step = None
    if getattr(action, "do", None) == "pulse":
        # A pulse is a press; one whose length the call must give is no entity.
        entity = None if required else "button"
    elif spec.type == "bool":
        entity = "switch"
    elif spec.type in ("int", "number") and spec.min is not None and spec.max is not None:
        entity = "number"
        step = 1.0 if spec.type == "int" else _step(spec.min, spec.max)
    elif not required:
        entity = "button"  # its one argument has a default: a press takes it
    return CommandOffer(name, entity, arg, spec.type, spec.min, spec.max, step, driver)


def _step(low: float, high: float) -> float:
    """A number entity's step: a tenth for a range of up to a thousand, else 1."""
    return 0.1 if high - low <= 1000 else 1.0
