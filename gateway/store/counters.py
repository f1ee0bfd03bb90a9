"""Running totals -> increments, inside the store's write transaction (the stateful step).

The catalogue marks running totals (``rain_total_mm``, ``increment="rain_mm"``); the rule
that turns two consecutive totals into an increment is the pure
:func:`gateway.derive.counter_increase`. This module only keeps each series' baseline
(last total and its time, per node, sensor and quantity) in ``counter_state`` and steps it.

Why here and not in the pipeline: dedup happens when the ``packet`` rows are inserted, so
only here is it known which records are new. A redelivered or replayed packet never reaches
this step and cannot move a baseline or add its rain twice; and the baselines commit in
the same transaction as the readings they produced, so a crash or restart leaves neither a
gap nor a double count. The baseline is read from SQLite once per series and batch (only
batches that carry a total pay for it) and is not cached across batches, so a rolled-back
batch leaves nothing stale behind.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Final

from gateway.catalogue import BY_NAME, COUNTERS
from gateway.derive import CounterReading, counter_increase
from gateway.packet import Record

COUNTER_STATE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS counter_state (
    node TEXT NOT NULL,
    sensor TEXT NOT NULL,
    quantity TEXT NOT NULL,
    total REAL NOT NULL,
    time_ns INTEGER NOT NULL,
    PRIMARY KEY (node, sensor, quantity)
);
"""
COUNTER_NAMES: Final = tuple(COUNTERS)
# Store.write_batch tests each sensor's values for this name: one dict lookup is all that
# packets without rain pay. A second running total in the catalogue stops this import
# until that test covers it.
(RUNNING_TOTAL,) = COUNTER_NAMES
#: total -> (largest increment whatever the interval, largest increase per hour)
_LIMITS: Final = {name: (BY_NAME[inc].maximum, BY_NAME[name].max_increase_per_h)
                  for name, inc in COUNTERS.items()}
JUMP_REASON: Final = "implausible_increase"

Series = tuple[str, str, str]  # node, sensor, quantity


@dataclass(slots=True)
class Jump:
    """An increment refused as implausible: quarantined with this evidence."""

    record: Record
    sensor: str
    quantity: str
    total: float
    detail: str


@dataclass(slots=True)
class CounterSteps:
    """The increments of one write batch, in the order of its new records."""

    db: sqlite3.Connection
    flags: dict[str, int] = field(default_factory=dict)
    jumps: list[Jump] = field(default_factory=list)
    _baselines: dict[Series, CounterReading | None] = field(default_factory=dict)
    _changed: set[Series] = field(default_factory=set)

    def apply(self, rec: Record, sensor: str, values: dict[str, float]) -> None:
        """Add the increment of every running total in ``values`` (one sensor of ``rec``).

        An increment the device sent itself (``rain_mm`` next to ``rain_total_mm``) is kept.
        """
        for name in COUNTER_NAMES:
            total = values.get(name)
            if total is None:
                continue
            key = (rec.node, sensor, name)
            previous = self._baselines[key] if key in self._baselines else self._load(key)
            maximum, per_h = _LIMITS[name]
            step = counter_increase(previous, total, rec.time_ns, maximum=maximum,
                                    max_per_h=per_h)
            if step.advance:
                self._baselines[key] = CounterReading(total, rec.time_ns)
                self._changed.add(key)
            if step.increment is not None:
                values.setdefault(COUNTERS[name], step.increment)
            if step.kind != "increase":
                flag = f"flagged.{name}.{step.kind}"
                self.flags[flag] = self.flags.get(flag, 0) + 1
            if step.kind == "jump":
                self.jumps.append(Jump(rec, sensor, name, total, step.detail))

    def _load(self, key: Series) -> CounterReading | None:
        row = self.db.execute(
            "SELECT total, time_ns FROM counter_state WHERE node=? AND sensor=? AND quantity=?",
            key).fetchone()
        baseline = None if row is None else CounterReading(float(row[0]), int(row[1]))
        self._baselines[key] = baseline
        return baseline

    def save(self) -> None:
        """Write the moved baselines (in the caller's open transaction)."""
        rows = []
        for key in self._changed:
            baseline = self._baselines[key]
            assert baseline is not None  # only an advance marks a series changed
            rows.append((*key, baseline.total, baseline.time_ns))
        self.db.executemany(
            "INSERT INTO counter_state VALUES (?,?,?,?,?) ON CONFLICT(node, sensor, quantity)"
            " DO UPDATE SET total=excluded.total, time_ns=excluded.time_ns", rows)
