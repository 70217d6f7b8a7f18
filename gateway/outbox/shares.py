"""Several uplinks reading one outbox (``uplinks:``): each its own delivery position.

Every event is stored once. Each uplink reads the outbox in id order per priority
class, from its own position, and what it has (acknowledged, refused, or skipped
because the event is not routed to it: ``tidegate.outbox.routing``) is *done* for
it. An event is deleted once it is done for every uplink it is routed to, so an
uplink that is down holds back no other: the others read on from their own
positions, and events routed only to them leave the outbox as they are acknowledged.

Per uplink and class, ``upto`` is its position: every event of the class up to it
is done for the uplink. It is kept in ``uplink_positions`` (written before the
deletes it allows: a crash in between leaves events that a later reader finds done
for every uplink, and deletes). Above it, ``handed`` keeps the ids handed out, in
order, each done or not; ``upto`` moves over the done ones at the head. An id that
leaves the outbox otherwise (a bound's drop, an expiry, a dead letter for damage)
is pruned from the head once it blocks (``_prune``).

One uplink (``mqtt:``) never comes here: the outbox deletes what it acknowledges.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tidegate.errors import BufferError_
from tidegate.outbox import delivery, segment_store
from tidegate.outbox.dead import reject
from tidegate.outbox.routing import routed_to
from tidegate.outbox.schema import CLASS_TABLES

if TYPE_CHECKING:
    from tidegate.outbox.delivery import Row
    from tidegate.outbox.store import Outbox

log = logging.getLogger("tidegate.outbox.store")

TABLE = "uplink_positions"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (uplink TEXT NOT NULL, cls INTEGER NOT NULL, "
    "upto INTEGER NOT NULL, PRIMARY KEY (uplink, cls)) WITHOUT ROWID"
)
PRUNE_AFTER = 50_000
"""Handed-out ids kept above a position before the missing ones are looked for."""


class Position:
    """One uplink's place in the outbox, per priority class."""

    def __init__(self, classes: int) -> None:
        self.upto = [0] * classes
        self.handed: list[dict[int, bool]] = [{} for _ in range(classes)]
        """Per class, ids handed out above ``upto``, in order: done or not."""
        self.routes: dict[int, frozenset[str] | None] = {}
        """Handed-out ids not yet done: the uplinks each is routed to (None: all)."""
        self.cls: dict[int, int] = {}
        """Handed-out ids not yet done: their class."""
        self.moved = False
        """``upto`` moved since it was last written."""

    def is_done(self, cls: int, row_id: int) -> bool:
        return row_id <= self.upto[cls] or self.handed[cls].get(row_id, False)

    def restart(self) -> None:
        """A new connection reads again from ``upto``: forget the order (not what is done)."""
        for handed in self.handed:
            for row_id in [i for i, done in handed.items() if not done]:
                del handed[row_id]
        self.routes.clear()
        self.cls.clear()


