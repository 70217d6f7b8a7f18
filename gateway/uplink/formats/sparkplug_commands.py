"""Sparkplug B's NCMD and DCMD as tidegate commands (``format: sparkplug_b``, with
``commands:``).

The uplink subscribes to ``spBv1.0/<group>/NCMD/<node>`` and
``spBv1.0/<group>/DCMD/<node>/+``. A metric written there whose name is a command's
under ``commands.allow`` calls it, with the metric's value as its one argument
(``state`` of a gpio set for a Boolean, ``value`` of a Modbus write for a number); a
command with no argument (a toggle, a pulse of a fixed duration, ``ping``) is called by
a write of true, and a write of false is ignored (a host resetting a momentary tag).
A value that does not fit the argument is refused (``bad_arguments``, in the audit).
The device a DCMD names is not checked: the metric's name says the command. One
command per message: the first metric that names one (hosts write a tag per message).

So that a host can write them (Ignition writes only metrics a birth declared), the
NBIRTH declares a metric per command that a control can call (``Boolean`` for a
switch or a button, ``Int64`` or ``Double`` for a number), with a null value: the
gateway does not read its outputs back, and what it did arrives as the ``actions``
device's DDATA (each action is an event) rather than as the command metric's.

``Node Control/Rebirth`` is not a command here: the Sparkplug spec makes a rebirth on
request mandatory for an edge node, so it is always honoured (NBIRTH and the DBIRTHs
of this uplink again), whether or not ``rebirth`` is under ``allow``, never rate
limited, and not audited. Sparkplug has no answer to a command (and a message the
format did not number would break the host's ``seq``): refusals and failures are in
the audit and the log, and ``tidegate status`` counts them.
"""

from __future__ import annotations

from typing import Any

from tidegate.commands.native import NativeCommand
from tidegate.uplink.formats import sparkplug_payload as pb
from tidegate.uplink.formats.offers import CommandOffer

CONVENTION = "sparkplug"
REBIRTH = "Node Control/Rebirth"


def command_metrics(offers: tuple[CommandOffer, ...], now: int) -> bytes:
    """The NBIRTH's metrics of the commands a host may write (null values)."""
    out = b""
    for offer in offers:
        if offer.entity is None:
            continue
        if offer.entity == "number":
            datatype = pb.INT64 if offer.arg_type == "int" else pb.DOUBLE
        else:
            datatype = pb.BOOLEAN
        out += pb.metric(name=offer.name, timestamp=now, datatype=datatype, value=None)
    return out


def command_of(payload: bytes, offers: tuple[CommandOffer, ...]) -> NativeCommand | None:
    """The command an NCMD or DCMD payload writes; None: none (or not a payload)."""
    try:
        metrics = pb.read_metrics(payload)
    except ValueError:
        return None
    by_name = {o.name: o for o in offers}
    for metric in metrics:
        if metric.name is None or metric.name == REBIRTH or metric.name not in by_name:
            continue
        offer = by_name[metric.name]
        args: dict[str, Any]
        if offer.arg is not None:
            args = {offer.arg: metric.value}
        elif metric.value is True:
            args = {}
        elif metric.value is False:
            return None  # a momentary tag set back: nothing asked
        else:
            args = {"value": metric.value}  # refused: the command takes no argument
        return NativeCommand(CONVENTION, offer.name, None, args)
    # A metric naming no declared command: refused by name, so the audit shows it.
    unknown = next((m for m in metrics if m.name and m.name != REBIRTH), None)
    if unknown is not None and unknown.name is not None:
        return NativeCommand(CONVENTION, unknown.name, None, {"value": unknown.value})
    return None
