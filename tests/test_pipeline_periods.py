"""Per-period results in the lake: closed 14-day periods, recomputed when late data or newer
data touches them, equal between incremental runs and a full refresh."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from pathlib import Path

import pytest

from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.periods import PERIOD_EPOCH, period_start
from glucosestream.pipeline.table_registry import TABLES

from .conftest import SECRET

HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"
START = dt.date(2026, 1, 12)  # starts a fixed fortnight (742 days, 53 x 14, after the epoch)


def _value(day: int, hour: int) -> int:
    return 90 + (day * 7 + hour * 5) % 80


def _write(path: Path, first_day: int, last_day: int) -> Path:
    rows = [
        f"A,d,{START + dt.timedelta(days=d)}T{h:02d}:00:00Z,{_value(d, h)},UTC"
        for d in range(first_day, last_day)
        for h in range(24)
    ]
    path.write_text(HEAD + "\n".join(rows) + "\n")
    return path


def _results(settings):
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    out = {}
    for short in ("periods", "episodes", "agp"):
        rows = lake.read_table(short, published.of(short))
        out[short] = rows.drop_columns(["run_id", "computed_at"]).to_pylist()
    return out


def test_fixed_fortnights():
    assert (START - PERIOD_EPOCH).days % 14 == 0
    assert period_start(START) == START
    assert period_start(START + dt.timedelta(days=13)) == START
    assert period_start(START + dt.timedelta(days=14)) == START + dt.timedelta(days=14)


def test_closed_periods_are_written_once_newer_data_closes_them(settings, tmp_path):
    ingest_path(settings, _write(tmp_path / "a.csv", 0, 10))
    run_pipeline(settings)
    assert _results(settings)["periods"] == []  # the first fortnight is still open
    ingest_path(settings, _write(tmp_path / "b.csv", 10, 16))  # reaches into the next one
    run_pipeline(settings)
    periods = _results(settings)["periods"]
    assert [(p["period_start"], p["period_end"]) for p in periods] == [
        (START, START + dt.timedelta(days=13))
    ]
    values = [_value(d, h) for d in range(14) for h in range(24)]
    assert periods[0]["patient_key"] == patient_key(SECRET.encode(), "A")
    assert periods[0]["readings"] == len(values)
    assert periods[0]["mean_mg_dl"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    agp = _results(settings)["agp"]
    assert {r["period_start"] for r in agp} == {START}


def test_incremental_periods_equal_a_full_refresh(settings, tmp_path, key_filter):
    for name, first, last in (("a", 0, 12), ("b", 12, 20), ("c", 20, 31), ("late", 3, 4)):
        ingest_path(settings, _write(tmp_path / f"{name}.csv", first, last))
        assert run_pipeline(settings).status == "published"
    incremental = _results(settings)
    assert [p["period_start"] for p in incremental["periods"]] == [
        START, START + dt.timedelta(days=14)
    ]  # fmt: skip
    assert run_pipeline(settings, full_refresh=True).status == "published"
    assert _results(settings) == incremental


def test_metrics_command_prints_periods(settings, tmp_path, cli):
    from glucosestream.cli import main

    ingest_path(settings, _write(tmp_path / "a.csv", 0, 20))
    run_pipeline(settings)
    env = {
        "GLUCOSESTREAM_LAKE": settings.lake.root,
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
    }
    result = cli.invoke(main, ["metrics", "--periods", "--patient", "A"], env=env)
    assert result.exit_code == 0, result.output
    assert f"{START} - {START + dt.timedelta(days=13)}" in result.output
    as_json = cli.invoke(main, ["metrics", "--periods", "--json"], env=env)
    assert [p["readings"] for p in json.loads(as_json.output)["periods"]] == [336]