class UplinkShares:
    """The delivery positions of several uplinks (``tidegate.outbox.shares``)."""

    def __init__(self, box: Outbox, uplinks: Sequence[str]) -> None:
        self.box = box
        self.names = list(uplinks)
        self.positions = {name: Position(len(CLASS_TABLES)) for name in self.names}
        self._loaded = False

    # -- reading -----------------------------------------------------------------------

    def take(self, uplink: str, limit: int, cursors: Sequence[int]) -> list[Row]:
        """Up to ``limit`` rows for ``uplink``, after its cursors and its position; rows
        done for it (or not routed to it) are passed over, read on until some are found."""
        self._load()
        pos = self.positions[uplink]
        if not any(cursors):
            pos.restart()
        after = [max(c, u) for c, u in zip(cursors, pos.upto, strict=True)]
        while True:
            rows = delivery.take(self.box, limit, after)
            out: list[Row] = []
            passed: list[int] = []
            for row in rows:
                handed = pos.handed[row.priority]
                after[row.priority] = max(after[row.priority], row.id)
                if pos.is_done(row.priority, row.id):
                    continue
                routed = routed_to(row.topic)
                handed.setdefault(row.id, False)
                pos.cls[row.id] = row.priority
                pos.routes[row.id] = routed
                if routed is not None and uplink not in self._known(routed):
                    passed.append(row.id)
                else:
                    out.append(row)
            if passed:
                self._done(uplink, passed)
            if out or len(rows) < limit:
                return out

    def _known(self, routed: frozenset[str]) -> frozenset[str]:
        """Of the uplinks a stored route names, those configured now; none of them
        (renamed or removed since): every uplink, so nothing stored is stranded."""
        known = routed.intersection(self.names)
        return known if known else frozenset(self.names)

    # -- what an uplink has ------------------------------------------------------------

    def ack(self, uplink: str, ids: Iterable[int]) -> int:
        """``uplink`` has these: delete those now done for every uplink they go to."""
        self._load()
        return self._done(uplink, list(ids))

    def reject(self, uplink: str, ids: Sequence[int], reason: str, stage: str) -> int:
        """``uplink`` cannot send these: a copy goes to the dead letters (the others
        may still send them), and they are done for it."""
        self._load()
        wanted = [i for i in ids if i in self.positions[uplink].cls]
        copied = reject(self.box, wanted, f"uplink {uplink}: {reason}", stage, keep=True)
        self._done(uplink, wanted)
        return copied

    def give_up(self, uplink: str, ids: Sequence[int]) -> int:
        """Past ``uplink``'s ``max_event_age``: done for it (not sent), as an ack would
        make them; deleted if every other uplink they go to has them too."""
        self._load()
        return self._done(uplink, list(ids))

    def expire(self, uplink: str, ids: Sequence[int]) -> int:
        """Past their route's ``expire_after``: worth sending to no uplink, deleted now
        (another uplink that has them handed out prunes them; ``_prune``)."""
        self._load()
        pos = self.positions[uplink]
        for row_id in ids:
            cls = pos.cls.pop(row_id, None)
            if cls is not None:
                pos.routes.pop(row_id, None)
                pos.handed[cls][row_id] = True
        self._advance(pos)
        self._save()
        return self.box.drop_route_expired(ids)

    def _done(self, uplink: str, ids: list[int]) -> int:
        pos = self.positions[uplink]
        gone: list[int] = []
        for row_id in ids:
            cls = pos.cls.pop(row_id, None)
            if cls is None:
                continue  # not handed out on this connection (an ack of an older one)
            routed = pos.routes.pop(row_id, None)
            pos.handed[cls][row_id] = True
            others = self._known(routed) if routed is not None else self.names
            if all(name == uplink or self.positions[name].is_done(cls, row_id) for name in others):
                gone.append(row_id)
        for name in self.names:
            self._advance(self.positions[name])
        self._save()
        return delivery.ack(self.box, gone) if gone else 0

    def _advance(self, pos: Position) -> None:
        for cls, handed in enumerate(pos.handed):
            if len(handed) > PRUNE_AFTER:
                self._prune(pos, cls)
            moved = pos.upto[cls]
            for row_id, done in handed.items():
                if not done:
                    break
                moved = row_id
            if moved != pos.upto[cls]:
                for row_id in [i for i in handed if i <= moved]:
                    del handed[row_id]
                pos.upto[cls] = moved
                pos.moved = True

    def _prune(self, pos: Position, cls: int) -> None:
        """Mark done the handed-out ids of ``cls`` no longer in the outbox (dropped by a
        bound, expired, moved to the dead letters)."""
        waiting = [i for i, done in pos.handed[cls].items() if not done]
        if not waiting:
            return
        db = self.box.db
        present = {
            i
            for (i,) in db.execute(
                f"SELECT id FROM {CLASS_TABLES[cls]} WHERE id BETWEEN ? AND ?",  # noqa: S608
                (waiting[0], waiting[-1]),
            )
        }
        spans = [
            (s.first, s.last_id)
            for s in segment_store.overlapping(db, cls, waiting[0], waiting[-1])
        ]
        for row_id in waiting:
            if row_id not in present and not any(lo <= row_id <= hi for lo, hi in spans):
                pos.handed[cls][row_id] = True
                pos.cls.pop(row_id, None)
                pos.routes.pop(row_id, None)

    # -- the positions table -----------------------------------------------------------

    def _load(self) -> None:
        if self._loaded:
            return
        db = self.box.db
        try:
            db.execute(CREATE)
            gone: set[str] = set()
            for name, cls, upto in db.execute(f"SELECT uplink, cls, upto FROM {TABLE}"):  # noqa: S608
                if name not in self.positions:
                    gone.add(name)
                elif 0 <= cls < len(CLASS_TABLES):
                    self.positions[name].upto[cls] = int(upto)
            # Every uplink has its rows (``tidegate buffer stats`` reads them); one no
            # longer configured has none: nothing waits for it.
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                f"INSERT OR IGNORE INTO {TABLE} (uplink, cls, upto) VALUES (?, ?, 0)",  # noqa: S608
                [(name, cls) for name in self.names for cls in range(len(CLASS_TABLES))],
            )
            db.executemany(f"DELETE FROM {TABLE} WHERE uplink = ?", [(n,) for n in gone])  # noqa: S608
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.box._rollback()
            raise BufferError_(f"cannot read the uplinks' positions in the outbox: {exc}") from None
        self._loaded = True
        if gone:
            log.warning(
                "outbox: uplink positions of %s dropped (no longer configured)",
                ", ".join(sorted(gone)),
            )

    def _save(self) -> None:
        moved = [(name, p) for name, p in self.positions.items() if p.moved]
        if not moved:
            return
        db = self.box.db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                f"INSERT INTO {TABLE} (uplink, cls, upto) VALUES (?, ?, ?) "  # noqa: S608
                "ON CONFLICT (uplink, cls) DO UPDATE SET upto = excluded.upto",
                [(name, cls, upto) for name, p in moved for cls, upto in enumerate(p.upto)],
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.box._rollback()
            raise BufferError_(
                f"cannot record the uplinks' positions in the outbox: {exc}"
            ) from None
        for _, p in moved:
            p.moved = False

    # -- figures -----------------------------------------------------------------------

    def waiting(self, uplink: str) -> int:
        """Events stored after ``uplink``'s position and not done for it (among them any
        routed only to other uplinks: those are passed over when it reads them)."""
        self._load()
        pos = self.positions[uplink]
        db = self.box.db
        total = 0
        for cls, table in enumerate(CLASS_TABLES):
            upto = pos.upto[cls]
            (rows,) = db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE id > ?",  # noqa: S608 - constant names
                (upto,),
            ).fetchone()
            segments = sum(
                s.last_id - max(s.first, upto + 1) + 1
                for s in segment_store.overlapping(db, cls, upto + 1, 1 << 62)
                if s.last_id > upto
            )
            done = sum(1 for i, d in pos.handed[cls].items() if d and i > upto)
            total += rows + segments - done
        return max(0, total)
