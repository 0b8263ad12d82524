"""The FHIR R4 export (exports.fhir_*): the HL7 CGM guide's resources, validated with
fhir.resources (R4B models: structural), and checked for what validation cannot see: the LOINC
codes, the UCUM units, references that resolve inside the bundle, and a round trip through the
repository's own FHIR ingest."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from click.testing import CliRunner
from fhir.resources.R4B.bundle import Bundle

from glucosestream.cli import main
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.exports.fhir_bundle import FhirOptions, write_fhir
from glucosestream.exports.fhir_resources import (
    KEY_SYSTEM,
    device_entry,
    patient_entry,
    reading_entries,
    summary_entries,
    transaction_bundle,
)
from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.metrics.report_window import last_complete_day
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedLake, window_summary
from glucosestream.readings import READING_SCHEMA, ReadingFlag

from .conftest import SECRET

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
KEY = "0123456789abcdef0123456789abcdef"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
PERIOD = (dt.date(2026, 1, 1), dt.date(2026, 1, 14))
METRICS = {
    "mean_mg_dl": 154.04,
    "pct_below_54": 0.5,
    "pct_54_69": 3.25,
    "pct_70_180": 70.0,
    "pct_181_250": 20.0,
    "pct_above_250": 6.25,
    "gmi_pct": 6.99,
    "cv_pct": 33.3,
    "days": 14.0,
    "active_pct": 95.5,
}


def _readings(rows: list[tuple[str, float, float, str, int]]) -> pa.Table:
    """Canonical readings of patient KEY: (time, mg/dL, original value, original unit, flags)."""
    n = len(rows)
    return pa.table(
        {
            "patient_key": [KEY] * n,
            "device_id": ["dev-1"] * n,
            "source": ["dexcom"] * n,
            "ts": [dt.datetime.fromisoformat(r[0]) for r in rows],
            "glucose_mg_dl": [r[1] for r in rows],
            "original_value": [r[2] for r in rows],
            "original_unit": [r[3] for r in rows],
            "flags": [r[4] for r in rows],
            "tz": ["Europe/London"] * n,
            "batch_id": ["b"] * n,
            "ingested_at": [NOW] * n,
            "direction": [None] * n,
            "rate_mg_dl_min": [None] * n,
        },
        READING_SCHEMA,
    )


READINGS = _readings(
    [
        ("2026-01-01T08:00:00+00:00", 120.0, 120.0, "mg/dL", 0),
        ("2026-01-01T08:05:00+00:00", 99.0882, 5.5, "mmol/L", 0),
        ("2026-01-01T08:10:00+00:00", 40.0, 40.0, "mg/dL", int(ReadingFlag.SENSOR_LOW)),
        ("2026-01-01T08:15:00+00:00", 400.0, 400.0, "mg/dL", int(ReadingFlag.SENSOR_HIGH)),
        ("2026-01-01T08:17:00+00:00", 130.0, 130.0, "mg/dL", int(ReadingFlag.CALIBRATION)),
    ]
)


def _bundle(unit="mg/dL", metrics=METRICS) -> dict:
    entries = [
        patient_entry(KEY, "P00001", pseudonymous=False),
        device_entry(KEY, "dev-1", "dexcom"),
        *reading_entries(READINGS, KEY, unit),
        *summary_entries(KEY, metrics, PERIOD, unit),
    ]
    return transaction_bundle(entries, NOW)


def _by_code(bundle: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for entry in bundle["entry"]:
        for coding in entry["resource"].get("code", {}).get("coding", []):
            assert coding["system"] == LOINC
            found.setdefault(coding["code"], []).append(entry["resource"])
    return found


def _assert_references_resolve(bundle: dict) -> None:
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(urls) == len(bundle["entry"])  # every fullUrl distinct

    def walk(node):
        if isinstance(node, dict):
            if "reference" in node:
                assert node["reference"] in urls, node["reference"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([e["resource"] for e in bundle["entry"]])


def test_the_bundle_is_valid_r4_and_a_transaction_of_posts():
    bundle = _bundle()
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "transaction"
    assert all(e.request.method == "POST" for e in parsed.entry)
    assert [e["request"]["url"] for e in bundle["entry"]] == [
        e["resource"]["resourceType"] for e in bundle["entry"]
    ]
    _assert_references_resolve(bundle)


def test_readings_are_cgm_sensor_observations_in_ucum_mg_dl():
    readings = _by_code(_bundle())["99504-3"]
    assert len(readings) == 4  # the calibration fingerstick is not a sensor reading
    assert [r["effectiveDateTime"] for r in readings] == [
        "2026-01-01T08:00:00Z",
        "2026-01-01T08:05:00Z",
        "2026-01-01T08:10:00Z",
        "2026-01-01T08:15:00Z",
    ]
    quantities = [r["valueQuantity"] for r in readings]
    assert {(q["system"], q["code"], q["unit"]) for q in quantities} == {(UCUM, "mg/dL", "mg/dL")}
    assert [q["value"] for q in quantities] == [120.0, 99.1, 40.0, 400.0]
    assert [q.get("comparator") for q in quantities] == [None, None, "<=", ">="]
    assert all(
        r["meta"]["profile"][0].endswith("cgm-sensor-reading-mass-per-volume") for r in readings
    )


def test_mmol_l_readings_use_the_molar_code_and_the_value_received():
    codes = _by_code(_bundle(unit="mmol/L"))
    assert "99504-3" not in codes
    quantities = [r["valueQuantity"] for r in codes["105272-9"]]
    assert {q["code"] for q in quantities} == {"mmol/L"}
    assert [q["value"] for q in quantities] == [6.66, 5.5, 2.22, 22.2]
    [mean] = codes["105273-7"]  # the molar mean glucose
    assert mean["valueQuantity"] == {
        "value": 8.55,
        "unit": "mmol/L",
        "system": UCUM,
        "code": "mmol/L",
    }


def test_the_summary_panel_has_the_six_members_with_their_codes_and_units():
    bundle = _bundle()
    codes = _by_code(bundle)
    [panel] = codes["107931-8"]
    members = {m["reference"] for m in panel["hasMember"]}
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    member_codes = {by_url[url]["code"]["coding"][0]["code"] for url in members}
    assert member_codes == {"97507-8", "106793-3", "97506-0", "104638-2", "104636-6", "104637-4"}
    values = {
        code: (codes[code][0]["valueQuantity"]["value"], codes[code][0]["valueQuantity"]["code"])
        for code in ("97507-8", "97506-0", "104638-2", "104636-6", "104637-4")
    }
    assert values == {
        "97507-8": (154.0, "mg/dL"),
        "97506-0": (6.99, "%"),
        "104638-2": (33.3, "%"),
        "104636-6": (14.0, "d"),
        "104637-4": (95.5, "%"),
    }
    for resource in [panel, *(by_url[url] for url in members)]:
        assert resource["effectivePeriod"] == {"start": "2026-01-01", "end": "2026-01-14"}


def test_times_in_ranges_components_follow_loinc_very_low_below_54_is_104642_4():
    [ranges] = _by_code(_bundle())["106793-3"]
    components = [
        (c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
        for c in ranges["component"]
    ]
    assert components == [
        ("104642-4", 0.5, "%"),  # LOINC: time below range, very low (< 54 mg/dL)
        ("104641-6", 3.25, "%"),  # LOINC: time below range, low (54-69 mg/dL)
        ("97510-2", 70.0, "%"),
        ("104640-8", 20.0, "%"),
        ("104639-0", 6.25, "%"),
    ]


def test_a_metric_without_a_value_is_data_absent_not_a_number():
    bundle = _bundle(metrics={**METRICS, "cv_pct": float("nan"), "pct_54_69": None})
    Bundle.model_validate(bundle)
    codes = _by_code(bundle)
    [cv] = codes["104638-2"]
    assert "valueQuantity" not in cv
    assert cv["dataAbsentReason"]["coding"][0]["code"] == "not-applicable"
    low = codes["106793-3"][0]["component"][1]
    assert "valueQuantity" not in low
    assert "dataAbsentReason" in low


@pytest.mark.parametrize(
    ("identity", "pseudonymous", "identifier"),
    [
        ("P00001", False, {"value": "P00001"}),
        ("urn:clinic|A-17", False, {"system": "urn:clinic", "value": "A-17"}),
        (KEY, True, {"system": KEY_SYSTEM, "value": KEY}),
    ],
)
def test_the_patient_is_an_identifier_only(identity, pseudonymous, identifier):
    resource = patient_entry(KEY, identity, pseudonymous=pseudonymous)["resource"]
    assert resource == {"resourceType": "Patient", "identifier": [identifier]}


def test_the_same_data_gives_the_same_bundle():
    assert json.dumps(_bundle()) == json.dumps(_bundle())


# --- over a published lake ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("fhir")
    env = {
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE": str(root / "lake"),
    }
    cli = CliRunner()
    cohort = root / "cohort.csv"
    synth = ["synth", "--patients", "2", "--days", "3", "--format", "csv", "--out", str(cohort)]
    for args in (synth, ["ingest", str(cohort)], ["run"]):
        result = cli.invoke(main, args, env=env)
        assert result.exit_code == 0, result.output
    return Settings(
        lake=LakeSettings(root=str(root / "lake")), ingest=IngestSettings(pseudonym_secret=SECRET)
    )


def _export(settings: Settings, out: Path, window=(None, None)):
    key = patient_key(load_secret(settings), "P00001")
    run = PublishedLake(settings).current()
    report = write_fhir(
        run,
        [key],
        window,
        out,
        settings=settings,
        identities={key: "P00001"},
        options=FhirOptions(pdf=False),
        now=NOW,
    )
    return key, run, report


def test_an_exported_patient_validates_and_its_summary_is_the_window_summary(lake, tmp_path):
    key, run, report = _export(lake, tmp_path / "p1.json")
    assert report.files == [tmp_path / "p1.json"]
    assert report.bytes == (tmp_path / "p1.json").stat().st_size
    bundle = json.loads((tmp_path / "p1.json").read_text())
    Bundle.model_validate(bundle)
    _assert_references_resolve(bundle)
    readings = run.readings([key])
    assert report.rows["readings"] == readings.num_rows
    assert report.rows["patients"] == 1
    codes = _by_code(bundle)
    [panel] = codes["107931-8"]
    newest = max(readings["ts"].to_pylist()).astimezone(ZoneInfo(readings["tz"][0].as_py()))
    expected = window_summary(run, key, None, None, now=NOW)
    assert expected.end == last_complete_day(newest.replace(tzinfo=None))
    assert panel["effectivePeriod"] == {
        "start": expected.start.isoformat(),
        "end": expected.end.isoformat(),
    }
    metrics = expected.metrics
    assert codes["97507-8"][0]["valueQuantity"]["value"] == round(metrics["mean_mg_dl"], 1)
    assert codes["97506-0"][0]["valueQuantity"]["value"] == round(metrics["gmi_pct"], 2)
    below_54 = codes["106793-3"][0]["component"][0]
    assert below_54["valueQuantity"]["value"] == round(metrics["pct_below_54"], 2)


def test_a_window_exports_only_its_local_days(lake, tmp_path):
    *_, full = _export(lake, tmp_path / "all.json")
    bundle = json.loads((tmp_path / "all.json").read_text())
    first = min(r["effectiveDateTime"] for r in _by_code(bundle)["99504-3"])
    day = dt.date.fromisoformat(first[:10]) + dt.timedelta(days=1)
    _, _, one_day = _export(lake, tmp_path / "day.json", (day, day))
    assert 0 < one_day.rows["readings"] < full.rows["readings"]
    [panel] = _by_code(json.loads((tmp_path / "day.json").read_text()))["107931-8"]
    assert panel["effectivePeriod"] == {"start": day.isoformat(), "end": day.isoformat()}


def test_the_exported_bundle_ingested_into_a_fresh_lake_gives_the_same_readings(lake, tmp_path):
    key, run, report = _export(lake, tmp_path / "p1.json")
    original = run.readings([key])
    fresh = Settings(
        lake=LakeSettings(root=str(tmp_path / "fresh")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    ingested = ingest_path(fresh, report.files[0], tz=original["tz"][0].as_py())
    assert ingested.quarantined == 0
    assert run_pipeline(fresh).status == "published"
    [again_key] = PublishedLake(fresh).current().daily()["patient_key"].unique().to_pylist()
    # formats.fhir names the patient by its identifier's value (it has no system): the same id
    assert again_key == patient_key(SECRET.encode(), "P00001")
    again = PublishedLake(fresh).current().readings([again_key])

    def rows(table):
        return sorted(
            zip(
                table["ts"].to_pylist(),
                table["glucose_mg_dl"].to_pylist(),
                table["flags"].to_pylist(),
                strict=True,
            )
        )

    assert rows(again) == rows(original)


def _export_with_pdf(settings: Settings, out: Path):
    key = patient_key(load_secret(settings), "P00001")
    return write_fhir(
        PublishedLake(settings).current(),
        [key],
        (None, None),
        out,
        settings=settings,
        identities={key: "P00001"},
        options=FhirOptions(pdf=True),
        now=NOW,
    )


@pytest.mark.slow
def test_the_agp_report_is_a_diagnostic_report_carrying_the_pdf(lake, tmp_path):
    report = _export_with_pdf(lake, tmp_path / "p1.json")
    assert report.rows["reports"] == 1
    assert report.notes == []
    bundle = json.loads((tmp_path / "p1.json").read_text())
    Bundle.model_validate(bundle)
    _assert_references_resolve(bundle)
    [diagnostic] = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    assert diagnostic["code"]["coding"] == [{"system": LOINC, "code": "107931-8"}]
    [form] = diagnostic["presentedForm"]
    assert form["contentType"] == "application/pdf"
    assert base64.b64decode(form["data"]).startswith(b"%PDF-")
    [panel] = _by_code(bundle)["107931-8"][:1]
    end = dt.date.fromisoformat(diagnostic["effectivePeriod"]["end"])
    assert diagnostic["effectivePeriod"]["end"] == panel["effectivePeriod"]["end"]
    start = dt.date.fromisoformat(diagnostic["effectivePeriod"]["start"])
    assert (end - start).days == 13  # the AGP report's 14 days


def test_without_chromium_the_bundle_is_written_without_the_pdf_and_says_why(
    lake, tmp_path, monkeypatch
):
    from glucosestream.dashboard import report as agp_report
    from glucosestream.errors import ConfigError

    def no_chromium(*args, **kwargs):
        raise ConfigError("no Chromium at /usr/bin/chromium; install it")

    monkeypatch.setattr(agp_report, "render_agp_pdf", no_chromium)
    report = _export_with_pdf(lake, tmp_path / "p1.json")
    assert report.rows["reports"] == 0
    assert report.rows["readings"] > 0
    [note] = report.notes
    assert note.startswith("AGP PDF left out: no Chromium at /usr/bin/chromium")
    assert "--no-pdf" in note
    bundle = json.loads((tmp_path / "p1.json").read_text())
    assert "DiagnosticReport" not in {e["resource"]["resourceType"] for e in bundle["entry"]}


@pytest.mark.parametrize(
    ("identity", "name"),
    [
        ("P00001", "P00001"),
        ("../../etc/passwd", "etc_passwd-01234567"),
        ("urn:clinic|A 17", "urn_clinic_A_17-01234567"),
        ("..", "patient-01234567"),
        ("x" * 300, "x" * 80 + "-01234567"),
    ],
)
def test_a_bundle_file_is_named_by_the_id_made_safe(identity, name):
    from glucosestream.exports.fhir_bundle import _file_name

    assert _file_name(identity, KEY) == name
