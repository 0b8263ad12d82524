"""Device-format exports of synthetic cohorts: laid out like the real sample files in
tests/data/samples, and parsed back here with the csv/json standard library to the very
readings the generator produced (the project's own parsers are not used)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zoneinfo
from pathlib import Path

import pyarrow as pa
import pytest

from glucosestream.readings import MG_DL_PER_MMOL_L, ReadingFlag
from glucosestream.synth import SYNTH_FORMATS, CohortSpec, generate_chunks, write_cohort

from .conftest import DATA

SAMPLES = DATA / "samples"  # the permissively licensed samples, copied with their credits
# Seed 1 gives, in 8 type 1 patients over 3 days across the US change to summer time: LOW and
# HIGH readings, mg/dL and mmol/L zones (London, Sydney), US, European and UTC patients.
SPEC = CohortSpec(8, 3, "t1d", 5, 1, dt.date(2026, 3, 7))
LOW, HIGH = int(ReadingFlag.SENSOR_LOW), int(ReadingFlag.SENSOR_HIGH)
MMOL_TOLERANCE_MG_DL = 0.05 * MG_DL_PER_MMOL_L + 1e-9  # one decimal of mmol/L

Reading = tuple[int, float, int]  # (UTC epoch seconds, mg/dL, flags)


def needs_samples(folder: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not (SAMPLES / folder).is_dir(), reason=f"tests/data/samples/{folder} is not present"
    )


@pytest.fixture(scope="module")
def expected() -> dict[str, list[Reading]]:
    table = pa.concat_tables(generate_chunks(SPEC))
    out: dict[str, list[Reading]] = {}
    for row in table.to_pylist():
        out.setdefault(row["patient_id"], []).append(
            (int(row["time"].timestamp()), row["glucose_mg_dl"], row["flags"])
        )
    assert any(f & LOW for r in out.values() for *_, f in r)
    assert any(f & HIGH for r in out.values() for *_, f in r)
    return out


def export(tmp_path: Path, fmt: str, spec: CohortSpec = SPEC) -> tuple[Path, list[dict[str, str]]]:
    out = tmp_path / fmt
    report = write_cohort(spec, out, fmt)
    assert report.files == spec.patients
    with (out / "manifest.tsv").open() as f:
        manifest = list(csv.DictReader(f, delimiter="\t"))
    assert [m["patient_id"] for m in manifest] == [f"P{i:05d}" for i in range(1, 9)]
    return out, manifest


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def local_to_utc(stamp: str, fmt: str, zone: str) -> int:
    naive = dt.datetime.strptime(stamp, fmt)  # noqa: DTZ007 - local wall clock, zone given
    return int(naive.replace(tzinfo=zoneinfo.ZoneInfo(zone)).timestamp())


def assert_same(got: list[Reading], want: list[Reading], mmol: bool) -> None:
    assert len(got) == len(want)
    for (t1, g1, f1), (t2, g2, f2) in zip(got, want, strict=True):
        assert t1 == t2
        assert f1 == f2
        assert abs(g1 - g2) <= (MMOL_TOLERANCE_MG_DL if mmol else 0)


def test_every_format_is_named():
    assert SYNTH_FORMATS == (
        "parquet", "csv", "jsonl", "dexcom", "libreview", "nightscout", "tidepool", "fhir",
    )  # fmt: skip


@needs_samples("dexcom_clarity")
def test_dexcom_clarity_layout_and_round_trip(tmp_path, expected):
    out, manifest = export(tmp_path, "dexcom")
    sample = SAMPLES / "dexcom_clarity/cgm_format_Clarity_Export_synthetic_g6_14col.csv"
    sample_header = next(csv.reader(io.StringIO(sample.read_text(encoding="utf-8-sig"))))
    units = set()
    for entry in manifest:
        raw = (out / entry["file"]).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        assert b"\r\n" not in raw
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        header, body = rows[0], rows[1:]
        mmol = entry["unit"] == "mmol/L"
        units.add(entry["unit"])
        if mmol:
            assert header[7] == "Glucose Value (mmol/L)"
            assert header[11] == "Glucose Rate of Change (mmol/L/min)"
        else:
            assert header[1:] == sample_header[1:]
            assert header[0] == "Index"
        assert all(len(r) == 14 for r in body)
        assert [int(r[0]) for r in body] == list(range(1, len(body) + 1))
        preamble = [r for r in body if r[1] == ""]
        assert [r[2] for r in preamble[:3]] == ["FirstName", "LastName", "DateOfBirth"]
        assert {r[2] for r in preamble[3:]} <= {"Device", "Sensor", "Alert"}
        assert sum(r[2] == "Alert" for r in preamble) == 7
        got = []
        for r in body[len(preamble) :]:
            assert r[2] in ("EGV", "Insulin", "Carbs", "Exercise")  # events: test_synth_events
            if r[2] != "EGV":
                continue
            assert r[13] == entry["device_id"]
            flag = {"": 0, "Low": LOW, "High": HIGH}[r[3]]
            value = {"Low": 40.0, "High": 400.0}.get(r[7]) or float(r[7])
            mg_dl = value * MG_DL_PER_MMOL_L if mmol and not flag else value
            got.append((local_to_utc(r[1], "%Y-%m-%dT%H:%M:%S", entry["tz"]), mg_dl, flag))
        assert_same(got, expected[entry["patient_id"]], mmol)
    assert units == {"mg/dL", "mmol/L"}


@needs_samples("libreview")
@pytest.mark.parametrize("interval_min", [5, 15])
def test_libreview_layout_and_round_trip(tmp_path, interval_min):
    spec = CohortSpec(8, 3, "t1d", interval_min, 1, dt.date(2026, 3, 7))
    want = {}
    for row in pa.concat_tables(generate_chunks(spec)).to_pylist():
        want.setdefault(row["patient_id"], []).append(
            (int(row["time"].timestamp()) // 60 * 60, row["glucose_mg_dl"], 0)
        )
    out, manifest = export(tmp_path, "libreview", spec)
    samples = {
        "mmol/L": SAMPLES / "libreview/cgm_data_processor_sample_libreview_mmol_uk.csv",
        "mg/dL": SAMPLES / "libreview/cgm_format_FreeStyle_Libre_3_synthetic_mgdl_ddmmyyyy.csv",
    }
    for entry in manifest:
        rows = read_csv(out / entry["file"])
        us = entry["tz"].startswith("America/")
        sample = read_csv(samples[entry["unit"]])
        assert [rows[0][i] for i in (0, 1, 3)] == ["Glucose Data", "Generated on", "Generated by"]
        assert len(rows[0]) == len(sample[0])  # the UK file pads its title line to 19 fields
        expected_header = list(sample[1])
        if us:  # README: the US export names column 13 "Long-Acting Insulin (units)"
            expected_header[12] = "Long-Acting Insulin (units)"
        assert rows[1] == expected_header
        body = rows[2:]
        assert all(len(r) == 19 for r in body)
        types = [r[3] for r in body]
        assert types == sorted(types, key=int)
        assert {"0", "1", "6"} <= set(types) <= {"0", "1", "4", "5", "6"}  # 4, 5: insulin, food
        fmt = "%m-%d-%Y %I:%M %p" if us else "%d-%m-%Y %H:%M"
        mmol = entry["unit"] == "mmol/L"

        def parse(
            r: list[str], column: int, fmt: str = fmt, mmol: bool = mmol, zone: str = entry["tz"]
        ) -> Reading:
            value = float(r[column]) * (MG_DL_PER_MMOL_L if mmol else 1.0)
            return (local_to_utc(r[2], fmt, zone), value, 0)

        historic = [parse(r, 4) for r in body if r[3] == "0"]
        assert_same(historic, want[entry["patient_id"]], mmol)
        scans = [parse(r, 5) for r in body if r[3] == "1"]
        assert scans
        assert set(scans) <= set(historic)
        assert all(r[4] == r[5] == "" for r in body if r[3] == "6")
        assert {r[1] for r in body} == {entry["device_id"]}


@needs_samples("nightscout")
def test_nightscout_entries_layout_and_round_trip(tmp_path, expected):
    sample = json.loads((SAMPLES / "nightscout/cgm_format_nightscout_entries.json").read_text())
    sample_keys = {frozenset(doc) for doc in sample}
    directions = {doc["direction"] for doc in sample} | {"DoubleUp"}
    out, manifest = export(tmp_path, "nightscout")
    for entry in manifest:
        docs = json.loads((out / entry["file"]).read_text())
        assert all(frozenset(doc) in sample_keys for doc in docs)
        assert [d["date"] for d in docs] == sorted((d["date"] for d in docs), reverse=True)
        got = []
        for d in reversed(docs):
            assert d["type"] == "sgv"
            assert d["direction"] in directions
            assert d["sgv"] == d["glucose"] == d["unfiltered"] == d["uncalibrated"]
            when = dt.datetime.strptime(d["dateString"], "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: DTZ007
            assert int(when.replace(tzinfo=dt.UTC).timestamp()) * 1000 == d["date"]
            assert d["sysTime"] == d["dateString"]
            local = when.replace(tzinfo=dt.UTC).astimezone(zoneinfo.ZoneInfo(entry["tz"]))
            assert d["utcOffset"] * 60 == local.utcoffset().total_seconds()
            flag = LOW if d["sgv"] == 39 else HIGH if d["sgv"] == 401 else 0
            got.append((d["date"] // 1000, min(max(d["sgv"], 40), 400), flag))
        assert_same(got, expected[entry["patient_id"]], mmol=False)


@needs_samples("tidepool")
def test_tidepool_cbg_layout_and_round_trip(tmp_path, expected):
    examples = json.loads((SAMPLES / "tidepool/tidepool_cbg_doc_examples.json").read_text())
    allowed = set(examples["storage"]) | set(examples["out_of_range_low"])
    out, manifest = export(tmp_path, "tidepool")
    for entry in manifest:
        data = json.loads((out / entry["file"]).read_text())
        got = []
        for d in [d for d in data if d["type"] == "cbg"]:  # the events: test_synth_events
            assert set(d) <= allowed
            assert d["type"] == "cbg"
            assert d["units"] == "mmol/L"
            when = dt.datetime.strptime(d["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
            shown = dt.datetime.strptime(d["deviceTime"], "%Y-%m-%dT%H:%M:%S")  # noqa: DTZ007
            assert shown == (when + dt.timedelta(minutes=d["timezoneOffset"])).replace(tzinfo=None)
            assert d["sampleInterval"] == 300_000
            mg_dl = round(d["value"] * 18.01559)
            flag = 0
            for note in d.get("annotations", []):
                assert note["code"] == "bg/out-of-range"
                flag = LOW if note["value"] == "low" else HIGH
                assert mg_dl == note["threshold"] + (-1 if flag == LOW else 1)
                mg_dl = note["threshold"]
            got.append((int(when.timestamp()), mg_dl, flag))
        assert_same(got, expected[entry["patient_id"]], mmol=False)


@needs_samples("fhir_cgm")
def test_fhir_bundle_layout_and_round_trip(tmp_path, expected):
    sample = json.loads((SAMPLES / "fhir_cgm/cgm_data_submission_bundle.json").read_text())
    sample_obs = next(
        e["resource"]
        for e in sample["entry"]
        if e["resource"].get("id", "").startswith("cgmSensorReadingMass")
    )
    out, manifest = export(tmp_path, "fhir")
    for entry in manifest:
        bundle = json.loads((out / entry["file"]).read_text())
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "transaction"
        assert bundle["meta"] == sample["meta"]
        resources = [e["resource"] for e in bundle["entry"]]
        patient, device = resources[0], resources[1]
        assert patient["resourceType"] == "Patient"
        assert device["resourceType"] == "Device"
        assert patient["identifier"][0]["value"] == entry["patient_id"]
        assert patient["name"][0]["family"]
        assert patient["birthDate"]
        assert device["serialNumber"] == entry["device_id"]
        mmol = entry["unit"] == "mmol/L"
        got = []
        readings = [
            (e, r)
            for e, r in zip(bundle["entry"][2:], resources[2:], strict=True)
            if r["resourceType"] == "Observation" and "device" in r
        ]  # after them: the events (insulin, carbohydrate intake), test_events_round_trip
        for e, obs in readings:
            assert e["request"] == {"method": "POST", "url": "Observation"}
            assert set(obs) == set(sample_obs) - {"id"} | {"device"}
            assert obs["subject"]["reference"] == bundle["entry"][0]["fullUrl"]
            code = obs["code"]["coding"][0]["code"]
            assert code == ("105272-9" if mmol else "99504-3")
            when = dt.datetime.fromisoformat(obs["effectiveDateTime"])
            assert when.utcoffset() is not None
            quantity = obs["valueQuantity"]
            assert quantity["system"] == "http://unitsofmeasure.org"
            assert quantity["code"] == ("mmol/L" if mmol else "mg/dL")
            flag = {"<=": LOW, ">=": HIGH}.get(quantity.get("comparator", ""), 0)
            value = quantity["value"] * (MG_DL_PER_MMOL_L if mmol else 1)
            got.append((int(when.timestamp()), value, flag))
        assert_same(got, expected[entry["patient_id"]], mmol)


def test_device_exports_hold_the_identifiers_ingest_must_strip(tmp_path):
    out, manifest = export(tmp_path, "dexcom")
    first = (out / manifest[0]["file"]).read_text(encoding="utf-8-sig").splitlines()
    assert first[1].split(",")[2] == "FirstName"
    assert first[1].split(",")[4]
    assert first[3].split(",")[2] == "DateOfBirth"
    assert first[3].split(",")[4].count("/") == 2


def test_device_format_refuses_a_file_path(tmp_path):
    target = tmp_path / "cohort.csv"
    target.write_text("x")
    from glucosestream.errors import ConfigError

    with pytest.raises(ConfigError, match="directory"):
        write_cohort(SPEC, target, "dexcom")


@pytest.mark.parametrize("fmt", ["dexcom", "libreview", "nightscout", "tidepool", "fhir"])
def test_device_exports_are_deterministic(tmp_path, fmt):
    spec = CohortSpec(2, 1, "mixed", 15, 9)
    first, second = tmp_path / "a", tmp_path / "b"
    write_cohort(spec, first, fmt)
    write_cohort(spec, second, fmt)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    # two patients and the manifest (and Nightscout's treatments files and a pump's profile,
    # beside the entries)
    beside = ("_treatments.json", "_profile.json")
    assert len([n for n in names if not n.endswith(beside)]) == 3
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes()
