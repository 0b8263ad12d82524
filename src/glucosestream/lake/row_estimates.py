"""How many curated readings a read would return, from the table's manifests alone.

The planner sizes a run's buckets by the readings their tasks will read; counting them costs no
data file read: each data file's manifest entry holds its row count, and the day partitions say
which files a time filter keeps. A file that straddles the cut counts whole, so the figure is an
upper bound (by at most a day of readings per key prefix).
"""

from __future__ import annotations

import datetime as dt

from pyiceberg.expressions import AlwaysTrue, BooleanExpression, GreaterThanOrEqual

from glucosestream.lake.catalog import Lakehouse

__all__ = ["readings_since"]


def readings_since(lake: Lakehouse, snapshot_id: int | None, since: dt.datetime | None) -> int:
    """Curated readings at ``snapshot_id`` from ``since`` on (None: all of them)."""
    if snapshot_id is None:
        return 0
    where: BooleanExpression = (
        AlwaysTrue() if since is None else GreaterThanOrEqual("ts", since.isoformat())
    )
    scan = lake.readings.scan(row_filter=where, snapshot_id=snapshot_id)
    return sum(task.file.record_count for task in scan.plan_files())
