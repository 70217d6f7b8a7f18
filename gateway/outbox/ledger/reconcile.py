"""At open: compare the outbox file with its ledger, and account for what was lost.

The ledger (``tidegate.outbox.ledger.file``) knows, outside the file, how many
events were ever accepted, how many were undelivered after the last commit,
and above which seq no source ever went. The file may have been:

- recreated: it was unreadable and moved aside, it was 0 bytes (moved aside
  too), or it is missing while a ledger says it held events. The undelivered
  events it held are lost; their number is the ledger's depth.
- replaced: it is another outbox than the one the ledger describes (its
  random id differs: a copy from another device or a backup put in its
  place). Counted like a recreated file; the file and its events are kept.
- cut short: its next row id is below the ledger's (a WAL overwritten or cut
  after a ``kill -9``, a power cut with ``durability: batch``, an old copy
  put back): the commits after it are gone. The events lost are the ledger's
  undelivered rows the file no longer has (``tidegate.outbox.ledger.undelivered``):
  events the broker already had are not lost, however many commits went.
- stale without our knowing: the machine went down without tidegate closing
  the outbox (a power cut: a different boot, no clean close) and
  ``durability: batch`` let the last commits live only in the page cache.
  How many were lost cannot be known: every source continues above its mark.

Whatever happened, no seq is ever used twice: each source that may have lost
events continues above its reserved mark, and the seqs in between are a gap
the log line names. The loss is counted in ``lost_in_recovery`` (persistent,
and kept in the ledger so that a later loss of the file does not lose it);
every other counter is raised back to what the ledger remembers, so counters
never go back. This module only decides; the outbox applies the decision in
one transaction and rewrites the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from tidegate.outbox.ledger.file import MAX_BLOCK, LedgerState, LoadStatus
from tidegate.outbox.recovery import Recreated
from tidegate.wording import count

LOST = "lost_in_recovery"
"""Counter: undelivered or committed events lost to damage, found at open."""
CORRUPT = "corrupt_recoveries"
"""Counter: times the file was unreadable (or 0 bytes) and was moved aside."""
MISSING = "missing_recoveries"
"""Counter: times the file was missing while its ledger said it held events."""
LEDGER_DAMAGED = "ledger_damaged"
"""Counter: times both slots of the ledger were unreadable."""
UNCLEAN = "unclean_recoveries"
"""Counter: opens after a power cut (another boot, no clean close) with durability: batch."""
REPLACED = "replaced_recoveries"
"""Counter: times the file was another outbox than the one its ledger describes."""
PURGED = "purged_outbox"
"""Counter (``tidegate buffer purge``): undelivered events purged by hand."""


class Gap(NamedTuple):
    """Where a source's seq continues, and why numbers are missing below it."""

    kept: int
    """The last seq the file still has."""
    used: int | None
    """The last seq ever used (None: not known). Seqs from ``kept`` + 1 to it belong to
    events delivered meanwhile or lost: they are not named as skipped."""
    next: int
    """The next seq; those after ``used`` (or ``kept``) below it were never used."""


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the freshly opened file says."""

    recreated: Recreated | None
    """Why the file is new, or None if it was kept."""
    last_seq: dict[str, int]
    accepted: int | None
    """The file's accepted total; None if the file predates it."""
    memory_applied: int
    outbox_id: int = 0
    """The random id stored in the file (0: none yet)."""
    next_id: int = 1
    """Above every row id the file ever used."""
    present: int | None = None
    """Of the ledger's undelivered rows, how many the file has (counted only when the
    file is behind the ledger)."""
    purged: int = 0
    """The file's ``purged_outbox`` counter."""


@dataclass(slots=True)
class Recovery:
    """What to change in the file, and what to tell."""

    lost: int | None = 0
    """Events lost (None: unknown, e.g. without a ledger, or after a power cut)."""
    marks: dict[str, int] = field(default_factory=dict)
    """Sources whose last seq jumps to this value (the next one is above it)."""
    gaps: dict[str, Gap] = field(default_factory=dict)
    floor: dict[str, int] = field(default_factory=dict)
    """Counters raised to at least these values (the ledger's copy)."""
    bump: dict[str, int] = field(default_factory=dict)
    """Counters increased by these amounts (after the floor)."""
    accepted: int = 0
    memory_applied: int = 0
    level: Literal["error", "warning", "info"] | None = None
    message: str = ""
    same_file: bool = True
    """The file is the one the ledger describes, whole (its delivered-but-undeleted
    ids still name the same rows)."""

    @property
    def changes_file(self) -> bool:
        return bool(self.marks or self.floor or self.bump)

    def as_json(self) -> dict[str, object]:
        """For the status document."""
        return {
            "lost": self.lost,
            "gaps": {s: g._asdict() for s, g in self.gaps.items()},
            "message": self.message,
        }


