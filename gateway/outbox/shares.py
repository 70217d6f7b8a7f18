"""Several uplinks reading one outbox (``uplinks:``): each its own delivery position.

Every event is stored once. Each uplink reads the outbox in id order per priority
class, from its own position, and what it has (acknowledged, refused, or skipped
because the event is not routed to it: ``tidegate.outbox.routing``) is *done* for
it. An event is deleted once it is done for every uplink it is routed to, so an
uplink that is down holds back no other: the others read on from their own
positions, and events routed only to them leave the outbox as they are acknowledged.

Per uplink and class, ``upto`` is its position: every event of the class up to it
is done for the uplink (``tidegate.outbox.positions``). It is kept in
``uplink_positions``, written before the deletes it allows: what a crash, or a
failed write, leaves between them is found at the next start (``_sweep``), as are
the events that waited only for an uplink since removed from the config. Above it,
``handed`` keeps the ids handed out, in id order, each done or not; ``upto`` moves
over the done ones at the head, never over one not done. An id that leaves the
outbox otherwise (a bound's drop, an expiry, a dead letter for damage) is forgotten
at the next connection, or once many wait behind it.

An event deleted because every uplink it goes to is done with it counts as delivered
if one of them acknowledged it; refused or given up by all of them, it leaves without
being counted as delivered: refused, the dead letters have it; given up, it is a drop
counted as ``dropped_uplink_max_age``. What was not sent is kept in memory only: an
event refused or given up before a restart counts as delivered when it leaves after it.

One uplink (``mqtt:``) never comes here: the outbox deletes what it acknowledges.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tidegate.outbox import delivery
from tidegate.outbox import positions as stored
from tidegate.outbox.clock import ROUTE_EXPIRED, UPLINK_MAX_AGE
from tidegate.outbox.dead import reject
from tidegate.outbox.deletes import drop
from tidegate.outbox.positions import Position
from tidegate.outbox.routing import routed_to
from tidegate.outbox.schema import CLASS_TABLES
from tidegate.wording import count

if TYPE_CHECKING:
    from tidegate.outbox.delivery import Row
    from tidegate.outbox.store import Outbox

log = logging.getLogger("tidegate.outbox.store")

TABLE = stored.TABLE
ACKED, PASSED, REFUSED, TOO_OLD = "acked", "passed", "refused", "too_old"
"""How an event became done for an uplink (``UplinkShares._done``)."""
ORPHANED = "dropped_uplink_removed"
"""Counter: events routed only to uplinks removed from the config since."""
SWEEP_READ = 10_000
"""Rows read at once by the sweep at start."""


class UplinkShares:
    """The delivery positions of several uplinks (``tidegate.outbox.shares``)."""

    def __init__(self, box: Outbox, uplinks: Sequence[str]) -> None:
        self.box = box
        self.names = list(uplinks)
        self.positions = {name: Position(len(CLASS_TABLES)) for name in self.names}
        self._loaded = False
        self._gone_delivered: list[int] = []
        """Done for every uplink they go to, one of them acknowledged: to delete."""
        self._gone_unsent: list[int] = []
        """Done for every uplink they go to, none delivered them: to delete."""
        self._gone_too_old: list[int] = []
        """Given up (too old) by every uplink they go to: to drop, counted."""
        self._orphans: list[int] = []
        """Routed only to uplinks no longer configured: to drop, counted."""

    # -- reading -----------------------------------------------------------------------

    def take(
        self,
        uplink: str,
        limit: int,
        cursors: Sequence[int],
        after: Sequence[int] | None = None,
    ) -> tuple[list[Row], list[int], bool]:
        """One read for ``uplink``: up to ``limit`` rows for it after its cursors and its
        position (or after ``after``: where the last read left off); rows done for it,
        or not routed to it, are passed over. Returns the rows, where the next read goes
        on, and whether there may be more."""
        self._load()
        pos = self.positions[uplink]
        if after is None:
            if not any(cursors):
                self._restart(pos)
            after = [max(c, u) for c, u in zip(cursors, pos.upto, strict=True)]
        else:
            after = list(after)
        rows = delivery.take(self.box, limit, after)
        out: list[Row] = []
        passed: list[int] = []
        for row in rows:
            cls = row.priority
            after[cls] = max(after[cls], row.id)
            if pos.is_done(cls, row.id):
                continue
            routed = routed_to(row.topic)
            pos.hand(cls, row.id, routed)
            if routed is not None and uplink not in self._known(routed):
                passed.append(row.id)
            else:
                out.append(row)
        if passed:
            self._done(uplink, passed, PASSED)
        return out, after, len(rows) >= limit

    def _known(self, routed: frozenset[str]) -> frozenset[str]:
        """Of the uplinks a stored route names, those configured now (none: the route's
        uplinks were all removed from the config; its events are dropped and counted,
        ``ORPHANED``, never sent where they were not meant to go)."""
        return routed.intersection(self.names)

    def _restart(self, pos: Position) -> None:
        pos.restart()
        for cls in range(len(CLASS_TABLES)):
            self._forget_gone(pos, cls)

    def _forget_gone(self, pos: Position, cls: int) -> None:
        """What ``pos`` still waits on or keeps as not sent, but left the outbox some
        other way (a bound, an expiry, a purge): forgotten."""
        kept = sorted([i for i, done in pos.handed[cls].items() if not done] + pos.unsent_in(cls))
        pos.forget(cls, set(kept) - stored.present(self.box.db, cls, kept))

    # -- what an uplink has ------------------------------------------------------------

    def ack(self, uplink: str, ids: Iterable[int]) -> int:
        """``uplink``'s broker has these: delete those now done for every uplink."""
        return self._done(uplink, list(ids), ACKED)

    def reject(self, uplink: str, ids: Sequence[int], reason: str, stage: str) -> int:
        """``uplink`` cannot send these: a copy goes to the dead letters (the others
        may still send them), and they are done for it."""
        self._load()
        wanted = [i for i in ids if i in self.positions[uplink].cls]
        copied = reject(
            self.box, wanted, f"uplink {uplink}: {reason}", stage, keep=True, only_to=uplink
        )
        self._done(uplink, wanted, REFUSED)
        return copied

    def give_up(self, uplink: str, ids: Sequence[int]) -> int:
        """Past ``uplink``'s ``max_event_age``: done for it, not sent; deleted if every
        other uplink they go to is done with them too."""
        return self._done(uplink, list(ids), TOO_OLD)

    def expire(self, uplink: str, ids: Sequence[int]) -> int:
        """Past their route's ``expire_after``: worth sending to no uplink, deleted now
        and counted (another uplink that has them handed out forgets them)."""
        self._load()
        pos = self.positions[uplink]
        for cls in range(len(CLASS_TABLES)):
            pos.forget(cls, {i for i in ids if pos.cls.get(i) == cls})
        for other in self.positions.values():
            for row_id in ids:
                other.unsent.pop(row_id, None)
        self._advance_all()
        return drop(self.box, ids, ROUTE_EXPIRED)

    def _done(self, uplink: str, ids: list[int], how: str) -> int:
        """``ids`` are done for ``uplink`` (``how``: ACKED, PASSED, REFUSED, TOO_OLD);
        those now done for every uplink they go to are deleted: as delivered if one
        delivered it; else as a drop, counted unless refused (the dead letters have it)."""
        self._load()
        positions = self.positions
        pos = positions[uplink]
        for row_id in ids:
            cls = pos.cls.pop(row_id, None)
            if cls is None:
                continue  # not handed out on this connection (an ack of an older one)
            routed = pos.routes.pop(row_id, None)
            pos.handed[cls][row_id] = True
            if how in (REFUSED, TOO_OLD):
                pos.unsent[row_id] = (cls, how == REFUSED)
            others = self._known(routed) if routed is not None else self.names
            if not others:
                self._orphans.append(row_id)
            elif all(name == uplink or positions[name].is_done(cls, row_id) for name in others):
                unsent = [positions[n].unsent.pop(row_id, None) for n in others]
                if any(u is None for u in unsent):
                    self._gone_delivered.append(row_id)
                elif any(refused for _, refused in filter(None, unsent)):
                    self._gone_unsent.append(row_id)
                else:
                    self._gone_too_old.append(row_id)
        self._advance_all()
        return self._delete_gone()

    def _advance_all(self) -> None:
        for pos in self.positions.values():
            for cls, handed in enumerate(pos.handed):
                if len(handed) + len(pos.unsent) > pos.prune_at[cls]:
                    self._forget_gone(pos, cls)
                    pos.prune_at[cls] = max(stored.PRUNE_AFTER, 2 * (len(handed) + len(pos.unsent)))
            pos.advance()

    def _delete_gone(self) -> int:
        """Record the positions, then delete what they allow (a failure keeps both for
        the next round; a crash between them is swept up at the next start)."""
        stored.save(self.box.db, self.positions)
        deleted = 0
        if self._gone_delivered:
            ids, self._gone_delivered = self._gone_delivered, []
            deleted += delivery.ack(self.box, ids)  # keeps what it could not delete
        if self._gone_unsent:
            deleted += drop(self.box, self._gone_unsent, None)
            self._gone_unsent = []
        if self._gone_too_old:
            deleted += drop(self.box, self._gone_too_old, UPLINK_MAX_AGE)
            self._gone_too_old = []
        if self._orphans:
            orphans = drop(self.box, self._orphans, ORPHANED)
            self._orphans = []
            if orphans:
                log.warning(
                    "outbox: %s routed only to uplinks no longer configured: dropped",
                    count(orphans, "event"),
                )
            deleted += orphans
        return deleted

    # -- at start ----------------------------------------------------------------------

    def _load(self) -> None:
        if self._loaded:
            return
        gone = stored.load(self.box.db, self.positions)
        self._loaded = True
        if gone:
            log.warning(
                "outbox: uplink positions of %s dropped (no longer configured)",
                ", ".join(sorted(gone)),
            )
        # After a clean stop nothing was left between a position and its deletes.
        swept = self._sweep() if gone or not self.box.opened_after_clean_stop else 0
        if swept:
            log.info(
                "outbox: %s done for every uplink they go to deleted at start",
                count(swept, "event"),
            )

    def _sweep(self) -> int:
        """Delete the events every uplink they go to is done with: what a crash between
        a position's write and its deletes left, and what was routed only to uplinks
        removed from the config since (dropped, counted). Without routes to some
        uplinks, what lies below every position is all of it; with them, the events
        up to the highest position are read once (their routes say)."""
        positions = list(self.positions.values())
        restricted = any(routed_to(route[0]) is not None for route in self.box._routes.values())
        gone: list[int] = []
        db = self.box.db
        for cls in range(len(CLASS_TABLES)):
            low = min(p.upto[cls] for p in positions)
            high = max(p.upto[cls] for p in positions)
            if not restricted:
                gone += stored.stored_upto(db, cls, low) if low > 0 else []
                continue
            after = [1 << 62] * len(CLASS_TABLES)
            after[cls] = 0
            while high > 0 and (rows := delivery.take(self.box, SWEEP_READ, after)):
                for row in rows:
                    if row.id > high:
                        break
                    routed = routed_to(row.topic)
                    names = self._known(routed) if routed is not None else self.names
                    if not names:
                        self._orphans.append(row.id)
                    elif all(self.positions[n].upto[cls] >= row.id for n in names):
                        gone.append(row.id)
                if rows[-1].id > high or len(rows) < SWEEP_READ:
                    break
                after[cls] = rows[-1].id
        swept = delivery.ack(self.box, gone) if gone else 0
        return swept + self._delete_gone()

    # -- figures -----------------------------------------------------------------------

    def waiting(self, uplink: str) -> int:
        """Events stored after ``uplink``'s position and not done for it (among them any
        routed only to other uplinks: those are passed over when it reads them)."""
        self._load()
        pos = self.positions[uplink]
        db = self.box.db
        total = 0
        for cls in range(len(CLASS_TABLES)):
            upto = pos.upto[cls]
            done = sorted(i for i, d in pos.handed[cls].items() if d and i > upto)
            total += stored.stored_after(db, cls, upto) - len(stored.present(db, cls, done))
        return max(0, total)
