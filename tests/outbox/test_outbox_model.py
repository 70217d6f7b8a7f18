"""A model-based test of the outbox: random puts, takes, acks, rejects, crashes, full
disks and lost files, checking after every step that nothing committed is ever
silently gone (every event is stored, delivered, dead-lettered, or counted as dropped
or lost) and that no source's seq ever goes back."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.outbox.stored import stored_events
from tests.outbox.support import abandon, damage
from tidegate.errors import BufferError_
from tidegate.event import new_event
from tidegate.outbox import OutboxLimits, Row
from tidegate.outbox.store import Outbox
from tidegate.outgoing import Outgoing

BOUND = 24 * 1024
SOURCES = ("a", "b", "c")


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="tidegate-model-"))
        self.box = self._open()
        self.accepted: set[str] = set()  # event ids put() committed
        self.acked: set[str] = set()
        self.delivered: set[str] = set()  # acked, but the delete failed (so far)
        self.dead: set[str] = set()
        self.taken: dict[int, Row] = {}  # handed to the "publisher", not yet acked
        self.cursors = [0, 0, 0]
        self.disk_full = False
        self.value = 0
        self.top_seq: dict[str, int] = {}

    def _open(self) -> Outbox:
        box = Outbox(
            self.dir / "o.db", "gw", limits=OutboxLimits(max_bytes=BOUND, when_full="drop_oldest")
        )
        box.open()
        return box

    def teardown(self) -> None:
        self.box.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- operations -----------------------------------------------------------------

    @rule(
        batch=st.lists(
            st.tuples(st.sampled_from(SOURCES), st.integers(0, 2), st.integers(0, 200)),
            min_size=1,
            max_size=40,
        )
    )
    def put(self, batch: list[tuple[str, int, int]]) -> None:
        items = []
        for source, priority, pad in batch:
            self.value += 1
            event = new_event(source, "x", self.value, tags={"pad": "p" * pad})
            items.append(Outgoing(event, f"t/{source}", 1, False, priority))
        try:
            self.box.put(items)
        except BufferError_:
            assert self.disk_full, "put failed without a reason"
            return
        self.accepted.update(o.event.id for o in items)

    @rule(limit=st.integers(1, 30), left_over=st.integers(0, 5))
    def take(self, limit: int, left_over: int) -> None:
        rows = self.box.take(limit, self.cursors)
        # The publisher packs a prefix; what did not fit comes back at the next take.
        for row in rows[: max(0, len(rows) - left_over)]:
            # Handed out once per connection, and exactly as the file holds it now (rows
            # this run committed come from memory: ``tidegate.outbox.fresh``).
            assert row.id not in self.taken, f"row {row.id} handed out twice"
            assert row.id > self.cursors[row.priority]
            assert row.payload == self._payload(row.id), f"row {row.id} is not as stored"
            self.taken[row.id] = row
            self.cursors[row.priority] = row.id

    @rule()
    def reconnect(self) -> None:
        # A new broker connection: what was handed out and not acked is sent again.
        self.taken.clear()
        self.cursors = [0, 0, 0]

    @rule()
    def clock_step(self) -> None:
        try:
            self.box.correct_clock(30.0)  # rewrites the payloads of this boot's events
        except BufferError_:
            assert self.disk_full

    @precondition(lambda self: bool(self.taken))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.taken)), min_size=1, unique=True))
        try:
            self.box.ack(ids, sum(len(self.taken[i].payload) for i in ids))
        except BufferError_:
            assert self.disk_full
            # Delivered: the outbox keeps them from being sent again and deletes them later.
            self.delivered.update(_event_id(self.taken.pop(i)) for i in ids)
            return
        for i in ids:
            row = self.taken.pop(i)
            if self._stored(row.id) is False:
                self.acked.add(_event_id(row))

    @precondition(lambda self: bool(self.taken))
    @rule(data=st.data())
    def reject(self, data: st.DataObject) -> None:
        row_id = data.draw(st.sampled_from(sorted(self.taken)))
        row = self.taken[row_id]
        present = self._stored(row_id)
        try:
            moved = self.box.reject([row_id], "refused")
        except BufferError_:
            assert self.disk_full
            return
        self.taken.pop(row_id)
        if moved:
            assert present
            self.dead.add(_event_id(row))

    @rule()
    def crash_and_reopen(self) -> None:
        # Like kill -9: drop the connection without any goodbye, reopen the file.
        abandon(self.box)
        self.box = self._open()
        self.taken.clear()  # the publisher starts again from the oldest
        self.cursors = [0, 0, 0]
        self.disk_full = False

    @rule(how=st.sampled_from(["zero_bytes", "missing", "zero_header"]))
    def lose_file(self, how: str) -> None:
        # The file is gone or unreadable at the next start; its ledger is not.
        self.box.close()
        damage(self.dir / "o.db", how)
        self.box = self._open()
        self.taken.clear()
        self.cursors = [0, 0, 0]
        self.disk_full = False

    @rule()
    def fill_disk(self) -> None:
        pages = self.box.db.execute("PRAGMA page_count").fetchone()[0]
        self.box.db.execute(f"PRAGMA max_page_count = {pages}")
        self.disk_full = True

    @precondition(lambda self: self.disk_full)
    @rule()
    def free_disk(self) -> None:
        self.box.db.execute("PRAGMA max_page_count = 1073741823")
        self.disk_full = False

    # -- what must always hold ----------------------------------------------------------

    def _stored(self, row_id: int) -> bool:
        return self._payload(row_id) is not None

    def _payload(self, row_id: int) -> bytes | None:
        found = [p for i, _, p in stored_events(self.box.db) if i == row_id]
        return found[0] if found else None

    def _in_outbox(self) -> list[tuple[int, int, dict[str, object]]]:
        return [
            (row_id, priority, json.loads(payload))
            for row_id, priority, payload in stored_events(self.box.db)
        ]

    @invariant()
    def nothing_is_silently_gone(self) -> None:
        stored = {str(doc["id"]) for _, _, doc in self._in_outbox()}
        self.acked |= self.delivered - stored  # deleted since (by a later ack or commit)
        self.delivered &= stored
        assert stored <= self.accepted
        assert not (stored & self.acked) and not (stored & self.dead)
        drops = self.box.stats.drops
        dropped = sum(v for k, v in drops.items() if k.startswith("dropped"))
        lost = drops.get("lost_in_recovery", 0)
        gone = self.accepted - stored - self.acked - self.dead
        assert len(gone) == dropped + lost, f"{len(gone)} gone, {dropped} dropped, {lost} lost"

    @invariant()
    def seq_never_goes_back(self) -> None:
        for source in SOURCES:
            seq = self.box.last_seq(source)
            assert seq >= self.top_seq.get(source, 0), (source, seq, self.top_seq)
            self.top_seq[source] = seq

    @invariant()
    def order_holds_per_source_within_a_class(self) -> None:
        last: dict[tuple[object, int], int] = {}
        for _, priority, doc in self._in_outbox():
            key = (doc["source"], priority)
            seq = doc["seq"]
            assert isinstance(seq, int)
            assert seq > last.get(key, 0)
            last[key] = seq

    @invariant()
    def the_bound_holds_and_the_counts_are_true(self) -> None:
        stats = self.box.stats
        assert stats.bytes <= stats.max_bytes
        depth, size = stats.depth, stats.bytes
        self.box.recount()
        assert (stats.depth, stats.bytes) == (depth, size)

    @invariant()
    def the_file_is_sound(self) -> None:
        if self.value % 7 == 0:  # integrity_check is slow: now and then is enough
            assert self.box.db.execute("PRAGMA quick_check").fetchone()[0] == "ok"


def _event_id(row: Row) -> str:
    doc = json.loads(row.payload)
    assert isinstance(doc["id"], str)
    return doc["id"]


TestOutboxModel = OutboxMachine.TestCase
TestOutboxModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