def _events(n: int) -> str:
    return count(n, "undelivered event", grouped=True)


def _describe(gaps: dict[str, Gap]) -> str:
    """Per source, never naming a seq a receiver may already have as skipped."""
    parts = []
    for source, (kept, used, nxt) in sorted(gaps.items()):
        if used is None:
            parts.append(f"{source}: above {kept} unknown, next {nxt}")
            continue
        text = f"{source}: up to {used} used, " if used > kept else f"{source}: "
        last = max(used, kept)
        if last + 1 < nxt:
            text += f"{last + 1}..{nxt - 1} skipped, "
        parts.append(f"{text}next {nxt}")
    return "; ".join(parts) or "no source"


def reconcile(
    status: LoadStatus,
    ledger: LedgerState,
    facts: FileFacts,
    *,
    boot: str,
    durability: Literal["batch", "fsync"],
    path: str,
) -> Recovery:
    if status == "missing":
        return _without_ledger(facts, path)
    if status == "damaged":
        return _damaged_ledger(facts, path)
    if facts.recreated is not None:
        return _recreated(ledger, facts, path)
    if ledger.outbox_id and facts.outbox_id != ledger.outbox_id:
        return _replaced(ledger, facts, path)
    return _kept(ledger, facts, boot=boot, durability=durability, path=path)


def _without_ledger(facts: FileFacts, path: str) -> Recovery:
    """A first start, or an outbox from a tidegate without ledgers: the file is all we know."""
    plan = Recovery(accepted=facts.accepted or 0, memory_applied=facts.memory_applied)
    if facts.recreated is not None and not facts.recreated.missing:
        plan.lost = None
        plan.bump[CORRUPT] = 1
        plan.level = "error"
        plan.message = (
            f"outbox {path} {facts.recreated.describe()}, and it has no ledger: how many "
            "undelivered events were lost is unknown"
        )
    return plan


def _damaged_ledger(facts: FileFacts, path: str) -> Recovery:
    marks = {source: seq + MAX_BLOCK for source, seq in facts.last_seq.items()}
    plan = Recovery(
        lost=None,
        marks=marks,
        gaps={s: Gap(facts.last_seq[s], None, m + 1) for s, m in marks.items()},
        bump={LEDGER_DAMAGED: 1},
        accepted=facts.accepted or 0,
        memory_applied=facts.memory_applied,
        level="error",
    )
    recreated = ""
    if facts.recreated is not None:
        recreated = f"the outbox {facts.recreated.describe()}; "
        if not facts.recreated.missing:
            plan.bump[CORRUPT] = 1
    plan.message = (
        f"outbox ledger {path}.ledger is damaged (both copies unreadable); {recreated}"
        f"seq continues {MAX_BLOCK:,} above the outbox's marks so that none repeats: "
        f"{_describe(plan.gaps)}"
    )
    return plan


def _recreated(ledger: LedgerState, facts: FileFacts, path: str) -> Recovery:
    assert facts.recreated is not None
    lost = ledger.depth if ledger.has_history else 0
    marks = {s: max(r, ledger.committed.get(s, 0)) for s, r in ledger.reserved.items()}
    plan = Recovery(
        lost=lost,
        marks=marks,
        # The undelivered events up to the last committed seq are gone with the file
        # (which ones is unknown); the seqs after it were never used.
        gaps=_gaps(ledger, facts, marks),
        floor=dict(ledger.counters),
        bump={LOST: lost},
        accepted=ledger.accepted,
        memory_applied=ledger.memory_applied,
        same_file=False,
    )
    if not facts.recreated.missing:
        plan.bump[CORRUPT] = 1
    if ledger.has_history:
        if facts.recreated.missing:
            plan.bump[MISSING] = 1
        plan.level = "error" if lost else "warning"
        loss = f"{_events(lost)} lost" if lost else "no undelivered event was lost"
        plan.message = (
            f"outbox {path} {facts.recreated.describe()}: {loss}; "
            f"seq continues above every seq used before: {_describe(plan.gaps)}"
        )
    return plan


def _gaps(ledger: LedgerState, facts: FileFacts, marks: dict[str, int]) -> dict[str, Gap]:
    return {
        s: Gap(facts.last_seq.get(s, 0), ledger.committed.get(s, 0), m + 1)
        for s, m in marks.items()
    }


