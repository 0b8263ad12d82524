"""The run plan: how many buckets a run takes for its readings and memory budget, the plan's
round trip through the staging zone, and the --memory-budget option."""

from __future__ import annotations

import datetime as dt
import logging

import click
import pytest

from glucosestream.cli.run_options import ByteSize
from glucosestream.config import LakeSettings
from glucosestream.errors import ConfigError
from glucosestream.lake import PublishedSnapshots, StagingZone, open_storage
from glucosestream.pipeline.run_plan import (
    BYTES_PER_READING,
    MAX_WIDTH,
    TASK_BASE_BYTES,
    BucketPlan,
    RunPlan,
    choose_width,
    read_plan,
)

GIB = 1024**3


@pytest.mark.parametrize(
    ("readings", "budget", "per_task", "width"),
    [
        (0, 6 * GIB, 1_000_000, 0),
        (999_999, 6 * GIB, 1_000_000, 0),  # one task
        (7_760_000, 6 * GIB, 1_000_000, 1),  # 16 tasks of 485 thousand
        (250_000_000, 6 * GIB, 1_000_000, 2),  # 256 tasks of under a million
        (260_000_000, 6 * GIB, 1_000_000, 3),  # 4,096 tasks
        (5_000_000, 6 * GIB, 10_000_000, 0),  # bigger tasks asked for, and they fit
        (7_760_000, 6 * GIB, 10_000_000, 1),  # 6 GiB holds 6.95 million a task
        # the budget decides: 1 GiB holds (1 GiB - 512 MiB) / 850 B = 631,612 readings a task
        (7_760_000, 1 * GIB, 10_000_000, 1),
        (20_000_000, 1 * GIB, 10_000_000, 2),
    ],
)
def test_buckets_keep_each_task_under_its_readings_and_budget(readings, budget, per_task, width):
    assert choose_width(readings, readings, budget, per_task) == width
    per_bucket = readings / 16**width
    assert per_bucket <= per_task
    assert TASK_BASE_BYTES + per_bucket * BYTES_PER_READING <= budget


def test_the_budget_allows_for_the_most_a_task_may_read_the_speed_for_the_typical():
    # an incremental run: 2.8 million new readings, up to 41.6 million with a closing period
    assert choose_width(5_600_000, 41_600_000, 6 * GIB, 4_000_000) == 1
    assert choose_width(5_600_000, 41_600_000, 64 * GIB, 8_000_000) == 0  # room for one task


def test_a_budget_below_a_tasks_own_memory_is_refused():
    with pytest.raises(ConfigError, match="raise --memory-budget"):
        choose_width(1_000, 1_000, TASK_BASE_BYTES, 1_000_000)
    with pytest.raises(ConfigError, match="READINGS_PER_TASK"):
        choose_width(1_000, 1_000, 6 * GIB, 0)


def test_too_many_readings_for_the_budget_use_every_bucket_and_say_so(caplog):
    budget = TASK_BASE_BYTES + 1_000 * BYTES_PER_READING  # a thousand readings a task
    with caplog.at_level(logging.WARNING):
        assert choose_width(10**9, 10**9, budget, 1_000_000) == MAX_WIDTH
    assert "raise --memory-budget" in caplog.text


def test_the_plan_reads_back_from_the_staging_zone_as_written(tmp_path):
    staging = StagingZone(open_storage(LakeSettings(root=str(tmp_path))))
    plan = RunPlan(
        run_id="run-1",
        attempt=2,
        computed_at=dt.datetime(2026, 12, 5, 19, 0, tzinfo=dt.UTC),
        full_refresh=True,
        published=PublishedSnapshots("run-0", {"readings": 7, "daily": None}),
        batch_ids=("b1", "b2"),
        width=1,
        estimated_readings=1234,
        buckets=(
            BucketPlan("0", (), ("staging/run-1/attempt-2/incoming/0/b1.arrow",), 10, ("0ab",)),
            BucketPlan("f", (), (), 0, ("f01", "f02")),
        ),
    )
    staging.write_json(plan.path(staging), plan.to_json())
    assert read_plan(staging, "run-1", 2) == plan


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4G", 4 * GIB),
        ("512M", 512 * 1024**2),
        ("1.5GiB", int(1.5 * GIB)),
        ("2097152", 2 * 1024**2),
    ],
)
def test_memory_budget_sizes(text, size):
    assert ByteSize().convert(text, None, None) == size


@pytest.mark.parametrize("text", ["lots", "4X", "-1G", "12"])
def test_memory_budget_refuses_what_is_not_a_size(text):
    with pytest.raises(click.BadParameter):
        ByteSize().convert(text, None, None)
