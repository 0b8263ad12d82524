"""`glucosestream metrics --patient ID [--from D] [--to D] [--json]`: one summary of the window
(the consensus set with targets, the research catalog, sufficiency), then the days."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from glucosestream.cli import main
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest import ingest_records
from glucosestream.metrics import ALL
from glucosestream.pipeline import run_pipeline

from .conftest import SECRET

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
DAYS = 14
TAIL = 120  # ten hours of a 15th day: a fresh export made mid-morning


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-summary") / "lake"
    settings = Settings(
        lake=LakeSettings(root=str(root)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    records = [
        {
            "patient_id": "P1",
            "time": (START + dt.timedelta(minutes=5 * i)).isoformat(),
            "glucose_mg_dl": 150 + 60 * math.sin(i / 288 * 2 * math.pi),
            "tz": "UTC",
        }
        for i in range(DAYS * 288 + TAIL)
    ]
    ingest_records(settings, records)
    assert run_pipeline(settings).status == "published"
    return root


def _metrics(cli, lake, *args: str):
    env = {"GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET}
    return cli.invoke(main, ["metrics", "--lake", str(lake), *args], env=env)


def test_a_fresh_export_gets_a_summary_of_its_whole_data(cli, lake):
    result = _metrics(cli, lake, "--patient", "P1", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    summary = body["summary"]
    assert (summary["start"], summary["end"]) == ("2026-01-05", "2026-01-18")
    assert summary["partial_day"] == "2026-01-19"
    assert summary["days"] == 14
    assert summary["metrics"]["readings"] == DAYS * 288
    assert set(summary["metrics"]) == set(ALL)
    assert summary["sufficiency"]["sufficient_14d"] is True
    days = body["days"]
    assert days[0]["date"] == "2026-01-05"
    assert days[-1]["date"] == "2026-01-19"  # the partial day is shown, marked
    assert [d["partial"] for d in days] == [False] * 14 + [True]


def test_the_text_gives_targets_catalog_sufficiency_then_days(cli, lake):
    result = _metrics(cli, lake, "--patient", "P1")
    assert result.exit_code == 0, result.output
    text = result.output
    order = ["summary 2026-01-05 to 2026-01-18: 14 days", "consensus set", "research catalog"]
    order += ["sufficiency", "\ndays\n"]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert "2026-01-19 is partial" in text
    [tir] = [line for line in text.splitlines() if line.strip().startswith("pct_70_180 ")]
    assert "> 70 %" in tir
    assert tir.rstrip().endswith(("yes", "NO"))
    assert "mage_mg_dl" in text.split("research catalog")[1]
    assert "enough for a 14-day report" in text
    assert "partial: not counted" in text.split("\ndays\n")[1]


def test_a_window_has_its_own_summary_and_days(cli, lake):
    result = _metrics(cli, lake, "--patient", "P1", "--from", "2026-01-06", "--to", "2026-01-08")
    body = json.loads(_metrics(cli, lake, "--patient", "P1", "--from", "2026-01-06",
                               "--to", "2026-01-08", "--json").output)  # fmt: skip
    assert result.exit_code == 0
    assert body["summary"]["days"] == 3
    assert body["summary"]["partial_day"] is None
    assert body["summary"]["metrics"]["readings"] == 3 * 288
    assert [d["date"] for d in body["days"]] == ["2026-01-06", "2026-01-07", "2026-01-08"]


def test_only_the_partial_day_shows_the_day_without_a_summary(cli, lake):
    result = _metrics(cli, lake, "--patient", "P1", "--from", "2026-01-19", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["summary"] is None
    assert "partial day 2026-01-19" in body["summary_note"]
    assert [d["date"] for d in body["days"]] == ["2026-01-19"]


def test_from_after_to_is_a_usage_error(cli, lake):
    result = _metrics(cli, lake, "--patient", "P1", "--from", "2026-01-10", "--to", "2026-01-06")
    assert result.exit_code == 2
    assert "--from 2026-01-10 is after --to 2026-01-06" in result.output


def test_an_unknown_patient_is_one_clear_line(cli, lake):
    result = _metrics(cli, lake, "--patient", "P404")
    assert result.exit_code == 1
    assert "no published data for that patient" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_window_without_data_says_what_the_patient_has(cli, lake):
    result = _metrics(cli, lake, "--patient", "P1", "--from", "2025-01-01", "--to", "2025-01-14")
    assert result.exit_code == 1
    assert "complete days 2026-01-05 to 2026-01-18" in result.output
    assert "partial day 2026-01-19" in result.output
    assert "Traceback" not in result.output


def test_periods_and_every_patients_days_still_work(cli, lake):
    periods = _metrics(cli, lake, "--periods", "--patient", "P1")
    assert periods.exit_code == 0, periods.output
    assert "2025-12-29 - 2026-01-11" in periods.output  # the closed fixed fortnight
    days = json.loads(_metrics(cli, lake, "--json").output)["days"]
    assert len(days) == DAYS + 1
