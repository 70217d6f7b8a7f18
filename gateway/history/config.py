"""The ``history:`` section: an optional local record of the signals, for ``tidegate plot``.

```yaml
history:
  signals: ["greenhouse/*", "*/power"]   # globs on source/name; default: every numeric signal
  raw: 6h                                # every value, this long
  tiers:                                 # then buckets of min/mean/max/count
    - {every: 1m, keep: 24h}
    - {every: 15m, keep: 30d}
  max_bytes: 64MB                        # the file's bound: the oldest rows go first, counted
  flush_interval: 30s                    # one transaction this often (SD-card friendly)
```

Absent (the default): no history file, nothing on the event path.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from tidegate.config.types import ByteSize, Duration, Section


class TierSection(Section):
    every: Duration = Field(
        gt=0, description="Bucket width: each bucket keeps the min, mean, max and count."
    )
    keep: Duration = Field(gt=0, description="How long buckets of this width are kept.")


def _default_tiers() -> list[TierSection]:
    return [TierSection(every=60.0, keep=86400.0), TierSection(every=900.0, keep=30 * 86400.0)]


class HistorySection(Section):
    path: Path | None = Field(
        None,
        description="The history database; default `<data_dir>/history.db`. Never the "
        "outbox's file.",
    )
    signals: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Globs on `source/name` of the signals kept (e.g. `greenhouse/*`); "
        "default: every numeric one. A mapping value's numeric keys are `name.key`.",
    )
    raw: Duration = Field(
        6 * 3600.0, ge=0, description="How long every value is kept at full resolution."
    )
    tiers: list[TierSection] = Field(
        default_factory=_default_tiers,
        max_length=6,
        description="Downsampled tiers, finest first: `{every: 1m, keep: 24h}`. Default: "
        "1 min buckets for 24 h, 15 min buckets for 30 days.",
    )
    max_bytes: ByteSize = Field(
        64 * 1024 * 1024,
        ge=1_000_000,
        description="Bound on the history file's contents; beyond it the oldest rows of any "
        "tier are dropped first (and counted).",
    )
    flush_interval: Duration = Field(
        30.0,
        gt=0,
        le=3600,
        description="Values are held in memory and written this often, in one transaction.",
    )
    memory_max_values: int = Field(
        200_000,
        ge=1000,
        description="Values held in memory between writes (while the disk is slow); beyond "
        "that new ones are dropped and counted.",
    )

    @model_validator(mode="after")
    def _tiers_in_order(self) -> HistorySection:
        previous_every, previous_keep = 0.0, self.raw
        for at, tier in enumerate(self.tiers):
            if tier.every <= previous_every:
                raise ValueError(f"tiers[{at}]: `every` must grow from tier to tier (finest first)")
            if tier.keep < 2 * tier.every:
                raise ValueError(f"tiers[{at}]: `keep` must be at least two buckets (`every`)")
            if tier.keep <= previous_keep:
                raise ValueError(
                    f"tiers[{at}]: `keep` must be longer than the finer tier's (or `raw`)"
                )
            previous_every, previous_keep = tier.every, tier.keep
        return self
