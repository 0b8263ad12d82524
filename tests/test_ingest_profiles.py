"""A Nightscout profile ingested with the entries and treatments it belongs with
(ingest/basal_profiles.py): its basal schedule becomes scheduled basal over the days of the
command's data, a temporary rate overrides it, the daily basal total is the schedule's, worked
out by hand here; the same command again changes nothing, a longer span adds only the new days;
a profile alone or without --patient is refused, naming the command that works, with nothing
written."""

from __future__ import annotations

import datetime as dt
import json
import math
import zoneinfo
from pathlib import Path

import pytest
from click.testing import CliRunner

from glucosestream.cli import main
from glucosestream.errors import InvalidInput
from glucosestream.ingest import ingest_paths
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import RawZone, open_lakehouse, open_metadata, open_storage
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES

from .conftest import DATA, SECRET

TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")  # no clock change
# U/h from each local time: 3 h at 1.0, 3 at 1.3, 3 at 1.5, 6 at 1.2, 9 at 1.0 = 27.6 U a day.
SCHEDULE = [("00:00", 1.0), ("03:00", 1.3), ("06:00", 1.5), ("09:00", 1.2), ("15:00", 1.0)]
DAILY_SCHEDULE_U = 3 * 1.0 + 3 * 1.3 + 3 * 1.5 + 6 * 1.2 + 9 * 1.0
SAMPLES = DATA / "samples" / "nightscout"


def tokyo(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 2, day, hour, minute, tzinfo=TOKYO)


def write_entries(path: Path, start: dt.datetime, end: dt.datetime) -> Path:
    entries, at, i = [], start, 0
    while at < end:
        ms = int(at.timestamp() * 1000)
        iso = at.astimezone(dt.UTC).isoformat()
        entries.append({"type": "sgv", "sgv": 110 + i % 40, "date": ms, "dateString": iso})
        at, i = at + dt.timedelta(minutes=5), i + 1
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def write_treatments(path: Path) -> Path:
    at = tokyo(11, 10).astimezone(dt.UTC).isoformat()
    treatments = [
        {"eventType": "Temp Basal", "created_at": at, "absolute": 0.5, "duration": 120,
         "enteredBy": "pump-app"},
        {"eventType": "Meal Bolus", "created_at": tokyo(11, 13).astimezone(dt.UTC).isoformat(),
         "insulin": 4.5, "carbs": 50, "enteredBy": "pump-app"},
    ]  # fmt: skip
    path.write_text(json.dumps(treatments), encoding="utf-8")
    return path


def write_profile(path: Path) -> Path:
    basal = [{"time": t, "timeAsSeconds": int(t[:2]) * 3600, "value": v} for t, v in SCHEDULE]
    profile = {
        "startDate": "2026-01-01T00:00:00.000Z",
        "defaultProfile": "Default",
        "enteredBy": "pump-app",
        "store": {"Default": {"timezone": "Asia/Tokyo", "units": "mg/dl", "basal": basal}},
    }
    path.write_text(json.dumps([profile]), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "entries": write_entries(tmp_path / "entries.json", tokyo(10, 12), tokyo(13, 6)),
        "treatments": write_treatments(tmp_path / "treatments.json"),
        "profile": write_profile(tmp_path / "profile.json"),
    }


def published_daily(settings) -> dict[dt.date, dict]:
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, TABLES)
    key = patient_key(SECRET.encode(), "P-loop")
    return {r["date"]: r for r in lake.read_daily(published.of("daily"), key).to_pylist()}


def published_scheduled(settings) -> list[dict]:
    published = open_metadata(settings.lake).published()
    events = open_lakehouse(settings.lake, TABLES).read_table("events", published.of("events"))
    return [e for e in events.to_pylist() if e["subtype"] == "scheduled"]


def test_the_schedule_fills_the_days_and_a_temporary_rate_overrides_it(settings, files):
    paths = [files["profile"], files["entries"], files["treatments"]]  # the profile first
    reports = ingest_paths(settings, paths, patient_id="P-loop", tz="Asia/Tokyo")
    assert [r.source for r in reports] == [str(p) for p in paths]  # in the order given
    profile = reports[0]
    # Segments from the one running at the first reading (09:00 on the 10th) to the last one
    # started before the last reading (03:00 on the 13th): 2 + 5 + 5 + 2.
    assert (profile.received, profile.events_received, profile.events_accepted) == (0, 14, 14)
    assert run_pipeline(settings).status == "published"
    scheduled = published_scheduled(settings)
    assert len(scheduled) == 14
    assert {e["tz"] for e in scheduled} == {"Asia/Tokyo"}  # the command's zone
    starts = sorted(e["ts"].astimezone(TOKYO) for e in scheduled)
    assert (starts[0], starts[-1]) == (tokyo(10, 9), tokyo(13, 3))
    days = published_daily(settings)
    # The 11th: the schedule, with 10:00-12:00 at 0.5 U/h instead of 1.2.
    assert days[dt.date(2026, 2, 11)]["basal_u"] == pytest.approx(DAILY_SCHEDULE_U - 2 * 0.7)
    assert days[dt.date(2026, 2, 11)]["insulin_total_u"] == pytest.approx(
        DAILY_SCHEDULE_U - 2 * 0.7 + 4.5
    )
    assert days[dt.date(2026, 2, 12)]["basal_u"] == pytest.approx(DAILY_SCHEDULE_U)
    # The first and last days are covered only from the first reading / to the last segment.
    assert days[dt.date(2026, 2, 10)]["basal_u"] is None
    assert days[dt.date(2026, 2, 13)]["basal_u"] is None
    assert math.isclose(DAILY_SCHEDULE_U, 27.6)


