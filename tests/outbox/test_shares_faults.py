"""Several uplinks on one outbox when things go wrong (``tidegate.outbox.shares``), on a
real SQLite file: reconnects between out-of-order acknowledgements, a crash or a
failed write between a position and its deletes, an uplink removed from the config,
refusals by every uplink, counts that must not be lost, replays that keep their route."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from tidegate.errors import BufferError_
from tidegate.event import new_event
from tidegate.outbox import delivery as delivery_module
from tidegate.outbox import positions as positions_module
from tidegate.outbox.admin.replay import plan_replay, replay
from tidegate.outbox.clock import ROUTE_EXPIRED, UPLINK_MAX_AGE
from tidegate.outbox.delivery import Row
from tidegate.outbox.shares import ORPHANED, UplinkShares
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing

BOTH = ("cloud", "local")


def item(value: float, *, only: tuple[str, ...] = (), expire: float | None = None) -> Outgoing:
    return Outgoing(new_event("s", "x", value), "t/s/x", 1, False, 1, only, expire)


def opened(path: Path, uplinks: tuple[str, ...] = BOTH) -> Outbox:
    box = Outbox(path, "gw", uplinks=uplinks)
    box.open()
    return box


def crash(box: Outbox) -> None:
    """The process dies: the file and its lock let go, the ledger never marked clean."""
    assert box._db is not None
    box._db.close()
    box._db = None
    box._ledger.close()
    box._lock.release()


def shares(box: Outbox) -> UplinkShares:
    assert box.shares is not None
    return box.shares


def take_all(box: Outbox, uplink: str) -> list[Row]:
    """A new connection's first take, read on as ``UplinkOutbox.take`` does."""
    after: list[int] | None = None
    while True:
        rows, after, more = shares(box).take(uplink, 10_000, (0, 0, 0), after)
        if rows or not more:
            return rows


def local_has_three(box: Outbox) -> list[int]:
    """Three events the local uplink delivered, handed out to the cloud: their ids."""
    box.put([item(i) for i in range(3)])
    shares(box).ack("local", [r.id for r in take_all(box, "local")])
    return [r.id for r in take_all(box, "cloud")]


def test_a_reconnect_never_moves_a_position_over_an_event_not_sent(tmp_path: Path) -> None:
    box = opened(tmp_path / "o.db")
    box.put([item(0), item(1, only=("local",)), item(2)])
    a, c = take_all(box, "cloud")  # the event routed to local only is passed over: done
    assert [r.id for r in take_all(box, "cloud")] == [a.id, c.id]  # a reconnect: again
    local = [r.id for r in take_all(box, "local")]
    between = next(i for i in local if i not in (a.id, c.id))
    shares(box).ack("local", [between])  # an ack round: every position moves what it can
    assert shares(box).positions["cloud"].upto[1] < a.id
    assert shares(box).ack("local", [a.id, c.id]) == 0  # the cloud has neither yet
    box.close()
    box = opened(tmp_path / "o.db")
    try:
        assert [r.id for r in take_all(box, "cloud")] == [a.id, c.id]
    finally:
        box.close()


def test_a_refusal_then_a_reconnect_keeps_the_events_before_it(tmp_path: Path) -> None:
    box = opened(tmp_path / "o.db")
    try:
        box.put([item(0), item(1), item(2)])
        a, refused, _ = take_all(box, "cloud")
        shares(box).reject("cloud", [refused.id], "too large", "publish")
        take_all(box, "cloud")  # a reconnect
        box.put([item(3, only=("local",))])
        shares(box).ack("local", [r.id for r in take_all(box, "local")][-1:])
        assert not shares(box).positions["cloud"].is_done(1, a.id)
    finally:
        box.close()


def test_what_a_crash_leaves_between_a_position_and_its_deletes_goes_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = opened(tmp_path / "o.db")
    cloud = local_has_three(box)
    # The positions are written; the process dies before the delete.
    monkeypatch.setattr(delivery_module, "ack", lambda box, gone: 0)
    shares(box).ack("cloud", cloud)
    monkeypatch.undo()
    crash(box)
    box = opened(tmp_path / "o.db")
    try:
        shares(box).waiting("cloud")  # the first use loads the positions, and sweeps
        assert box.stats.depth == 0
    finally:
        box.close()


def test_a_failed_position_write_keeps_the_deletes_for_the_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = opened(tmp_path / "o.db")
    try:
        cloud = local_has_three(box)
        real = positions_module.save

        def locked_once(db: sqlite3.Connection, positions: object) -> None:
            monkeypatch.setattr(positions_module, "save", real)
            raise BufferError_("cannot record the uplinks' positions: database is locked")

        monkeypatch.setattr(positions_module, "save", locked_once)
        with pytest.raises(BufferError_):
            shares(box).ack("cloud", cloud)
        assert shares(box).ack("cloud", cloud) == 3  # the retry deletes them
        assert box.stats.depth == 0
    finally:
        box.close()


