"""The command line with events: a patient whose lake holds insulin and carbs but no readings
(a pump's data without a sensor's) is summarised, with '-' for the glucose figures of their
days, never a traceback; the day table carries the daily insulin and carbs."""

from __future__ import annotations

import json

from click.testing import CliRunner

from glucosestream.cli import main

from .conftest import DATA

TREATMENTS = DATA / "samples" / "nightscout" / "cgm_format_nightscout_treatments.json"


def test_metrics_of_a_patient_with_events_and_no_readings(tmp_path):
    lake = str(tmp_path / "lake")
    runner = CliRunner()
    env = {"GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": "s" * 40}
    ingested = runner.invoke(
        main, ["ingest", str(TREATMENTS), "--patient", "P1", "--lake", lake], env=env
    )
    assert ingested.exit_code == 0, ingested.output
    assert "events: received" in ingested.output
    assert runner.invoke(main, ["run", "--lake", lake], env=env).exit_code == 0
    shown = runner.invoke(main, ["metrics", "--patient", "P1", "--lake", lake], env=env)
    assert shown.exit_code == 0, shown.output
    assert "insulin and carbs" in shown.output
    days = [line for line in shown.output.splitlines() if line.startswith("2026-04-")]
    assert days
    assert all(line.split()[1:3] == ["0", "-"] for line in days)  # no readings, no mean
    as_json = runner.invoke(main, ["metrics", "--patient", "P1", "--lake", lake, "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    daily = report["days"]
    assert sum(d["carbs_g"] or 0 for d in daily) > 0
    assert report["summary"]["event_means"]["carbs_days"] == len(days)
    cohort = runner.invoke(main, ["metrics", "--lake", lake], env=env)
    assert cohort.exit_code == 0, cohort.output
