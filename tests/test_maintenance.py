"""glucosestream maintain: compaction, snapshot expiry, and erasure of one patient."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from glucosestream.cli import main
from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import maintain, open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES

from .conftest import SECRET

HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"
ERASED_ID = "Erase-Me-7731"


def _day(tmp_path: Path, name: str, patient: str, day: int) -> Path:
    rows = [
        f"{patient},SER-{patient},2026-01-{day:02d}T{h:02d}:00:00Z,{100 + h},UTC" for h in range(24)
    ]
    path = tmp_path / name
    path.write_text(HEAD + "\n".join(rows) + "\nX,d,bad-time,1,UTC\n")
    return path


def _published(settings):
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    daily = lake.read_daily(published.of("daily"))
    readings = lake.read_readings(published.of("readings"), set(daily["patient_key"].to_pylist()))
    return daily.drop_columns(["run_id", "computed_at"]).to_pylist(), readings.sort_by(
        [("patient_key", "ascending"), ("ts", "ascending")]
    ).to_pylist()


@pytest.fixture
def lake_with_history(settings, tmp_path, clock):
    for day in (1, 2, 3):
        for patient in ("Keep-1", ERASED_ID):
            ingest_path(settings, _day(tmp_path, f"{patient}-{day}.csv", patient, day), now=clock)
        assert run_pipeline(settings, now=clock).status == "published"
    return settings


def test_compaction_rewrites_small_files_and_keeps_the_data(settings, tmp_path):
    # Three runs each add eight hours of the same day: three small files in one partition.
    for part in range(3):
        rows = [
            f"C,d,2026-01-05T{h:02d}:00:00Z,{100 + h},UTC" for h in range(8 * part, 8 * part + 8)
        ]
        path = tmp_path / f"part{part}.csv"
        path.write_text(HEAD + "\n".join(rows) + "\n")
        ingest_path(settings, path)
        assert run_pipeline(settings).status == "published"
    before = _published(settings)
    report = maintain(settings.lake, TABLES, expire_older_than=None)
    assert report.compacted_files["curated.readings"] == (3, 1)
    assert _published(settings) == before


def test_expiry_removes_old_snapshots_and_their_files(lake_with_history):
    settings = lake_with_history
    before = _published(settings)
    lake = open_lakehouse(settings.lake, TABLES)
    old_ids = [s.snapshot_id for s in lake.readings.metadata.snapshots]
    current = lake.readings.current_snapshot().snapshot_id
    warehouse = Path(settings.lake.root) / "warehouse"
    files_before = sum(1 for p in warehouse.rglob("*") if p.is_file())
    report = maintain(settings.lake, TABLES, expire_older_than=dt.timedelta(0))
    assert report.expired_snapshots >= len(old_ids) - 1
    assert report.deleted_files > 0
    assert sum(1 for p in warehouse.rglob("*") if p.is_file()) < files_before
    assert _published(settings) == before
    lake = open_lakehouse(settings.lake, TABLES)
    remaining = {s.snapshot_id for s in lake.readings.metadata.snapshots}
    # Each run added its own days, so no partition had two files to compact: the current
    # snapshot stays, every older one is gone.
    assert remaining & set(old_ids) == {current}
    # The lake keeps working afterwards.
    assert run_pipeline(settings).status == "noop"


def test_erasure_removes_a_patient_from_every_zone(lake_with_history, tmp_path, cli):
    settings = lake_with_history
    key = patient_key(SECRET.encode(), ERASED_ID)
    daily_before, readings_before = _published(settings)
    result = cli.invoke(
        main,
        ["maintain", "--erase-patient", ERASED_ID, "--json"],
        env={
            "GLUCOSESTREAM_LAKE": settings.lake.root,
            "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        },
    )
    assert result.exit_code == 0, result.output
    daily_after, readings_after = _published(settings)
    assert daily_after == [d for d in daily_before if d["patient_key"] != key]
    assert readings_after == [r for r in readings_before if r["patient_key"] != key]
    assert len(daily_after) == 3
    for path in Path(settings.lake.root).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert key.encode() not in data, path
            assert ERASED_ID.encode() not in data, path
    # Accounting of the rewritten raw batches still reconciles, and new data still flows.
    ingest_path(settings, _day(tmp_path, "more.csv", "Keep-1", 4))
    report = run_pipeline(settings)
    assert report.status == "published", report.checks
    assert report.patient_days == 1


def test_erasure_takes_the_always_on_rows_of_that_patient_only(tmp_path):
    """forget_patient also deletes the patient's live readings, alerts, their history, snoozes,
    rules, webhook deliveries (bodies hold the external id and glucose) and the webhooks for
    that patient alone; another patient's rows and all-patient webhooks stay."""
    import datetime as dt

    import sqlalchemy as sa

    from glucosestream.config import LakeSettings
    from glucosestream.lake import (
        alert_events,
        alert_rules,
        alert_snoozes,
        alerts,
        live_readings,
        metadata_engine,
        open_metadata,
        webhook_outbox,
        webhooks,
    )

    lake = LakeSettings(root=str(tmp_path / "lake"))
    engine = metadata_engine(lake)
    at = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    with engine.begin() as con:
        for key in ("gone", "kept"):
            con.execute(
                live_readings.insert(),
                [
                    {
                        "patient_key": key,
                        "device_id": "d",
                        "ts": at,
                        "glucose_mg_dl": 50.0,
                        "flags": 0,
                        "tz": "UTC",
                        "batch_id": "b",
                        "ingested_at": at,
                    }
                ],
            )
            con.execute(
                alerts.insert(),
                [
                    {
                        "alert_id": f"al_{key}",
                        "patient_key": key,
                        "kind": "low",
                        "state": "active",
                        "fired_at": at,
                        "detail": "{}",
                        "suppressed": False,
                    }
                ],
            )
            con.execute(
                alert_events.insert(),
                [
                    {
                        "alert_id": f"al_{key}",
                        "patient_key": key,
                        "at": at,
                        "event": "fired",
                        "actor": "system",
                        "detail": "{}",
                    }
                ],
            )
            con.execute(
                alert_snoozes.insert(),
                [{"patient_key": key, "kind": "low", "until": at, "by": "cli", "at": at}],
            )
            con.execute(
                alert_rules.insert(),
                [
                    {
                        "patient_key": key,
                        "kind": "high",
                        "enabled": True,
                        "threshold_mg_dl": 260.0,
                        "updated_at": at,
                        "updated_by": "cli",
                    }
                ],
            )
            con.execute(
                webhooks.insert(),
                [
                    {
                        "webhook_id": f"wh_{key}",
                        "url": "https://x.example/",
                        "patient_key": key,
                        "secret_sealed": b"s",
                        "created_at": at,
                        "created_by": "cli",
                    }
                ],
            )
            con.execute(
                webhook_outbox.insert(),
                [
                    {
                        "delivery_id": f"msg_{key}",
                        "webhook_id": "wh_all",
                        "alert_id": f"al_{key}",
                        "event": "fired",
                        "seq": 0,
                        "body": b"{}",
                        "created_at": at,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": at,
                    }
                ],
            )
        con.execute(webhooks.insert(), [{
            "webhook_id": "wh_all", "url": "https://all.example/", "patient_key": None,
            "secret_sealed": b"s", "created_at": at, "created_by": "cli"}])  # fmt: skip
    open_metadata(lake).forget_patient("gone")
    tables = (live_readings, alerts, alert_events, alert_snoozes, alert_rules)
    with engine.connect() as con:
        for table in tables:
            assert con.scalars(sa.select(table.c.patient_key)).all() == ["kept"], table.name
        assert con.scalars(sa.select(webhook_outbox.c.alert_id)).all() == ["al_kept"]
        assert sorted(con.scalars(sa.select(webhooks.c.webhook_id))) == ["wh_all", "wh_kept"]