def test_events_that_waited_only_for_a_removed_uplink_go_at_start(tmp_path: Path) -> None:
    box = opened(tmp_path / "o.db", ("cloud", "local", "old"))
    box.put([item(i) for i in range(3)] + [item(9, only=("old",)), item(8, only=("cloud",))])
    for uplink in BOTH:
        shares(box).ack(uplink, [r.id for r in take_all(box, uplink)])
    assert box.stats.depth == 4  # waiting for "old", which is down
    box.close()
    box = opened(tmp_path / "o.db")  # "old" is removed from the config
    try:
        # What waited for it alone is done; its own event is dropped, counted (never
        # sent where it was not meant to go).
        assert take_all(box, "cloud") == [] and take_all(box, "local") == []
        assert box.stats.depth == 0
        assert box.stats.drops[ORPHANED] == 1
        assert box.stats.acked == 3  # the three that waited for it too, not the orphan
    finally:
        box.close()


def test_an_event_refused_by_every_uplink_is_not_counted_as_delivered(tmp_path: Path) -> None:
    box = opened(tmp_path / "o.db")
    try:
        box.put([item(1, only=("cloud",)), item(2)])
        only, both = take_all(box, "cloud")
        shares(box).reject("cloud", [only.id], "too large", "publish")
        shares(box).ack("cloud", [both.id])
        shares(box).reject("local", [r.id for r in take_all(box, "local")], "refused", "publish")
        assert box.stats.depth == 0
        assert box.stats.dead_letters == 2
        assert box.stats.acked == 1  # the one the cloud delivered
    finally:
        box.close()


def test_waiting_counts_only_what_is_still_stored(tmp_path: Path) -> None:
    box = opened(tmp_path / "o.db")
    try:
        box.put([item(0)] + [item(i, only=("local",)) for i in range(1, 6)] + [item(7)])
        assert len(take_all(box, "cloud")) == 2  # 1..5 passed over
        shares(box).ack("local", [r.id for r in take_all(box, "local")])  # 1..5 leave
        assert shares(box).waiting("cloud") == 2
    finally:
        box.close()


def test_a_drop_and_its_count_are_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Outbox(tmp_path / "o.db", "gw")
    box.open()
    try:
        box.put([item(i, expire=1.0) for i in range(3)])
        ids = [r.id for r in box.take(10)]
        real = box._bump

        def busy(db: sqlite3.Connection, name: str, n: int) -> None:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(box, "_bump", busy)
        with pytest.raises(BufferError_):
            box.drop_route_expired(ids)
        monkeypatch.setattr(box, "_bump", real)
        assert box.stats.depth == 3  # nothing went uncounted
        assert box.drop_route_expired(ids) == 3  # the publisher's retry
        assert box.stats.drops[ROUTE_EXPIRED] == 3
        assert box.drop_route_expired(ids) == 0
        assert box.stats.drops[ROUTE_EXPIRED] == 3
    finally:
        box.close()


def test_a_replayed_copy_goes_only_to_the_uplink_that_refused_it(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = opened(path)
    box.put([item(1)])
    (row,) = take_all(box, "cloud")
    shares(box).reject("cloud", [row.id], "too large", "publish")
    shares(box).ack("local", [r.id for r in take_all(box, "local")])
    assert box.stats.depth == 0
    box.close()
    db = Database(str(path))
    try:
        assert replay(db, plan_replay(db).replayable) == 1
    finally:
        db.close()
    box = opened(path)
    try:
        assert take_all(box, "local") == []  # it has it already
        assert len(take_all(box, "cloud")) == 1
    finally:
        box.close()


def test_an_event_given_up_by_every_uplink_is_a_counted_drop(tmp_path: Path) -> None:
    box = opened(tmp_path / "o.db")
    try:
        box.put([item(1)])
        for uplink in BOTH:
            shares(box).give_up(uplink, [r.id for r in take_all(box, uplink)])
        assert box.stats.depth == 0
        assert box.stats.drops[UPLINK_MAX_AGE] == 1
        assert box.stats.acked == 0
    finally:
        box.close()


def test_what_an_uplink_gave_up_is_forgotten_once_it_leaves_otherwise(tmp_path: Path) -> None:
    box = opened(tmp_path / "o.db")
    try:
        box.put([item(i, expire=60) for i in range(3)])
        cloud = [r.id for r in take_all(box, "cloud")]
        shares(box).give_up("cloud", cloud)  # local still has them to send
        assert len(shares(box).positions["cloud"].unsent) == 3
        shares(box).expire("local", [r.id for r in take_all(box, "local")])
        assert shares(box).positions["cloud"].unsent == {}
        assert box.stats.drops[ROUTE_EXPIRED] == 3
    finally:
        box.close()


def test_a_replayed_dead_letter_keeps_its_route(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = opened(path)
    box.put([item(1, only=("local",))])
    (row,) = take_all(box, "local")
    shares(box).reject("local", [row.id], "refused", "publish")
    box.close()
    db = Database(str(path))
    try:
        assert replay(db, plan_replay(db).replayable) == 1
    finally:
        db.close()
    box = opened(path)
    try:
        assert take_all(box, "cloud") == []  # still local's alone
        (again,) = take_all(box, "local")
        assert again.topic == "t/s/x"
    finally:
        box.close()
