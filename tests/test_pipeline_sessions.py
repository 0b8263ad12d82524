"""curated.sensor_sessions: wear periods inferred from the readings (split at gaps of an hour or
more), folded incrementally from published summaries, equal to a full refresh; the devices
registry; erasure. Expected sessions are written out from how each trace was built."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import maintain, open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.sensor_wear import (
    SENSOR_SESSIONS_SCHEMA,
    SESSION_BREAK_MIN,
    SessionInputs,
    infer_sessions,
)
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.readings import READING_SCHEMA, ReadingFlag

from .conftest import SECRET

T0 = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)
HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"
MIN = dt.timedelta(minutes=1)


def _times(start_min: int, end_min: int, step: int = 5) -> list[dt.datetime]:
    return [T0 + m * MIN for m in range(start_min, end_min + 1, step)]


def _readings(rows: list[tuple[str, str, dt.datetime, int]]) -> pa.Table:
    n = len(rows)
    return pa.table(
        {
            "patient_key": [r[0] for r in rows],
            "device_id": [r[1] for r in rows],
            "source": ["csv"] * n,
            "ts": [r[2] for r in rows],
            "glucose_mg_dl": [100.0] * n,
            "original_value": [100.0] * n,
            "original_unit": ["mg/dL"] * n,
            "flags": [r[3] for r in rows],
            "tz": ["UTC"] * n,
            "batch_id": ["b"] * n,
            "ingested_at": [T0] * n,
            "direction": pa.nulls(n, pa.string()),
            "rate_mg_dl_min": pa.nulls(n, pa.float64()),
        },
        schema=READING_SCHEMA,
    )


def test_sessions_split_at_a_break_and_count_signal_losses():
    assert SESSION_BREAK_MIN == 60
    g = [("P", "g6", t, 0) for t in _times(0, 600)]  # 10 h
    g += [("P", "g6", t, 0) for t in _times(625, 900)]  # after a 25-min signal loss
    g += [("P", "g6", T0 + 930 * MIN, int(ReadingFlag.CALIBRATION))]  # a fingerstick: ignored
    g += [("P", "g6", t, 0) for t in _times(960, 1140)]  # after 60 min: a new session
    g += [("P", "g6", t, 0) for t in _times(1199, 1300)]  # after 59 min: the same session
    g += [("P", "libre", t, 0) for t in _times(300, 700, 15)]  # another device, overlapping
    out = infer_sessions(
        SessionInputs(SENSOR_SESSIONS_SCHEMA.empty_table(), _readings(g)),
        run_id="r",
        computed_at=T0,
    ).to_pylist()
    got = [
        (r["device_id"], r["session_start"], r["session_end"], r["readings"],
         r["longest_gap_min"], r["gaps_over_15_min"], r["duration_h"])
        for r in out
    ]  # fmt: skip
    assert got == [
        ("g6", T0, T0 + 900 * MIN, 121 + 56, 25.0, 1, 15.0),
        ("g6", T0 + 960 * MIN, T0 + 1299 * MIN, 37 + 21, 59.0, 1, 339 / 60),
        ("libre", T0 + 300 * MIN, T0 + 690 * MIN, 27, 15.0, 0, 6.5),
    ]
    assert {r["end_date"] for r in out} == {dt.date(2026, 3, 2), dt.date(2026, 3, 3)}


def _csv(path: Path, rows: list[tuple[str, str, dt.datetime]]) -> Path:
    lines = [
        f"{p},{d},{t:%Y-%m-%dT%H:%M:%SZ},{100 + i % 50},UTC" for i, (p, d, t) in enumerate(rows)
    ]
    path.write_text(HEAD + "\n".join(lines) + "\n")
    return path


def _sessions(settings) -> list[dict[str, object]]:
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    rows = lake.read_table("sessions", published.of("sessions"))
    return rows.drop_columns(["run_id", "computed_at"]).to_pylist()


# Parts arriving in this order: the history, the next day (extends the open session), a late
# part filling a gap inside a published session, a late part bridging two sessions, a part
# for a second patient and device.
PARTS = {
    "history": [("A", "s1", t) for t in _times(0, 1200) if not 300 < (t - T0) / MIN < 340]
    + [("A", "s1", t) for t in _times(1300, 2000)],
    "next-day": [("A", "s1", t) for t in _times(2005, 3440)],
    "fills-a-gap": [("A", "s1", t) for t in _times(305, 335)],
    "bridges": [("A", "s1", t) for t in _times(1230, 1270)],
    "other": [("B", "s2", t) for t in _times(100, 500)],
}


def test_incremental_sessions_equal_a_full_refresh_and_a_single_run(settings, tmp_path, key_filter):
    for name, rows in PARTS.items():
        ingest_path(settings, _csv(tmp_path / f"{name}.csv", rows))
        assert run_pipeline(settings).status == "published"
        if name == "history":  # a 40-min gap, and a 100-min break before the second session
            assert [(s["readings"], s["longest_gap_min"]) for s in _sessions(settings)] == [
                (234, 40.0),
                (141, 5.0),
            ]
        if name == "next-day":  # the open session was extended, not restarted
            assert [s["readings"] for s in _sessions(settings)] == [234, 141 + 288]
        if name == "fills-a-gap":  # the late readings split the 45-min gap
            assert [s["longest_gap_min"] for s in _sessions(settings)] == [5.0, 5.0]
    incremental = _sessions(settings)
    key_a, key_b = (patient_key(SECRET.encode(), p) for p in "AB")
    by_key = {s["patient_key"]: s for s in incremental}
    assert len(incremental) == 2  # the bridge joined A's two sessions: two 30-min gaps
    assert (by_key[key_a]["readings"], by_key[key_b]["readings"]) == (375 + 288 + 7 + 9, 81)
    assert (by_key[key_a]["longest_gap_min"], by_key[key_a]["gaps_over_15_min"]) == (30.0, 2)
    assert (by_key[key_b]["longest_gap_min"], by_key[key_b]["gaps_over_15_min"]) == (5.0, 0)
    assert by_key[key_a]["session_start"] == T0
    assert by_key[key_a]["session_end"] == T0 + 3440 * MIN
    assert run_pipeline(settings, full_refresh=True).status == "published"
    assert _sessions(settings) == incremental

    once = Settings(
        lake=LakeSettings(root=str(tmp_path / "once")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    ingest_path(once, _csv(tmp_path / "all.csv", [r for rows in PARTS.values() for r in rows]))
    run_pipeline(once)
    assert _sessions(once) == incremental

    meta = open_metadata(settings.lake)
    assert [
        (d.device_id != "s1", d.source, d.first_reading_at) for d in meta.devices_of(key_a)
    ] == [(True, "csv", T0)]
    maintain(settings.lake, TABLES, erase_patient_key=key_a)
    assert [s["patient_key"] for s in _sessions(settings)] == [key_b]
    assert meta.devices_of(key_a) == []
    assert len(meta.devices_of(key_b)) == 1