def test_the_same_command_again_changes_nothing_and_more_days_add_only_theirs(
    settings, files, tmp_path
):
    paths = [files["entries"], files["treatments"], files["profile"]]
    ingest_paths(settings, paths, patient_id="P-loop", tz="Asia/Tokyo")
    assert run_pipeline(settings).status == "published"
    batches = RawZone(open_storage(settings.lake)).batch_ids()
    assert len(batches) == 3
    again = ingest_paths(settings, paths, patient_id="P-loop", tz="Asia/Tokyo")
    assert all(r.already_ingested_as for r in again)
    assert again[2].events_duplicates == 14
    assert again[2].batch_id is None
    assert RawZone(open_storage(settings.lake)).batch_ids() == batches
    later = write_entries(tmp_path / "entries-2.json", tokyo(13, 6), tokyo(14, 6))
    more = ingest_paths(settings, [*paths, later], patient_id="P-loop", tz="Asia/Tokyo")
    profile = more[2]
    assert profile.already_ingested_as is None
    assert profile.batch_id is not None
    # The span now ends on the 14th at 05:55: the 13th's other three segments and the 14th's
    # first two are new; the fourteen of the first span are duplicates of the published ones.
    assert profile.events_received == profile.events_accepted == 19
    run = run_pipeline(settings)
    assert run.status == "published"
    assert (run.events_new, run.events_duplicates) == (5, 14)
    assert len(published_scheduled(settings)) == 19
    assert published_daily(settings)[dt.date(2026, 2, 13)]["basal_u"] == pytest.approx(
        DAILY_SCHEDULE_U
    )


def test_a_profile_alone_or_without_a_patient_is_refused_and_nothing_is_written(settings, files):
    with pytest.raises(InvalidInput, match="same command") as alone:
        ingest_paths(settings, [files["profile"]], patient_id="P-loop")
    assert "entries.json treatments.json profile.json --patient ID" in str(alone.value)
    with pytest.raises(InvalidInput, match="pass --patient ID"):
        ingest_paths(settings, [files["entries"], files["profile"]])
    assert not RawZone(open_storage(settings.lake)).batch_ids()


def test_a_profile_whose_schedules_start_after_the_data_is_refused(settings, files, tmp_path):
    late = json.loads(files["profile"].read_text())
    late[0]["startDate"] = "2026-03-01T00:00:00Z"
    path = tmp_path / "late-profile.json"
    path.write_text(json.dumps(late), encoding="utf-8")
    with pytest.raises(InvalidInput, match="none of its basal schedules applies"):
        ingest_paths(settings, [files["entries"], path], patient_id="P-loop")


def test_the_command_line_lays_the_samples_profile_over_its_entries_and_treatments(settings):
    names = ["profile", "entries", "treatments"]
    paths = [str(SAMPLES / f"cgm_format_nightscout_{n}.json") for n in names]
    runner = CliRunner()
    env = {"GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET}
    lake = ["--patient", "P-sample", "--lake", settings.lake.root]
    alone = runner.invoke(main, ["ingest", paths[0], *lake], env=env)
    assert alone.exit_code == 1
    assert "same command" in alone.output
    result = runner.invoke(main, ["ingest", *paths, *lake], env=env)
    assert result.exit_code == 0, result.output
    profile_line = result.output.splitlines()[:2]
    assert "cgm_format_nightscout_profile.json: received 0" in profile_line[0]
    assert "events: received 31, accepted 31" in profile_line[1]
    assert run_pipeline(settings).status == "published"
    documents = json.loads((SAMPLES / "cgm_format_nightscout_profile.json").read_text())
    newest = max(documents, key=lambda d: d["startDate"])
    basal = newest["store"][newest["defaultProfile"]]["basal"]
    # Independently: a day of the newest schedule is each rate times the hours until the next.
    seconds = [e["timeAsSeconds"] for e in basal] + [24 * 3600]
    daily = sum(e["value"] * (seconds[i + 1] - seconds[i]) / 3600 for i, e in enumerate(basal))
    published = open_metadata(settings.lake).published()
    key = patient_key(SECRET.encode(), "P-sample")
    days = open_lakehouse(settings.lake, TABLES).read_daily(published.of("daily"), key)
    by_day = {r["date"]: r for r in days.to_pylist()}
    # 1 April (UTC) has readings and the schedule only: no treatment until 2 April.
    assert by_day[dt.date(2026, 4, 1)]["basal_u"] == pytest.approx(daily)
    # Every complete day after it has a known basal: the loop's rates over the schedule.
    assert all(by_day[dt.date(2026, 4, d)]["basal_u"] is not None for d in (2, 3, 4))
