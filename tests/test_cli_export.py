"""`glucosestream export`: who and what it refuses before reading a reading, and what it says
it wrote (FHIR here; the OMOP and tidy writers' own tests are theirs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fhir.resources.R4B.bundle import Bundle

from glucosestream.cli import main
from glucosestream.cli.export_command import export

from .conftest import SECRET


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("export")
    env = {
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE": str(root / "lake"),
    }
    cohort = root / "cohort.csv"
    synth = ["synth", "--patients", "2", "--days", "2", "--format", "csv", "--out", str(cohort)]
    for args in (synth, ["ingest", str(cohort)], ["run"]):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
    return env


def _export(env, *args: str):
    return CliRunner().invoke(export, list(args), env=env)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--format", "fhir"], 2, "pass either --patient ID or --all"),
        (
            ["--all", "--patient", "P00001", "--format", "fhir"],
            2,
            "pass either --patient ID or --all",
        ),
        (["--patient", " ", "--format", "fhir"], 1, "--patient is empty"),
        (
            ["--all", "--format", "fhir", "--from", "2026-01-09", "--to", "2026-01-08"],
            1,
            "--from 2026-01-09 is after --to 2026-01-08",
        ),
        (["--patient", "P99999", "--format", "fhir"], 1, "no patient with that id in this lake"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(env, tmp_path, args, code, message):
    out = tmp_path / "out"
    result = _export(env, *args, "--out", str(out))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_an_out_folder_holding_files_is_refused_unless_forced(env, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    refused = _export(env, "--all", "--format", "fhir", "--no-pdf", "--out", str(out))
    assert refused.exit_code == 1
    assert "holds files" in refused.output
    assert "--force" in refused.output
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    forced = _export(env, "--all", "--format", "fhir", "--no-pdf", "--force", "--out", str(out))
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in out.iterdir()) == ["P00001.json", "P00002.json", "mine.txt"]
    assert (out / "mine.txt").read_text() == "keep"


def test_an_existing_file_is_refused_unless_forced(env, tmp_path):
    out = tmp_path / "p1.json"
    out.write_text("{}")
    refused = _export(env, "--patient", "P00001", "--format", "fhir", "--no-pdf", "--out", str(out))
    assert refused.exit_code == 1
    assert "exists" in refused.output
    assert out.read_text() == "{}"


def test_export_all_writes_a_bundle_per_patient_named_by_the_id_as_ingested(env, tmp_path):
    out = tmp_path / "fhir"
    result = _export(env, "--all", "--format", "fhir", "--no-pdf", "--json", "--out", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert sorted(report["files"]) == [str(out / "P00001.json"), str(out / "P00002.json")]
    assert report["bytes"] == sum(p.stat().st_size for p in out.iterdir())
    assert report["rows"]["patients"] == 2
    assert report["rows"]["summaries"] == 2
    assert report["rows"]["reports"] == 0
    for path in out.iterdir():
        bundle = json.loads(path.read_text())
        Bundle.model_validate(bundle)
        [patient] = [
            e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
        ]
        assert patient["identifier"] == [{"value": path.stem}]


def test_the_human_report_names_files_rows_and_bytes_and_no_glucose(env, tmp_path):
    out = tmp_path / "p1.json"
    result = _export(env, "--patient", "P00001", "--format", "fhir", "--no-pdf", "--out", str(out))
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("export fhir: wrote 1 file, ")
    assert f"{out.stat().st_size:,} bytes" in first
    assert " readings" in first
    assert str(out) in result.output
    assert "mg/dL" not in result.output


def test_pseudonymous_names_patients_by_their_key(env, tmp_path):
    out = tmp_path / "fhir"
    result = _export(
        env, "--all", "--format", "fhir", "--no-pdf", "--pseudonymous", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in out.iterdir())
    assert len(names) == 2
    assert all(len(n) == 32 and "P0000" not in n for n in names)
    text = "".join(p.read_text() for p in out.iterdir())
    assert "P00001" not in text
    assert "P00002" not in text


def test_mmol_l_export_uses_the_molar_reading_code(env, tmp_path):
    out = tmp_path / "p1.json"
    result = _export(
        env,
        "--patient",
        "P00001",
        "--format",
        "fhir",
        "--no-pdf",
        "--unit",
        "mmol_l",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert '"105272-9"' in text
    assert '"99504-3"' not in text


@pytest.mark.parametrize(
    ("out_name", "flags", "suffix"),
    [
        ("omop", [], ".csv"),
        ("omop", ["--omop-parquet"], ".parquet"),
        ("omop.parquet", [], ".parquet"),
    ],
)
def test_omop_is_csv_unless_asked_for_parquet(env, tmp_path, out_name, flags, suffix):
    out = tmp_path / out_name
    result = _export(env, "--all", "--format", "omop", *flags, "--json", "--out", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    files = [Path(f) for f in report["files"]]
    assert files
    assert {f.suffix for f in files} == {suffix}
    assert report["bytes"] == sum(f.stat().st_size for f in files)
    assert report["rows"]["measurement"] > 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tidy_files_with_their_data_dictionary(env, tmp_path, fmt):
    out = tmp_path / "tidy"
    result = _export(env, "--all", "--format", fmt, "--pseudonymous", "--json", "--out", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    names = sorted(Path(f).name for f in report["files"])
    assert "data_dictionary.csv" in names
    assert any(n.endswith(f".{fmt}") and n != "data_dictionary.csv" for n in names)
    assert report["bytes"] == sum(Path(f).stat().st_size for f in report["files"])
    text = b"".join(Path(f).read_bytes() for f in report["files"])
    assert b"P00001" not in text  # --pseudonymous reaches the tidy writer
