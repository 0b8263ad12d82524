"""The command line: the contract of DESIGN.md (flags, --json, --lake, errors, exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glucosestream.cli import main

from .conftest import DATA, SECRET


@pytest.fixture
def env(tmp_path):
    return {
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE": str(tmp_path / "lake"),
    }


@pytest.mark.parametrize("folder", ["empty", "new/nested"])
def test_demo_without_serving_works_for_an_empty_or_new_folder(cli, tmp_path, folder):
    lake = tmp_path / folder
    if folder == "empty":
        lake.mkdir()
    result = cli.invoke(
        main, ["demo", "--no-serve", "--lake", str(lake), "--patients", "3", "--days", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "published" in result.stdout
    rows = result.stdout.split("patient key", 1)[1].strip().splitlines()[1:]
    assert len(rows) == 3
    assert (lake / "_state" / "metadata.db").exists()
    made = f"created a new lake at {lake}\n"
    assert result.stderr == ("" if folder == "empty" else made)


def test_demo_refuses_a_folder_that_is_not_a_lake(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = cli.invoke(main, ["demo", "--no-serve", "--lake", str(tmp_path)])
    assert result.exit_code == 1
    assert "not empty and is not a GlucoseStream lake" in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_synth_ingest_run_metrics_with_json(cli, tmp_path, env):
    out = tmp_path / "c.csv"
    synth = cli.invoke(
        main,
        ["synth", "--patients", "2", "--days", "2", "--format", "csv", "--out", str(out), "--json"],
        env=env,
    )
    assert synth.exit_code == 0, synth.output
    assert json.loads(synth.output)["readings"] > 0
    ingest = cli.invoke(main, ["ingest", str(out), "--json"], env=env)
    assert ingest.exit_code == 0, ingest.output
    [report] = json.loads(ingest.output)
    assert report["received"] == report["accepted"] + report["duplicates"] + report["quarantined"]
    run = cli.invoke(main, ["run", "--json"], env=env)
    assert json.loads(run.output)["status"] == "published"
    again = cli.invoke(main, ["run"], env=env)
    assert "nothing to do" in again.output
    metrics = cli.invoke(main, ["metrics", "--patient", "P00001", "--json"], env=env)
    assert metrics.exit_code == 0, metrics.output
    days = json.loads(metrics.output)["days"]
    assert days
    assert {d["patient_key"] for d in days} == {days[0]["patient_key"]}
    ranged = cli.invoke(
        main,
        [
            "metrics",
            "--patient",
            "P00001",
            "--from",
            str(days[1]["date"]),
            "--to",
            str(days[1]["date"]),
            "--json",
        ],
        env=env,
    )
    assert [d["date"] for d in json.loads(ranged.output)["days"]] == [days[1]["date"]]
    human = cli.invoke(main, ["metrics", "--patient", "P00001"], env=env)
    assert "70-180%" in human.output
    written = cli.invoke(main, ["metrics", "--out", str(tmp_path / "m.parquet")], env=env)
    assert written.exit_code == 0
    assert (tmp_path / "m.parquet").stat().st_size > 0


def test_errors_are_one_line_with_exit_code_1(cli, tmp_path, env):
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,time,gl\nA,2026-01-01T00:00:00Z\n")
    result = cli.invoke(main, ["ingest", str(bad)], env=env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "bad.csv, line 2" in lines[0]
    assert "Traceback" not in result.output


def test_usage_errors_exit_with_2(cli, env):
    assert (
        cli.invoke(
            main, ["synth", "--patients", "0", "--days", "1", "--out", "x"], env=env
        ).exit_code
        == 2
    )
    assert cli.invoke(main, ["nonsense"], env=env).exit_code == 2


def test_metrics_before_any_run_says_what_to_do(cli, env):
    Path(env["GLUCOSESTREAM_LAKE"]).mkdir()  # a lake, but no run yet
    result = cli.invoke(main, ["metrics"], env=env)
    assert result.exit_code == 1
    assert "glucosestream run" in result.output


def test_bad_environment_value_is_a_clear_error(cli, env):
    result = cli.invoke(main, ["run"], env={**env, "GLUCOSESTREAM_QUALITY__MAX_MG_DL": "high"})
    assert result.exit_code == 1
    assert "GLUCOSESTREAM_QUALITY__MAX_MG_DL" in result.output


def test_a_reading_outside_the_gate_is_set_aside_and_named(cli, tmp_path, env):
    path = tmp_path / "high.csv"
    path.write_text("patient_id,time,gl\nA,2026-01-01T00:00:00Z,390\n")
    assert cli.invoke(main, ["ingest", str(path)], env=env).exit_code == 0
    result = cli.invoke(main, ["run"], env={**env, "GLUCOSESTREAM_QUALITY__MAX_MG_DL": "300"})
    assert result.exit_code == 0, result.output
    assert "1 readings set aside (glucose_range 1)" in result.output


def test_token_create_prints_a_token_once(cli, env):
    Path(env["GLUCOSESTREAM_LAKE"]).mkdir()  # token commands need a lake: they make none
    result = cli.invoke(
        main, ["token", "create", "--role", "uploader", "--patient", "P1", "--json"], env=env
    )
    assert result.exit_code == 0
    assert json.loads(result.output)["token"].startswith("gs_")
    assert cli.invoke(main, ["token", "create", "--role", "patient"], env=env).exit_code == 1
    assert cli.invoke(main, ["token", "create", "--role", "uploader"], env=env).exit_code == 1
    assert cli.invoke(main, ["token", "create", "--role", "clinician"], env=env).exit_code == 1
    clinician = ["token", "create", "--role", "clinician", "--clinic", "north"]
    assert cli.invoke(main, clinician, env=env).exit_code == 0


def test_every_command_has_help_with_an_example(cli):
    for command in ("demo", "synth", "ingest", "run", "metrics", "serve"):
        result = cli.invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "Example: glucosestream" in result.output


def test_runs_shows_history_with_steps_checks_and_readings_set_aside(cli, tmp_path, env):
    good = tmp_path / "good.csv"
    good.write_text("patient_id,time,gl\nA,2026-01-01T00:00:00Z,120\n")
    high = tmp_path / "high.csv"
    high.write_text("patient_id,time,gl\nB,2026-01-01T00:00:00Z,390\n")
    assert cli.invoke(main, ["ingest", str(good), str(high)], env=env).exit_code == 0
    strict = {**env, "GLUCOSESTREAM_QUALITY__MAX_MG_DL": "300"}
    run = cli.invoke(main, ["run"], env=strict)
    assert run.exit_code == 0, run.output
    assert "1 readings set aside (glucose_range 1)" in run.output
    runs = cli.invoke(main, ["runs"], env=env)
    assert runs.exit_code == 0, runs.output
    assert "published" in runs.output
    assert "merge" in runs.output
    as_json = json.loads(cli.invoke(main, ["runs", "--json"], env=env).output)
    [latest] = as_json["runs"]
    assert latest["report"]["readings_new"] == 1
    [aside] = latest["report"]["set_aside"]
    assert (aside["reason"], aside["rows"]) == ("glucose_range", 1)
    assert [s["step"] for s in latest["report"]["steps"]] == [
        "recover", "discover", "plan", "merge", "transform", "audit", "stage", "publish",
    ]  # fmt: skip


def test_standalone_calculator_writes_iglu_named_columns(cli, tmp_path):
    source = DATA / "validation" / "cohort.csv"
    out = tmp_path / "m.csv"
    episodes = tmp_path / "e.csv"
    result = cli.invoke(
        main,
        ["metrics", "--input", str(source), "--names", "iglu", "--out", str(out),
         "--episodes", str(episodes)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    header = out.read_text().splitlines()[0].replace('"', "").split(",")
    assert header[:3] == ["id", "ADRR", "COGI"]
    assert len(out.read_text().splitlines()) == 1 + 8
    assert "hypo" in episodes.read_text()
    missing_out = cli.invoke(main, ["metrics", "--input", str(source)])
    assert missing_out.exit_code == 2


def test_report_and_audit_commands(cli, tmp_path, env):
    out = tmp_path / "c.csv"
    cli.invoke(
        main,
        ["synth", "--patients", "1", "--days", "15", "--format", "csv", "--out", str(out)],
        env=env,
    )
    assert cli.invoke(main, ["ingest", str(out)], env=env).exit_code == 0
    assert cli.invoke(main, ["run"], env=env).exit_code == 0
    page = tmp_path / "agp.html"
    result = cli.invoke(main, ["report", "--patient", "P00001", "--out", str(page)], env=env)
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "AGP" in text
    assert "Time in ranges" in text or "TIME IN RANGES" in text.upper()
    assert (tmp_path / "static").is_dir()
    bad = cli.invoke(
        main, ["report", "--patient", "P00001", "--out", str(tmp_path / "a.txt")], env=env
    )
    assert bad.exit_code == 1
    audit = cli.invoke(main, ["audit", "--patient", "P00001", "--json"], env=env)
    assert audit.exit_code == 0, audit.output
    [entry] = json.loads(audit.output)["entries"]
    assert "report.html" in entry
    assert "agp:" in entry