def _replaced(ledger: LedgerState, facts: FileFacts, path: str) -> Recovery:
    """Another outbox put in this one's place: it is kept (its events are someone's),
    and the events of the one it replaced are counted lost."""
    lost = ledger.depth
    marks = {
        s: mark
        for s, r in ledger.reserved.items()
        if (mark := max(r, ledger.committed.get(s, 0))) > facts.last_seq.get(s, 0)
    }
    plan = Recovery(
        lost=lost,
        marks=marks,
        gaps=_gaps(ledger, facts, marks),
        floor=dict(ledger.counters),
        bump={LOST: lost, REPLACED: 1},
        accepted=max(ledger.accepted, facts.accepted or 0),
        memory_applied=max(ledger.memory_applied, facts.memory_applied),
        level="error",
        same_file=False,
    )
    plan.message = (
        f"outbox {path} is not the file its ledger describes (another outbox was put in "
        f"its place; it is kept): the {_events(lost)} of the one it replaced "
        f"{'is' if lost == 1 else 'are'} lost; seq continues above every seq used before: "
        f"{_describe(plan.gaps)}"
    )
    return plan


def _lost_from_cut(ledger: LedgerState, facts: FileFacts) -> tuple[bool, int, bool]:
    """(the file lost commits, undelivered events lost, the count is exact)."""
    described = ledger.undelivered
    if described is None:  # a ledger from before the description: the accepted totals
        behind = facts.accepted is not None and facts.accepted < ledger.accepted
        lost = min(ledger.accepted - (facts.accepted or 0), ledger.depth) if behind else 0
        return behind, max(lost, 0), True
    if facts.next_id >= described.next_id:
        # Every row the ledger knew of was committed to this file: whatever it lacks was
        # deleted on purpose (acked, dropped, purged) in a commit the ledger missed.
        return False, 0, True
    # Rows purged by hand since the ledger's copy are gone on purpose, not lost.
    purged = max(0, facts.purged - ledger.counters.get(PURGED, 0))
    lost = ledger.depth - (facts.present or 0) - purged
    return True, min(max(lost, 0), ledger.depth), described.exact


def _kept(
    ledger: LedgerState,
    facts: FileFacts,
    *,
    boot: str,
    durability: Literal["batch", "fsync"],
    path: str,
) -> Recovery:
    # After a kill -9 the page cache kept the ledger's last copy: it is exact. After a
    # power cut with durability: batch, both the ledger and the file may be older than
    # the last commit, in different ways: nothing can be trusted but the marks.
    power_cut = not ledger.clean and ledger.boot != boot and durability == "batch"
    unknown = facts.accepted is None and ledger.has_history
    behind, lost, exact = _lost_from_cut(ledger, facts)
    sources = set(ledger.reserved) | set(facts.last_seq)
    if power_cut or unknown:
        jump = sources
    else:
        jump = {s for s in sources if ledger.committed.get(s, 0) > facts.last_seq.get(s, 0)}
    marks = {}
    for source in jump:
        mark = max(ledger.reserved.get(source, 0), ledger.committed.get(source, 0))
        if mark > facts.last_seq.get(source, 0):
            marks[source] = mark
    gaps = _gaps(ledger, facts, marks)
    if power_cut or unknown:  # the ledger's copy may be older than the file's end
        gaps = {s: Gap(g.kept, None, g.next) for s, g in gaps.items()}
    plan = Recovery(
        lost=lost,
        marks=marks,
        gaps=gaps,
        floor=dict(ledger.counters),
        accepted=max(ledger.accepted, facts.accepted or 0),
        memory_applied=max(ledger.memory_applied, facts.memory_applied),
        same_file=not behind,
    )
    if behind:
        why = (
            f"outbox {path} lost its last commits (the end of its log was damaged or cut, "
            "or an older copy was put back)"
        )
        tail = f"seq continues above every seq used before: {_describe(plan.gaps)}"
        if lost:
            plan.bump[LOST] = lost
            plan.level = "error"
            amount = _events(lost) if exact else f"at least {_events(lost)}"
            plan.message = f"{why}: {amount} lost; {tail}"
        else:
            plan.level = "warning"
            plan.message = (
                f"{why}: no undelivered event was lost (events delivered meanwhile may be "
                f"sent again); {tail}"
            )
    elif unknown:
        plan.lost = None
        plan.level = "warning"
        plan.message = (
            f"outbox {path} does not say how many events it accepted (an older file?); "
            f"seq continues above every seq used before: {_describe(plan.gaps)}"
        )
    if power_cut:
        plan.bump[UNCLEAN] = 1
        if not behind:
            plan.lost = None
        plan.level = plan.level or "warning"
        plan.message = (plan.message + "; " if plan.message else "") + (
            f"outbox {path} was not closed before the machine went down (a power cut?): "
            "with durability: batch its last commits may be lost, and seq continues above "
            f"every seq used before: {_describe(plan.gaps)}"
        )
    return plan
