"""Several uplinks on one outbox (``tidegate.outbox.shares``), on a real SQLite file:
each reads from its own position, an event leaves when every uplink it is routed to
has it, positions survive a restart, and one uplink that never reads holds back
nothing of the other's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tidegate.event import new_event
from tidegate.outbox.delivery import Row
from tidegate.outbox.positions import PRUNE_AFTER
from tidegate.outbox.shares import ORPHANED, UplinkShares
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing

UPLINKS = ("cloud", "local")


def item(value: float, *, only: tuple[str, ...] = (), priority: int = 1) -> Outgoing:
    return Outgoing(new_event("s", "x", value), "t/s/x", 1, False, priority, only)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path / "outbox.db", "gw", uplinks=UPLINKS)
    outbox.open()
    yield outbox
    outbox.close()


def shares(box: Outbox) -> UplinkShares:
    assert box.shares is not None
    return box.shares


def take_all(box: Outbox, uplink: str, cursors: tuple[int, int, int] = (0, 0, 0)) -> list[Row]:
    """What the uplink's next take after ``cursors`` hands out (all-zero: a new
    connection), read on as ``UplinkOutbox.take`` does."""
    after: list[int] | None = None
    while True:
        rows, after, more = shares(box).take(uplink, 10_000, cursors, after)
        if rows or not more:
            return rows


def values(rows: list[Row]) -> list[float]:
    import orjson  # noqa: PLC0415

    return [orjson.loads(r.payload)["value"] for r in rows]


def test_an_event_leaves_once_every_uplink_has_it(box: Outbox) -> None:
    box.put([item(i) for i in range(10)])
    cloud = take_all(box, "cloud")
    assert values(cloud) == list(range(10))
    assert shares(box).ack("cloud", [r.id for r in cloud]) == 0  # local has none yet
    assert box.stats.depth == 10
    assert take_all(box, "cloud") == []  # cloud has them all: nothing again
    assert shares(box).waiting("cloud") == 0
    assert shares(box).waiting("local") == 10
    local = take_all(box, "local")
    assert values(local) == list(range(10))
    assert shares(box).ack("local", [r.id for r in local]) == 10
    assert box.stats.depth == 0


def test_one_uplink_never_reading_holds_back_nothing_routed_to_the_other(box: Outbox) -> None:
    box.put([item(i, only=("local",)) for i in range(5)] + [item(9)])
    local = take_all(box, "local")
    assert values(local) == [0, 1, 2, 3, 4, 9]
    # Only the event routed to both waits for cloud (down, never reading).
    assert shares(box).ack("local", [r.id for r in local]) == 5
    assert box.stats.depth == 1
    cloud = take_all(box, "cloud")
    assert values(cloud) == [9]  # the ones routed to local only are passed over
    assert shares(box).ack("cloud", [r.id for r in cloud]) == 1
    assert box.stats.depth == 0


def test_positions_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path, "gw", uplinks=UPLINKS)
    box.open()
    box.put([item(i) for i in range(6)])
    cloud = take_all(box, "cloud")
    shares(box).ack("cloud", [r.id for r in cloud[:4]])
    box.close()
    box = Outbox(path, "gw", uplinks=UPLINKS)
    box.open()
    try:
        assert values(take_all(box, "cloud")) == [4, 5]
        assert values(take_all(box, "local")) == list(range(6))
        assert box.stats.depth == 6
    finally:
        box.close()


def test_an_uplink_removed_from_the_config_takes_its_own_events_with_it(
    tmp_path: Path,
) -> None:
    """Events routed only to an uplink no longer configured are dropped and counted, not
    sent where they were not meant to go (a LAN-only reading to a cloud)."""
    path = tmp_path / "outbox.db"
    box = Outbox(path, "gw", uplinks=("cloud", "old"))
    box.open()
    box.put([item(1, only=("old",)), item(2, only=("cloud",))])
    box.close()
    box = Outbox(path, "gw", uplinks=UPLINKS)
    box.open()
    try:
        assert take_all(box, "local") == []
        assert values(take_all(box, "cloud")) == [2]
        assert box.stats.drops[ORPHANED] == 1
    finally:
        box.close()


def test_a_refusal_by_one_uplink_is_a_copy_in_the_dead_letters(box: Outbox) -> None:
    box.put([item(1), item(2)])
    cloud = take_all(box, "cloud")
    assert shares(box).reject("cloud", [cloud[0].id], "too large", "publish") == 1
    assert box.stats.dead_letters == 1
    assert box.stats.depth == 2  # local may still send it
    shares(box).ack("cloud", [cloud[1].id])
    local = take_all(box, "local")
    assert values(local) == [1, 2]
    assert shares(box).ack("local", [r.id for r in local]) == 2
    assert box.stats.depth == 0
    (reason,) = box.db.execute("SELECT reason FROM dead_letters").fetchone()
    assert reason == "uplink cloud: too large"


def test_acks_out_of_order_and_reconnects_move_the_position_only_over_what_is_done(
    box: Outbox,
) -> None:
    box.put([item(i) for i in range(4)] + [item(10, priority=0)])
    rows = take_all(box, "cloud")
    assert values(rows) == [10, 0, 1, 2, 3]  # the high class first
    by_value = {v: r.id for v, r in zip(values(rows), rows, strict=True)}
    shares(box).ack("cloud", [by_value[2], by_value[10]])
    # A reconnect reads again from the position: 0, 1 and 3 (2 is done, not sent again).
    assert values(take_all(box, "cloud")) == [0, 1, 3]
    shares(box).ack("cloud", [by_value[0], by_value[1], by_value[3]])
    assert take_all(box, "cloud") == []
    position = shares(box).positions["cloud"]
    assert position.upto[1] == by_value[3] and position.upto[0] == by_value[10]


def test_events_gone_otherwise_do_not_pin_a_position(box: Outbox) -> None:
    """An event dropped by a bound (here: purged as by `tidegate buffer purge`) while
    handed out is pruned from the position's way once enough wait behind it."""
    box.put([item(0)])
    (first,) = take_all(box, "cloud")
    box.db.execute("DELETE FROM segments_normal")
    box._rows_changed()
    box.put([item(i) for i in range(1, PRUNE_AFTER + 2)])
    rows, _, _ = shares(box).take("cloud", PRUNE_AFTER + 10, (first.id, 0, 0))
    assert len(rows) == PRUNE_AFTER + 1
    shares(box).ack("cloud", [r.id for r in rows])
    assert shares(box).positions["cloud"].upto[1] == rows[-1].id
